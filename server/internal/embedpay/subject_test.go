package embedpay

import (
	"maps"
	"testing"
)

// TestSessionSubject checks that the admin API shows, beside a cashier
// session, the trade it pays — what the QA page's cashier stand-in shows
// the person paying: the subject and the value in fen.
func TestSessionSubject(t *testing.T) {
	w := newWorld(t)
	id := w.open(w.prepare("SUBJ-0001", "1234"), map[string]string{"X-Sandbox-Scenario": "embedpay.manual"})
	want := map[string]string{"kind": KindTrade, "key": "SUBJ-0001", "title": "停车支付", "amount": "1234", "amount_label": "value"}
	if got := w.Subject(t, id); !maps.Equal(got, want) {
		t.Errorf("subject = %v, want %v", got, want)
	}
}
