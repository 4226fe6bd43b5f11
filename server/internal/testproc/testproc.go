// Package testproc builds the real mpsandbox binary once per test process
// and runs it as a child process on a free loopback port, for the tests
// that need the binary itself: signals, kill -9 and restart on the same
// data dir, a data dir it cannot write, a browser in front of it.
package testproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// ReadyTimeout bounds the wait for the "ready" log line.
const ReadyTimeout = 30 * time.Second

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BinaryEnv names a binary already built for the tests: `make test` builds
// bin/mpsandbox once and every package that runs the binary uses it,
// instead of each test process building its own at the same moment.
const BinaryEnv = "MPSANDBOX_TEST_BIN"

// Binary is the binary of BinaryEnv when set; otherwise it builds
// ./server/cmd/mpsandbox once per test process, with the flags of the e2e
// image build (CGO_ENABLED=0, -trimpath) so the two share the build cache;
// GOFLAGS from the environment (the Makefile's -tags=nomsgpack) applies. A
// package that calls it removes a binary it built at the end with Main.
func Binary(tb testing.TB) string {
	tb.Helper()
	binary.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			if binary.path, binary.err = filepath.Abs(p); binary.err == nil {
				_, binary.err = os.Stat(binary.path)
			}
			if binary.err != nil {
				binary.err = fmt.Errorf("%s=%s: %w (make build makes it)", BinaryEnv, p, binary.err)
			}
			return
		}
		binary.dir, binary.err = os.MkdirTemp("", "mpsandbox-bin-")
		if binary.err != nil {
			return
		}
		// A test may run the binary as another user (nobody).
		if binary.err = os.Chmod(binary.dir, 0o755); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "mpsandbox")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binary.path, "github.com/mpsandbox/mpsandbox/server/cmd/mpsandbox")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		tb.Fatal(binary.err)
	}
	return binary.path
}

// Main runs the tests, then each of after (pgtest.Stop, say), and removes
// the binary Binary built; call it from TestMain.
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// Options say how to run the binary.
type Options struct {
	// Addr is --addr; empty means 127.0.0.1:0, a free loopback port.
	Addr string
	// DataDir is --data-dir; empty means --in-memory, unless DatabaseURL
	// is set.
	DataDir string
	// DatabaseURL is --database-url: the PostgreSQL store.
	DatabaseURL string
	// Flags follow --addr, --data-dir and --log-format json.
	Flags []string
	// Wrap is a command line the binary and its arguments are appended
	// to: a shell that sets a limit first, say.
	Wrap []string
}

// Proc is the binary running as a child process. It is killed when the
// test that started it ends.
type Proc struct {
	// URL is the base URL it listens on; a wildcard bind is reached on
	// loopback, so a test never leaves the machine.
	URL string
	// Cmd is the command, started.
	Cmd *exec.Cmd

	tb   testing.TB
	log  syncBuffer
	done chan struct{}
	err  error
}

// Start runs the binary with o and its JSON log captured, and returns once
// it logged "ready"; it fails the test if the binary exits first or is not
// ready within ReadyTimeout.
func Start(tb testing.TB, o Options) *Proc {
	tb.Helper()
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	args := []string{Binary(tb), "--addr", addr}
	switch {
	case o.DatabaseURL != "":
		args = append(args, "--database-url", o.DatabaseURL)
	case o.DataDir != "":
		args = append(args, "--data-dir", o.DataDir)
	default:
		args = append(args, "--in-memory")
	}
	args = append(append(args, "--log-format", "json"), o.Flags...)
	args = append(append([]string{}, o.Wrap...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proc{Cmd: cmd, tb: tb, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Kill)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.log.writeLine(line)
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "ready" {
				select {
				case ready <- rec.Addr:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case a := <-ready:
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			tb.Fatalf("ready at %q: %v", a, err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		p.URL = "http://" + net.JoinHostPort(host, port)
	case <-p.done:
		tb.Fatalf("the server exited before it was ready (%v):\n%s", p.err, p.Log())
	case <-time.After(ReadyTimeout):
		tb.Fatalf("the server was not ready within %v:\n%s", ReadyTimeout, p.Log())
	}
	return p
}

// Log is what the process logged so far, or in all once it has exited.
func (p *Proc) Log() string { return p.log.String() }

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Signal sends sig.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits for the exit and returns its error, as exec.Cmd.Wait does,
// once the log is read to its end.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Kill sends SIGKILL, as an out-of-memory killer or a pulled plug would,
// and waits for the exit.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGINT and fails the test unless the process exits cleanly
// within 30 s.
func (p *Proc) Stop() {
	p.tb.Helper()
	_ = p.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.tb.Fatalf("no exit 30 s after SIGINT:\n%s", p.Log())
	}
	if p.err != nil {
		p.tb.Fatalf("exit after SIGINT: %v\n%s", p.err, p.Log())
	}
}

// syncBuffer is the child's log, written by one goroutine, read by tests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) writeLine(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(line)
	s.b.WriteByte('\n')
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
