package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storetest"
)

// openStore opens a store on a fresh file in t.TempDir (or at path) and
// closes it when the test ends.
func openStore(tb testing.TB, path ...string) *Store {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "mpsandbox.db")
	if len(path) > 0 {
		p = path[0]
	}
	s, err := Open(context.Background(), Options{Path: p})
	if err != nil {
		tb.Fatalf("Open(%q): %v", p, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mpsandbox.db")
	for i := range 2 {
		s := openStore(t, path)
		var v int
		if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := len(migrations); v != want {
			t.Errorf("open %d: user_version = %d, want %d", i, v, want)
		}
		var mode string
		if err := s.rdb.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("journal_mode = %q, want wal", mode)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mpsandbox.db")
	s := openStore(t, path)
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), Options{Path: path})
	wantCode(t, err, sandbox.CodeUnavailable, path, "newer")
}

func TestOpenUnwritablePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		path func(t *testing.T) string
		why  string
	}{
		// A directory that is a regular file fails for root too.
		{"under a file", func(*testing.T) string { return filepath.Join(file, "mpsandbox.db") }, "is not a directory"},
		{"read-only directory", func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			ro := filepath.Join(dir, "ro")
			if err := os.Mkdir(ro, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(ro, 0o700) })
			return filepath.Join(ro, "mpsandbox.db")
		}, "permission denied"},
		{"read-only file", func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root ignores file permissions")
			}
			p := filepath.Join(dir, "ro.db")
			s := openStore(t, p)
			s.Close()
			os.Remove(p + "-wal")
			os.Remove(p + "-shm")
			if err := os.Chmod(p, 0o400); err != nil {
				t.Fatal(err)
			}
			return p
		}, "readonly"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.path(t)
			s, err := Open(context.Background(), Options{Path: p})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", p)
			}
			wantCode(t, err, sandbox.CodeUnavailable, "open store "+p+": ", c.why)
		})
	}
}

func TestGroupCommit(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{newSession("taken", "m1", time.Time{})}})

	// Batch 0 goes to the writer, which then waits for its connection; the
	// other 49 queue up meanwhile and commit together in one transaction.
	conn := holdWriter(t, s)
	const n = 50
	errs := make([]error, n)
	sessions := make([]*sandbox.Session, n)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("s%02d", i)
		if i == 17 {
			id = "taken"
		}
		sessions[i] = newSession(id, "m1", time.Time{})
		wg.Go(func() {
			// Creates are applied before Sessions: batch 17's record is
			// written, then its session conflicts and the record must go.
			errs[i] = s.Commit(ctx, &sandbox.Batch{
				Sessions: []*sandbox.Session{sessions[i]},
				Creates:  []*sandbox.Record{newRecord("m1", fmt.Sprintf("o%02d", i))},
			})
		})
		if i == 0 {
			waitFor(t, func() bool { return s.wdb.Stats().WaitCount > 0 })
		}
	}
	waitFor(t, func() bool { return len(s.queue) == n-1 })
	conn.Close()
	wg.Wait()
	for i, err := range errs {
		if i == 17 {
			wantCode(t, err, sandbox.CodeConflict, `session "taken" already exists`)
			if _, err := s.GetRecord(ctx, "payscore.order", "m1", "o17"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
				t.Errorf("record of the conflicting batch: %v, want not found", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("batch %d: %v", i, err)
			continue
		}
		if sessions[i].Version != 1 {
			t.Errorf("session %d version = %d, want 1", i, sessions[i].Version)
		}
		if _, err := s.GetRecord(ctx, "payscore.order", "m1", fmt.Sprintf("o%02d", i)); err != nil {
			t.Errorf("record of batch %d: %v", i, err)
		}
	}
	all, _ := s.ListSessions(ctx, sandbox.SessionFilter{Limit: 1000})
	if len(all) != n {
		t.Errorf("%d sessions stored, want %d", len(all), n)
	}
}

// TestCommitAbandonedInQueue holds the writer busy so that a Commit waits in
// the queue, cancels it there and checks that it is never applied.
func TestCommitAbandonedInQueue(t *testing.T) {
	s := openStore(t)
	conn := holdWriter(t, s)
	first := make(chan error, 1)
	go func() {
		first <- s.Commit(context.Background(), &sandbox.Batch{Sessions: []*sandbox.Session{newSession("s0", "m1", time.Time{})}})
	}()
	// The writer has taken the first batch when it waits for the connection.
	waitFor(t, func() bool { return s.wdb.Stats().WaitCount > 0 })
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		second <- s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{newSession("s1", "m1", time.Time{})}})
	}()
	waitFor(t, func() bool { return len(s.queue) == 1 })
	cancel()
	err := <-second
	conn.Close()
	if err := <-first; err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("second commit = %v, want context.Canceled", err)
	}
	if _, err := s.GetSession(context.Background(), "s1"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("GetSession(s1) = %v, want not found: an abandoned batch must not land", err)
	}
}

// holdWriter takes the writer's only connection, so that the writer blocks
// when it starts its next group, until the test closes the returned conn.
func holdWriter(tb testing.TB, s *Store) *sql.Conn {
	tb.Helper()
	conn, err := s.wdb.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() }) // before the store's Close, on failure
	return conn
}

// The contract suite's helpers, under the names this package's own tests
// use.
var (
	commit          = storetest.Commit
	wantCode        = storetest.WantCode
	newSession      = storetest.NewSession
	newNotification = storetest.NewNotification
	newRecord       = storetest.NewRecord
)

// TestContract runs the store contract every adapter keeps. SQLite has no
// connection to lose and one process owns the file: no Replica, no Outage.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) sandbox.Store { return openStore(t) },
		Reopen: func(t *testing.T, s sandbox.Store) sandbox.Store {
			st := s.(*Store)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return openStore(t, st.path)
		},
		JournalBytes: func(t *testing.T, s sandbox.Store) int64 {
			var n int64
			if err := s.(*Store).rdb.QueryRow(`SELECT coalesce(sum(length(json)), 0) FROM journal`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}

// waitFor polls cond, which depends on other goroutines' progress only.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestClose queues commits behind a busy writer, closes the store and checks
// that every queued commit still lands, that later calls are refused and
// that the WAL is checkpointed.
func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mpsandbox.db")
	s := openStore(t, path)
	ctx := context.Background()
	conn := holdWriter(t, s)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	send := func(i int) {
		wg.Go(func() {
			errs[i] = s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{newSession(fmt.Sprint(i), "m1", time.Time{})}})
		})
	}
	// One batch is with the writer, the others wait in the queue.
	send(0)
	waitFor(t, func() bool { return s.wdb.Stats().WaitCount > 0 })
	for i := 1; i < n; i++ {
		send(i)
	}
	waitFor(t, func() bool { return len(s.queue) == n-1 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(t, s.closed.Load)
	err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{newSession("late", "m1", time.Time{})}})
	wantCode(t, err, sandbox.CodeUnavailable, "closed")
	conn.Close()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("commit %d queued before Close: %v", i, err)
		}
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("WAL holds %d bytes after Close, want it checkpointed", fi.Size())
	}
	_, err = s.GetSession(ctx, "0")
	wantCode(t, err, sandbox.CodeUnavailable, "closed")
	_, err = s.QueryJournal(ctx, sandbox.JournalFilter{})
	wantCode(t, err, sandbox.CodeUnavailable, "closed")
	_, err = s.NextDue(ctx, "m1")
	wantCode(t, err, sandbox.CodeUnavailable, "closed")
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	r := openStore(t, path)
	got, err := r.ListSessions(ctx, sandbox.SessionFilter{})
	if err != nil || len(got) != n {
		t.Errorf("after reopening: %d sessions, %v; want %d", len(got), err, n)
	}
}

func TestMemory(t *testing.T) {
	s := openStore(t, MemoryPath)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Go(func() {
			x := newSession(fmt.Sprint(i), "m1", time.Time{})
			if err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{x}}); err != nil {
				errs <- err
				return
			}
			if _, err := s.GetSession(ctx, x.ID); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if _, err := s.ListSessions(ctx, sandbox.SessionFilter{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.ListSessions(ctx, sandbox.SessionFilter{})
	if err != nil || len(got) != 20 {
		t.Fatalf("ListSessions = %d, %v; want 20", len(got), err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A second in-memory store is a different, empty database.
	s2 := openStore(t, MemoryPath)
	if got, _ := s2.ListSessions(ctx, sandbox.SessionFilter{}); len(got) != 0 {
		t.Errorf("a new in-memory store holds %d sessions, want 0", len(got))
	}
}

// TestGroupFailuresStayApart commits, in one group, ops that conflict
// beside ops that do not: a lone session insert or update (one statement,
// no savepoint) that conflicts leaves nothing written and fails alone, a
// batch of several objects whose last conflicts is rolled back whole (its
// savepoint), and the others land.
func TestGroupFailuresStayApart(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	dup := newSession("dup", "m1", time.Time{})
	commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{dup}})
	stale := *dup
	stale.Version, stale.State = 7, sandbox.SessionReturned

	conn := holdWriter(t, s)
	type try struct {
		name string
		b    *sandbox.Batch
		want sandbox.Code // "" for success
	}
	tries := []try{
		{"blocker", &sandbox.Batch{Sessions: []*sandbox.Session{newSession("first", "m1", time.Time{})}}, ""},
		{"new a", &sandbox.Batch{Sessions: []*sandbox.Session{newSession("a", "m1", time.Time{})}}, ""},
		{"insert dup", &sandbox.Batch{Sessions: []*sandbox.Session{newSession("dup", "m1", time.Time{})}}, sandbox.CodeConflict},
		{"stale dup", &sandbox.Batch{Sessions: []*sandbox.Session{&stale}}, sandbox.CodeConflict},
		{"record then dup", &sandbox.Batch{Creates: []*sandbox.Record{newRecord("m1", "r1")},
			Sessions: []*sandbox.Session{newSession("dup", "m1", time.Time{})}}, sandbox.CodeConflict},
		{"new b", &sandbox.Batch{Sessions: []*sandbox.Session{newSession("b", "m1", time.Time{})}}, ""},
	}
	errs := make([]error, len(tries))
	var wg sync.WaitGroup
	for i, tr := range tries {
		wg.Go(func() { errs[i] = s.Commit(ctx, tr.b) })
		if i == 0 {
			waitFor(t, func() bool { return s.wdb.Stats().WaitCount > 0 })
		} else {
			waitFor(t, func() bool { return len(s.queue) == i })
		}
	}
	conn.Close()
	wg.Wait()
	for i, tr := range tries {
		if tr.want == "" && errs[i] != nil || tr.want != "" && !sandbox.IsCode(errs[i], tr.want) {
			t.Errorf("%s: %v, want code %q", tr.name, errs[i], tr.want)
		}
	}
	for _, id := range []string{"first", "a", "b"} {
		if _, err := s.GetSession(ctx, id); err != nil {
			t.Errorf("session %s: %v", id, err)
		}
	}
	if got, err := s.GetSession(ctx, "dup"); err != nil || got.Version != 1 || got.State != sandbox.SessionPending {
		t.Errorf("dup = %+v, %v; want it as first committed", got, err)
	}
	if _, err := s.GetRecord(ctx, "payscore.order", "m1", "r1"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("record r1 of a failed batch: %v, want not found", err)
	}
}
