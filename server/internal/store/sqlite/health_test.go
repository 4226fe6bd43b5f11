package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestProbeWriteReachesTheFile: a probe appends to the WAL, so that a
// disk that cannot take a page fails it.
func TestProbeWriteReachesTheFile(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "mpsandbox.db"))
	ctx := context.Background()
	wal := filepath.Join(dir, "mpsandbox.db-wal")
	before, _ := os.Stat(wal)
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(wal)
	if err != nil || before != nil && after.Size() <= before.Size() && after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the probe did not write the WAL (%v)", err)
	}
	s.Close()
	if err := s.ProbeWrite(ctx); err == nil {
		t.Error("a probe of a closed store succeeded")
	}
}

func TestStats(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if err := s.AppendExchanges(ctx, []*sandbox.Exchange{{Direction: sandbox.DirectionIn, Method: "GET", URL: "/x"}, {Direction: sandbox.DirectionIn, Method: "GET", URL: "/y"}}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{{ID: "s1", MchID: "1", Product: "p", State: sandbox.SessionPending}}})
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.JournalEntries != 2 || st.JournalBytes == 0 || st.PendingSessions != 1 || st.PendingNotifications != 0 {
		t.Errorf("got %+v, want 2 journal entries with bytes and 1 pending session", st)
	}
}
