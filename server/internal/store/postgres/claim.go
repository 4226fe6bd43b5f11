package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

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
	got, err := readMany(s, ctx, storedoc.Notification, claimSQL("notifications"),
		mchid, storedoc.Nanos(now), owner, sandbox.ListLimit(limit), lease.Nanoseconds())
	s.counts.claimed.Add(int64(len(got)))
	return got, err
}

// ClaimSessions leases the merchant's due pending sessions that no other
// owner holds to owner, as ClaimNotifications does notifications: the
// session schedulers of replicas sharing the database each resolve a
// different share of what falls due, and a killed replica's claims are
// taken over when their lease ends.
func (s *Store) ClaimSessions(ctx context.Context, mchid string, now time.Time, owner string, lease time.Duration, limit int) ([]*sandbox.Session, error) {
	return readMany(s, ctx, storedoc.Session, claimSQL("sessions"),
		mchid, storedoc.Nanos(now), owner, sandbox.ListLimit(limit), lease.Nanoseconds())
}

// ReleaseClaims ends owner's leases on notifications and sessions, in one
// transaction: rows it claimed and did not finish are anyone's at once.
func (s *Store) ReleaseClaims(ctx context.Context, owner string) error {
	return s.inTx(ctx, "release claims", func(ctx context.Context, tx pgx.Tx) error {
		for _, table := range []string{"notifications", "sessions"} {
			if _, err := tx.Exec(ctx, "UPDATE "+table+" SET lease_owner = '', lease_until = 0 WHERE state = 'pending' AND lease_owner = $1", owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// claimSQL leases the due pending rows of table (sessions or
// notifications, which have the same claim columns) to an owner: $1 the
// merchant, $2 now on its clock, $3 the owner, $4 the limit, $5 the lease
// in nanoseconds of the database's time.
func claimSQL(table string) string {
	return `WITH t AS (
			SELECT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint AS now),
		due AS (
			SELECT id FROM ` + table + `, t
			WHERE mchid = $1 AND state = 'pending' AND due_at <= $2 AND (lease_owner = $3 OR lease_until <= t.now)
			ORDER BY due_at, seq LIMIT $4
			FOR UPDATE OF ` + table + ` SKIP LOCKED),
		claimed AS (
			UPDATE ` + table + ` n SET lease_owner = $3, lease_until = t.now + $5
			FROM due, t WHERE n.id = due.id
			RETURNING n.version, n.created, n.updated, n.doc, n.due_at, n.seq)
		SELECT ` + docCols + ` FROM claimed ORDER BY due_at, seq`
}
