package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// testClaims checks ClaimNotifications: it returns what DueNotifications
// does, and on a store several processes share (a Harness with a Replica)
// a notification another owner holds is left out until its lease ends or a
// Commit of it lands, and owners claiming at once split the due rows.
func testClaims(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t)
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	held := NewNotification("n0", "m1", base)
	held.State = sandbox.NotifyHeld
	ns := []*sandbox.Notification{NewNotification("n1", "m1", base.Add(time.Minute)), NewNotification("n2", "m1", base),
		NewNotification("n3", "m1", base.Add(time.Hour)), NewNotification("n4", "m2", base), held}
	Commit(t, s, &sandbox.Batch{Notifications: ns})
	claim := func(t *testing.T, s sandbox.Store, owner string, lease time.Duration) []string {
		t.Helper()
		got, err := s.ClaimNotifications(ctx, "m1", base.Add(2*time.Minute), owner, lease, 10)
		if err != nil {
			t.Fatal(err)
		}
		return KeysOf(NotifyID, got)
	}
	if got, want := claim(t, s, "a", time.Hour), []string{"n2", "n1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim = %q, want the due pending ones %q, oldest due first", got, want)
	}
	if h.Replica == nil {
		return // one process owns the store: there is no other owner
	}
	r := h.Replica(t, s)

	t.Run("held by another owner", func(t *testing.T) {
		if got := claim(t, r, "b", time.Hour); len(got) != 0 {
			t.Errorf("b claimed %q, which a holds", got)
		}
		if got, want := claim(t, s, "a", time.Hour), []string{"n2", "n1"}; !reflect.DeepEqual(got, want) {
			t.Errorf("a claiming again = %q, want its own %q", got, want)
		}
	})
	t.Run("a commit ends the lease", func(t *testing.T) {
		n, err := s.GetNotification(ctx, "n2")
		if err != nil {
			t.Fatal(err)
		}
		n.Attempts, n.DueAt = 1, base // failed once, due again at once
		Commit(t, s, &sandbox.Batch{Notifications: []*sandbox.Notification{n}})
		if got, want := claim(t, r, "b", time.Hour), []string{"n2"}; !reflect.DeepEqual(got, want) {
			t.Errorf("b claimed %q after a's commit, want %q", got, want)
		}
		if got, _ := r.GetNotification(ctx, "n2"); got.Attempts != 1 {
			t.Errorf("the claimed row has %d attempts, want the committed 1", got.Attempts)
		}
	})
	t.Run("an expired lease", func(t *testing.T) {
		if got := claim(t, s, "c", time.Millisecond); len(got) != 0 {
			t.Fatalf("c claimed %q, which a and b hold", got)
		}
		// b's lease on n2 and a's on n1 are an hour long; take n1 over by
		// a short lease of a's, as a killed replica's lease runs out.
		if got := claim(t, s, "a", time.Millisecond); !slices.Contains(got, "n1") {
			t.Fatalf("a renewing = %q, want n1 among them", got)
		}
		time.Sleep(20 * time.Millisecond)
		if got, want := claim(t, r, "c", time.Hour), []string{"n1"}; !reflect.DeepEqual(got, want) {
			t.Errorf("c claimed %q after a's lease ran out, want %q", got, want)
		}
	})
	t.Run("owners racing split the due rows", func(t *testing.T) {
		raceClaims(t, h, s, 200, func(id string, b *sandbox.Batch) {
			b.Notifications = append(b.Notifications, NewNotification(id, "m9", base))
		}, func(s sandbox.Store, owner string) ([]string, error) {
			got, err := s.ClaimNotifications(ctx, "m9", base, owner, time.Hour, 7)
			return KeysOf(NotifyID, got), err
		})
	})
}

// testSessionClaims checks ClaimSessions, the session scheduler's claim:
// the due pending sessions, oldest due first; on a shared store one
// owner's are left out for another until a Commit of the session or the
// owner's ReleaseClaims ends the lease, and owners racing split the due
// sessions.
func testSessionClaims(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t)
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("s1", "m1", base.Add(time.Minute)),
		NewSession("s2", "m1", base), NewSession("s3", "m1", base.Add(time.Hour)), NewSession("s4", "m2", base)}})
	claim := func(t *testing.T, s sandbox.Store, owner string) []string {
		t.Helper()
		got, err := s.ClaimSessions(ctx, "m1", base.Add(2*time.Minute), owner, time.Hour, 10)
		if err != nil {
			t.Fatal(err)
		}
		return KeysOf(SessionID, got)
	}
	if got, want := claim(t, s, "a"), []string{"s2", "s1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim = %q, want the due pending ones %q, oldest due first", got, want)
	}
	if h.Replica == nil {
		return
	}
	r := h.Replica(t, s)
	if got := claim(t, r, "b"); len(got) != 0 {
		t.Errorf("b claimed %q, which a holds", got)
	}
	x, err := s.GetSession(ctx, "s2")
	if err != nil {
		t.Fatal(err)
	}
	x.DueAt = base // rescheduled, still pending
	Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{x}})
	if got, want := claim(t, r, "b"), []string{"s2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("b claimed %q after a's commit of s2, want %q", got, want)
	}
	// a stops: what it still holds (s1, and a notification) is anyone's.
	Commit(t, s, &sandbox.Batch{Notifications: []*sandbox.Notification{NewNotification("n1", "m1", base)}})
	if got, err := s.ClaimNotifications(ctx, "m1", base, "a", time.Hour, 10); err != nil || len(got) != 1 {
		t.Fatalf("a's claim of n1: %v %v", KeysOf(NotifyID, got), err)
	}
	if err := s.ReleaseClaims(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got, want := claim(t, r, "c"), []string{"s1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("c claimed %q after a released its claims, want %q (b still holds s2)", got, want)
	}
	if got, err := r.ClaimNotifications(ctx, "m1", base, "c", time.Hour, 10); err != nil || !reflect.DeepEqual(KeysOf(NotifyID, got), []string{"n1"}) {
		t.Errorf("c claimed notifications %q (%v) after a released its claims, want n1", KeysOf(NotifyID, got), err)
	}

	raceClaims(t, h, s, 100, func(id string, b *sandbox.Batch) {
		b.Sessions = append(b.Sessions, NewSession(id, "m9", base))
	}, func(s sandbox.Store, owner string) ([]string, error) {
		got, err := s.ClaimSessions(ctx, "m9", base, owner, time.Hour, 7)
		return KeysOf(SessionID, got), err
	})
}

// raceClaims commits n due rows (add puts each in the batch), has owners
// claim at once through claim until nothing is left, and fails unless
// each row was claimed exactly once.
func raceClaims(t *testing.T, h Harness, s sandbox.Store, n int, add func(id string, b *sandbox.Batch), claim func(s sandbox.Store, owner string) ([]string, error)) {
	t.Helper()
	b := &sandbox.Batch{}
	for i := range n {
		add(fmt.Sprintf("r%03d", i), b)
	}
	Commit(t, s, b)
	var mu sync.Mutex
	seen := map[string]int{}
	errs := race(t, h, s, func(s sandbox.Store, i int) error {
		// At most n claims each: a store that hands rows out again must
		// fail the count below, not loop forever.
		for range n {
			got, err := claim(s, fmt.Sprintf("w%d", i))
			if err != nil || len(got) == 0 {
				return err
			}
			mu.Lock()
			for _, id := range got {
				seen[id]++
			}
			mu.Unlock()
			// Holding them, this owner's next claim would renew its own:
			// go on with a new owner, as a worker with a full pool does
			// not ask again until it has room.
			i += writers
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("owner %d: %v", i, err)
		}
	}
	if len(seen) != n {
		t.Errorf("%d of %d rows claimed", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s claimed %d times", id, k)
		}
	}
}
