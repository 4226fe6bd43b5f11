package sqlite

import (
	"context"
	"fmt"
)

// ProbeWrite proves the database writable now: a transaction through the
// writer that rewrites PRAGMA user_version with its own value, which
// dirties the header page, so that its commit appends a frame to the WAL
// file. A full disk, a file size limit or a read-only file fails it as it
// would fail a real commit. /readyz calls it, rate-limited.
func (s *Store) ProbeWrite(ctx context.Context) error {
	o := newOp()
	o.probe = true
	return s.submit(ctx, o)
}

func (w *wtx) applyProbe() error {
	_, err := w.tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)))
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
