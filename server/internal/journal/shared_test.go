package journal

import (
	"context"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/store/postgres"
)

// TestMain stops the PostgreSQL cluster of the shared-journal test.
func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSharedJournalWokenByAnotherProcess runs two journals on two
// PostgreSQL stores of one database, as two replicas, with a tail poll of
// an hour: a stream on B shows A's entries at once, so the wake-up is the
// store's announcement of A's append (LISTEN/NOTIFY), not the poll.
func TestSharedJournalWokenByAnotherProcess(t *testing.T) {
	url := pgtest.NewDatabase(t)
	open := func() sandbox.Store {
		st, err := postgres.Open(context.Background(), postgres.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	sa, sb := open(), open()
	o := Options{Shared: true, TailPoll: time.Hour}
	a, b := start(t, sa, o), New(sb, o)
	sb.OnCommit(b.Committed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c := connect(t, b, sandbox.JournalFilter{}, "", nil)
	for i := range 3 {
		x := exchange("m1", i)
		a.Record(x)
		flush(t, a)
		got := make(chan *sandbox.Exchange, 1)
		go func() { got <- c.nextExchange(t) }()
		select {
		case y := <-got:
			if y.ID != x.ID {
				t.Fatalf("B's stream sent %d, want A's %d", y.ID, x.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("A's entry %d did not reach B's stream within 5s (the tail polls hourly)", x.ID)
		}
	}
}
