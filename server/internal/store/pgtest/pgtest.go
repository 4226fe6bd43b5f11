// Package pgtest gives tests throwaway PostgreSQL servers
// (internal/pgcluster): a test process shares one cluster (Shared, stopped
// by Main) and gives each test a fresh database (NewDatabase); a test that
// stops its server starts a private one (NewCluster).
//
// PostgreSQL must be installed: .ci/run installs Debian's postgresql. When
// it is missing the tests skip, except in CI (CI set), where they fail.
package pgtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/internal/pgcluster"
)

// Cluster is a running throwaway server.
type Cluster = pgcluster.Cluster

// NewCluster starts a private cluster for one test and stops it when the
// test ends. It skips the test when PostgreSQL is missing, except in CI.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := pgcluster.Start()
	if err != nil {
		missing(tb, err)
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Remove() })
	return c
}

// missing skips (or, in CI, fails) the test when PostgreSQL is not
// installed; it returns for any other error.
func missing(tb testing.TB, err error) {
	tb.Helper()
	if _, berr := pgcluster.Binaries(); berr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("%v; CI must run the PostgreSQL tests: .ci/run installs it", err)
	}
	tb.Skipf("%v; skipping the PostgreSQL tests outside CI", err)
}

var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Shared is the test process's cluster, started at the first call; Main
// removes it. It skips the test when PostgreSQL is missing, except in CI.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	shared.once.Do(func() { shared.c, shared.err = pgcluster.Start() })
	if shared.err != nil {
		missing(tb, shared.err)
		tb.Fatal(shared.err)
	}
	return shared.c
}

// NewDatabase creates a fresh database on the shared cluster for one test,
// dropped when it ends, and returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	c := Shared(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := c.CreateDatabase(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DropDatabase(ctx, url); err != nil {
			tb.Errorf("drop the test database: %v", err)
		}
	})
	return url
}

// Stop removes the shared cluster, if one was started; TestMain calls it
// after the tests (Main does).
func Stop() {
	if shared.c != nil {
		shared.c.Remove()
	}
}

// Main runs the tests, then removes the shared cluster; call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}
