package payscore

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestNotifyOutOfOrderAndLate: the two notify faults P云 has, on pay-score
// notifications.
func TestNotifyOutOfOrderAndLate(t *testing.T) {
	t.Run("out of order: USER_CONFIRM again after USER_PAID", func(t *testing.T) {
		w := newWorld(t)
		const no = "PSOUTOFORDER01"
		w.confirmed(no)
		w.advance(time.Second)
		confirm := w.next(EventUserConfirm)
		w.ok(http.MethodPost, "/v3/payscore/serviceorder/"+no+"/complete", w.completeBody(), schemaOrder)
		w.advance(time.Second)
		paid := w.next(EventUserPaid)
		stale := w.next(EventUserConfirm)
		if stale.err != nil {
			t.Fatalf("the stale notification does not parse: %v", stale.err)
		}
		if id := envelopeID(t, stale.raw); id != envelopeID(t, confirm.raw) || id == envelopeID(t, paid.raw) {
			t.Errorf("stale id %s, want the confirmation's %s again", id, envelopeID(t, confirm.raw))
		}
		var res map[string]any
		_ = json.Unmarshal(stale.resource, &res)
		if got := stateOf(res); got != "DOING/USER_CONFIRM" {
			t.Errorf("stale resource: %s, want the order as it was at confirmation", got)
		}
		if got := stateOf(w.query(no)); got != "DONE USER_PAID" {
			t.Errorf("the order: %s, want it DONE whatever arrives late", got)
		}
		if n := w.waitAttempts(t, no, 1); len(n) != 2 {
			t.Errorf("%d notification rows, want 2 (the stale one is the paid row sent again)", len(n))
		}
	})
	t.Run("late: a minute after the event", func(t *testing.T) {
		w := newWorld(t)
		const no = "PSLATE01"
		w.confirmed(no)
		ns := w.notifications(no)
		if len(ns) != 1 || !ns[0].DueAt.Equal(w.Clock.Now(w.m.MchID).Add(time.Minute)) {
			t.Fatalf("got %+v, want one notification due a minute after the confirmation", ns)
		}
		w.advance(time.Minute)
		w.next(EventUserConfirm)
	})
}

// TestFaultsNameEveryScenarioFault: the registry lists the faults a
// pay-score notification plays; every fault a pay-score scenario asks for
// is among them.
func TestFaultsNameEveryScenarioFault(t *testing.T) {
	w := newWorld(t)
	for _, sc := range w.Scenarios.List(sandbox.ProductPayScore) {
		for _, f := range sc.Notify.Faults {
			if !slices.Contains(w.p.Faults(), f) {
				t.Errorf("scenario %s asks for %s, which Faults %v does not name", sc.ID, f, w.p.Faults())
			}
		}
	}
	for _, f := range []string{faultOutOfOrder, faultLate} {
		if !slices.Contains(w.p.Faults(), f) {
			t.Errorf("Faults %v lacks %s", w.p.Faults(), f)
		}
	}
}

func envelopeID(t *testing.T, raw []byte) string {
	t.Helper()
	var env struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	return env.ID
}
