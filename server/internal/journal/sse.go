package journal

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

const (
	// replayPage bounds one replay query, in entries and in stored bytes.
	replayPage      = 1000
	replayPageBytes = 4 << 20
	// writeTimeout bounds each write to a stream: a client that stops
	// reading is dropped, not waited for.
	writeTimeout = 10 * time.Second
	// previewBytes is how much of each body a summary keeps.
	previewBytes = 512
	// previewViolations is how many violations a summary keeps.
	previewViolations = 5
)

// Summary returns a copy of x for listings: bodies and diagnostics cut to a
// preview, violations to the first few, marked Summary. The whole entry is
// at GET /sandbox/v1/journal/{id}.
func Summary(x *sandbox.Exchange) *sandbox.Exchange {
	s := *x
	b := budget{body: previewBytes, url: maxURL, violations: previewViolations}
	s.RequestBody = cut(s.RequestBody, b.body)
	s.ResponseBody = cut(s.ResponseBody, b.body)
	s.Diagnostics = cut(s.Diagnostics, b.body)
	s.Violations = capViolations(s.Violations, b.violations)
	s.Warnings = capViolations(s.Warnings, b.violations)
	s.Summary = true
	return &s
}

// ServeSSE streams summaries of the exchanges matching f as server-sent
// events: first, when the request carries Last-Event-ID (or ?after=<id>),
// the stored entries newer than it, oldest first; then live entries as they
// are written. Each event is "id: <id>\nevent: exchange\ndata: <json>\n\n",
// flushed at once; a ": ping" comment every 15 s keeps proxies from timing
// the stream out. On a store several replicas share (Options.Shared) the
// live entries are every replica's, read from the store in id order, so a
// client may resume on any replica. A client that falls more than 256 entries behind, or does
// not take a write within 10 s, is dropped: it gets, when it can still
// read, "event: dropped" with the id to resume from, and a browser's
// EventSource reconnects with Last-Event-ID and replays what it missed. It
// returns when the client goes or the journal closes.
func (j *Journal) ServeSSE(w http.ResponseWriter, r *http.Request, f sandbox.JournalFilter) {
	after, replay, err := lastEventID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Subscribe before reading the store, so that nothing written in
	// between is missed; what arrives twice is skipped by ID.
	sub := j.Subscribe(f)
	defer sub.Cancel()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	w.WriteHeader(http.StatusOK)
	ev := eventWriter{w: w, rc: rc}
	defer ev.release()
	if ev.flush() != nil {
		return
	}

	ctx := r.Context()
	if replay {
		for {
			newest, err := j.newestID(r)
			if err != nil || newest <= after {
				break
			}
			if after, err = j.replay(r, &ev, f, after, newest); err != nil {
				return
			}
		}
	}

	ping := time.NewTicker(j.ping)
	defer ping.Stop()
	for {
		select {
		case x, ok := <-sub.C:
			if !ok {
				if sub.Lagged() {
					_ = ev.dropped(after)
				}
				return
			}
			if x.ID <= after {
				continue
			}
			if ev.send(x) != nil {
				return
			}
			after = x.ID
		case <-ping.C:
			if ev.comment("ping") != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// lastEventID reads where a client wants the stream to resume.
func lastEventID(r *http.Request) (id int64, ok bool, err error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return 0, false, nil
	}
	id, err = strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, false, sandbox.Errorf(sandbox.CodeInvalid, "Last-Event-ID (or ?after=) %q is not an exchange id", v)
	}
	return id, true, nil
}

// newestID is the ID of the newest entry in the store, 0 when empty.
func (j *Journal) newestID(r *http.Request) (int64, error) {
	xs, err := j.st.QueryJournal(r.Context(), sandbox.JournalFilter{Limit: 1})
	if err != nil || len(xs) == 0 {
		return 0, err
	}
	return xs[0].ID, nil
}

// replay sends the stored entries matching f with after < ID <= newest,
// oldest first, a page at a time, and returns the last ID it covered.
// Entries older than the history the journal keeps are skipped without a
// query.
func (j *Journal) replay(r *http.Request, ev *eventWriter, f sandbox.JournalFilter, after, newest int64) (int64, error) {
	after = max(after, newest-2*int64(j.o.MaxEntries))
	for after < newest {
		q := f
		q.AfterID, q.BeforeID, q.Limit, q.MaxBytes, q.Oldest = after, newest+1, replayPage, replayPageBytes, true
		xs, err := j.st.QueryJournal(r.Context(), q)
		if err != nil {
			return after, err
		}
		if len(xs) == 0 {
			return newest, nil
		}
		for _, x := range xs {
			if err := ev.send(x); err != nil {
				return after, err
			}
			after = x.ID
		}
	}
	return after, nil
}

// eventWriter writes server-sent events, flushing each.
type eventWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	buf    bytes.Buffer
	failed bool // a write failed or timed out: the connection is done for
}

// release lifts the write deadline from a connection that may serve
// another request; one whose write failed keeps it, so that it is closed
// rather than waited on.
func (e *eventWriter) release() {
	if !e.failed {
		_ = e.rc.SetWriteDeadline(time.Time{})
	}
}

func (e *eventWriter) send(x *sandbox.Exchange) error {
	e.buf.Reset()
	e.buf.WriteString("id: ")
	e.buf.WriteString(strconv.FormatInt(x.ID, 10))
	e.buf.WriteString("\nevent: exchange\ndata: ")
	// json.Encoder escapes no newline into the data line and ends with one.
	if err := json.NewEncoder(&e.buf).Encode(Summary(x)); err != nil {
		return err
	}
	e.buf.WriteByte('\n')
	return e.flush()
}

// dropped tells a client it fell behind and where to resume.
func (e *eventWriter) dropped(after int64) error {
	e.buf.Reset()
	e.buf.WriteString("event: dropped\ndata: ")
	_ = json.NewEncoder(&e.buf).Encode(map[string]any{
		"message":       "this stream fell too far behind the journal and was closed; reconnect with Last-Event-ID to resume",
		"last_event_id": after,
	})
	e.buf.WriteByte('\n')
	return e.flush()
}

func (e *eventWriter) comment(text string) error {
	e.buf.Reset()
	e.buf.WriteString(": ")
	e.buf.WriteString(text)
	e.buf.WriteString("\n\n")
	return e.flush()
}

func (e *eventWriter) flush() error {
	// A stream outlives any server write timeout: each write gets its own.
	_ = e.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		e.failed = true
		return err
	}
	if err := e.rc.Flush(); err != nil {
		e.failed = true
		return err
	}
	return nil
}
