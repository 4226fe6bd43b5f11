package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Event is one server-sent event.
type Event struct {
	ID    string
	Event string
	Data  string
}

// Stream reads server-sent events from one open response.
type Stream struct {
	events chan Event
	done   chan error
}

// openStream GETs path as an event stream and returns once the response
// headers have arrived, i.e. once the server holds the subscription; a test
// may then cause the event it expects. The stream is closed when the test
// ends.
func (s *Sandbox) openStream(tb testing.TB, path string) *Stream {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := s.NewRequest(tb, http.MethodGet, path, nil).WithContext(ctx)
	req.Header.Set("Accept", "text/event-stream")
	// No client timeout, since the stream stays open until the context ends
	// it; but the headers must come at once, as an EventSource's onopen.
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("open stream %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		tb.Fatalf("open stream %s: status got %d, want %d", path, resp.StatusCode, http.StatusOK)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel()
		tb.Fatalf("open stream %s: Content-Type got %q, want text/event-stream", path, ct)
	}
	st := &Stream{events: make(chan Event, 64), done: make(chan error, 1)}
	go func() {
		defer resp.Body.Close()
		st.done <- readEvents(ctx, bufio.NewReader(resp.Body), st.events)
	}()
	tb.Cleanup(cancel)
	return st
}

// readEvents parses the text/event-stream format: fields until a blank line,
// "data" lines joined by newlines, comments (":") ignored.
func readEvents(ctx context.Context, r *bufio.Reader, out chan<- Event) error {
	var ev Event
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if ev.ID != "" || ev.Event != "" || data != nil {
				ev.Data = strings.Join(data, "\n")
				select {
				case out <- ev:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			ev, data = Event{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
}

// Next returns the next event whose kind is event and for which match (if
// not nil) holds, skipping others, or fails the test after timeout.
func (st *Stream) Next(tb testing.TB, event string, timeout time.Duration, match func(Event) bool) Event {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-st.events:
			if ev.Event == event && (match == nil || match(ev)) {
				return ev
			}
		case err := <-st.done:
			tb.Fatalf("event stream ended waiting for %q: %v", event, err)
		case <-deadline.C:
			tb.Fatalf("no %q event within %v", event, timeout)
		}
	}
}
