package postgres

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storetest"
)

// listener opens a store on url whose OnCommit feeds the returned channel.
func listener(t *testing.T, url string) (*Store, chan Committed) {
	t.Helper()
	ch := make(chan Committed, 16)
	s, err := Open(context.Background(), Options{URL: url, OnCommit: func(c Committed) { ch <- c }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ch
}

// next returns the next Committed on ch, failing after a few seconds.
func next(t *testing.T, ch chan Committed, who string) Committed {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not told of the commit within 5s", who)
		return Committed{}
	}
}

// none fails if ch receives within a moment.
func none(t *testing.T, ch chan Committed, who string) {
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
	want := Committed{Merchants: []string{"m1"}, Sessions: []CommittedSession{{ID: "s1", MchID: "m2"}}, NotifyMerchants: []string{"m3"}}
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

func TestPayloadOverflow(t *testing.T) {
	s := &Store{id: "x"}
	var b sandbox.Batch
	for i := range 1000 {
		b.Sessions = append(b.Sessions, &sandbox.Session{ID: fmt.Sprintf("ses_%030d", i), MchID: "1900000001"})
	}
	if p := s.payload(committed(&b)); len(p) > maxPayload || p != `{"from":"x","overflow":true}` {
		t.Errorf("payload of 1,000 sessions = %d bytes %.80s, want the overflow notice", len(p), p)
	}
}
