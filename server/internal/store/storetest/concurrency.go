package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// writers is how many goroutines race in testConcurrentWriters.
const writers = 16

// race runs write(i) for i in [0, writers) at once, on the store (and, with
// a Replica, every other writer on a second store on the same database), and
// returns each outcome.
func race(t *testing.T, h Harness, s sandbox.Store, write func(s sandbox.Store, i int) error) []error {
	t.Helper()
	stores := []sandbox.Store{s}
	if h.Replica != nil {
		stores = append(stores, h.Replica(t, s))
	}
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = write(stores[i%len(stores)], i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner fails unless exactly one error is nil and every other is a
// CodeConflict, and returns the winner.
func oneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !sandbox.IsCode(err, sandbox.CodeConflict):
			t.Errorf("writer %d: %v, want a conflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	return winner
}

// testConcurrentWriters races writers on one object: from the same version
// exactly one compare-and-swap wins, one create of a key or claim of an
// alias wins, and the losers get CodeConflict, never an internal error.
func testConcurrentWriters(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t)
	r := NewRecord("m1", "o1")
	x := NewSession("s1", "m1", time.Time{})
	n := NewNotification("n1", "m1", time.Time{})
	Commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{r}, Sessions: []*sandbox.Session{x}, Notifications: []*sandbox.Notification{n}})

	t.Run("record cas", func(t *testing.T) {
		errs := race(t, h, s, func(s sandbox.Store, i int) error {
			u := &sandbox.Record{Kind: r.Kind, MchID: "m1", Key: "o1", Version: 1, Data: json.RawMessage(fmt.Sprintf(`{"writer":%d}`, i))}
			return s.Commit(ctx, &sandbox.Batch{Updates: []*sandbox.Record{u}})
		})
		w := oneWinner(t, errs)
		got, err := s.GetRecord(ctx, r.Kind, "m1", "o1")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"writer":%d}`, w); got.Version != 2 || string(got.Data) != want {
			t.Errorf("record = v%d %s, want v2 %s (the winner's)", got.Version, got.Data, want)
		}
	})
	t.Run("session and notification cas in one batch", func(t *testing.T) {
		errs := race(t, h, s, func(s sandbox.Store, i int) error {
			xs, ns := *x, *n
			xs.Action, ns.Attempts = fmt.Sprint(i), i
			return s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{&xs}, Notifications: []*sandbox.Notification{&ns}})
		})
		w := oneWinner(t, errs)
		gx, err := s.GetSession(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		gn, err := s.GetNotification(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		if gx.Version != 2 || gx.Action != fmt.Sprint(w) || gn.Version != 2 || gn.Attempts != w {
			t.Errorf("session v%d action %q, notification v%d attempts %d; want v2 and writer %d's in both",
				gx.Version, gx.Action, gn.Version, gn.Attempts, w)
		}
	})
	t.Run("create of one key", func(t *testing.T) {
		errs := race(t, h, s, func(s sandbox.Store, i int) error {
			return s.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{NewRecord("m1", "o2")},
				Sessions: []*sandbox.Session{NewSession(fmt.Sprintf("c%d", i), "m1", time.Time{})}})
		})
		w := oneWinner(t, errs)
		// The losers' sessions rode in failed batches: none of them landed.
		got, err := s.ListSessions(ctx, sandbox.SessionFilter{MchID: "m1", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if ids := KeysOf(SessionID, got); len(ids) != 2 || ids[0] != fmt.Sprintf("c%d", w) {
			t.Errorf("sessions = %q, want the winner's c%d and s1", ids, w)
		}
	})
	t.Run("claim of one alias", func(t *testing.T) {
		errs := race(t, h, s, func(s sandbox.Store, i int) error {
			return s.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{NewRecord("m1", fmt.Sprintf("a%d", i), "shared")}})
		})
		w := oneWinner(t, errs)
		got, err := s.FindRecord(ctx, "payscore.order", "m1", "shared")
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != fmt.Sprintf("a%d", w) {
			t.Errorf("the alias belongs to %s, want the winner's a%d", got.Key, w)
		}
	})
	t.Run("journal appends", func(t *testing.T) {
		errs := race(t, h, s, func(s sandbox.Store, i int) error {
			xs := make([]*sandbox.Exchange, 10)
			for k := range xs {
				xs[k] = &sandbox.Exchange{Method: "GET", URL: fmt.Sprintf("/w%d/%d", i, k)}
			}
			return s.AppendExchanges(ctx, xs)
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		got, err := s.QueryJournal(ctx, sandbox.JournalFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10*writers {
			t.Fatalf("%d exchanges journalled, want %d", len(got), 10*writers)
		}
		// Each append's exchanges keep their order.
		last := map[string]int64{}
		for i := len(got) - 1; i >= 0; i-- {
			var w, k int
			fmt.Sscanf(got[i].URL, "/w%d/%d", &w, &k)
			key := fmt.Sprint(w)
			if got[i].ID <= last[key] {
				t.Errorf("exchange %s has id %d, not after %d", got[i].URL, got[i].ID, last[key])
			}
			last[key] = got[i].ID
		}
	})
}

// testClosed checks that every call after Close fails with CodeUnavailable
// and that a second Close is harmless.
func testClosed(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t)
	Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("s1", "m1", time.Time{})}})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]func() error{
		"Commit": func() error {
			return s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("late", "m1", time.Time{})}})
		},
		"GetSession":   func() error { _, err := s.GetSession(ctx, "s1"); return err },
		"ListSessions": func() error { _, err := s.ListSessions(ctx, sandbox.SessionFilter{}); return err },
		"QueryJournal": func() error { _, err := s.QueryJournal(ctx, sandbox.JournalFilter{}); return err },
		"NextDue":      func() error { _, err := s.NextDue(ctx, "m1"); return err },
		"AppendExchanges": func() error {
			return s.AppendExchanges(ctx, []*sandbox.Exchange{{Method: "GET", URL: "/"}})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { WantCode(t, call(), sandbox.CodeUnavailable, "closed") })
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// outageBound is how long a call may take while the database is away: it
// must fail, not hang.
const outageBound = 15 * time.Second

// testOutage takes the database away under an open store: calls fail with
// CodeUnavailable within outageBound, nothing panics; once it is back the
// same store recovers on its own and has lost nothing committed before.
func testOutage(t *testing.T, h Harness) {
	if h.Outage == nil {
		t.Skip("this store has no connection to lose")
	}
	s, down, up := h.Outage(t)
	ctx := context.Background()
	Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("before", "m1", time.Time{})}})
	down()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Commit", func(ctx context.Context) error {
			return s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("during", "m1", time.Time{})}})
		}},
		{"GetSession", func(ctx context.Context) error { _, err := s.GetSession(ctx, "before"); return err }},
		{"NextDue", func(ctx context.Context) error { _, err := s.NextDue(ctx, "m1"); return err }},
		{"AppendExchanges", func(ctx context.Context) error {
			return s.AppendExchanges(ctx, []*sandbox.Exchange{{Method: "GET", URL: "/"}})
		}},
	}
	for _, c := range calls {
		// No deadline of the caller's: the store must bound the wait itself.
		start := time.Now()
		err := c.call(context.Background())
		if took := time.Since(start); took > outageBound {
			t.Errorf("%s took %v with the database down, want an error within %v", c.name, took, outageBound)
		}
		if !sandbox.IsCode(err, sandbox.CodeUnavailable) {
			t.Errorf("%s with the database down: %v, want CodeUnavailable", c.name, err)
		}
	}
	up()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for {
		if err = s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("after", "m1", time.Time{})}}); err == nil {
			break
		}
		if !sandbox.IsCode(err, sandbox.CodeUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Commit after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := s.ListSessions(ctx, sandbox.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if ids := KeysOf(SessionID, got); !reflect.DeepEqual(ids, []string{"after", "before"}) {
		t.Errorf("sessions after the outage = %q, want [after before]: none lost, none half-written", ids)
	}
}
