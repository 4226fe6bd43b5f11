package journal

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestRecordBoundsEveryField: a request that fills every field — a huge
// URL, diagnostics quoting a huge body, thousands of violations — is
// stored within a bounded size, each cut marked.
func TestRecordBoundsEveryField(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{MaxBody: 1 << 10})
	huge := strings.Repeat("a", 1<<20)
	x := exchange("m1", 1)
	x.URL = "/v3/payscore/serviceorder?x=" + huge
	x.RequestBody, x.ResponseBody, x.Diagnostics, x.Error = huge, huge, "expected: "+huge, huge
	x.Scenario, x.Source = huge, huge
	for range 7093 {
		x.Violations = append(x.Violations, sandbox.Violation{Path: "/" + strings.Repeat("p", 5000), Message: strings.Repeat("m", 5000)})
	}
	j.Record(x)
	flush(t, j)

	xs := all(t, st, sandbox.JournalFilter{})
	if len(xs) != 1 {
		t.Fatalf("stored %d exchanges, want 1", len(xs))
	}
	doc, _ := json.Marshal(xs[0])
	if len(doc) > 300<<10 {
		t.Errorf("the stored entry is %d bytes; want it bounded (under 300 KiB)", len(doc))
	}
	got := xs[0]
	for name, v := range map[string]string{"url": got.URL, "request_body": got.RequestBody, "diagnostics": got.Diagnostics, "error": got.Error, "scenario": got.Scenario} {
		if !strings.Contains(v, "…[cut: ") {
			t.Errorf("%s (%d bytes) is not marked as cut", name, len(v))
		}
	}
	if n := len(got.Violations); n != maxViolCount+1 {
		t.Fatalf("kept %d violations, want %d and a last one counting the rest", n, maxViolCount+1)
	}
	if last, want := got.Violations[maxViolCount].Message, "… and 6,993 more"; last != want {
		t.Errorf("last violation %q, want %q", last, want)
	}
}

// TestUnverifiedKeptSmallAndLimitedPerSource: an exchange that did not
// prove its merchant is kept with the small budget and marked; past the
// rate, one source's are counted and not stored, while another source's
// still are.
func TestUnverifiedKeptSmallAndLimitedPerSource(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{UnverifiedRate: 5})
	now := time.Now()
	for i := range 50 {
		x := exchange("m1", i)
		x.Time, x.Source, x.Unverified = now, "192.0.2.1", true
		x.RequestBody = strings.Repeat("b", 64<<10)
		j.Record(x)
	}
	other := exchange("m1", 99)
	other.Time, other.Source, other.Unverified = now, "192.0.2.2", true
	j.Record(other)
	flush(t, j)

	xs := all(t, st, sandbox.JournalFilter{})
	if len(xs) != 6 {
		t.Fatalf("stored %d unverified exchanges, want 5 from the flooding source and 1 from the other", len(xs))
	}
	if got := j.Stats().Limited; got != 45 {
		t.Errorf("limited %d, want 45", got)
	}
	for _, x := range xs {
		if !x.Unverified || len(x.RequestBody) > unverifiedBody+64 {
			t.Errorf("entry %d: unverified=%v, request body %d bytes; want marked and within %d bytes", x.ID, x.Unverified, len(x.RequestBody), unverifiedBody)
		}
	}
}

// TestPruneByBytes: the journal keeps its stored entries within MaxBytes.
func TestPruneByBytes(t *testing.T) {
	st := openStore(t)
	const budget = 256 << 10
	j := start(t, st, Options{MaxBytes: budget})
	for i := range 200 {
		x := exchange("m1", i)
		x.RequestBody = strings.Repeat("c", 8<<10)
		j.Record(x)
	}
	flush(t, j)
	waitFor(t, "pruning by bytes", func() bool {
		var held int
		for _, x := range all(t, st, sandbox.JournalFilter{}) {
			doc, _ := json.Marshal(x)
			held += len(doc)
		}
		return held <= budget+budget/8
	})
}

// TestServeSSEDropsAClientThatFallsBehind: a client that does not read
// while thousands of entries are written is dropped, and when it reads
// again it is told so with the id to resume from.
func TestServeSSEDropsAClientThatFallsBehind(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{})
	c := connect(t, j, sandbox.JournalFilter{}, "", nil)
	// Each event carries an 8 KiB URL: 3,000 of them are more than the
	// socket buffers hold, so the stream's writes block and it falls behind.
	const n = 3000
	for i := range n {
		x := exchange("m1", i)
		x.URL += "?q=" + strings.Repeat("u", 8<<10-100)
		x.ResponseBody = strings.Repeat("r", 400)
		j.Record(x)
	}
	// Writing them takes long under the race detector (the store is
	// transpiled C): wait longer than flush does.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	var last int64
	for {
		ev := c.next(t)
		if ev.name == "exchange" {
			var x sandbox.Exchange
			if err := json.Unmarshal([]byte(ev.data), &x); err != nil {
				t.Fatal(err)
			}
			if !x.Summary || len(x.ResponseBody) > previewBytes+64 {
				t.Fatalf("streamed entry %d: summary=%v, response body %d bytes; want a preview", x.ID, x.Summary, len(x.ResponseBody))
			}
			last = x.ID
			continue
		}
		if ev.name != "dropped" {
			t.Fatalf("event %+v, want exchanges then dropped", ev)
		}
		var d struct {
			LastEventID int64 `json:"last_event_id"`
		}
		if err := json.Unmarshal([]byte(ev.data), &d); err != nil || d.LastEventID != last || last == 0 {
			t.Fatalf("dropped event %s (%v); want last_event_id %d", ev.data, err, last)
		}
		break
	}
	if _, err := io.ReadAll(c.resp.Body); err != nil {
		t.Fatalf("after dropped the stream should end: %v", err)
	}
	// Resuming from there replays what was missed.
	h := http.Header{"Last-Event-Id": {strconv.Itoa(n - 10)}}
	c2 := connect(t, j, sandbox.JournalFilter{}, "", h)
	if x := c2.nextExchange(t); x.ID != n-9 {
		t.Fatalf("resumed at %d, want %d", x.ID, n-9)
	}
}

// TestLimiterCountsAStragglerInTheCurrentSecond: an exchange stamped in the
// second before (it began then, ended now) does not start the count over:
// it used to, and a flood with stragglers got more than rate a second.
func TestLimiterCountsAStragglerInTheCurrentSecond(t *testing.T) {
	l := newSourceLimiter(3)
	sec := time.Unix(1_700_000_001, 0)
	admitted := 0
	for i := range 10 {
		at := sec.Add(time.Duration(i) * time.Millisecond)
		if i%2 == 1 {
			at = sec.Add(-time.Millisecond) // began in the second before
		}
		if l.allow("127.0.0.1", at) {
			admitted++
		}
	}
	if admitted > 3+1 { // the first straggler may still count for its own second
		t.Errorf("admitted %d of 10 in one second and a straggler's; want at most 4", admitted)
	}
}
