package payscore

import (
	"net/http"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestNotifyRetriedOnWeChatSchedule: the merchant answers 500, then 200;
// the retry comes 15 s later on the merchant's clock (SOURCES.md §1).
func TestNotifyRetriedOnWeChatSchedule(t *testing.T) {
	w := newWorld(t)
	w.recv.setRespond(func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	w.confirmed("NTF0001")
	w.advance(time.Second)
	w.next(EventUserConfirm)
	ns := w.waitAttempts(t, "NTF0001", 1)
	if n := ns[0]; n.State != sandbox.NotifyPending || n.LastStatus != 500 || !n.DueAt.Equal(w.Clock.Now(w.m.MchID).Add(15*time.Second)) {
		t.Fatalf("after the 500: got %s status %d due %v, want pending, retried in 15 s", n.State, n.LastStatus, n.DueAt)
	}
	w.advance(14 * time.Second)
	if got := w.waitAttempts(t, "NTF0001", 1)[0].Attempts; got != 1 {
		t.Fatalf("at 14 s: got %d attempts, want 1", got)
	}
	w.advance(time.Second)
	w.next(EventUserConfirm)
	if n := w.waitAttempts(t, "NTF0001", 2)[0]; n.State != sandbox.NotifyDelivered {
		t.Errorf("after the 200: got %s, want delivered", n.State)
	}
}

// waitAttempts waits (for the worker, in real time) until the order's
// first notification has the attempts committed.
func (w *world) waitAttempts(tb testing.TB, no string, attempts int) []*sandbox.Notification {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ns := w.notifications(no)
		if len(ns) > 0 && ns[0].Attempts >= attempts {
			return ns
		}
		if time.Now().After(deadline) {
			tb.Fatalf("notification of %s: not %d attempts within 5 s: %+v", no, attempts, ns)
		}
		time.Sleep(5 * time.Millisecond) // polling the worker's commit, not waiting on a clock
	}
}

// TestNotifyFaultsPerScenario gives each case its own world: a refused
// notification keeps being retried as the clock moves.
func TestNotifyFaultsPerScenario(t *testing.T) {
	t.Run("bad signature is refused by the SDK", func(t *testing.T) {
		w := newWorld(t)
		w.confirmed("PSBADSIGN01")
		w.advance(time.Second)
		rec := w.next("")
		if rec.err == nil {
			t.Fatalf("the SDK accepted a notification of scenario notify-bad-signature")
		}
		n := w.waitAttempts(t, "PSBADSIGN01", 1)[0]
		if n.State != sandbox.NotifyPending || n.LastStatus != http.StatusUnauthorized {
			t.Errorf("got %s %d, want pending after the merchant's refusal", n.State, n.LastStatus)
		}
	})
	t.Run("two failed attempts, then delivered", func(t *testing.T) {
		w := newWorld(t)
		w.confirmed("PSNOTIFYRETRY01")
		w.advance(time.Second)
		w.waitAttempts(t, "PSNOTIFYRETRY01", 1)
		w.advance(15 * time.Second)
		w.waitAttempts(t, "PSNOTIFYRETRY01", 2)
		w.advance(15 * time.Second)
		w.next(EventUserConfirm)
		if n := w.waitAttempts(t, "PSNOTIFYRETRY01", 3)[0]; n.State != sandbox.NotifyDelivered {
			t.Errorf("got %s after 3 attempts, want delivered", n.State)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		w := newWorld(t)
		w.confirmed("PSDUP01")
		w.advance(time.Second)
		first, second := w.next(EventUserConfirm), w.next(EventUserConfirm)
		if string(first.resource) != string(second.resource) {
			t.Errorf("the duplicate differs: %s vs %s", first.resource, second.resource)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		w := newWorld(t)
		w.confirmed("PSNONOTIFY01")
		ns := w.notifications("PSNONOTIFY01")
		if len(ns) != 1 || ns[0].State != sandbox.NotifyDropped {
			t.Errorf("got %+v, want one dropped notification", ns)
		}
		if got := stateOf(w.query("PSNONOTIFY01")); got != "DOING/USER_CONFIRM" {
			t.Errorf("got %s, want the order confirmed all the same", got)
		}
	})
}
