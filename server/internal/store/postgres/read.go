package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

const (
	merchantCols = `created, version, platform_private_key_pem, token, doc`
	recordCols   = `r.kind, r.mchid, r.key, r.aliases, r.version, r.data, r.created, r.updated`
	docCols      = `version, created, updated, doc`
	exchangeCols = `id, time, doc`
)

// encodeAll encodes each object as JSON; path names the batch's slice in
// an error.
func encodeAll[T any](path string, xs []*T) ([][]byte, error) {
	out := make([][]byte, len(xs))
	for i, x := range xs {
		var err error
		if out[i], err = json.Marshal(x); err != nil {
			return nil, sandbox.Invalid("invalid batch", sandbox.Violation{Path: path + "/" + strconv.Itoa(i), Message: err.Error()})
		}
	}
	return out, nil
}

// readOne runs a single-row query; no row is CodeNotFound with the message
// notFound.
func readOne[T any](s *Store, ctx context.Context, scan func(storedoc.Scanner) (*T, error), notFound func() string, query string, args ...any) (*T, error) {
	if s.closed.Load() {
		return nil, errClosed()
	}
	v, err := scan(s.pool.QueryRow(ctx, query, args...))
	// A key the store cannot keep names nothing it holds.
	if errors.Is(err, pgx.ErrNoRows) || badText(err) {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "%s", notFound())
	}
	if err != nil {
		return nil, s.fail("read", err)
	}
	return v, nil
}

// readMany runs a list query.
func readMany[T any](s *Store, ctx context.Context, scan func(storedoc.Scanner) (*T, error), query string, args ...any) ([]*T, error) {
	if s.closed.Load() {
		return nil, errClosed()
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, s.fail("read", err)
	}
	defer rows.Close()
	out, err := storedoc.Collect(rows, scan)
	if err != nil {
		return nil, s.fail("read", err)
	}
	return out, nil
}

// filterQuery builds "SELECT … WHERE a = $1 AND b = $2 ORDER BY … LIMIT $n".
type filterQuery struct {
	b    strings.Builder
	args []any
}

func newFilterQuery(selectFrom string) *filterQuery {
	q := &filterQuery{}
	q.b.WriteString(selectFrom)
	return q
}

// and adds cond, in which $ stands for the argument's placeholder, when the
// filter field is set.
func (q *filterQuery) and(set bool, cond string, arg any) {
	if !set {
		return
	}
	if len(q.args) == 0 {
		q.b.WriteString(" WHERE ")
	} else {
		q.b.WriteString(" AND ")
	}
	q.args = append(q.args, arg)
	q.b.WriteString(strings.ReplaceAll(cond, "$", "$"+strconv.Itoa(len(q.args))))
}

func (q *filterQuery) end(orderBy string, limit int) (string, []any) {
	q.args = append(q.args, sandbox.ListLimit(limit))
	fmt.Fprintf(&q.b, " ORDER BY %s LIMIT $%d", orderBy, len(q.args))
	return q.b.String(), q.args
}

func scanMerchant(r storedoc.Scanner) (*sandbox.Merchant, error) {
	var created, version int64
	var key, token string
	var doc []byte
	if err := r.Scan(&created, &version, &key, &token, &doc); err != nil {
		return nil, err
	}
	m := &sandbox.Merchant{}
	if err := json.Unmarshal(doc, m); err != nil {
		return nil, err
	}
	m.CreatedAt, m.Version, m.PlatformPrivateKeyPEM, m.Token = storedoc.FromNanos(created), version, key, token
	return m, nil
}

func scanRecord(r storedoc.Scanner) (*sandbox.Record, error) {
	rec := &sandbox.Record{}
	var data []byte
	var created, updated int64
	if err := r.Scan(&rec.Kind, &rec.MchID, &rec.Key, &rec.Aliases, &rec.Version, &data, &created, &updated); err != nil {
		return nil, err
	}
	if len(rec.Aliases) == 0 {
		rec.Aliases = nil
	}
	rec.Data, rec.CreatedAt, rec.UpdatedAt = data, storedoc.FromNanos(created), storedoc.FromNanos(updated)
	return rec, nil
}

// GetMerchant returns the merchant, with its secrets.
func (s *Store) GetMerchant(ctx context.Context, mchid string) (*sandbox.Merchant, error) {
	return readOne(s, ctx, scanMerchant, func() string { return "merchant " + strconv.Quote(mchid) + " not found" },
		`SELECT `+merchantCols+` FROM merchants WHERE mchid = $1`, mchid)
}

// ListMerchants returns every merchant, by mchid.
func (s *Store) ListMerchants(ctx context.Context) ([]*sandbox.Merchant, error) {
	return readMany(s, ctx, scanMerchant, `SELECT `+merchantCols+` FROM merchants ORDER BY mchid`)
}

// GetRecord returns the record of a kind by its merchant and key. There is
// no record cache in front of it: another replica may have changed the
// record a moment ago.
func (s *Store) GetRecord(ctx context.Context, kind, mchid, key string) (*sandbox.Record, error) {
	return readOne(s, ctx, scanRecord, func() string {
		return "record " + kind + " " + strconv.Quote(key) + " of merchant " + strconv.Quote(mchid) + " not found"
	}, `SELECT `+recordCols+` FROM records r WHERE r.kind = $1 AND r.mchid = $2 AND r.key = $3`, kind, mchid, key)
}

// FindRecord returns the merchant's record of a kind that owns the alias.
func (s *Store) FindRecord(ctx context.Context, kind, mchid, alias string) (*sandbox.Record, error) {
	return readOne(s, ctx, scanRecord, func() string {
		return "no record " + kind + " of merchant " + strconv.Quote(mchid) + " has the alias " + strconv.Quote(alias)
	}, `SELECT `+recordCols+` FROM record_aliases a
		JOIN records r ON r.kind = a.kind AND r.mchid = a.mchid AND r.key = a.key
		WHERE a.kind = $1 AND a.mchid = $2 AND a.alias = $3`, kind, mchid, alias)
}

// ListRecords returns the records of a kind, of one merchant (every
// merchant when mchid is ""), newest first; limit defaults to 100, at most
// 1000.
func (s *Store) ListRecords(ctx context.Context, kind, mchid string, limit int) ([]*sandbox.Record, error) {
	q := newFilterQuery(`SELECT ` + recordCols + ` FROM records r`)
	q.and(true, "r.kind = $", kind)
	q.and(mchid != "", "r.mchid = $", mchid)
	query, args := q.end("r.seq DESC", limit)
	return readMany(s, ctx, scanRecord, query, args...)
}

// GetSession returns a session by id.
func (s *Store) GetSession(ctx context.Context, id string) (*sandbox.Session, error) {
	return readOne(s, ctx, storedoc.Session, func() string { return "session " + strconv.Quote(id) + " not found" },
		`SELECT `+docCols+` FROM sessions WHERE id = $1`, id)
}

// ListSessions returns the sessions f selects, newest first; f.Limit
// defaults to 100, at most 1000.
func (s *Store) ListSessions(ctx context.Context, f sandbox.SessionFilter) ([]*sandbox.Session, error) {
	q := newFilterQuery(`SELECT ` + docCols + ` FROM sessions`)
	q.and(f.MchID != "", "mchid = $", f.MchID)
	q.and(f.Product != "", "product = $", f.Product)
	q.and(f.State != "", "state = $", string(f.State))
	query, args := q.end("seq DESC", f.Limit)
	return readMany(s, ctx, storedoc.Session, query, args...)
}

// DueSessions returns the merchant's pending sessions due at or before now,
// oldest due first.
func (s *Store) DueSessions(ctx context.Context, mchid string, now time.Time, limit int) ([]*sandbox.Session, error) {
	return readMany(s, ctx, storedoc.Session, `SELECT `+docCols+` FROM sessions
		WHERE mchid = $1 AND state = 'pending' AND due_at <= $2 ORDER BY due_at, seq LIMIT $3`,
		mchid, storedoc.Nanos(now), sandbox.ListLimit(limit))
}

// GetNotification returns a notification by id.
func (s *Store) GetNotification(ctx context.Context, id string) (*sandbox.Notification, error) {
	return readOne(s, ctx, storedoc.Notification, func() string { return "notification " + strconv.Quote(id) + " not found" },
		`SELECT `+docCols+` FROM notifications WHERE id = $1`, id)
}

// ListNotifications returns the notifications f selects, newest first;
// f.Limit defaults to 100, at most 1000.
func (s *Store) ListNotifications(ctx context.Context, f sandbox.NotificationFilter) ([]*sandbox.Notification, error) {
	q := newFilterQuery(`SELECT ` + docCols + ` FROM notifications`)
	q.and(f.MchID != "", "mchid = $", f.MchID)
	q.and(f.Product != "", "product = $", f.Product)
	q.and(f.Ref != "", "ref = $", f.Ref)
	q.and(f.State != "", "state = $", string(f.State))
	query, args := q.end("seq DESC", f.Limit)
	return readMany(s, ctx, storedoc.Notification, query, args...)
}

// DueNotifications returns the merchant's pending notifications due at or
// before now, oldest due first.
func (s *Store) DueNotifications(ctx context.Context, mchid string, now time.Time, limit int) ([]*sandbox.Notification, error) {
	return readMany(s, ctx, storedoc.Notification, `SELECT `+docCols+` FROM notifications
		WHERE mchid = $1 AND state = 'pending' AND due_at <= $2 ORDER BY due_at, seq LIMIT $3`,
		mchid, storedoc.Nanos(now), sandbox.ListLimit(limit))
}

// NextDue returns the earliest DueAt of the merchant's pending sessions and
// notifications, or the zero time when there is none. A pending object
// stored with a zero DueAt (due at once) reports the Unix epoch, so that it
// is not mistaken for "none".
func (s *Store) NextDue(ctx context.Context, mchid string) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed()
	}
	var due *int64
	err := s.pool.QueryRow(ctx, `SELECT least(
		(SELECT min(due_at) FROM sessions WHERE mchid = $1 AND state = 'pending'),
		(SELECT min(due_at) FROM notifications WHERE mchid = $1 AND state = 'pending'))`, mchid).Scan(&due)
	if err != nil {
		return time.Time{}, s.fail("read", err)
	}
	if due == nil {
		return time.Time{}, nil
	}
	return time.Unix(0, *due).UTC(), nil
}

// QueryJournal returns the exchanges f selects, newest first (oldest first
// with f.Oldest); f.Limit defaults to 100, at most 1000; f.MaxBytes ends
// the page early.
func (s *Store) QueryJournal(ctx context.Context, f sandbox.JournalFilter) ([]*sandbox.Exchange, error) {
	q := newFilterQuery(`SELECT ` + exchangeCols + ` FROM journal`)
	q.and(f.Product != "", "product = $", f.Product)
	q.and(f.MchID != "", "mchid = $", f.MchID)
	// The repeated "<> ''" lets the planner use the partial indexes.
	q.and(f.SessionID != "", "session_id = $ AND session_id <> ''", f.SessionID)
	q.and(f.NotifyID != "", "notify_id = $ AND notify_id <> ''", f.NotifyID)
	q.and(f.Direction != "", "direction = $", f.Direction)
	q.and(f.BeforeID > 0, "id < $", f.BeforeID)
	q.and(f.AfterID > 0, "id > $", f.AfterID)
	order := "id DESC"
	if f.Oldest {
		order = "id"
	}
	query, args := q.end(order, f.Limit)
	if f.MaxBytes <= 0 {
		return readMany(s, ctx, storedoc.Exchange, query, args...)
	}
	used := 0
	return readMany(s, ctx, func(r storedoc.Scanner) (*sandbox.Exchange, error) {
		if used >= f.MaxBytes {
			return nil, storedoc.ErrPageFull
		}
		x, n, err := storedoc.ExchangeSized(r)
		used += n
		return x, err
	}, query, args...)
}

// GetExchange returns one journalled exchange.
func (s *Store) GetExchange(ctx context.Context, id int64) (*sandbox.Exchange, error) {
	return readOne(s, ctx, storedoc.Exchange, func() string { return "exchange " + strconv.FormatInt(id, 10) + " not found" },
		`SELECT `+exchangeCols+` FROM journal WHERE id = $1`, id)
}
