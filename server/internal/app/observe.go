package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/metrics"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
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
// the journal's size and the writer's queue. The PostgreSQL store's figures
// are registered by the binary that opened it (observePostgres in
// server/cmd/mpsandbox), so that app — and the testkit through it — does not
// depend on the PostgreSQL driver.
func (a *App) observe(m *metrics.Metrics, log *slog.Logger) {
	if m == nil {
		return
	}
	m.Gauge("journal_queue_depth", "Exchanges recorded and not yet written to the store.", func() float64 {
		s := a.Journal.Stats()
		return float64(s.Recorded - s.Written - s.Failed)
	})
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

// attempted is the notification worker's hook into the metrics.
func attempted(m *metrics.Metrics) func(*sandbox.Notification) {
	if m == nil {
		return nil
	}
	return m.Notified
}
