package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes where the figures were taken.
type Machine struct {
	CPU    string
	Cores  int
	Memory string
	Kernel string
	Go     string
	Commit string
	Wrk    string
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	m.CPU = firstField("/proc/cpuinfo", "model name")
	if kb := firstField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscan(strings.Fields(kb)[0], &n)
		m.Memory = fmt.Sprintf("%.0f GiB", float64(n)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Commit = command("git", "describe", "--always", "--dirty")
	m.Wrk = command("wrk", "--version")
	if i := strings.Index(m.Wrk, " ["); i > 0 {
		m.Wrk = m.Wrk[:i]
	}
	return m
}

// firstField returns the value of the first "name : value" line of a /proc file.
func firstField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// command runs a command and returns the first line of its output.
func command(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
