package payscore

import (
	"context"
	"net/http"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
)

// TestConfirmHappensAtTheDueTime: at 3600 sandbox seconds per real second,
// a millisecond between the session falling due and the scheduler getting to
// it is 3.6 sandbox seconds. The user's confirmation must still happen at the
// session's due time, so the PAYSCORE.USER_CONFIRM notification is due
// exactly notify.delay (1 s in payscore.confirm) after it.
func TestConfirmHappensAtTheDueTime(t *testing.T) {
	w := newWorldWith(t, app.Options{ClockScale: 3600})
	sid := w.open(w.create("PSDUE0001"), nil)
	req, _ := http.NewRequest(http.MethodGet, w.Server.URL+"/miniprogram/v1/sessions/"+sid+"/return?wait=5s", nil)
	w.do(req, http.StatusOK)
	sess, err := w.Store.GetSession(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	ns := w.notifications("PSDUE0001")
	if len(ns) != 1 {
		t.Fatalf("got %d notifications, want the one USER_CONFIRM", len(ns))
	}
	if want := sess.DueAt.Add(w.p.scenario(sess.Scenario).Notify.Delay.D()); !ns[0].DueAt.Equal(want) {
		t.Fatalf("USER_CONFIRM is due at %s, %s after the session's due time %s; want %s (the confirmation happens at the due time)",
			ns[0].DueAt, ns[0].DueAt.Sub(sess.DueAt), sess.DueAt, want)
	}
}
