package journal

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// sseClient reads events from a stream.
type sseClient struct {
	resp *http.Response
	r    *bufio.Reader
}

type event struct {
	id, name, data, comment string
}

// connect opens the journal's stream served with filter f, sending header
// (for Last-Event-ID) when given, and returns once the headers arrived.
func connect(tb testing.TB, j *Journal, f sandbox.JournalFilter, query string, header http.Header) *sseClient {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { j.ServeSSE(w, r, f) }))
	tb.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sandbox/v1/journal/stream"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	return &sseClient{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads one event or comment.
func (c *sseClient) next(tb testing.TB) event {
	tb.Helper()
	var ev event
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			tb.Fatalf("reading the stream: %v (so far %+v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return ev
		case strings.HasPrefix(line, ": "):
			ev.comment = line[2:]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		default:
			tb.Fatalf("unexpected line %q", line)
		}
	}
}

// nextExchange reads one exchange event and checks its framing.
func (c *sseClient) nextExchange(tb testing.TB) *sandbox.Exchange {
	tb.Helper()
	ev := c.next(tb)
	if ev.name != "exchange" {
		tb.Fatalf("event %+v, want an exchange", ev)
	}
	var x sandbox.Exchange
	if err := json.Unmarshal([]byte(ev.data), &x); err != nil {
		tb.Fatalf("event data %q: %v", ev.data, err)
	}
	if got, want := ev.id, strconv.FormatInt(x.ID, 10); got != want {
		tb.Fatalf("event id %q, want the exchange's %q", got, want)
	}
	return &x
}

func TestServeSSELive(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{})
	c := connect(t, j, sandbox.JournalFilter{MchID: "m2"}, "", nil)
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}

	j.Record(exchange("m1", 1)) // filtered out
	want := exchange("m2", 2)
	j.Record(want)
	flush(t, j)
	got := c.nextExchange(t)
	if got.ID != want.ID || got.MchID != "m2" {
		t.Errorf("got exchange %d of %s, want %d of m2", got.ID, got.MchID, want.ID)
	}
	if got.RequestBody != want.RequestBody {
		t.Errorf("body %q, want %q", got.RequestBody, want.RequestBody)
	}
}

func TestServeSSEReplay(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header http.Header
	}{
		{"Last-Event-ID", "", http.Header{"Last-Event-Id": {"ID"}}},
		{"after", "?after=ID", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			j := start(t, st, Options{})
			var xs []*sandbox.Exchange
			for i := range 5 {
				x := exchange("m1", i)
				xs = append(xs, x)
				j.Record(x)
			}
			flush(t, j)
			from := strconv.FormatInt(xs[1].ID, 10)
			for k := range tt.header {
				tt.header[k] = []string{from}
			}
			c := connect(t, j, sandbox.JournalFilter{}, strings.ReplaceAll(tt.query, "ID", from), tt.header)
			for _, want := range xs[2:] {
				if got := c.nextExchange(t); got.ID != want.ID {
					t.Fatalf("replayed %d, want %d", got.ID, want.ID)
				}
			}
			live := exchange("m1", 9)
			j.Record(live)
			flush(t, j) // the journal owns live until it is written
			if got := c.nextExchange(t); got.ID != live.ID {
				t.Errorf("after the replay got %d, want the live %d", got.ID, live.ID)
			}
		})
	}
}

func TestServeSSEPing(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{})
	j.ping = time.Millisecond
	c := connect(t, j, sandbox.JournalFilter{}, "", nil)
	if ev := c.next(t); ev.comment != "ping" {
		t.Errorf("got %+v, want a ping comment", ev)
	}
}

func TestServeSSEBadLastEventID(t *testing.T) {
	j := New(openStore(t), Options{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/sandbox/v1/journal/stream?after=abc", nil)
	j.ServeSSE(rec, req, sandbox.JournalFilter{})
	if rec.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", rec.Code)
	}
}

func TestServeSSEEndsWhenJournalCloses(t *testing.T) {
	st := openStore(t)
	j := New(st, Options{})
	go j.Run(context.Background())
	c := connect(t, j, sandbox.JournalFilter{}, "", nil)
	j.Close()
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Error("the stream is still open after the journal closed")
	}
}

// TestServeSSESharedStore runs two journals over one store, as two replicas
// on one database do (Shared), the store announcing nothing, so that the
// tail's polling is all that feeds the stream: a stream on B shows A's
// entries and B's, in id order; one that resumes on B from an id A wrote
// gets exactly what followed; and a stream opened after a while is not
// sent what was written before it.
func TestServeSSESharedStore(t *testing.T) {
	st := openStore(t)
	o := Options{Shared: true, TailPoll: 20 * time.Millisecond}
	a, b := start(t, st, o), start(t, st, o)
	st.OnCommit(b.Committed)

	early := exchange("m1", 0)
	a.Record(early)
	flush(t, a)
	time.Sleep(100 * time.Millisecond) // polls pass with no subscriber
	c := connect(t, b, sandbox.JournalFilter{}, "", nil)
	time.Sleep(50 * time.Millisecond) // the stream is subscribed
	var want []int64
	for i := range 6 {
		j := []*Journal{a, b}[i%2]
		x := exchange("m1", i+1)
		j.Record(x)
		flush(t, j)
		want = append(want, x.ID)
	}
	for _, id := range want {
		got := c.nextExchange(t)
		if got.ID == early.ID {
			t.Fatalf("the stream sent entry %d, written before it opened", early.ID)
		}
		if got.ID != id {
			t.Fatalf("got entry %d, want %d: every replica's, in id order", got.ID, id)
		}
	}

	resumed := connect(t, b, sandbox.JournalFilter{}, "", http.Header{"Last-Event-Id": {strconv.FormatInt(want[2], 10)}})
	for _, id := range want[3:] {
		if got := resumed.nextExchange(t); got.ID != id {
			t.Fatalf("resumed after %d: got %d, want %d", want[2], got.ID, id)
		}
	}
	live := exchange("m1", 9)
	a.Record(live)
	flush(t, a)
	if got := resumed.nextExchange(t); got.ID != live.ID {
		t.Errorf("after the resume got %d, want A's live %d", got.ID, live.ID)
	}
}
