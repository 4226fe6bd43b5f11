// Command testkitstart measures testkit's in-process start from a fresh
// process, for the testkit phase of `make bench`: -starts times it runs a
// sandbox with testkit.Run (what testkit.Start runs), waits for the first
// 200 from GET /readyz and closes it. As soon as a sandbox is ready it
// prints a JSON line {"start", "ready_ns", "cpu_ns"}: the time from the
// call to that answer, and the CPU the whole process spent meanwhile (every
// thread: the sandbox's goroutines, the garbage collector). The first line
// is the process's first start, the one that pays for what a process makes
// once; the bench times the process from exec to that line too.
//
// It uses nothing of the testkit newer than its first release, so that the
// bench can build it against an older commit for the before figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// Start is one start's line.
type Start struct {
	Start   int   `json:"start"`
	ReadyNS int64 `json:"ready_ns"`
	CPUNS   int64 `json:"cpu_ns"`
}

func main() {
	starts := flag.Int("starts", 10, "sandboxes started one after the other")
	flag.Parse()
	out := json.NewEncoder(os.Stdout)
	for i := range *starts {
		s, err := start(i)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testkitstart:", err)
			os.Exit(1)
		}
		if err := out.Encode(s); err != nil {
			os.Exit(1)
		}
	}
}

// start runs one sandbox until ready, measures it and closes it (closing
// is not timed).
func start(i int) (Start, error) {
	cpu0 := cpuTime()
	began := time.Now()
	sb, err := testkit.Run(context.Background())
	if err != nil {
		return Start{}, err
	}
	defer sb.Close()
	resp, err := http.Get(sb.URL() + "/readyz")
	if err != nil {
		return Start{}, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Start{}, fmt.Errorf("GET /readyz: status %d", resp.StatusCode)
	}
	took := time.Since(began)
	return Start{Start: i, ReadyNS: int64(took), CPUNS: int64(cpuTime() - cpu0)}, nil
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
