package miniprogram_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// clockedProduct reads the clock itself, as the real products do, and its
// default scenario makes the user act at once.
type clockedProduct struct {
	fakeProduct
	clock *sandbox.Clock
}

func (clockedProduct) Name() string { return "clocked" }
func (clockedProduct) Targets() []sandbox.Target {
	return []sandbox.Target{{API: sandbox.APINavigateToMiniProgram, Key: "wxclocked0000000"}}
}

func (p clockedProduct) Launch(_ context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	p.clock.Now(call.Merchant.MchID) // the product's own reading; the scenario's user acts after 0s
	return &sandbox.Launched{}, nil
}

// TestAtOnceIsResolvedInTheLaunchCommit: on a clock that moves between
// readings, as a real one does, a session the product makes due "now" is
// resolved in the launch's own commit, not left for the resolver.
func TestAtOnceIsResolvedInTheLaunchCommit(t *testing.T) {
	h := newHarnessWith(t, harnessOptions{tick: time.Microsecond, maxPoll: time.Hour,
		extra: func(c *sandbox.Clock) sandbox.Product { return clockedProduct{clock: c} }})
	code, body := h.call("navigateToMiniProgram", `{"caller":{"appId":"`+h.demo.AppID+`"},"args":{"appId":"wxclocked0000000"}}`)
	if code != 200 || body["state"] != string(sandbox.SessionReturned) {
		t.Fatalf("got %d %v, want the session returned by the launch", code, body)
	}
}

// scanCounter counts the resolver's scans of due sessions.
type scanCounter struct {
	sandbox.Store
	mu    sync.Mutex
	scans int
}

func (s *scanCounter) ClaimSessions(ctx context.Context, mchid string, now time.Time, owner string, lease time.Duration, limit int) ([]*sandbox.Session, error) {
	s.mu.Lock()
	s.scans++
	s.mu.Unlock()
	return s.Store.ClaimSessions(ctx, mchid, now, owner, lease, limit)
}

func (s *scanCounter) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans
}

// TestLaunchesDueLaterDoNotWakeTheResolver: a session due after the
// resolver's next look costs the launch no scan; one due before it wakes
// the resolver, which then resolves it on time.
func TestLaunchesDueLaterDoNotWakeTheResolver(t *testing.T) {
	counter := &scanCounter{}
	h := newHarnessWith(t, harnessOptions{maxPoll: time.Hour, store: func(st sandbox.Store) sandbox.Store {
		counter.Store = st
		return counter
	}})
	eventually(t, func() bool { return counter.count() > 0 }) // the first scan at start
	before := counter.count()
	for range 20 {
		h.launch(`{"delay":"2h"}`)
	}
	if got := counter.count(); got != before {
		t.Fatalf("20 launches due in 2 h caused %d scans, want none", got-before)
	}
	id := h.launch(`{"delay":"20ms"}`)
	h.mu.Lock()
	h.now = h.now.Add(20 * time.Millisecond) // time passes; nobody calls Advance
	h.mu.Unlock()
	code, body := h.get("/miniprogram/v1/sessions/" + id + "/return?wait=5s")
	if code != 200 || extraAction(t, body) != "ok" {
		t.Fatalf("a session due in 20 ms with the next scan an hour away: got %d %v", code, body)
	}
}

// gatedStore holds each resolution's commit until a second one is in
// flight, so that a resolver that commits one at a time waits out every
// gate while one that resolves side by side passes at once.
type gatedStore struct {
	sandbox.Store
	mu       sync.Mutex
	inflight int
	most     int
	gate     chan struct{}
	once     sync.Once
}

func (s *gatedStore) Commit(ctx context.Context, b *sandbox.Batch) error {
	resolution := len(b.Sessions) == 1 && b.Sessions[0].State == sandbox.SessionReturned && b.Sessions[0].Version > 0
	if resolution {
		s.mu.Lock()
		s.inflight++
		s.most = max(s.most, s.inflight)
		if s.inflight >= 2 {
			s.once.Do(func() { close(s.gate) })
		}
		s.mu.Unlock()
		select {
		case <-s.gate:
		case <-time.After(time.Second):
		}
		defer func() { s.mu.Lock(); s.inflight--; s.mu.Unlock() }()
	}
	return s.Store.Commit(ctx, b)
}

// TestDueSessionsAreResolvedTogether: sessions that fall due together are
// resolved side by side, so that the resolver keeps up with a busy jump
// path instead of committing one session at a time.
func TestDueSessionsAreResolvedTogether(t *testing.T) {
	gated := &gatedStore{gate: make(chan struct{})}
	h := newHarnessWith(t, harnessOptions{store: func(st sandbox.Store) sandbox.Store {
		gated.Store = st
		return gated
	}})
	var ids []string
	for range 20 {
		ids = append(ids, h.launch(`{"delay":"10m"}`))
	}
	h.clock.Advance(h.demo.MchID, 10*time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		code, _ := h.get("/miniprogram/v1/sessions/" + id + "/return?wait=" + time.Until(deadline).Round(time.Millisecond).String())
		if code != 200 {
			t.Fatalf("session %s not resolved within 5 s: the resolver commits one at a time", id)
		}
	}
	if gated.most < 2 {
		t.Fatalf("at most %d resolution in flight, want several", gated.most)
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}

// TestPastDueWorkOfOthersDoesNotSpinTheResolver: a pending item already
// due that the resolver does not take — a notification (the worker's), or
// a session another replica claimed — makes it look again at MaxPoll, not
// every millisecond until the item goes.
func TestPastDueWorkOfOthersDoesNotSpinTheResolver(t *testing.T) {
	counter := &scanCounter{}
	h := newHarnessWith(t, harnessOptions{maxPoll: 200 * time.Millisecond, store: func(st sandbox.Store) sandbox.Store {
		counter.Store = st
		return counter
	}})
	h.mu.Lock()
	due := h.now.Add(-time.Minute)
	h.mu.Unlock()
	n := &sandbox.Notification{ID: "N-PAST", MchID: h.demo.MchID, Product: "test", URL: "http://127.0.0.1:1/", State: sandbox.NotifyPending, DueAt: due}
	if err := counter.Store.Commit(context.Background(), &sandbox.Batch{Notifications: []*sandbox.Notification{n}}); err != nil {
		t.Fatal(err)
	}
	h.svc.Wake()
	before := counter.count()
	time.Sleep(time.Second)
	if scans := counter.count() - before; scans > 20 {
		t.Errorf("%d scans in 1 s with a notification past due, want about 5 (MaxPoll 200ms)", scans)
	}
}
