package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the real server once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mpsandbox")
	// The same flags as the e2e image build, so the two share the build cache.
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERMEndsStreamsAndClosesTheStoreCleanly runs the real binary,
// keeps a journal event stream open, sends SIGTERM, and expects a prompt
// clean exit: the stream ended (not held until the shutdown timeout), exit
// status 0, and the SQLite WAL checkpointed into the database file.
func TestSIGTERMEndsStreamsAndClosesTheStoreCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--data-dir", data, "--log-format", "json", "--shutdown-timeout", "20s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && lines.Scan() {
		line := lines.Text()
		if strings.Contains(line, `"msg":"ready"`) {
			i := strings.Index(line, `"addr":"`) + len(`"addr":"`)
			addr = line[i : i+strings.Index(line[i:], `"`)]
		}
	}
	if addr == "" {
		t.Fatal("the server never logged ready")
	}
	go func() {
		for lines.Scan() {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/sandbox/v1/journal/stream", nil)
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
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
