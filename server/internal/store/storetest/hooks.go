package storetest

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// testMerchantCAS checks that a merchant written with Version 0 is created
// or replaced, and one written with a Version is compare-and-swap on it.
func testMerchantCAS(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t)
	m := &sandbox.Merchant{MchID: "m1", Name: "first"}
	Commit(t, s, &sandbox.Batch{Merchants: []*sandbox.Merchant{m}})
	if m.Version != 1 {
		t.Fatalf("version after the first write = %d, want 1", m.Version)
	}
	stale := *m
	u := *m
	u.Name = "second"
	Commit(t, s, &sandbox.Batch{Merchants: []*sandbox.Merchant{&u}})
	if u.Version != 2 {
		t.Errorf("version after a compare-and-swap = %d, want 2", u.Version)
	}
	stale.Name = "lost"
	err := s.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{&stale}})
	WantCode(t, err, sandbox.CodeConflict, `merchant "m1"`, "version 1 is stale", "has 2")
	got, err := s.GetMerchant(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "second" || got.Version != 2 {
		t.Errorf("merchant = %q v%d, want second v2", got.Name, got.Version)
	}
	missing := &sandbox.Merchant{MchID: "m9", Version: 3}
	WantCode(t, s.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{missing}}), sandbox.CodeNotFound, `merchant "m9" not found`)
	// Version 0 replaces whatever is stored.
	Commit(t, s, &sandbox.Batch{Merchants: []*sandbox.Merchant{{MchID: "m1", Name: "replaced"}}})
	if got, _ := s.GetMerchant(ctx, "m1"); got.Name != "replaced" || got.Version != 3 {
		t.Errorf("after a replace: %q v%d, want replaced v3", got.Name, got.Version)
	}
	WantCode(t, s.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{{MchID: "m1", Version: -1}}}), sandbox.CodeInvalid, "/merchants/0")
}

// testHooks checks OnCommit: every hook is told, in the order registered,
// of each successful commit before Commit returns, with what the batch
// wrote, and of no failed one.
func testHooks(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t)
	var mu sync.Mutex
	var heard []string
	var got []sandbox.Committed
	s.OnCommit(func(c sandbox.Committed) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, "first")
		got = append(got, c)
	})
	s.OnCommit(func(sandbox.Committed) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, "second")
	})
	due := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	done := NewNotification("n2", "m4", due)
	done.State = sandbox.NotifyDelivered
	b := &sandbox.Batch{
		Merchants:     []*sandbox.Merchant{{MchID: "m1"}},
		Creates:       []*sandbox.Record{NewRecord("m2", "o1")},
		Sessions:      []*sandbox.Session{NewSession("s1", "m3", due)},
		Notifications: []*sandbox.Notification{NewNotification("n1", "m3", due), done},
	}
	Commit(t, s, b)
	mu.Lock()
	want := sandbox.Committed{Merchants: []string{"m1"},
		Sessions:        []sandbox.CommittedSession{{ID: "s1", MchID: "m3", State: sandbox.SessionPending, DueAt: due}},
		NotifyMerchants: []string{"m3"}}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("the hook heard %+v, want once %+v", got, want)
	}
	if !reflect.DeepEqual(heard, []string{"first", "second"}) {
		t.Errorf("hooks called %q, want first then second", heard)
	}
	mu.Unlock()
	err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("s1", "m3", due)}})
	WantCode(t, err, sandbox.CodeConflict)
	// Another process's commit reaches the hooks through the database,
	// later: a failed one never does. Give it the time to arrive.
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Errorf("the hook heard %d commits, want 1: a failed commit is not one", len(got))
	}
}
