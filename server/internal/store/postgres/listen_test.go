package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storetest"
)

// listener opens a store on url with an OnCommit hook feeding the
// returned channel.
func listener(t *testing.T, url string) (*Store, chan sandbox.Committed) {
	t.Helper()
	ch := make(chan sandbox.Committed, 16)
	s := openStore(t, url)
	s.OnCommit(func(c sandbox.Committed) { ch <- c })
	return s, ch
}

// next returns the next Committed on ch, failing after a few seconds.
func next(t *testing.T, ch chan sandbox.Committed, who string) sandbox.Committed {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not told of the commit within 5s", who)
		return sandbox.Committed{}
	}
}

// none fails if ch receives within a moment.
func none(t *testing.T, ch chan sandbox.Committed, who string) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("%s was told of %+v, want nothing", who, c)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestOnCommitSeesEveryProcessCommits commits on one store and expects its
// own OnCommit and another store's on the same database (through
// LISTEN/NOTIFY) to be told once each, and nobody of a failed commit; the
// other store's listener comes back after its connection is cut.
func TestOnCommitSeesEveryProcessCommits(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, fromA := listener(t, url)
	_, fromB := listener(t, url)
	ctx := context.Background()
	x := storetest.NewSession("s1", "m2", time.Time{})
	storetest.Commit(t, a, &sandbox.Batch{
		Merchants:     []*sandbox.Merchant{{MchID: "m1"}},
		Sessions:      []*sandbox.Session{x},
		Notifications: []*sandbox.Notification{storetest.NewNotification("n1", "m3", time.Time{}), storetest.NewNotification("n2", "m3", time.Time{})},
	})
	want := sandbox.Committed{Merchants: []string{"m1"}, Sessions: []sandbox.CommittedSession{{ID: "s1", MchID: "m2", State: sandbox.SessionPending}},
		NotifyMerchants: []string{"m3"}}
	if got := next(t, fromA, "the committing store"); !reflect.DeepEqual(got, want) {
		t.Errorf("own commit: %+v, want %+v", got, want)
	}
	if got := next(t, fromB, "the other store"); !reflect.DeepEqual(got, want) {
		t.Errorf("other's commit: %+v, want %+v", got, want)
	}
	none(t, fromA, "the committing store, a second time,")

	// A conflict commits nothing and announces nothing.
	err := a.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{storetest.NewSession("s1", "m2", time.Time{})}})
	storetest.WantCode(t, err, sandbox.CodeConflict)
	none(t, fromB, "the other store, of a failed commit,")

	// Cut the listeners' connections: they connect again and listen on.
	var cut int
	if err := a.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query = 'LISTEN `+commitChannel+`'`).Scan(&cut); err != nil || cut != 2 {
		t.Fatalf("cut %d listener connections (%v), want 2", cut, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		storetest.Commit(t, a, &sandbox.Batch{Merchants: []*sandbox.Merchant{{MchID: fmt.Sprintf("late%d", i)}}})
		<-fromA
		select {
		case got := <-fromB:
			if len(got.Merchants) != 1 {
				t.Fatalf("after the cut: %+v", got)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the other store's listener did not come back within 10s")
		}
	}
}

// TestPayloadsSplit checks that a commit with more ids than one NOTIFY
// payload holds is announced in several, each within the bound, that
// together name every id once.
func TestPayloadsSplit(t *testing.T) {
	s := &Store{id: "x"}
	var b sandbox.Batch
	for i := range 1000 {
		b.Sessions = append(b.Sessions, &sandbox.Session{ID: fmt.Sprintf("ses_%030d", i), MchID: "1900000001"})
	}
	b.Merchants = []*sandbox.Merchant{{MchID: "1900000001"}}
	ps := s.payloads(b.Committed())
	if len(ps) < 2 {
		t.Fatalf("%d payloads, want the ids split", len(ps))
	}
	seen := map[string]int{}
	merchants := 0
	for _, p := range ps {
		if len(p) > maxPayload {
			t.Errorf("a payload of %d bytes, above %d", len(p), maxPayload)
		}
		var n notice
		if err := json.Unmarshal([]byte(p), &n); err != nil || n.From != "x" {
			t.Fatalf("payload %.80s: %v", p, err)
		}
		for _, x := range n.Sessions {
			seen[x.ID]++
		}
		merchants += len(n.Merchants)
	}
	if len(seen) != 1000 || merchants != 1 {
		t.Errorf("the payloads name %d sessions and %d merchants, want 1000 and 1", len(seen), merchants)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s named %d times", id, k)
		}
	}
}

// TestQuietCommitsAnnounceNothing: a commit that changes nothing another
// process follows (records only, a notification delivered) sends no NOTIFY
// — each would cost a round trip and PostgreSQL's cluster-wide NOTIFY lock
// at commit, for every delivery of every replica — while the committing
// store's own hooks are still told.
func TestQuietCommitsAnnounceNothing(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, fromA := listener(t, url)
	_, fromB := listener(t, url)
	n := storetest.NewNotification("n1", "m3", time.Time{})
	n.State = sandbox.NotifyDelivered
	storetest.Commit(t, a, &sandbox.Batch{Creates: []*sandbox.Record{storetest.NewRecord("m1", "o1")}, Notifications: []*sandbox.Notification{n}})
	if got := next(t, fromA, "the committing store"); !reflect.ValueOf(got).IsZero() {
		t.Errorf("own quiet commit: %+v, want nothing to follow", got)
	}
	none(t, fromB, "the other store, of a quiet commit,")
	storetest.Commit(t, a, &sandbox.Batch{Merchants: []*sandbox.Merchant{{MchID: "m1"}}})
	if got := next(t, fromB, "the other store"); !reflect.DeepEqual(got, sandbox.Committed{Merchants: []string{"m1"}}) {
		t.Errorf("other's commit: %+v, want merchant m1", got)
	}
}
