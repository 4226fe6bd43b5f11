package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
)

// accessFlushAfter bounds how late an access log line is written, and
// accessBufferMax how many bytes of them wait.
const (
	accessFlushAfter = 50 * time.Millisecond
	accessBufferMax  = 32 << 10
)

// logBuffer is the log's writer: it holds the access log's lines (one per
// request) for up to accessFlushAfter, so that a busy server writes them in
// a few system calls instead of one each, and writes every other line at
// once together with the access lines before it, in order (bufferAccess).
type logBuffer struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	timer *time.Timer // armed while buf holds lines
}

func newLogBuffer(w io.Writer) *logBuffer {
	b := &logBuffer{w: w}
	b.timer = time.AfterFunc(time.Hour, b.Flush)
	b.timer.Stop()
	return b
}

// Write holds p (one log line: slog's handlers write each record once).
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		b.timer.Reset(accessFlushAfter)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= accessBufferMax {
		return len(p), b.flushLocked()
	}
	return len(p), nil
}

// Flush writes what is held.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.flushLocked()
}

func (b *logBuffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	b.timer.Stop()
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// bufferAccess is a handler writing to a logBuffer that flushes it after
// every record but the access log's.
type bufferAccess struct {
	slog.Handler
	buf *logBuffer
}

func (h bufferAccess) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Message != httpapi.AccessMessage {
		h.buf.Flush()
	}
	return err
}

func (h bufferAccess) WithAttrs(attrs []slog.Attr) slog.Handler {
	return bufferAccess{h.Handler.WithAttrs(attrs), h.buf}
}

func (h bufferAccess) WithGroup(name string) slog.Handler {
	return bufferAccess{h.Handler.WithGroup(name), h.buf}
}
