// Package drive runs the real mpsandbox binary for the benchmark and the
// soak, and talks to it the way a merchant does: the admin API for
// credentials and the clock, signed P云 forms to prepare trades, the
// mini-program contract to jump, and a loopback notify receiver.
//
// It is outside server/, so it cannot import the sandbox's internal packages:
// what it needs of the wire formats (P云's MD5 sign) is written here from
// SOURCES.md, and v3 requests are signed by the official wechatpay-go SDK.
package drive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is one running mpsandbox process.
type Server struct {
	Cmd  *exec.Cmd
	Addr string // host:port
	Base string // http://host:port
	// Ready is the time from exec to the first 200 from /readyz.
	Ready time.Duration
	// LogPath is where the process's stderr (its log) goes.
	LogPath string

	exited chan struct{}
	err    error
}

// Start execs bin with --addr on a free loopback port and the given flags
// (a data dir among them), sends its output to logPath, and returns once /readyz answers
// 200, polling every millisecond so that Ready is exact to about that.
func Start(bin, logPath string, flags ...string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	args := append([]string{"--addr", addr}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	s := &Server{Cmd: cmd, Addr: addr, Base: "http://" + addr, LogPath: logPath, exited: make(chan struct{})}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	for deadline := start.Add(15 * time.Second); time.Now().Before(deadline); {
		resp, err := client.Get(s.Base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.Ready = time.Since(start)
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", bin, s.err, logPath, Tail(logPath, 20))
		case <-time.After(time.Millisecond):
		}
	}
	s.Kill()
	return nil, fmt.Errorf("%s was not ready within 15 s; log %s:\n%s", bin, logPath, Tail(logPath, 20))
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.Cmd.Process.Pid }

// Stop sends SIGTERM and waits for the exit (SIGKILL after 30 s).
func (s *Server) Stop() error {
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.Kill()
		return errors.New("no exit 30 s after SIGTERM: killed")
	}
	return s.err
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() {
	_ = s.Cmd.Process.Kill()
	<-s.exited
}

// Exited is closed once the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Memory is a process's resident set, from /proc/<pid>/status.
type Memory struct {
	RSSKiB  int64 // VmRSS: resident now
	PeakKiB int64 // VmHWM: the most it has been resident
}

// ReadMemory reads VmRSS and VmHWM of pid.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch name {
		case "VmRSS":
			m.RSSKiB = n
		case "VmHWM":
			m.PeakKiB = n
		}
	}
	return m, sc.Err()
}

// MiB renders KiB as MiB with one decimal.
func MiB(kib int64) string { return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64) }

// WaitFor polls cond every 10 ms until it holds or ctx ends.
func WaitFor(ctx context.Context, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// CPUTime is the CPU time (user + system) pid has used, from
// /proc/<pid>/stat, at the kernel's 10 ms clock-tick resolution.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: the fields start after its ')'.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// IO is a process's I/O counters, from /proc/<pid>/io.
type IO struct {
	Syscalls int64 // read and write system calls (syscr + syscw)
	Written  int64 // bytes passed to write calls (wchar), sockets included
}

// ReadIO reads pid's I/O counters.
func ReadIO(pid int) (IO, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return IO{}, err
	}
	var io IO
	for _, line := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		switch name {
		case "syscr", "syscw":
			io.Syscalls += n
		case "wchar":
			io.Written += n
		}
	}
	return io, nil
}
