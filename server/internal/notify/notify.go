// Package notify delivers the sandbox's asynchronous notifications: rows in
// the store, sent when due on the merchant's clock, signed by their product,
// retried on the upstream's schedule, each attempt journalled.
//
// Delivery is at least once, as with WeChat Pay and P云: an attempt is
// committed after the merchant answered, so a crash (kill -9) between the
// answer and the commit leaves the row pending and it is sent again after
// the restart. Merchants must tolerate duplicates, as they must upstream.
//
// Processes sharing a store (replicas on PostgreSQL) each claim the due
// notifications they send (Store.ClaimNotifications, a lease): one sends a
// notification, and when it dies another takes it over once the lease ends.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

const (
	// attemptTimeout is how long a merchant has to answer: WeChat Pay gives
	// 5 s (SOURCES.md §1, notifications).
	attemptTimeout = 5 * time.Second
	// responseHead is how much of an answer is read and given to
	// Acknowledged: receivers answer a few bytes, and a hostile one must not
	// make the sandbox buffer more.
	responseHead = 4 << 10
	// answerPreview is how much of an answer is journalled: enough to see
	// why an attempt failed, not a way to read another service's pages.
	answerPreview = 256
	// adminTries bounds the compare-and-swap retries of an admin operation
	// racing a delivery.
	adminTries = 5
	// failedOnPurpose is the error of an attempt FailNext failed.
	failedOnPurpose = "failed on purpose: fail_next"
	// defaultLease is how long a claimed notification stays this worker's
	// (Store.ClaimNotifications) before another process sharing the store
	// may take it over: well beyond an attempt (attemptTimeout) and its
	// commit, and renewed by each scan while the attempt lasts.
	defaultLease = 30 * time.Second
)

// Options configure a Worker.
type Options struct {
	// Store holds the notifications and the merchants.
	Store sandbox.Store
	// Clock is the merchants' time: due times and retry delays run on it
	// (default: real time).
	Clock *sandbox.Clock
	// Journal receives every attempt (default: none).
	Journal sandbox.Journal
	// Allow is where notifications may go (--notify-allow; default
	// DefaultAllow, this machine's loopback).
	Allow *Policy
	// Client sends the notifications. The default keeps connections alive,
	// times attempts out after 5 s and holds each resolved address to
	// Allow at connect time. Redirects are never followed.
	Client *http.Client
	// Builders holds each product's NotifyBuilder, by product name.
	Builders map[string]sandbox.NotifyBuilder
	// Workers is the number of concurrent deliveries (default 32). One
	// merchant gets at most half of them, so that a receiver that hangs
	// does not hold up everyone else's notifications.
	Workers int
	// MaxPoll is the longest real wait between scans (default 1 s).
	MaxPoll time.Duration
	// Logger receives store failures and dropped outcomes; nil discards.
	Logger *slog.Logger
	// Owner names this worker in its claims on notifications (default: a
	// random name): workers of processes sharing a store each deliver a
	// notification the others do not hold. Lease is how long a claim
	// lasts without renewal (default 30 s): a killed process's
	// notifications wait that long before another takes them over.
	Owner string
	Lease time.Duration
	// Attempted sees each notification after an attempt, in the state the
	// attempt left it (the metrics count it); nil ignores.
	Attempted func(*sandbox.Notification)
}

// Worker delivers due notifications.
type Worker struct {
	st       sandbox.Store
	policy   *Policy
	clock    *sandbox.Clock
	journal  sandbox.Journal
	client   *http.Client
	timeout  bool // the client has no timeout of its own: bound each attempt here
	builders map[string]sandbox.NotifyBuilder
	workers  int
	// perMerchant caps one merchant's share of the pool, so that a merchant
	// whose receiver hangs leaves room for everyone else.
	perMerchant int
	maxPoll     time.Duration
	log         *slog.Logger
	owner       string
	lease       time.Duration
	attempted   func(*sandbox.Notification)

	kick chan struct{}
	// stale holds the merchants a commit wrote since Run last read them
	// (Committed); relist asks Run to read them all.
	staleMu sync.Mutex
	stale   map[string]struct{}
	relist  bool

	mu       sync.Mutex
	inflight map[string]struct{} // notification IDs
	// released holds the IDs whose attempt ended since the current scan
	// query started: the query may have read them before the attempt
	// committed, and sending that stale row would deliver twice.
	released map[string]struct{}
	busy     map[string]int // in-flight attempts by merchant
	running  int
	wg       sync.WaitGroup
}

// New returns a worker. It registers with the clock, so that advancing a
// merchant's clock fires due retries at once.
func New(o Options) *Worker {
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.MaxPoll <= 0 {
		o.MaxPoll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Journal == nil {
		o.Journal = discard{}
	}
	if o.Clock == nil {
		o.Clock = sandbox.NewClock(1, nil)
	}
	if o.Owner == "" {
		o.Owner = randomOwner()
	}
	if o.Lease <= 0 {
		o.Lease = defaultLease
	}
	if o.Allow == nil {
		o.Allow = MustPolicy(DefaultAllow)
	}
	client := defaultClient(o.Workers, o.Allow)
	if o.Client != nil {
		c := *o.Client
		client = &c
	}
	client.CheckRedirect = noRedirect
	w := &Worker{
		st:          o.Store,
		policy:      o.Allow,
		clock:       o.Clock,
		journal:     o.Journal,
		client:      client,
		timeout:     client.Timeout == 0,
		builders:    o.Builders,
		workers:     o.Workers,
		perMerchant: max(1, o.Workers/2),
		maxPoll:     o.MaxPoll,
		log:         o.Logger,
		owner:       o.Owner,
		lease:       o.Lease,
		attempted:   o.Attempted,
		kick:        make(chan struct{}, 1),
		inflight:    map[string]struct{}{},
		released:    map[string]struct{}{},
		busy:        map[string]int{},
		stale:       map[string]struct{}{},
		relist:      true,
	}
	o.Clock.OnAdvance(w.Wake)
	return w
}

// randomOwner names a worker in its claims.
func randomOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "notify-" + hex.EncodeToString(b[:])
}

type discard struct{}

func (discard) Record(*sandbox.Exchange) {}

// Wake makes the worker look for due work now. It never blocks.
func (w *Worker) Wake() { w.poke() }

// Committed is the store's after-commit hook: the merchants a commit wrote
// are read again before the next scan (their allow-lists, keys, new
// merchants), and a commit of notifications or merchants wakes the worker.
func (w *Worker) Committed(c sandbox.Committed) {
	if len(c.Merchants) > 0 {
		w.staleMu.Lock()
		for _, id := range c.Merchants {
			w.stale[id] = struct{}{}
		}
		w.staleMu.Unlock()
	}
	if len(c.Merchants)+len(c.NotifyMerchants) > 0 {
		w.poke()
	}
}

// poke makes the worker scan again.
func (w *Worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default: // a scan is already pending
	}
}

// Run scans and delivers until ctx ends; attempts in flight then finish
// (each is bounded by the attempt timeout) before Run returns, and the
// claims left (rows claimed but not attempted) are released, so that
// another process sharing the store takes them at once.
func (w *Worker) Run(ctx context.Context) {
	defer releaseClaims(w.st, w.owner, w.log)
	defer w.wg.Wait()
	var merchants []*sandbox.Merchant
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		merchants = w.merchants(ctx, merchants)
		timer.Reset(w.scan(ctx, merchants))
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer.C:
		}
	}
}

// merchants returns the merchant list brought up to date: all of them
// read at the start (and after a failed read), then only those a commit
// wrote since.
func (w *Worker) merchants(ctx context.Context, ms []*sandbox.Merchant) []*sandbox.Merchant {
	w.staleMu.Lock()
	relist, stale := w.relist, w.stale
	w.relist, w.stale = false, map[string]struct{}{}
	w.staleMu.Unlock()
	if relist {
		all, err := w.st.ListMerchants(ctx)
		if err == nil {
			return all
		}
		w.log.Error("notify_list_merchants_failed", "error", err)
		w.staleMu.Lock()
		w.relist = true
		w.staleMu.Unlock()
		return ms
	}
	if len(stale) == 0 {
		return ms
	}
	out := slices.DeleteFunc(slices.Clone(ms), func(m *sandbox.Merchant) bool { _, ok := stale[m.MchID]; return ok })
	for id := range stale {
		m, err := w.st.GetMerchant(ctx, id)
		switch {
		case err == nil:
			out = append(out, m)
		case !sandbox.IsCode(err, sandbox.CodeNotFound):
			w.log.Error("notify_read_merchant_failed", "mchid", id, "error", err)
			w.staleMu.Lock()
			w.relist = true
			w.staleMu.Unlock()
			return ms
		}
	}
	slices.SortFunc(out, func(a, b *sandbox.Merchant) int { return strings.Compare(a.MchID, b.MchID) })
	return out
}

// scan hands every due notification it has room for to a delivery, and
// returns how long to wait before the next one falls due.
func (w *Worker) scan(ctx context.Context, merchants []*sandbox.Merchant) time.Duration {
	wait := w.maxPoll
	for _, m := range merchants {
		if ctx.Err() != nil {
			return wait
		}
		now := w.clock.Now(m.MchID)
		w.mu.Lock()
		busy := w.busy[m.MchID]
		room := min(w.workers-w.running, w.perMerchant-busy)
		clear(w.released)
		w.mu.Unlock()
		if room > 0 {
			// The rows in flight are still pending and due: ask for them too,
			// so that the ones behind them are reached (and their claims
			// renewed).
			due, err := w.st.ClaimNotifications(ctx, m.MchID, now, w.owner, w.lease, busy+room)
			if err != nil && ctx.Err() == nil { // a store in another process fails a read at shutdown
				w.log.Error("notify_due_failed", "mchid", m.MchID, "error", err)
			}
			for _, n := range due {
				if room > 0 && w.claim(n) {
					room--
					go w.attempt(ctx, m, n)
				}
			}
		}
		next, err := w.st.NextDue(ctx, m.MchID)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("notify_next_due_failed", "mchid", m.MchID, "error", err)
			}
			continue
		}
		// A time already past belongs to a row in flight (its completion
		// pokes the worker) or to a session (not ours): MaxPoll covers both.
		if next.After(now) {
			wait = min(wait, w.clock.RealDuration(next.Sub(now)))
		}
	}
	return wait
}

// claim marks n in flight unless it already is, or its row may be stale.
func (w *Worker) claim(n *sandbox.Notification) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.inflight[n.ID]; ok {
		return false
	}
	if _, ok := w.released[n.ID]; ok {
		return false // the next scan reads it afresh
	}
	w.inflight[n.ID] = struct{}{}
	w.busy[n.MchID]++
	w.running++
	w.wg.Add(1)
	return true
}

// release ends n's flight, after its outcome is committed. Once half of
// the merchant's share or half of the pool is free it pokes the worker to
// refill: a scan per completion would read the rows in flight again and
// again, and under load cost more than the deliveries.
func (w *Worker) release(n *sandbox.Notification) {
	w.mu.Lock()
	delete(w.inflight, n.ID)
	w.released[n.ID] = struct{}{}
	busy := w.busy[n.MchID] - 1
	if busy <= 0 {
		delete(w.busy, n.MchID)
	} else {
		w.busy[n.MchID] = busy
	}
	w.running--
	refill := busy <= w.perMerchant/2 || w.running <= w.workers/2
	w.mu.Unlock()
	w.wg.Done()
	if refill {
		w.poke()
	}
}

// attempt makes one delivery attempt of n, commits its outcome and journals
// it. It outlives ctx, so that a shutdown does not cut an attempt in half.
func (w *Worker) attempt(ctx context.Context, m *sandbox.Merchant, n *sandbox.Notification) {
	defer w.release(n)
	ctx = context.WithoutCancel(ctx)
	x := &sandbox.Exchange{
		Time:      time.Now(),
		Direction: sandbox.DirectionOut,
		Product:   n.Product,
		MchID:     n.MchID,
		NotifyID:  n.ID,
		Attempt:   n.Attempts + 1,
		Method:    http.MethodPost,
		URL:       n.URL,
	}
	b := w.builders[n.Product]
	ack, final := w.try(ctx, b, m, n, x)
	x.LatencyMS = float64(time.Since(x.Time).Microseconds()) / 1000

	now := w.clock.Now(n.MchID)
	n.Attempts++
	n.LastStatus, n.LastError = x.Status, x.Error
	switch {
	case final != "":
		n.State = final
	case ack && n.Faults.Duplicate:
		// The scenario wants the merchant to see it twice, as WeChat may
		// send it: keep it pending and due now, once.
		n.Faults.Duplicate = false
		n.DueAt = now
	case ack:
		n.State = sandbox.NotifyDelivered
	default:
		var schedule []time.Duration
		if b != nil {
			schedule = b.Schedule()
		}
		if n.Attempts > len(schedule) {
			n.State = sandbox.NotifyFailed
		} else {
			n.DueAt = now.Add(schedule[n.Attempts-1])
		}
	}
	w.commit(ctx, n)
	w.journal.Record(x)
	if w.attempted != nil {
		w.attempted(n)
	}
}

// try makes the attempt unless FailNext, the allow-list or a missing
// builder stops it; final is the state an attempt that cannot be retried
// leaves the notification in.
func (w *Worker) try(ctx context.Context, b sandbox.NotifyBuilder, m *sandbox.Merchant, n *sandbox.Notification, x *sandbox.Exchange) (ack bool, final sandbox.NotifyState) {
	if n.FailNext > 0 {
		n.FailNext--
		x.Error = failedOnPurpose
		return false, ""
	}
	if err := w.policy.Allowed(m, n.URL); err != nil {
		x.Error = err.Error()
		return false, sandbox.NotifyRefused
	}
	if b == nil {
		x.Error = fmt.Sprintf("no notification builder for product %q", n.Product)
		return false, sandbox.NotifyFailed
	}
	return w.send(ctx, b, m, n, x), ""
}

// send builds, signs and sends one attempt, filling x; it reports whether
// the merchant acknowledged it.
func (w *Worker) send(ctx context.Context, b sandbox.NotifyBuilder, m *sandbox.Merchant, n *sandbox.Notification, x *sandbox.Exchange) bool {
	req, err := b.BuildNotify(ctx, m, n)
	if err != nil {
		x.Error = "building the notification: " + err.Error()
		return false
	}
	x.Method, x.URL, x.RequestBody = req.Method, req.URL, string(req.Body)
	t, err := w.policy.check(m, req.URL)
	if err != nil {
		x.Error = err.Error()
		return false
	}
	ctx = context.WithValue(ctx, targetKey{}, t)
	if w.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		x.Error = "building the request: " + err.Error()
		return false
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	resp, err := w.client.Do(hr)
	if err != nil {
		x.Error = err.Error()
		return false
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, responseHead))
	resp.Body.Close()
	x.Status, x.ResponseBody = resp.StatusCode, string(head)
	if len(head) > answerPreview {
		x.ResponseBody = strings.ToValidUTF8(string(head[:answerPreview]), "") + "…[preview: the answer's first 256 bytes]"
	}
	if err != nil {
		x.Error = "reading the answer: " + err.Error()
		return false
	}
	return b.Acknowledged(resp.StatusCode, head)
}

// commit stores an attempt's outcome. A conflict means an admin changed the
// notification during the attempt (held, redelivered, …): their change
// wins and the outcome is dropped.
func (w *Worker) commit(ctx context.Context, n *sandbox.Notification) {
	err := w.st.Commit(ctx, &sandbox.Batch{Notifications: []*sandbox.Notification{n}})
	switch {
	case err == nil:
	case sandbox.IsCode(err, sandbox.CodeConflict):
		state := sandbox.NotifyState("unknown")
		if cur, err := w.st.GetNotification(ctx, n.ID); err == nil {
			state = cur.State
		}
		w.log.Info("notify_outcome_dropped", "mchid", n.MchID, "notify_id", n.ID, "attempt", n.Attempts, "state", state)
	default:
		w.log.Error("notify_commit_failed", "mchid", n.MchID, "notify_id", n.ID, "attempt", n.Attempts, "error", err)
	}
}

// HostViolations checks a merchant's notify_hosts against the operator's
// allow-list, which they can only narrow.
func (w *Worker) HostViolations(path string, hosts []string) []sandbox.Violation {
	return w.policy.HostViolations(path, hosts)
}

// Redeliver makes the notification pending and due now, whatever its state
// but dropped or refused. Attempts keep counting, so one past its schedule
// gets this one attempt.
func (w *Worker) Redeliver(ctx context.Context, mchid, id string) (*sandbox.Notification, error) {
	return w.update(ctx, mchid, id, func(n *sandbox.Notification, now time.Time) (bool, error) {
		if n.State == sandbox.NotifyDropped || n.State == sandbox.NotifyRefused {
			return false, stateError(n, "redelivered")
		}
		n.State, n.DueAt = sandbox.NotifyPending, now
		return true, nil
	})
}

// FailNext makes the next count attempts fail without contacting the
// merchant, each counted against the schedule.
func (w *Worker) FailNext(ctx context.Context, mchid, id string, count int) (*sandbox.Notification, error) {
	if count < 0 {
		return nil, sandbox.Invalid("fail_next must not be negative", sandbox.Violation{Path: "/fail_next", Message: fmt.Sprintf("got %d", count)})
	}
	return w.update(ctx, mchid, id, func(n *sandbox.Notification, _ time.Time) (bool, error) {
		changed := n.FailNext != count
		n.FailNext = count
		return changed, nil
	})
}

// Hold pauses a pending notification until Release.
func (w *Worker) Hold(ctx context.Context, mchid, id string) (*sandbox.Notification, error) {
	return w.update(ctx, mchid, id, func(n *sandbox.Notification, _ time.Time) (bool, error) {
		switch n.State {
		case sandbox.NotifyHeld:
			return false, nil
		case sandbox.NotifyPending:
			n.State = sandbox.NotifyHeld
			return true, nil
		}
		return false, stateError(n, "held")
	})
}

// Release resumes a held notification; it keeps its due time, so one that
// fell due while held is sent at once.
func (w *Worker) Release(ctx context.Context, mchid, id string) (*sandbox.Notification, error) {
	return w.update(ctx, mchid, id, func(n *sandbox.Notification, _ time.Time) (bool, error) {
		switch n.State {
		case sandbox.NotifyPending:
			return false, nil
		case sandbox.NotifyHeld:
			n.State = sandbox.NotifyPending
			return true, nil
		}
		return false, stateError(n, "released")
	})
}

func stateError(n *sandbox.Notification, verb string) *sandbox.Error {
	return sandbox.Errorf(sandbox.CodeState, "notification %s is %s and cannot be %s", n.ID, n.State, verb)
}

// update applies change to the merchant's notification with
// compare-and-swap, retrying when a delivery committed in between. An empty
// mchid is the global admin's: any merchant's notification.
func (w *Worker) update(ctx context.Context, mchid, id string, change func(n *sandbox.Notification, now time.Time) (bool, error)) (*sandbox.Notification, error) {
	for try := 1; ; try++ {
		n, err := w.st.GetNotification(ctx, id)
		if sandbox.IsCode(err, sandbox.CodeNotFound) || err == nil && mchid != "" && n.MchID != mchid {
			// The same answer for another merchant's: IDs are not a way to
			// learn what others have.
			return nil, sandbox.Errorf(sandbox.CodeNotFound, "notification %q not found", id)
		}
		if err != nil {
			return nil, err
		}
		changed, err := change(n, w.clock.Now(n.MchID))
		if err != nil || !changed {
			return n, err
		}
		err = w.st.Commit(ctx, &sandbox.Batch{Notifications: []*sandbox.Notification{n}})
		if err == nil {
			w.poke()
			return n, nil
		}
		if !sandbox.IsCode(err, sandbox.CodeConflict) || try == adminTries {
			return nil, err
		}
	}
}

// releaseClaimsTimeout bounds the release of a stopping process's claims.
const releaseClaimsTimeout = 5 * time.Second

// releaseClaims ends owner's leases in st, for a worker that stops. A
// failure only delays the others until the leases run out.
func releaseClaims(st sandbox.Store, owner string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseClaimsTimeout)
	defer cancel()
	if err := st.ReleaseClaims(ctx, owner); err != nil {
		log.Warn("release_claims_failed", "owner", owner, "error", err.Error())
	}
}
