package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// query runs sql on a database and returns the integer it yields; with no
// row to read (a statement) it returns 0.
func query(t *testing.T, url, sql string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil && err != pgx.ErrNoRows {
		return 0, err
	}
	return n, nil
}

func TestNewDatabaseIsFreshAndDropped(t *testing.T) {
	var url string
	t.Run("first", func(t *testing.T) {
		url = NewDatabase(t)
		if _, err := query(t, url, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	other := NewDatabase(t)
	if other == url {
		t.Fatalf("two tests got the same database %s", url)
	}
	if n, err := query(t, other, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"); err != nil || n != 0 {
		t.Errorf("a new database has %d tables named t (%v), want 0", n, err)
	}
	if _, err := query(t, url, "SELECT 1"); err == nil {
		t.Errorf("the first test's database %s is still there after it ended", url)
	}
	if n, err := query(t, other, "SELECT (current_setting('fsync') = 'off' AND current_setting('listen_addresses') = '127.0.0.1')::int"); err != nil {
		t.Fatal(err)
	} else if n != 1 {
		t.Errorf("the server runs with fsync on or listens beyond loopback")
	}
}

func TestClusterStopsAndStartsOnItsPort(t *testing.T) {
	c := NewCluster(t)
	url := c.URL("postgres")
	if _, err := query(t, url, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, url, "SELECT 1"); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, url, "SELECT 1"); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	dir := c.Dir()
	c.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory is left after Remove: %v", err)
	}
}
