package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// TestMain removes the binary the process and fault tests built and stops
// the PostgreSQL cluster of the PostgreSQL tests.
func TestMain(m *testing.M) { testproc.Main(m, pgtest.Stop) }

// TestSIGTERMEndsStreamsAndClosesTheStoreCleanly runs the real binary,
// keeps a journal event stream open, sends SIGTERM, and expects a prompt
// clean exit: the stream ended (not held until the shutdown timeout), exit
// status 0, and the SQLite WAL checkpointed into the database file.
func TestSIGTERMEndsStreamsAndClosesTheStoreCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	data := t.TempDir()
	p := testproc.Start(t, testproc.Options{DataDir: data, Flags: []string{"--shutdown-timeout", "20s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/sandbox/v1/journal/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	streamDone := make(chan struct{})
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				close(streamDone)
				return
			}
		}
	}()
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %v: the open stream held it", took)
	}
	select {
	case <-streamDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream was not ended by the shutdown")
	}
	if fi, err := os.Stat(filepath.Join(data, "mpsandbox.db-wal")); err == nil && fi.Size() > 0 {
		t.Fatalf("WAL not checkpointed at close: %d bytes left", fi.Size())
	}
	if fi, err := os.Stat(filepath.Join(data, "mpsandbox.db")); err != nil || fi.Size() == 0 {
		t.Fatalf("database file missing or empty: %v", err)
	}
}

// TestDrainTimeServesWhileNotReady: with --drain-time, SIGTERM turns
// /readyz 503 at once while requests are still answered, for the drain
// time; then the server stops as usual, exit status 0.
func TestDrainTimeServesWhileNotReady(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := testproc.Start(t, testproc.Options{Flags: []string{"--drain-time", "3s"}})
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "/readyz 503 after SIGTERM", func() bool {
		status, _, err := call("GET", p.URL+"/readyz", nil, nil)
		return err == nil && status == 503
	})
	if status, raw, err := call("GET", p.URL+"/sandbox/v1/merchants", nil, nil); err != nil || status != 200 {
		t.Errorf("a request while draining: %d %v %s, want answered", status, err, raw)
	}
	if took := time.Since(start); took >= 3*time.Second {
		t.Fatalf("the checks took %v, longer than the drain time: the test proves nothing", took)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("exited %v after SIGTERM, before the 3s drain time", took)
	}
	if !strings.Contains(p.Log(), `"msg":"draining"`) {
		t.Errorf("no draining line in the log:\n%s", p.Log())
	}
}
