package journal

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// replayWindow is how many IDs one replay query spans. IDs are assigned in
// order, so a window never holds more rows than the store's largest page,
// whichever end of a larger range the store would have returned.
const replayWindow = 1000

// ServeSSE streams the exchanges matching f as server-sent events: first,
// when the request carries Last-Event-ID (or ?after=<id>), the stored
// entries newer than it, oldest first; then live entries as they are
// written. Each event is "id: <id>\nevent: exchange\ndata: <json>\n\n",
// flushed at once; a ": ping" comment every 15 s keeps proxies from timing
// the stream out. It returns when the client goes or the journal closes.
func (j *Journal) ServeSSE(w http.ResponseWriter, r *http.Request, f sandbox.JournalFilter) {
	after, replay, err := lastEventID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Subscribe before reading the store, so that nothing written in
	// between is missed; what arrives twice is skipped by ID.
	live, cancel := j.Subscribe(f)
	defer cancel()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives any server write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}

	ev := eventWriter{w: w, rc: rc}
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
		case x, ok := <-live:
			if !ok {
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
// oldest first, and returns the last ID it covered. Entries older than the
// history the journal keeps are skipped without a query per window.
func (j *Journal) replay(r *http.Request, ev *eventWriter, f sandbox.JournalFilter, after, newest int64) (int64, error) {
	after = max(after, newest-2*int64(j.o.MaxEntries))
	for after < newest {
		hi := min(after+replayWindow, newest)
		q := f
		q.AfterID, q.BeforeID, q.Limit = after, hi+1, replayWindow
		xs, err := j.st.QueryJournal(r.Context(), q)
		if err != nil {
			return after, err
		}
		slices.SortFunc(xs, func(a, b *sandbox.Exchange) int { return int(a.ID - b.ID) })
		for _, x := range xs {
			if err := ev.send(x); err != nil {
				return after, err
			}
		}
		after = hi
	}
	return after, nil
}

// eventWriter writes server-sent events, flushing each.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

func (e *eventWriter) send(x *sandbox.Exchange) error {
	e.buf.Reset()
	e.buf.WriteString("id: ")
	e.buf.WriteString(strconv.FormatInt(x.ID, 10))
	e.buf.WriteString("\nevent: exchange\ndata: ")
	// json.Encoder escapes no newline into the data line and ends with one.
	if err := json.NewEncoder(&e.buf).Encode(x); err != nil {
		return err
	}
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
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		return err
	}
	return e.rc.Flush()
}
