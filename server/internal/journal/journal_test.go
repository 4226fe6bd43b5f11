package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// openStore opens a real SQLite store in a temporary directory.
func openStore(tb testing.TB) sandbox.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(tb.TempDir(), "mpsandbox.db")})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// start runs a journal over st until the test ends.
func start(tb testing.TB, st sandbox.Store, o Options) *Journal {
	tb.Helper()
	j := New(st, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); j.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return j
}

func flush(tb testing.TB, j *Journal) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		tb.Fatalf("Flush: %v", err)
	}
}

// all returns every stored exchange matching f, oldest first.
func all(tb testing.TB, st sandbox.Store, f sandbox.JournalFilter) []*sandbox.Exchange {
	tb.Helper()
	var out []*sandbox.Exchange
	f.Limit = 1000
	for {
		xs, err := st.QueryJournal(context.Background(), f)
		if err != nil {
			tb.Fatalf("QueryJournal: %v", err)
		}
		for _, x := range xs {
			out = append([]*sandbox.Exchange{x}, out...)
		}
		if len(xs) < f.Limit {
			return out
		}
		f.BeforeID = xs[len(xs)-1].ID
	}
}

func exchange(mchid string, n int) *sandbox.Exchange {
	return &sandbox.Exchange{
		Direction:   sandbox.DirectionIn,
		Product:     sandbox.ProductEmbedPay,
		MchID:       mchid,
		Method:      "POST",
		URL:         "/gate/1.0/payment/trade/prepare",
		Status:      200,
		RequestBody: fmt.Sprintf("app_id=a&pay_order=%d&app_secret=s3cr3t", n),
	}
}

func TestRecordConcurrent(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{Buffer: 16, BatchSize: 64})
	const goroutines, each = 20, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				j.Record(exchange(fmt.Sprintf("m%d", g), i))
			}
		})
	}
	wg.Wait()
	flush(t, j)

	xs := all(t, st, sandbox.JournalFilter{})
	if got, want := len(xs), goroutines*each; got != want {
		t.Fatalf("stored %d exchanges, want %d", got, want)
	}
	seen := map[string]bool{}
	for i, x := range xs {
		if x.ID <= 0 || i > 0 && x.ID <= xs[i-1].ID {
			t.Fatalf("exchange %d has id %d after %d, want increasing positive ids", i, x.ID, xs[max(i-1, 0)].ID)
		}
		if x.Time.IsZero() {
			t.Errorf("exchange %d has no time", x.ID)
		}
		if !strings.HasSuffix(x.RequestBody, "&app_secret=***") {
			t.Errorf("exchange %d body %q, want the secret masked", x.ID, x.RequestBody)
		}
		seen[x.MchID+"/"+x.RequestBody] = true
	}
	if got, want := len(seen), goroutines*each; got != want {
		t.Errorf("%d distinct exchanges, want %d", got, want)
	}
	if s := j.Stats(); s.Recorded != goroutines*each || s.Written != goroutines*each {
		t.Errorf("stats %+v, want %d recorded and written", s, goroutines*each)
	}
}

func TestRecordWaitsWhenFull(t *testing.T) {
	st := openStore(t)
	j := New(st, Options{Buffer: 2})
	j.Record(exchange("m1", 1))
	j.Record(exchange("m1", 2))
	returned := make(chan struct{})
	go func() { j.Record(exchange("m1", 3)); close(returned) }()
	waitFor(t, "Record to find the queue full", func() bool { return j.Stats().Waited == 1 })
	select {
	case <-returned:
		t.Fatal("Record returned with the queue full and no writer")
	default:
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go j.Run(ctx)
	<-returned
	flush(t, j)
	if got := len(all(t, st, sandbox.JournalFilter{})); got != 3 {
		t.Errorf("stored %d exchanges, want 3", got)
	}
}

// waitFor polls cond, yielding, until it holds; it is for conditions another
// goroutine reaches without any timer involved.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestRecordCutsBodies(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{MaxBody: 16})
	x := exchange("m1", 1)
	x.RequestBody = strings.Repeat("a", 100)
	x.ResponseBody = `{"code":"1001","message":"通知成功"}`
	j.Record(x)
	flush(t, j)

	xs := all(t, st, sandbox.JournalFilter{})
	if len(xs) != 1 {
		t.Fatalf("stored %d exchanges, want 1", len(xs))
	}
	if got, want := xs[0].RequestBody, strings.Repeat("a", 16)+"…[cut: 100 bytes in all]"; got != want {
		t.Errorf("request body %q, want %q", got, want)
	}
	if got, want := xs[0].ResponseBody, `{"code":"1001","…[cut: 40 bytes in all]`; got != want {
		t.Errorf("response body %q, want %q", got, want)
	}
}

func TestPruneKeepsMaxEntries(t *testing.T) {
	st := openStore(t)
	const keep = 10
	j := start(t, st, Options{MaxEntries: keep, BatchSize: 7})
	var last *sandbox.Exchange
	for i := range 100 {
		last = exchange("m1", i)
		j.Record(last)
	}
	flush(t, j)

	// Pruning is asked for every MaxEntries appended entries and runs
	// beside the writer, so history settles under twice the bound.
	var xs []*sandbox.Exchange
	waitFor(t, "pruning to settle", func() bool {
		xs = all(t, st, sandbox.JournalFilter{})
		return len(xs) >= keep && len(xs) < 2*keep && j.Stats().Pruned == int64(100-len(xs))
	})
	if got, want := xs[len(xs)-1].ID, last.ID; got != want {
		t.Errorf("newest kept id %d, want %d", got, want)
	}
	if got, want := j.Stats().Pruned, int64(100-len(xs)); got != want {
		t.Errorf("pruned %d, want %d", got, want)
	}
}

func TestPruneByAge(t *testing.T) {
	st := openStore(t)
	const entries = 50
	j := start(t, st, Options{MaxEntries: entries, MaxAge: time.Hour})
	for i := range entries {
		x := exchange("m1", i)
		if i < 5 {
			x.Time = time.Now().Add(-2 * time.Hour)
		}
		j.Record(x)
	}
	flush(t, j)

	var xs []*sandbox.Exchange
	waitFor(t, "pruning by age", func() bool {
		xs = all(t, st, sandbox.JournalFilter{})
		return len(xs) == entries-5
	})
	for _, x := range xs {
		if time.Since(x.Time) > time.Hour {
			t.Errorf("entry %d from %v survived pruning by age", x.ID, x.Time)
		}
	}
}

// TestSlowSubscriberIsDropped: a subscriber that never reads neither
// blocks the journal nor holds more than its buffer; it is dropped, and
// says so.
func TestSlowSubscriberIsDropped(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{Buffer: 8})
	sub := j.Subscribe(sandbox.JournalFilter{}) // never read
	defer sub.Cancel()
	const n = 1000
	for i := range n {
		j.Record(exchange("m1", i))
	}
	flush(t, j)
	if got, want := j.Stats().Missed, int64(1); got != want {
		t.Errorf("dropped %d subscribers, want %d", got, want)
	}
	for range subscriberBuffer {
		<-sub.C
	}
	if _, ok := <-sub.C; ok || !sub.Lagged() {
		t.Errorf("after %d buffered entries the channel is open=%v, lagged=%v; want closed and lagged", subscriberBuffer, ok, sub.Lagged())
	}
}

func TestSubscribeFilters(t *testing.T) {
	st := openStore(t)
	j := start(t, st, Options{})
	sub := j.Subscribe(sandbox.JournalFilter{MchID: "m2", Product: sandbox.ProductEmbedPay})
	defer sub.Cancel()
	ch := sub.C
	j.Record(exchange("m1", 1))
	other := exchange("m2", 2)
	other.Product = sandbox.ProductPayScore
	j.Record(other)
	want := exchange("m2", 3)
	j.Record(want)
	flush(t, j)
	select {
	case got := <-ch:
		if got.ID != want.ID {
			t.Errorf("got exchange %d (%s %s), want %d", got.ID, got.MchID, got.Product, want.ID)
		}
	default:
		t.Fatal("the matching exchange was not published")
	}
	select {
	case got := <-ch:
		t.Errorf("got a second exchange %d", got.ID)
	default:
	}
}

func TestClose(t *testing.T) {
	st := openStore(t)
	j := New(st, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); j.Run(ctx) }()
	ch := j.Subscribe(sandbox.JournalFilter{}).C
	for i := range 10 {
		j.Record(exchange("m1", i))
	}
	j.Close()
	<-done
	if got := len(all(t, st, sandbox.JournalFilter{})); got != 10 {
		t.Errorf("stored %d exchanges after Close, want 10", got)
	}
	for range 10 {
		<-ch
	}
	if _, ok := <-ch; ok {
		t.Error("subscription still open after Close")
	}
	j.Record(exchange("m1", 11))
	if got := j.Stats().Dropped; got != 1 {
		t.Errorf("dropped %d after Close, want 1", got)
	}
	if err := j.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
}

func BenchmarkRecord(b *testing.B) {
	st := openStore(b)
	j := start(b, st, Options{})
	body := `{"appid":"wx1","mchid":"1230000109","out_order_no":"1234323JKHDFE1243252","service_id":"500001","sign":"ABCDEF"}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j.Record(&sandbox.Exchange{Direction: sandbox.DirectionIn, MchID: "m1", Method: "POST", URL: "/v3/payscore/serviceorder", Status: 200, RequestBody: body, ResponseBody: body})
		}
	})
	flush(b, j)
	b.StopTimer()
	if s := j.Stats(); s.Written != s.Recorded {
		b.Fatalf("wrote %d of %d", s.Written, s.Recorded)
	}
}

// slowAppends is a store whose appends take a while and honour their
// context, as the PostgreSQL store's do: started is closed when the first
// append begins.
type slowAppends struct {
	sandbox.Store
	once    sync.Once
	started chan struct{}
}

func (s *slowAppends) AppendExchanges(ctx context.Context, xs []*sandbox.Exchange) error {
	s.once.Do(func() { close(s.started) })
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(100 * time.Millisecond):
	}
	return s.Store.AppendExchanges(ctx, xs)
}

// TestAppendInFlightSurvivesShutdown: a batch the writer took from the queue
// is written even when Run's context ends during its append (a SIGTERM
// while the journal writes); it used to be dropped with "context canceled".
func TestAppendInFlightSurvivesShutdown(t *testing.T) {
	st := &slowAppends{Store: openStore(t), started: make(chan struct{})}
	j := New(st, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); j.Run(ctx) }()
	j.Record(&sandbox.Exchange{Time: time.Now(), Direction: sandbox.DirectionIn, Method: "POST", URL: "/in-flight", Status: 200})
	<-st.started
	cancel()
	<-done
	xs, err := st.QueryJournal(context.Background(), sandbox.JournalFilter{Limit: 10})
	if err != nil || len(xs) != 1 || xs[0].URL != "/in-flight" {
		t.Fatalf("journal after shutdown: %d entries, %v; want the in-flight one", len(xs), err)
	}
}

// countAppends is a real store that counts its AppendExchanges calls.
type countAppends struct {
	sandbox.Store
	calls atomic.Int64
}

func (s *countAppends) AppendExchanges(ctx context.Context, xs []*sandbox.Exchange) error {
	s.calls.Add(1)
	return s.Store.AppendExchanges(ctx, xs)
}

// TestEntriesRecordedTogetherAreWrittenTogether: exchanges recorded a
// little apart, as a busy jump path records them, reach the store in one
// append, not one each (the writer used to take only what was queued at
// the moment); a Flush still returns at once, with everything stored.
func TestEntriesRecordedTogetherAreWrittenTogether(t *testing.T) {
	st := &countAppends{Store: openStore(t)}
	j := start(t, st, Options{})
	const n = 20
	recording := time.Now()
	for i := range n {
		j.Record(exchange("1230000109", i))
		time.Sleep(100 * time.Microsecond)
	}
	// A batch spans at least batchLinger of the recording (longer on a
	// loaded machine than the 2 ms the sleeps ask for).
	most := int64(time.Since(recording)/batchLinger) + 2
	began := time.Now()
	flush(t, j)
	if waited := time.Since(began); waited > batchLinger+50*time.Millisecond {
		t.Errorf("Flush took %v", waited)
	}
	if got := len(all(t, st, sandbox.JournalFilter{})); got != n {
		t.Fatalf("stored %d exchanges, want %d", got, n)
	}
	if calls := st.calls.Load(); calls > most {
		t.Errorf("%d exchanges took %d appends; want them batched (at most %d)", n, calls, most)
	}
}
