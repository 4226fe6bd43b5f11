package main

import (
	"github.com/mpsandbox/mpsandbox/server/internal/metrics"
	"github.com/mpsandbox/mpsandbox/server/internal/store/postgres"
)

// observePostgres registers the PostgreSQL store's figures, each read from
// the pool (no query) at each scrape.
func observePostgres(m *metrics.Metrics, pg *postgres.Store) {
	gauges := map[string]struct {
		help string
		read func(postgres.Stats) int32
	}{
		"postgres_pool_acquired_connections": {"Connections of the pool in use.", func(s postgres.Stats) int32 { return s.Acquired }},
		"postgres_pool_idle_connections":     {"Connections of the pool open and idle.", func(s postgres.Stats) int32 { return s.Idle }},
		"postgres_pool_connections":          {"Connections of the pool open (in use, idle or being made).", func(s postgres.Stats) int32 { return s.Total }},
		"postgres_pool_max_connections":      {"The pool's bound (pool_max_conns in the URL).", func(s postgres.Stats) int32 { return s.Max }},
	}
	for name, g := range gauges {
		m.Gauge(name, g.help, func() float64 { return float64(g.read(pg.Stats())) })
	}
	counters := map[string]struct {
		help string
		read func(postgres.Stats) float64
	}{
		"postgres_pool_acquires_total": {"Connections taken from the pool.", func(s postgres.Stats) float64 { return float64(s.Acquires) }},
		"postgres_pool_empty_acquires_total": {"Connections taken from the pool that had to wait for one (none idle).",
			func(s postgres.Stats) float64 { return float64(s.EmptyAcquires) }},
		"postgres_pool_acquire_wait_seconds_total": {"Time spent taking connections from the pool.",
			func(s postgres.Stats) float64 { return s.AcquireWait.Seconds() }},
		"postgres_notification_claims_total": {"Claims of due notifications (FOR UPDATE SKIP LOCKED, a lease) by this process.",
			func(s postgres.Stats) float64 { return float64(s.Claims) }},
		"postgres_notifications_claimed_total": {"Notifications this process leased (a renewed lease counts again).",
			func(s postgres.Stats) float64 { return float64(s.Claimed) }},
		"postgres_listen_reconnects_total": {"Times the LISTEN connection that hears other replicas' commits was lost and made again.",
			func(s postgres.Stats) float64 { return float64(s.ListenLost) }},
	}
	for name, c := range counters {
		m.Counter(name, c.help, func() float64 { return c.read(pg.Stats()) })
	}
}
