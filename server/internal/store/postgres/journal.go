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
// deleted. It deletes pruneChunk at a time, each chunk its own
// transaction, so that no transaction holds many row locks for long.
//
// One process prunes at a time: the prune holds a session advisory lock
// (pruneLock) on its connection, and a replica that finds it taken
// returns at once, deleting nothing — the journal is shared, and the
// holder is pruning it. Appends do not wait for it.
//
// The byte bound reads the journal's total once per prune (a sum of the
// size column: a scan of the rows, not of their documents, stored out of
// line past 2 KB) and takes off what each chunk deleted; while the lock
// is held nothing else deletes, so the excess stays exact, and bytes
// appended meanwhile wait for the next prune. (It summed once per chunk
// before: a journal of 100,000 entries over its bound by 10,000 cost 21
// scans instead of one; BenchmarkPruneJournalBytes.)
func (s *Store) PruneJournal(ctx context.Context, keep int, before time.Time, maxBytes int64) (int, error) {
	if keep <= 0 && before.IsZero() && maxBytes <= 0 {
		return 0, nil
	}
	const op = "prune journal"
	if s.closed.Load() {
		return 0, errClosed()
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, s.fail(op, err)
	}
	defer conn.Release()
	// Each statement within txTimeout, as a transaction of inTx.
	stmt := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), txTimeout)
	}
	sctx, cancel := stmt()
	var mine bool
	err = conn.QueryRow(sctx, "SELECT pg_try_advisory_lock($1)", pruneLock).Scan(&mine)
	cancel()
	if err != nil || !mine {
		return 0, s.fail(op, err)
	}
	defer func() {
		sctx, cancel := stmt()
		defer cancel()
		if _, err := conn.Exec(sctx, "SELECT pg_advisory_unlock($1)", pruneLock); err != nil {
			// A connection that cannot unlock is not given back holding
			// the lock: closing it ends the session, and the lock.
			conn.Hijack().Close(sctx)
		}
	}()
	total := 0
	// chunks runs a chunk's DELETE … RETURNING, with the arguments args
	// gives at each run, until it deletes nothing; each chunk is a
	// transaction of its own, and each sees every row it deleted.
	chunks := func(query string, args func() []any, each func(pgx.Rows) error) error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			sctx, cancel := stmt()
			n := 0
			rows, err := conn.Query(sctx, query, args()...)
			if err == nil {
				for err == nil && rows.Next() {
					n++
					err = each(rows)
				}
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
			cancel()
			total += n
			if err != nil || n == 0 {
				return err
			}
		}
	}
	none := func(pgx.Rows) error { return nil }
	if keep > 0 {
		// Ids grow and only the oldest entries are ever deleted, so the
		// newest keep are those above max(id) - keep.
		if err := chunks(`DELETE FROM journal WHERE id IN (
			SELECT id FROM journal WHERE id <= (SELECT max(id) FROM journal) - $1 ORDER BY id LIMIT $2) RETURNING id`,
			func() []any { return []any{keep, pruneChunk} }, none); err != nil {
			return total, s.fail(op, err)
		}
	}
	if !before.IsZero() {
		if err := chunks(`DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE time < $1 LIMIT $2) RETURNING id`,
			func() []any { return []any{storedoc.Nanos(before), pruneChunk} }, none); err != nil {
			return total, s.fail(op, err)
		}
	}
	if maxBytes <= 0 {
		return total, nil
	}
	sctx, cancel = stmt()
	var stored int64
	err = conn.QueryRow(sctx, "SELECT coalesce(sum(size), 0) FROM journal").Scan(&stored)
	cancel()
	if err != nil {
		return total, s.fail(op, err)
	}
	excess := stored - maxBytes
	if excess <= 0 {
		return total, nil
	}
	// The oldest entries go while the bytes before them are short of the
	// excess: the last one deleted covers it.
	err = chunks(`WITH oldest AS (SELECT id, sum(size) OVER (ORDER BY id) - size AS before
			FROM (SELECT id, size FROM journal ORDER BY id LIMIT $2) o)
		DELETE FROM journal WHERE id IN (SELECT id FROM oldest WHERE oldest.before < $1) RETURNING size`,
		func() []any { return []any{excess, pruneChunk} },
		func(r pgx.Rows) error {
			var size int64
			err := r.Scan(&size)
			excess -= size
			return err
		})
	return total, s.fail(op, err)
}
