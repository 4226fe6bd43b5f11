package main

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
)

// writes records each Write the log buffer makes.
type writes struct {
	mu  sync.Mutex
	got []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.got...)
}

// TestAccessLinesBuffered: access lines wait (at most accessFlushAfter, or
// until accessBufferMax bytes); any other line writes them first, in order,
// in the same system call.
func TestAccessLinesBuffered(t *testing.T) {
	w := &writes{}
	buf := newLogBuffer(w)
	log := slog.New(bufferAccess{slog.NewTextHandler(buf, nil), buf}).With("k", "v")
	log.Info(httpapi.AccessMessage, "n", 1)
	log.Info(httpapi.AccessMessage, "n", 2)
	if got := w.all(); len(got) != 0 {
		t.Fatalf("access lines written at once: %q", got)
	}
	log.Warn("store_checkpoint_failed")
	got := w.all()
	if len(got) != 1 || strings.Count(got[0], "\n") != 3 ||
		!(strings.Index(got[0], "n=1") < strings.Index(got[0], "n=2") && strings.Index(got[0], "n=2") < strings.Index(got[0], "store_checkpoint_failed")) {
		t.Fatalf("a warning should write the access lines before it and itself in one write, in order; got %q", got)
	}

	start := time.Now()
	log.Info(httpapi.AccessMessage, "n", 3)
	for len(w.all()) == 1 {
		if time.Since(start) > time.Second {
			t.Fatal("a lone access line was never written")
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d < accessFlushAfter/2 {
		t.Errorf("a lone access line was written after %v, not held", d)
	}
	if got := w.all(); !strings.Contains(got[1], "n=3") {
		t.Errorf("second write %q", got[1])
	}

	// A burst over accessBufferMax is written without waiting.
	line := strings.Repeat("x", 1000)
	for range accessBufferMax/1000 + 1 {
		log.Info(httpapi.AccessMessage, "pad", line)
	}
	if got := w.all(); len(got) != 3 || len(got[2]) < accessBufferMax {
		t.Fatalf("a full buffer should be written at once: %d writes", len(got))
	}
}
