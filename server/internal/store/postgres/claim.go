package postgres

import (
	"context"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// ClaimNotifications leases the merchant's due pending notifications that
// no other owner holds to owner, oldest due first, and returns them. The
// rows are chosen FOR UPDATE SKIP LOCKED, so replicas claiming at once
// never wait for one another and never get the same row; a row another
// owner leased is skipped until its lease ends (the database's clock
// decides). The owner's own leases are renewed: its worker asks again for
// the rows it has in flight.
func (s *Store) ClaimNotifications(ctx context.Context, mchid string, now time.Time, owner string, lease time.Duration, limit int) ([]*sandbox.Notification, error) {
	s.counts.claims.Add(1)
	got, err := readMany(s, ctx, storedoc.Notification, `WITH t AS (
			SELECT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint AS now),
		due AS (
			SELECT id FROM notifications, t
			WHERE mchid = $1 AND state = 'pending' AND due_at <= $2 AND (lease_owner = $3 OR lease_until <= t.now)
			ORDER BY due_at, seq LIMIT $4
			FOR UPDATE OF notifications SKIP LOCKED),
		claimed AS (
			UPDATE notifications n SET lease_owner = $3, lease_until = t.now + $5
			FROM due, t WHERE n.id = due.id
			RETURNING n.version, n.created, n.updated, n.doc, n.due_at, n.seq)
		SELECT `+docCols+` FROM claimed ORDER BY due_at, seq`,
		mchid, storedoc.Nanos(now), owner, sandbox.ListLimit(limit), lease.Nanoseconds())
	s.counts.claimed.Add(int64(len(got)))
	return got, err
}
