package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// crashChildEnv, when set, makes TestCrashDurability the child: it holds the
// database path.
const crashChildEnv = "MPSANDBOX_STORE_CRASH_CHILD"

const (
	crashWriters = 8   // concurrent committers in the child, so groups form
	crashKillAt  = 300 // acknowledged commits before the parent kills the child
	crashMax     = 100000
)

// TestCrashDurability runs a child process that commits as fast as it can
// and prints "committed <n>" after each acknowledged Commit, kills it with
// SIGKILL mid-stream, and checks that every acknowledged batch survived.
func TestCrashDurability(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "mpsandbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int]bool{}
	killed := false
	sc := bufio.NewScanner(stdout)
	// Lines the child wrote before it died are still in the pipe: read to EOF.
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acked[i] = true
		if len(acked) == crashKillAt && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v after %d commits, want it killed; stderr:\n%s", err, len(acked), stderr.String())
	}

	s := openStore(t, path)
	ctx := context.Background()
	for i := range acked {
		id := strconv.Itoa(i)
		if _, err := s.GetRecord(ctx, "payscore.order", "m1", id); err != nil {
			t.Errorf("acknowledged record %d lost: %v", i, err)
		}
		if x, err := s.GetSession(ctx, id); err != nil || x.Version != 1 {
			t.Errorf("acknowledged session %d: %v, %v", i, x, err)
		}
		if _, err := s.GetNotification(ctx, id); err != nil {
			t.Errorf("acknowledged notification %d lost: %v", i, err)
		}
	}
	t.Logf("%d acknowledged commits survived SIGKILL", len(acked))
}

// crashChild commits until it is killed (or crashMax, should the parent be
// gone without closing the pipe).
func crashChild(path string) {
	s, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range crashWriters {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > crashMax {
					return
				}
				id := strconv.Itoa(i)
				err := s.Commit(context.Background(), &sandbox.Batch{
					Creates:       []*sandbox.Record{newRecord("m1", id)},
					Sessions:      []*sandbox.Session{newSession(id, "m1", time.Time{})},
					Notifications: []*sandbox.Notification{newNotification(id, "m1", time.Time{})},
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				// One write per line: lines from several goroutines never mix.
				os.Stdout.WriteString("committed " + id + "\n")
			}
		})
	}
	wg.Wait()
	os.Exit(4)
}
