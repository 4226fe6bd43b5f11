package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

const product = "test"

// builder is a product that POSTs the payload and takes 200 or 204 as an
// acknowledgement.
type builder struct{ schedule []time.Duration }

func (b builder) BuildNotify(_ context.Context, _ *sandbox.Merchant, n *sandbox.Notification) (*sandbox.OutboundRequest, error) {
	return &sandbox.OutboundRequest{Method: http.MethodPost, URL: n.URL, Header: http.Header{"Content-Type": {"application/json"}}, Body: n.Payload}, nil
}

func (b builder) Acknowledged(status int, _ []byte) bool { return status == 200 || status == 204 }

func (b builder) Schedule() []time.Duration { return b.schedule }
func (b builder) Faults() []string          { return nil }

// recorder is a journal that hands every exchange to the test.
type recorder chan *sandbox.Exchange

func (r recorder) Record(x *sandbox.Exchange) { r <- x }

// next waits for the next journalled attempt. Attempts are journalled after
// their outcome is committed, so the store shows it once next returns.
func (r recorder) next(tb testing.TB) *sandbox.Exchange {
	tb.Helper()
	select {
	case x := <-r:
		return x
	case <-time.After(10 * time.Second):
		tb.Fatal("timed out waiting for an attempt")
		return nil
	}
}

// receiver is a merchant's notify endpoint answering the statuses it is
// given in turn (the last one repeating).
type receiver struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	status []int
	bodies []string
}

func newReceiver(tb testing.TB, status ...int) *receiver {
	tb.Helper()
	rc := &receiver{status: status}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := rc.hits.Add(1)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(body))
		st := rc.status[min(int(n), len(rc.status))-1]
		rc.mu.Unlock()
		w.WriteHeader(st)
		fmt.Fprintf(w, `{"code":"%d"}`, st)
	}))
	tb.Cleanup(rc.Close)
	return rc
}

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

type fixture struct {
	st      sandbox.Store
	clock   *sandbox.Clock
	journal recorder
	w       *Worker
}

var epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// setup runs a worker over a real SQLite store, on a clock whose real time
// stands still: only Advance moves it, so retries fire when the test says.
func setup(tb testing.TB, o Options, merchants ...*sandbox.Merchant) *fixture {
	tb.Helper()
	ctx := context.Background()
	st := openStore(tb)
	if err := st.Commit(ctx, &sandbox.Batch{Merchants: merchants}); err != nil {
		tb.Fatalf("commit merchants: %v", err)
	}
	f := &fixture{st: st, clock: sandbox.NewClock(1, func() time.Time { return epoch }), journal: make(recorder, 1024)}
	o.Store, o.Clock = st, f.clock
	if o.Journal == nil {
		o.Journal = f.journal
	}
	if o.Builders == nil {
		o.Builders = map[string]sandbox.NotifyBuilder{product: builder{schedule: []time.Duration{15 * time.Second, 30 * time.Second}}}
	}
	f.w = New(o)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.w.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return f
}

func merchant(mchid string, hosts ...string) *sandbox.Merchant {
	return &sandbox.Merchant{MchID: mchid, Name: mchid, NotifyHosts: hosts}
}

// enqueue commits a notification due now and wakes the worker, as a product
// does.
func (f *fixture) enqueue(tb testing.TB, n *sandbox.Notification) *sandbox.Notification {
	tb.Helper()
	if n.ID == "" {
		n.ID = fmt.Sprintf("N-%s-%d", n.MchID, time.Now().UnixNano())
	}
	if n.Product == "" {
		n.Product = product
	}
	if n.State == "" {
		n.State = sandbox.NotifyPending
	}
	if n.DueAt.IsZero() {
		n.DueAt = f.clock.Now(n.MchID)
	}
	if n.Payload == nil {
		n.Payload = json.RawMessage(`{"id":"` + n.ID + `"}`)
	}
	if err := f.st.Commit(context.Background(), &sandbox.Batch{Notifications: []*sandbox.Notification{n}}); err != nil {
		tb.Fatalf("commit notification: %v", err)
	}
	f.w.Wake()
	return n
}

func (f *fixture) get(tb testing.TB, id string) *sandbox.Notification {
	tb.Helper()
	n, err := f.st.GetNotification(context.Background(), id)
	if err != nil {
		tb.Fatalf("GetNotification: %v", err)
	}
	return n
}

func checkState(tb testing.TB, n *sandbox.Notification, state sandbox.NotifyState, attempts int) {
	tb.Helper()
	if n.State != state || n.Attempts != attempts {
		tb.Errorf("notification %s is %s after %d attempts, want %s after %d (last error %q)", n.ID, n.State, n.Attempts, state, attempts, n.LastError)
	}
}

func checkAttempt(tb testing.TB, x *sandbox.Exchange, n *sandbox.Notification, attempt, status int) {
	tb.Helper()
	if x.NotifyID != n.ID || x.Attempt != attempt || x.Status != status || x.Direction != sandbox.DirectionOut ||
		x.MchID != n.MchID || x.Product != n.Product || x.Method != http.MethodPost {
		tb.Errorf("journalled %+v, want attempt %d of %s answered %d", x, attempt, n.ID, status)
	}
}

func TestDeliveredOn200(t *testing.T) {
	rc := newReceiver(t, 200)
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL + "/notify"})

	x := f.journal.next(t)
	checkAttempt(t, x, n, 1, 200)
	if x.URL != n.URL || x.RequestBody != string(n.Payload) || x.ResponseBody != `{"code":"200"}` || x.LatencyMS <= 0 {
		t.Errorf("journalled url %q body %q answer %q latency %v", x.URL, x.RequestBody, x.ResponseBody, x.LatencyMS)
	}
	checkState(t, f.get(t, n.ID), sandbox.NotifyDelivered, 1)
	if got := rc.bodies[0]; got != string(n.Payload) {
		t.Errorf("receiver got %q, want %q", got, n.Payload)
	}
}

func TestRetriedOn500ThenDelivered(t *testing.T) {
	rc := newReceiver(t, 500, 200)
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL})

	checkAttempt(t, f.journal.next(t), n, 1, 500)
	got := f.get(t, n.ID)
	checkState(t, got, sandbox.NotifyPending, 1)
	if want := epoch.Add(15 * time.Second); !got.DueAt.Equal(want) || got.LastStatus != 500 {
		t.Errorf("due at %v with last status %d, want %v and 500", got.DueAt, got.LastStatus, want)
	}

	f.clock.Advance("m1", 15*time.Second)
	checkAttempt(t, f.journal.next(t), n, 2, 200)
	checkState(t, f.get(t, n.ID), sandbox.NotifyDelivered, 2)
}

func TestScheduleExhaustedFails(t *testing.T) {
	rc := newReceiver(t, 500)
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL})

	checkAttempt(t, f.journal.next(t), n, 1, 500)
	f.clock.Advance("m1", 15*time.Second)
	checkAttempt(t, f.journal.next(t), n, 2, 500)
	checkState(t, f.get(t, n.ID), sandbox.NotifyPending, 2)
	if got, want := f.get(t, n.ID).DueAt, epoch.Add(45*time.Second); !got.Equal(want) {
		t.Errorf("third attempt due at %v, want %v", got, want)
	}
	f.clock.Advance("m1", 30*time.Second)
	checkAttempt(t, f.journal.next(t), n, 3, 500)
	checkState(t, f.get(t, n.ID), sandbox.NotifyFailed, 3)
	if got := rc.hits.Load(); got != 3 {
		t.Errorf("receiver hit %d times, want 3", got)
	}
}

func TestTransportErrorIsJournalled(t *testing.T) {
	rc := newReceiver(t, 200)
	url := rc.URL
	rc.Close() // nothing listens there any more
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: url})

	x := f.journal.next(t)
	checkAttempt(t, x, n, 1, 0)
	if !strings.Contains(x.Error, "connect") {
		t.Errorf("journalled error %q, want the connection error", x.Error)
	}
	got := f.get(t, n.ID)
	checkState(t, got, sandbox.NotifyPending, 1)
	if got.LastError != x.Error {
		t.Errorf("last error %q, want %q", got.LastError, x.Error)
	}
}

func TestFailNext(t *testing.T) {
	rc := newReceiver(t, 200)
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL, FailNext: 1})

	x := f.journal.next(t)
	checkAttempt(t, x, n, 1, 0)
	if x.Error != failedOnPurpose {
		t.Errorf("journalled error %q, want %q", x.Error, failedOnPurpose)
	}
	if got := rc.hits.Load(); got != 0 {
		t.Errorf("receiver hit %d times during a failed-on-purpose attempt, want 0", got)
	}
	got := f.get(t, n.ID)
	checkState(t, got, sandbox.NotifyPending, 1)
	if got.FailNext != 0 {
		t.Errorf("fail_next %d, want 0", got.FailNext)
	}

	// The admin call sets it again before the retry.
	if _, err := f.w.FailNext(context.Background(), "m1", n.ID, 1); err != nil {
		t.Fatalf("FailNext: %v", err)
	}
	f.clock.Advance("m1", 15*time.Second)
	if x := f.journal.next(t); x.Error != failedOnPurpose || x.Attempt != 2 {
		t.Errorf("attempt %d error %q, want attempt 2 failed on purpose", x.Attempt, x.Error)
	}
	f.clock.Advance("m1", 30*time.Second)
	checkAttempt(t, f.journal.next(t), n, 3, 200)
	checkState(t, f.get(t, n.ID), sandbox.NotifyDelivered, 3)

	if _, err := f.w.FailNext(context.Background(), "m1", n.ID, -1); !sandbox.IsCode(err, sandbox.CodeInvalid) {
		t.Errorf("FailNext(-1) = %v, want %s", err, sandbox.CodeInvalid)
	}
}

func TestHoldRelease(t *testing.T) {
	rc := newReceiver(t, 200)
	f := setup(t, Options{}, merchant("m1"), merchant("m2"))
	ctx := context.Background()
	later := epoch.Add(time.Minute)
	held := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL + "/held", DueAt: later})
	sentinel := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL + "/sentinel", DueAt: later})

	n, err := f.w.Hold(ctx, "m1", held.ID)
	if err != nil || n.State != sandbox.NotifyHeld {
		t.Fatalf("Hold = %v, %v; want held", n, err)
	}
	if n, err := f.w.Hold(ctx, "m1", held.ID); err != nil || n.State != sandbox.NotifyHeld {
		t.Errorf("Hold again = %v, %v; want held, no error", n, err)
	}
	if _, err := f.w.Hold(ctx, "m2", held.ID); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("Hold by another merchant = %v, want %s", err, sandbox.CodeNotFound)
	}

	// Both fall due; the scan that sends the sentinel skips the held one.
	f.clock.Advance("m1", time.Minute)
	if x := f.journal.next(t); x.NotifyID != sentinel.ID {
		t.Fatalf("sent %s, want only the sentinel %s", x.NotifyID, sentinel.ID)
	}
	checkState(t, f.get(t, held.ID), sandbox.NotifyHeld, 0)

	if n, err := f.w.Release(ctx, "m1", held.ID); err != nil || n.State != sandbox.NotifyPending {
		t.Fatalf("Release = %v, %v; want pending", n, err)
	}
	checkAttempt(t, f.journal.next(t), held, 1, 200)
	checkState(t, f.get(t, held.ID), sandbox.NotifyDelivered, 1)
	if got := rc.hits.Load(); got != 2 {
		t.Errorf("receiver hit %d times, want 2", got)
	}

	if _, err := f.w.Release(ctx, "m1", held.ID); !sandbox.IsCode(err, sandbox.CodeState) {
		t.Errorf("Release of a delivered notification = %v, want %s", err, sandbox.CodeState)
	}
	if _, err := f.w.Hold(ctx, "m1", held.ID); !sandbox.IsCode(err, sandbox.CodeState) {
		t.Errorf("Hold of a delivered notification = %v, want %s", err, sandbox.CodeState)
	}
	if _, err := f.w.Hold(ctx, "m1", "N-missing"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("Hold of a missing notification = %v, want %s", err, sandbox.CodeNotFound)
	}
}

func TestRedeliver(t *testing.T) {
	rc := newReceiver(t, 200)
	f := setup(t, Options{}, merchant("m1"), merchant("m2"))
	ctx := context.Background()
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL})
	checkAttempt(t, f.journal.next(t), n, 1, 200)

	if _, err := f.w.Redeliver(ctx, "m2", n.ID); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("Redeliver by another merchant = %v, want %s", err, sandbox.CodeNotFound)
	}
	got, err := f.w.Redeliver(ctx, "m1", n.ID)
	if err != nil || got.State != sandbox.NotifyPending || !got.DueAt.Equal(epoch) {
		t.Fatalf("Redeliver = %+v, %v; want pending, due now", got, err)
	}
	checkAttempt(t, f.journal.next(t), n, 2, 200)
	checkState(t, f.get(t, n.ID), sandbox.NotifyDelivered, 2)
	if got := rc.hits.Load(); got != 2 {
		t.Errorf("receiver hit %d times, want 2", got)
	}

	refused := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: "http://notify.example.com/x"})
	f.journal.next(t)
	if _, err := f.w.Redeliver(ctx, "", refused.ID); !sandbox.IsCode(err, sandbox.CodeState) {
		t.Errorf("Redeliver of a refused notification = %v, want %s", err, sandbox.CodeState)
	}
}

func TestDuplicateFaultDeliversTwice(t *testing.T) {
	rc := newReceiver(t, 200)
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: rc.URL, Faults: sandbox.Faults{Duplicate: true}})

	checkAttempt(t, f.journal.next(t), n, 1, 200)
	checkAttempt(t, f.journal.next(t), n, 2, 200)
	got := f.get(t, n.ID)
	checkState(t, got, sandbox.NotifyDelivered, 2)
	if got.Faults.Duplicate {
		t.Error("the duplicate fault is still set")
	}
	if got := rc.hits.Load(); got != 2 {
		t.Errorf("receiver hit %d times, want 2", got)
	}
	if rc.bodies[0] != rc.bodies[1] {
		t.Errorf("the duplicate differs: %q then %q", rc.bodies[0], rc.bodies[1])
	}
}

func TestRefusedTargetNeverContacted(t *testing.T) {
	rc := newReceiver(t, 200)
	tests := []struct {
		name     string
		merchant *sandbox.Merchant
		url      string
		reason   string
	}{
		{"not in the allow-list", merchant("m1", "notify.example.com"), rc.URL, "allowed hosts are notify.example.com"},
		{"loopback only", merchant("m1"), "http://notify.example.com/x", "--notify-allow is 127.0.0.0/8, ::1, localhost"},
		{"metadata", merchant("m1"), "http://169.254.169.254/latest/meta-data/", "never allowed"},
		{"scheme", merchant("m1"), "file:///etc/passwd", `scheme "file"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, Options{}, tt.merchant)
			n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: tt.url})
			x := f.journal.next(t)
			checkAttempt(t, x, n, 1, 0)
			if !strings.Contains(x.Error, tt.reason) {
				t.Errorf("journalled error %q, want it to say %q", x.Error, tt.reason)
			}
			got := f.get(t, n.ID)
			checkState(t, got, sandbox.NotifyRefused, 1)
			if got.LastError != x.Error {
				t.Errorf("last error %q, want %q", got.LastError, x.Error)
			}
			if got := rc.hits.Load(); got != 0 {
				t.Errorf("refused target hit %d times, want 0", got)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t, 200)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	f := setup(t, Options{}, merchant("m1"))
	n := f.enqueue(t, &sandbox.Notification{MchID: "m1", URL: redirect.URL})
	checkAttempt(t, f.journal.next(t), n, 1, http.StatusTemporaryRedirect)
	if got := target.hits.Load(); got != 0 {
		t.Errorf("redirect target hit %d times, want 0", got)
	}
}

// TestHangingReceiverIsolation: merchant A's receiver never answers, and
// the client's timeout is long; merchant B's notification must still go
// out at once, because A may not take the whole pool.
func TestHangingReceiverIsolation(t *testing.T) {
	hang := make(chan struct{})
	var hung atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	fast := newReceiver(t, 200)

	f := setup(t, Options{Workers: 4, Client: &http.Client{Timeout: time.Minute}}, merchant("1000A"), merchant("1000B"))
	t.Cleanup(func() { close(hang) }) // before the worker stops: it waits for attempts in flight
	for i := range 8 {
		f.enqueue(t, &sandbox.Notification{ID: fmt.Sprintf("A-%d", i), MchID: "1000A", URL: slow.URL})
	}
	b := f.enqueue(t, &sandbox.Notification{ID: "B-1", MchID: "1000B", URL: fast.URL})

	checkAttempt(t, f.journal.next(t), b, 1, 200)
	checkState(t, f.get(t, b.ID), sandbox.NotifyDelivered, 1)
	if got := hung.Load(); got > 2 {
		t.Errorf("merchant A holds %d of 4 workers, want at most 2", got)
	}
}

// TestRunLetsAttemptsFinish: stopping the worker does not cut an attempt in
// flight; its outcome is committed.
func TestRunLetsAttemptsFinish(t *testing.T) {
	arrived, answer := make(chan struct{}), make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-answer
	}))
	t.Cleanup(rc.Close)
	st := openStore(t)
	clock := sandbox.NewClock(1, func() time.Time { return epoch })
	n := &sandbox.Notification{ID: "N-1", MchID: "m1", Product: product, URL: rc.URL, State: sandbox.NotifyPending, DueAt: epoch}
	if err := st.Commit(context.Background(), &sandbox.Batch{Merchants: []*sandbox.Merchant{merchant("m1")}, Notifications: []*sandbox.Notification{n}}); err != nil {
		t.Fatal(err)
	}
	rel := &releases{Store: st}
	w := New(Options{Store: rel, Clock: clock, Builders: map[string]sandbox.NotifyBuilder{product: builder{}}, Owner: "W-1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()

	<-arrived
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned with an attempt in flight")
	default:
	}
	close(answer)
	<-done
	got, err := st.GetNotification(context.Background(), n.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, got, sandbox.NotifyDelivered, 1)
	if !slices.Equal(rel.owners, []string{"W-1"}) || rel.stateThen != sandbox.NotifyDelivered {
		t.Errorf("ReleaseClaims called for %q with the notification %s; want once for W-1, after the attempt's outcome was committed",
			rel.owners, rel.stateThen)
	}
}

// releases records the ReleaseClaims calls of a stopping worker, and the
// state N-1 was in at the time.
type releases struct {
	sandbox.Store
	owners    []string
	stateThen sandbox.NotifyState
}

func (r *releases) ReleaseClaims(ctx context.Context, owner string) error {
	if n, err := r.GetNotification(ctx, "N-1"); err == nil {
		r.stateThen = n.State
	}
	r.owners = append(r.owners, owner)
	return r.Store.ReleaseClaims(ctx, owner)
}

func TestAllowed(t *testing.T) {
	loopback := MustPolicy(DefaultAllow)
	wide := MustPolicy("merchant.example.com, *.example.org:8443, 10.0.0.0/8, [::1]:9000, 127.0.0.1")
	tests := []struct {
		name   string
		policy *Policy
		hosts  []string
		url    string
		ok     bool
	}{
		{"loopback v4", loopback, nil, "http://127.0.0.1:8080/notify", true},
		{"loopback v4 range", loopback, nil, "http://127.8.9.10/notify", true},
		{"loopback v6", loopback, nil, "http://[::1]:8080/notify", true},
		{"localhost", loopback, nil, "https://LOCALHOST/notify", true},
		{"public ip, loopback only", loopback, nil, "http://203.0.113.7/notify", false},
		{"name, loopback only", loopback, nil, "http://merchant.example.com/notify", false},
		{"private ip, loopback only", loopback, nil, "http://10.0.0.1/notify", false},
		{"merchant cannot widen", loopback, []string{"merchant.example.com"}, "https://merchant.example.com/n", false},
		{"metadata address, whatever the lists", wide, []string{"169.254.169.254"}, "http://169.254.169.254/latest/meta-data/", false},
		{"link-local v6", wide, nil, "http://[fe80::1]/n", false},
		{"metadata name", wide, nil, "http://metadata.google.internal/computeMetadata/v1/", false},
		{"alibaba metadata", MustPolicy("100.64.0.0/10"), nil, "http://100.100.100.200/latest/meta-data/", false},
		{"operator name", wide, nil, "https://merchant.example.com:8443/n", true},
		{"operator name, case", wide, nil, "https://Merchant.Example.COM/n", true},
		{"operator wildcard with port", wide, nil, "https://a.b.example.org:8443/n", true},
		{"operator wildcard, other port", wide, nil, "https://a.example.org/n", false},
		{"wildcard is not the apex", wide, nil, "https://example.org:8443/n", false},
		{"suffix is not a match", wide, nil, "http://evil-merchant.example.com/n", false},
		{"operator cidr", wide, nil, "http://10.9.8.7:3000/n", true},
		{"operator v6 with port", wide, nil, "http://[::1]:9000/n", true},
		{"operator v6, other port", wide, nil, "http://[::1]:9001/n", false},
		{"merchant narrows to host:port", wide, []string{"merchant.example.com:8443"}, "https://merchant.example.com:8443/n", true},
		{"merchant narrows, other port", wide, []string{"merchant.example.com:8443"}, "https://merchant.example.com:9000/n", false},
		{"merchant narrows, default port", wide, []string{"merchant.example.com:443"}, "https://merchant.example.com/n", true},
		{"merchant narrows, loopback not implied", wide, []string{"merchant.example.com"}, "http://127.0.0.1/n", false},
		{"scheme", loopback, nil, "ftp://127.0.0.1/n", false},
		{"no host", loopback, nil, "http:///n", false},
		{"not a url", loopback, nil, "http://[::1/n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Allowed(merchant("m1", tt.hosts...), tt.url)
			if (err == nil) != tt.ok {
				t.Fatalf("Allowed(%v, %q) = %v, want ok %v", tt.hosts, tt.url, err, tt.ok)
			}
			if err != nil && !sandbox.IsCode(err, sandbox.CodeForbidden) {
				t.Errorf("error %v, want %s", err, sandbox.CodeForbidden)
			}
		})
	}
	err := wide.Allowed(merchant("m1", "a.example.com", "merchant.example.com:8443"), "http://merchant.example.com/n")
	if want := `notify host "merchant.example.com" is not allowed for merchant m1: allowed hosts are a.example.com, merchant.example.com:8443`; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestPolicyParse refuses entries no operator could mean, and never lets
// link-local or metadata addresses in.
func TestPolicyParse(t *testing.T) {
	for _, bad := range []string{"169.254.0.0/16", "169.254.169.254", "[fe80::1]:80", "metadata.google.internal", "a b", "http://x/"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) accepted it", bad)
		}
	}
	if p, err := ParsePolicy(" 10.0.0.0/8 , receiver.internal:9000 ,"); err != nil || p.String() != "10.0.0.0/8, receiver.internal:9000" {
		t.Errorf("ParsePolicy = %v, %v", p, err)
	}
}

// TestHostViolations: a merchant's notify_hosts can only narrow the
// operator's list.
func TestHostViolations(t *testing.T) {
	p := MustPolicy("receiver.internal:9000, 10.0.0.0/8, 127.0.0.1")
	vs := p.HostViolations("/notify_hosts", []string{"receiver.internal", "receiver.internal:9000", "10.1.2.3:80", "127.0.0.1", "169.254.169.254", "other.example", "receiver.internal:80"})
	var got []string
	for _, v := range vs {
		got = append(got, v.Path)
	}
	if want := []string{"/notify_hosts/4", "/notify_hosts/5", "/notify_hosts/6"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("violations at %v (%v); want %v", got, vs, want)
	}
}

// TestDialGuard: the default client holds the address a name resolved to
// against the policy at connect time.
func TestDialGuard(t *testing.T) {
	rc := newReceiver(t, 200)
	u, _ := url.Parse(rc.URL)
	viaName := "http://localhost:" + u.Port() + "/n"
	tests := []struct {
		name   string
		policy *Policy
		url    string
		ok     bool
	}{
		{"listed loopback", MustPolicy(DefaultAllow), rc.URL, true},
		{"an exact name the operator listed", MustPolicy("localhost"), viaName, true},
		{"an address not listed", MustPolicy("192.0.2.0/24"), rc.URL, false},
		{"link-local never", MustPolicy("0.0.0.0/0"), "http://169.254.169.254:" + u.Port() + "/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultClient(1, tt.policy)
			tg, _ := tt.policy.check(merchant("m1"), tt.url)
			ctx := context.WithValue(context.Background(), targetKey{}, tg)
			req, _ := http.NewRequestWithContext(ctx, "POST", tt.url, nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("Do(%s) = %v, want ok %v", tt.url, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "refused") {
				t.Errorf("error %v, want a refusal", err)
			}
		})
	}
	// A name the operator allowed by a wildcard vouches for nothing: when
	// it resolves (rebinds) to a private address that is not listed, the
	// dial is refused; a public one is fine.
	p := MustPolicy("*.example.com")
	untrusted := context.WithValue(context.Background(), targetKey{}, target{})
	if err := p.guardDial(untrusted, "tcp", "10.1.2.3:80", nil); err != errNotListed {
		t.Errorf("rebinding to 10.1.2.3: %v, want %v", err, errNotListed)
	}
	if err := p.guardDial(untrusted, "tcp", "203.0.113.9:443", nil); err != nil {
		t.Errorf("a public address: %v", err)
	}
}

// TestEachDeliveredOnce: under load, a scan may read a row while its attempt
// is committing; that stale copy must not be sent again.
func TestEachDeliveredOnce(t *testing.T) {
	rc := newReceiver(t, 200)
	f := setup(t, Options{Workers: 8}, merchant("m1"))
	const count = 300
	batch := &sandbox.Batch{}
	for i := range count {
		batch.Notifications = append(batch.Notifications, &sandbox.Notification{
			ID: fmt.Sprintf("N-%04d", i), MchID: "m1", Product: product, URL: rc.URL, State: sandbox.NotifyPending, DueAt: epoch,
		})
	}
	if err := f.st.Commit(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	f.w.Wake()
	seen := map[string]bool{}
	for range count {
		x := f.journal.next(t)
		if seen[x.NotifyID] {
			t.Fatalf("%s attempted twice", x.NotifyID)
		}
		seen[x.NotifyID] = true
	}
	if got := rc.hits.Load(); got != count {
		t.Errorf("receiver hit %d times, want %d", got, count)
	}
}
