package payscore

import (
	"maps"
	"testing"
)

// TestSessionSubject checks that the admin API shows, beside a confirm
// session, the service order it confirms — what the QA page's confirm page
// shows: the service and its risk fund in fen.
func TestSessionSubject(t *testing.T) {
	w := newWorld(t)
	id := w.open(w.create("SUBJ0001"), map[string]string{"X-Sandbox-Scenario": "payscore.manual"})
	want := map[string]string{"kind": kindOrder, "key": "SUBJ0001", "title": "某某酒店", "amount": "50000", "amount_label": "risk_fund.amount"}
	if got := w.Subject(t, id); !maps.Equal(got, want) {
		t.Errorf("subject = %v, want %v", got, want)
	}
}
