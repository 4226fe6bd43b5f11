package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/metrics"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/postgres"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// sizesInterval bounds how often a scrape of /metrics reads the store.
const sizesInterval = 5 * time.Second

// writeProber is a store that can prove itself writable (sqlite.Store).
type writeProber interface {
	ProbeWrite(ctx context.Context) error
}

// ProbeWrite proves the store writable with a small real write, when the
// store can (the SQLite store can); /readyz asks it, rate-limited.
func (a *App) ProbeWrite(ctx context.Context) error {
	if p, ok := a.raw.(writeProber); ok {
		return p.ProbeWrite(ctx)
	}
	return nil
}

// observe registers the gauges read at each scrape: the journal's queue
// and, from the SQLite store, the notification queue, pending sessions,
// the journal's size and the writer's queue; from the PostgreSQL store, its
// pool, claims and LISTEN connection.
func (a *App) observe(m *metrics.Metrics, log *slog.Logger) {
	if m == nil {
		return
	}
	m.Gauge("journal_queue_depth", "Exchanges recorded and not yet written to the store.", func() float64 {
		s := a.Journal.Stats()
		return float64(s.Recorded - s.Written - s.Failed)
	})
	if pg, ok := a.raw.(*postgres.Store); ok {
		observePostgres(m, pg)
		return
	}
	st, ok := a.raw.(*sqlite.Store)
	if !ok {
		return
	}
	m.Sizes(sizesInterval, func(ctx context.Context) (map[string]float64, error) {
		s, err := st.Stats(ctx)
		return map[string]float64{
			"notification_queue_depth": float64(s.PendingNotifications),
			"sessions_pending":         float64(s.PendingSessions),
			"journal_entries":          float64(s.JournalEntries),
			"journal_bytes":            float64(s.JournalBytes),
			"store_write_queue_depth":  float64(s.WriteQueue),
		}, err
	}, map[string]string{
		"notification_queue_depth": "Notifications pending delivery or a retry.",
		"sessions_pending":         "Mini-program sessions waiting for the user (or a person) or their due time.",
		"journal_entries":          "Exchanges kept in the journal.",
		"journal_bytes":            "Bytes of the journal's entries, bodies included.",
		"store_write_queue_depth":  "Commits waiting for the store's writer.",
	}, log)
}

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

// attempted is the notification worker's hook into the metrics.
func attempted(m *metrics.Metrics) func(*sandbox.Notification) {
	if m == nil {
		return nil
	}
	return m.Notified
}
