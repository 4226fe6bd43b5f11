package sqlite

import (
	"context"
)

// ProbeWrite proves the database writable now: a transaction through the
// writer that rewrites a row of probeBytes, so that its commit appends as
// many frames to the WAL file as a busy commit does. A full disk, a file
// size limit or a read-only file fails it as it would fail a real commit;
// a probe of one page would pass while the WAL still had room for one
// page but not for the commits the sandbox makes. /readyz calls it,
// rate-limited.
func (s *Store) ProbeWrite(ctx context.Context) error {
	o := newOp()
	o.probe = true
	return s.submit(ctx, o)
}

// probeBytes is what a probe writes: eight pages, about what a group
// commit of the jump path writes (docs/PERFORMANCE.md).
const probeBytes = 32 << 10

func (w *wtx) applyProbe() error {
	_, err := w.tx.Exec(`INSERT OR REPLACE INTO probe (id, pad) VALUES (1, zeroblob(?))`, probeBytes)
	return w.s.fail("probe write", err)
}

// Stats are the store's sizes, for /metrics.
type Stats struct {
	PendingNotifications int64 // the notification queue: pending rows
	PendingSessions      int64 // sessions waiting for the user or their due time
	JournalEntries       int64
	JournalBytes         int64 // the entries' JSON, bodies included
	WriteQueue           int   // commits waiting for the writer
}

// Stats counts, in one read.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{WriteQueue: len(s.queue)}
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM notifications WHERE state = 'pending'),
		(SELECT count(*) FROM sessions WHERE state = 'pending'),
		(SELECT count(*) FROM journal),
		(SELECT coalesce(sum(length(json)), 0) FROM journal)`).
		Scan(&st.PendingNotifications, &st.PendingSessions, &st.JournalEntries, &st.JournalBytes)
	if err != nil {
		return st, s.fail("stats", err)
	}
	return st, nil
}
