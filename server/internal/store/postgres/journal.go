package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// AppendExchanges journals xs in one transaction and sets their IDs (and
// Time, when zero) once committed.
//
// Appends from every replica take one transaction-scoped advisory lock, so
// they commit in the order of their ids: a reader paging with AfterID (the
// live stream, Last-Event-ID) that has seen an id never later finds a
// smaller one appear, as it could if a transaction holding a smaller id
// committed after one holding a larger. Each append is announced to the
// other processes (sandbox.Committed.Journal) for their live streams.
func (s *Store) AppendExchanges(ctx context.Context, xs []*sandbox.Exchange) error {
	if len(xs) == 0 {
		return nil
	}
	var now time.Time
	for i, x := range xs {
		if x == nil {
			return sandbox.Invalid("invalid batch", sandbox.Violation{Path: "/exchanges/" + strconv.Itoa(i), Message: "nil exchange"})
		}
		if x.Time.IsZero() {
			if now.IsZero() {
				now = time.Now().UTC()
			}
			x.Time = now
		}
	}
	docs, err := encodeAll("/exchanges", xs)
	if err != nil {
		return err
	}
	ids := make([]int64, len(xs))
	err = s.inTx(ctx, "append exchanges", func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue("SELECT pg_advisory_xact_lock($1)", journalLock)
		for i, x := range xs {
			b.Queue(`INSERT INTO journal (time, mchid, product, session_id, notify_id, direction, size, doc)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
				storedoc.Nanos(x.Time), text(x.MchID), text(x.Product), text(x.SessionID), text(x.NotifyID), text(x.Direction),
				len(docs[i]), docs[i]).
				QueryRow(func(r pgx.Row) error { return r.Scan(&ids[i]) })
		}
		// Announced to the other processes (a notice with only "journal"
		// set): their live streams read the store up to this id. Under
		// the lock, max(id) is this append's last.
		b.Queue(`SELECT pg_notify($1, json_build_object('from', $2::text, 'journal', (SELECT max(id) FROM journal))::text)`,
			commitChannel, s.id)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return err
	}
	for i, x := range xs {
		x.ID = ids[i]
	}
	return nil
}

// text makes a journalled request's value fit a text column: an exchange
// records what a stranger sent (a session id in a path, say), and one NUL
// byte must not fail the append of a whole batch. The entry's document
// keeps the value as it was; only the filter column differs.
func text(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// pruneChunk bounds the entries one transaction deletes.
const pruneChunk = 500

// PruneJournal deletes all but the newest keep exchanges (keep <= 0: no
// limit on the count), every exchange older than before (zero: no limit
// on the age) and the oldest exchanges while the stored documents hold
// more than maxBytes (<= 0: no limit on the bytes), returning how many it
// deleted. It deletes pruneChunk at a time, each in its own transaction, so
// that no transaction holds many row locks for long; replicas pruning at
// once each delete a share.
//
// The byte bound sums the size column in each chunk's transaction, under
// an advisory lock of its own so that two replicas do not both delete the
// same excess (appends do not wait for it). Unlike the SQLite store's
// running total, that sum reads the whole table: a prune costs a scan of
// the journal's rows (not of their documents, stored out of line past
// 2 KB).
func (s *Store) PruneJournal(ctx context.Context, keep int, before time.Time, maxBytes int64) (int, error) {
	if keep <= 0 && before.IsZero() && maxBytes <= 0 {
		return 0, nil
	}
	total := 0
	for {
		n := 0
		err := s.inTx(ctx, "prune journal", func(ctx context.Context, tx pgx.Tx) error {
			n = 0
			del := func(query string, args ...any) error {
				tag, err := tx.Exec(ctx, query, args...)
				n += int(tag.RowsAffected())
				return err
			}
			if keep > 0 {
				// Ids grow and only the oldest entries are ever deleted, so
				// the newest keep are those above max(id) - keep.
				if err := del(`DELETE FROM journal WHERE id IN (
					SELECT id FROM journal WHERE id <= (SELECT max(id) FROM journal) - $1 ORDER BY id LIMIT $2)`,
					keep, pruneChunk); err != nil {
					return err
				}
			}
			if !before.IsZero() {
				if err := del(`DELETE FROM journal WHERE id IN (
					SELECT id FROM journal WHERE time < $1 LIMIT $2)`, storedoc.Nanos(before), pruneChunk); err != nil {
					return err
				}
			}
			if maxBytes > 0 {
				if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pruneLock); err != nil {
					return err
				}
				// The oldest entries go while the bytes before them are
				// short of the excess: the last one deleted covers it.
				if err := del(`WITH excess AS (SELECT coalesce(sum(size), 0) - $1 AS n FROM journal),
					oldest AS (SELECT id, sum(size) OVER (ORDER BY id) - size AS before
						FROM (SELECT id, size FROM journal ORDER BY id LIMIT $2) o)
					DELETE FROM journal WHERE id IN (SELECT id FROM oldest, excess WHERE oldest.before < excess.n)`,
					maxBytes, pruneChunk); err != nil {
					return err
				}
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
	}
}
