package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// testkitStartProgram is the program the testkit phase runs in fresh
// processes (bench/cmd/testkitstart).
const testkitStartProgram = "bench/cmd/testkitstart"

// TestkitFigures are one build's testkit starts, each process fresh.
type TestkitFigures struct {
	// Commit is the commit the program was built against; empty for the
	// tree the bench runs from.
	Commit string
	// Skipped says why the build was not measured, when it was not.
	Skipped string
	// First is each process's first start (testkit.Run → first 200 from
	// GET /readyz), FirstCPU the CPU its process used meanwhile and Exec
	// the time from exec to that answer.
	First, FirstCPU, Exec []time.Duration
	// Later is every later start of every process.
	Later []time.Duration
}

// testkitStart is one line of bench/cmd/testkitstart.
type testkitStart struct {
	Start   int   `json:"start"`
	ReadyNS int64 `json:"ready_ns"`
	CPUNS   int64 `json:"cpu_ns"`
}

// testkitStarts measures what a merchant's test pays for testkit.Start: the
// program bench/cmd/testkitstart, built from this tree and from
// -testkit-before, runs in -testkit-processes fresh processes each, the two
// builds alternating so that both meet the same load. A process starts
// -testkit-starts sandboxes one after the other; its first pays for what a
// process makes once.
func (b *bench) testkitStarts() error {
	after := filepath.Join(b.tmp, "testkitstart")
	if err := goBuild(b.c.Root, after); err != nil {
		return err
	}
	var before string
	b.r.TestkitBefore.Commit = b.c.TestkitBefore
	if b.c.TestkitBefore == "" {
		b.r.TestkitBefore.Skipped = "no -testkit-before commit"
	} else if dir, err := b.exportCommit(b.c.TestkitBefore); err != nil {
		b.r.TestkitBefore.Skipped = err.Error()
	} else {
		before = filepath.Join(b.tmp, "testkitstart-before")
		if err := goBuild(dir, before); err != nil {
			b.r.TestkitBefore.Skipped = err.Error()
			before = ""
		}
	}
	for range b.c.TestkitProcs {
		if err := runTestkitStart(after, b.c.TestkitStarts, &b.r.Testkit); err != nil {
			return err
		}
		if before != "" {
			if err := runTestkitStart(before, b.c.TestkitStarts, &b.r.TestkitBefore); err != nil {
				return fmt.Errorf("at %s: %w", b.c.TestkitBefore, err)
			}
		}
	}
	for _, f := range []*TestkitFigures{&b.r.Testkit, &b.r.TestkitBefore} {
		if len(f.First) > 0 {
			fmt.Fprintf(os.Stderr, "testkit.Start to ready%s: first in a process median %v (max %v), later median %v\n",
				f.label(), median(f.First), slices.Max(f.First), median(f.Later))
		}
	}
	return nil
}

func (f TestkitFigures) label() string {
	if f.Commit == "" {
		return ""
	}
	return " at " + f.Commit
}

// exportCommit writes the tree of a commit into a folder of the run, with
// this tree's bench/cmd/testkitstart in it, and returns the folder. The
// repository is only read (git archive): no worktree, no checkout.
func (b *bench) exportCommit(rev string) (string, error) {
	dir := filepath.Join(b.tmp, "tree-"+rev)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", b.c.Root, rev, dir).CombinedOutput()
	if _, serr := os.Stat(filepath.Join(dir, "go.mod")); err != nil || serr != nil {
		return "", fmt.Errorf("export %s: %v %v %s", rev, err, serr, bytes.TrimSpace(out))
	}
	src, err := os.ReadFile(filepath.Join(b.c.Root, testkitStartProgram, "main.go"))
	if err != nil {
		return "", err
	}
	prog := filepath.Join(dir, testkitStartProgram)
	if err := os.MkdirAll(prog, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(prog, "main.go"), src, 0o644)
}

// goBuild builds bench/cmd/testkitstart of the module in dir into out.
func goBuild(dir, out string) error {
	cmd := exec.Command("go", "build", "-o", out, "./"+testkitStartProgram)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s in %s: %v: %s", testkitStartProgram, dir, err, bytes.TrimSpace(msg))
	}
	return nil
}

// runTestkitStart runs the program once, in a fresh process, and adds its
// figures to f.
func runTestkitStart(bin string, starts int, f *TestkitFigures) error {
	cmd := exec.Command(bin, "-starts", strconv.Itoa(starts))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdout)
	lines := 0
	for sc.Scan() {
		at := time.Since(began)
		var s testkitStart
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("%s: line %q: %w", bin, sc.Text(), err)
		}
		if s.Start == 0 {
			f.First = append(f.First, time.Duration(s.ReadyNS))
			f.FirstCPU = append(f.FirstCPU, time.Duration(s.CPUNS))
			f.Exec = append(f.Exec, at)
		} else {
			f.Later = append(f.Later, time.Duration(s.ReadyNS))
		}
		lines++
	}
	if err := cmd.Wait(); err != nil || lines != starts {
		return fmt.Errorf("%s: %d of %d starts, %v: %s", bin, lines, starts, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// testkitRows renders the testkit phase's rows, this tree beside the
// before commit.
func (r *Report) testkitRows(w func(format string, args ...any)) {
	now, was := r.Testkit, r.TestkitBefore
	if len(now.First) == 0 {
		return
	}
	spread := func(ds []time.Duration) string {
		return fmt.Sprintf("median %s, max %s of %d", ms(median(ds)), ms(slices.Max(ds)), len(ds))
	}
	// against is the comparison and ratio cells.
	against := func(now, was []time.Duration) string {
		switch {
		case r.TestkitBefore.Skipped != "":
			return fmt.Sprintf("`%s` not measured: %.120s | ", r.TestkitBefore.Commit, strings.ReplaceAll(r.TestkitBefore.Skipped, "|", "/"))
		case len(was) == 0:
			return " | "
		}
		return fmt.Sprintf("before, at `%s`: %s | %.2f", r.TestkitBefore.Commit, spread(was), float64(median(now))/float64(median(was)))
	}
	w("| `testkit.Start` to ready, the first in a fresh process (`testkit.Run` → first 200 from `/readyz`; demo merchant, schemas, scenarios, store, router and listener included) | %s | %s | ≤ %s | %s |\n",
		spread(now.First), against(now.First, was.First), ms(targetStart), verdict(median(now.First) <= targetStart))
	w("| the CPU that first start costs its process (every thread; hardly depends on the machine's other load) | %s | %s | | |\n",
		spread(now.FirstCPU), against(now.FirstCPU, was.FirstCPU))
	if len(now.Later) > 0 {
		w("| `testkit.Start` to ready, the later starts in those processes | %s | %s | ≤ %s | %s |\n",
			spread(now.Later), against(now.Later, was.Later), ms(targetStart), verdict(median(now.Later) <= targetStart))
	}
	w("| a fresh test process from exec to its first sandbox ready (program loading and package initialisation included) | %s | %s | | |\n",
		spread(now.Exec), against(now.Exec, was.Exec))
}
