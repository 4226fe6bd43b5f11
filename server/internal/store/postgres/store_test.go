package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storetest"
)

// TestMain stops the test process's PostgreSQL cluster at the end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens a store on url and closes it when the test ends.
func openStore(tb testing.TB, url string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Options{URL: url})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) sandbox.Store { return openStore(t, pgtest.NewDatabase(t)) },
		Replica: func(t *testing.T, s sandbox.Store) sandbox.Store {
			return openStore(t, s.(*Store).pool.Config().ConnString())
		},
		Outage: func(t *testing.T) (sandbox.Store, func(), func()) {
			// A private cluster: stopping the shared one would fail the
			// other tests' databases.
			c := pgtest.NewCluster(t)
			ctx := context.Background()
			url, err := c.CreateDatabase(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s := openStore(t, url)
			check := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			return s, func() { check(c.Stop()) }, func() { check(c.Start()) }
		},
		JournalBytes: func(t *testing.T, s sandbox.Store) int64 {
			// The documents themselves, not the size column the bound reads.
			var n int64
			if err := s.(*Store).pool.QueryRow(context.Background(),
				`SELECT coalesce(sum(octet_length(doc)), 0) FROM journal`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}

// TestReplicasMigrateOnce opens many stores on one new database at once, as
// replicas starting together do: every one opens, and the schema is built
// once, at the current version.
func TestReplicasMigrateOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 8
	errs := make([]error, n)
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), Options{URL: url}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	var version, rows int
	if err := stores[0].pool.QueryRow(context.Background(),
		"SELECT max(version), count(*) FROM mpsandbox_schema").Scan(&version, &rows); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) || rows != 1 {
		t.Errorf("mpsandbox_schema holds %d rows, version %d; want 1 row at %d", rows, version, len(migrations))
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := openStore(t, url)
	if _, err := s.pool.Exec(context.Background(), "UPDATE mpsandbox_schema SET version = $1", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), Options{URL: url})
	storetest.WantCode(t, err, sandbox.CodeUnavailable, "newer", fmt.Sprint(len(migrations)+1))
}

// TestOpenErrorsHideThePassword checks that a bad URL and an unreachable
// server are named in the error without the password.
func TestOpenErrorsHideThePassword(t *testing.T) {
	c := pgtest.Shared(t)
	cases := []struct {
		name, url string
		code      sandbox.Code
		parts     []string
	}{
		{"not a url", "postgres://u:s3cret@host:notaport/db", sandbox.CodeInvalid, []string{"not a PostgreSQL connection URL"}},
		{"nobody listening", "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2", sandbox.CodeUnavailable,
			[]string{"open store postgres://u:xxxxx@127.0.0.1:1/db"}},
		{"no such database", strings.Replace(c.URL("nodb"), "postgres@", "postgres:s3cret@", 1), sandbox.CodeUnavailable,
			[]string{`"nodb" does not exist`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), Options{URL: tc.url})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			storetest.WantCode(t, err, tc.code, tc.parts...)
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestTextPostgreSQLCannotHold checks that a NUL byte or bytes that are not
// UTF-8 in a key, which SQLite keeps and PostgreSQL's text refuses, are the
// caller's error (CodeInvalid) on a write and not found on a read, never an
// internal error.
func TestTextPostgreSQLCannotHold(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	for _, key := range []string{"a\x00b", "a\xffb"} {
		err := s.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{storetest.NewRecord("m1", "o1", key)}})
		storetest.WantCode(t, err, sandbox.CodeInvalid, "NUL byte or bytes that are not UTF-8")
		_, err = s.GetRecord(ctx, "payscore.order", "m1", key)
		storetest.WantCode(t, err, sandbox.CodeNotFound)
		_, err = s.FindRecord(ctx, "payscore.order", "m1", key)
		storetest.WantCode(t, err, sandbox.CodeNotFound)
		_, err = s.ListSessions(ctx, sandbox.SessionFilter{MchID: key})
		storetest.WantCode(t, err, sandbox.CodeInvalid)
	}
	// An exchange records what a stranger sent: it is journalled whole.
	xs := []*sandbox.Exchange{{Method: "GET", URL: "/a", SessionID: "s\x00\xff"}, {Method: "GET", URL: "/b", SessionID: "s1"}}
	if err := s.AppendExchanges(ctx, xs); err != nil {
		t.Fatalf("AppendExchanges: %v", err)
	}
	if got, err := s.GetExchange(ctx, xs[0].ID); err != nil || got.SessionID != "s\x00\uFFFD" {
		t.Errorf("GetExchange = %+v, %v; want the session id as JSON keeps it", got, err)
	}
	// The failed batches left nothing behind.
	if _, err := s.GetRecord(ctx, "payscore.order", "m1", "o1"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("GetRecord after the failed creates: %v, want not found", err)
	}
}

// TestStartedWriteOutlivesItsContext cancels an append's context while its
// transaction waits (for the journal's lock, held here): as with the SQLite
// store's writer, what began runs to its end, returns nil and is written —
// the journal's last batch at shutdown is such a call.
func TestStartedWriteOutlivesItsContext(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t))
	holder, err := s.pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(context.Background(), "SELECT pg_advisory_lock($1)", journalLock); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	xs := []*sandbox.Exchange{{Method: "GET", URL: "/late"}}
	go func() { done <- s.AppendExchanges(ctx, xs) }()
	// The append waits for the lock inside its transaction.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := holder.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the append never waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	if _, err := holder.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", journalLock); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("AppendExchanges whose context ended mid-transaction: %v, want it finished", err)
	}
	if got, err := s.GetExchange(context.Background(), xs[0].ID); err != nil || got.URL != "/late" {
		t.Errorf("GetExchange = %+v, %v; want the appended exchange", got, err)
	}
}

// TestSharedValuesAgree starts eight processes' stores at once on one
// database, each asking for the same shared value with a value of its own:
// exactly one is made, and every store returns it; a store opened later
// reads it without making one.
func TestSharedValuesAgree(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 8
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = openStore(t, url)
	}
	got := make([]string, n)
	made := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, created, err := s.Shared(context.Background(), "token", func() ([]byte, error) { return []byte(fmt.Sprint("value-", i)), nil })
			got[i], made[i], errs[i] = string(v), created, err
		}()
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range stores {
		if errs[i] != nil {
			t.Fatalf("store %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Errorf("store %d got %q, store 0 %q: the stores disagree", i, got[i], got[0])
		}
		if made[i] {
			creators++
			if got[i] != fmt.Sprint("value-", i) {
				t.Errorf("store %d made the value but returned %q", i, got[i])
			}
		}
	}
	if creators != 1 {
		t.Errorf("%d stores say they made the value, want 1", creators)
	}
	later := openStore(t, url)
	v, created, err := later.Shared(context.Background(), "token", func() ([]byte, error) {
		t.Error("a store opened later made a value")
		return []byte("late"), nil
	})
	if err != nil || created || string(v) != got[0] {
		t.Errorf("later: %q, created %v, %v; want %q", v, created, err, got[0])
	}
	if _, _, err := later.Shared(context.Background(), "other", func() ([]byte, error) { return nil, errors.New("no entropy") }); err == nil || err.Error() != "no entropy" {
		t.Errorf("a failing create: %v, want its error", err)
	}
}
