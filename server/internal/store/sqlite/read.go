package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// The readers' fixed statements, prepared once on the read pool.
const (
	rMerchant = iota
	rMerchants
	rRecord
	rRecordByAlias
	rRecords
	rRecordsOfKind
	rSession
	rDueSessions
	rNotification
	rDueNotifications
	rNextDue
	rExchange
	numReadStmts
)

const (
	merchantCols = `created, version, platform_private_key_pem, token, json`
	recordCols   = `r.kind, r.mchid, r.key, r.aliases, r.version, r.data, r.created, r.updated`
	docCols      = `version, created, updated, json`
)

var readSQL = [numReadStmts]string{
	rMerchant:  `SELECT ` + merchantCols + ` FROM merchants WHERE mchid = ?`,
	rMerchants: `SELECT ` + merchantCols + ` FROM merchants ORDER BY mchid`,
	rRecord:    `SELECT ` + recordCols + ` FROM records r WHERE r.kind = ? AND r.mchid = ? AND r.key = ?`,
	rRecordByAlias: `SELECT ` + recordCols + ` FROM record_aliases a
		JOIN records r ON r.kind = a.kind AND r.mchid = a.mchid AND r.key = a.key
		WHERE a.kind = ? AND a.mchid = ? AND a.alias = ?`,
	rRecords:       `SELECT ` + recordCols + ` FROM records r WHERE r.kind = ? AND r.mchid = ? ORDER BY r.rowid DESC LIMIT ?`,
	rRecordsOfKind: `SELECT ` + recordCols + ` FROM records r WHERE r.kind = ? ORDER BY r.rowid DESC LIMIT ?`,
	rSession:       `SELECT ` + docCols + ` FROM sessions WHERE id = ?`,
	rDueSessions: `SELECT ` + docCols + ` FROM sessions
		WHERE mchid = ? AND state = 'pending' AND due_at <= ? ORDER BY due_at, rowid LIMIT ?`,
	rNotification: `SELECT ` + docCols + ` FROM notifications WHERE id = ?`,
	rDueNotifications: `SELECT ` + docCols + ` FROM notifications
		WHERE mchid = ? AND state = 'pending' AND due_at <= ? ORDER BY due_at, rowid LIMIT ?`,
	rNextDue: `SELECT min(d) FROM (
		SELECT min(due_at) AS d FROM sessions WHERE mchid = ?1 AND state = 'pending'
		UNION ALL
		SELECT min(due_at) FROM notifications WHERE mchid = ?1 AND state = 'pending')`,
	rExchange: `SELECT id, time, json FROM journal WHERE id = ?`,
}

// storedoc.Scanner is what *sql.Row and *sql.Rows share.
// readOne runs a single-row query; no row is CodeNotFound with the message
// notFound.
func readOne[T any](s *Store, ctx context.Context, stmt int, scan func(storedoc.Scanner) (*T, error), notFound func() string, args ...any) (*T, error) {
	if s.closed.Load() {
		return nil, errClosed()
	}
	v, err := scan(s.rstmts[stmt].QueryRowContext(ctx, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "%s", notFound())
	}
	if err != nil {
		return nil, s.fail("read", err)
	}
	return v, nil
}

// readMany runs a list query on a prepared statement.
func readMany[T any](s *Store, ctx context.Context, st *sql.Stmt, scan func(storedoc.Scanner) (*T, error), args ...any) ([]*T, error) {
	rows, err := st.QueryContext(ctx, args...)
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

// readList runs one of the fixed list statements.
func readList[T any](s *Store, ctx context.Context, stmt int, scan func(storedoc.Scanner) (*T, error), args ...any) ([]*T, error) {
	if s.closed.Load() {
		return nil, errClosed()
	}
	return readMany(s, ctx, s.rstmts[stmt], scan, args...)
}

// readFiltered runs a list query built from a filter; its statement is
// prepared once per distinct text.
func readFiltered[T any](s *Store, ctx context.Context, q *filterQuery, scan func(storedoc.Scanner) (*T, error)) ([]*T, error) {
	if s.closed.Load() {
		return nil, errClosed()
	}
	text := q.b.String()
	st, ok := s.dyn.Load(text)
	if !ok {
		prepared, err := s.rdb.PrepareContext(ctx, text)
		if err != nil {
			return nil, s.fail("prepare", err)
		}
		if st, ok = s.dyn.LoadOrStore(text, prepared); ok {
			prepared.Close()
		}
	}
	return readMany(s, ctx, st.(*sql.Stmt), scan, q.args...)
}

// filterQuery builds "SELECT … WHERE a = ? AND b = ? ORDER BY … LIMIT ?".
type filterQuery struct {
	b    strings.Builder
	args []any
	n    int
}

func newFilterQuery(selectFrom string) *filterQuery {
	q := &filterQuery{}
	q.b.WriteString(selectFrom)
	return q
}

// and adds cond with its arguments when the filter field is set.
func (q *filterQuery) and(set bool, cond string, args ...any) {
	if !set {
		return
	}
	if q.n == 0 {
		q.b.WriteString(" WHERE ")
	} else {
		q.b.WriteString(" AND ")
	}
	q.n++
	q.b.WriteString(cond)
	q.args = append(q.args, args...)
}

func (q *filterQuery) end(orderBy string, limit int) *filterQuery {
	q.b.WriteString(" ORDER BY ")
	q.b.WriteString(orderBy)
	q.b.WriteString(" LIMIT ?")
	q.args = append(q.args, clampLimit(limit))
	return q
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
	var aliases, data []byte
	var created, updated int64
	if err := r.Scan(&rec.Kind, &rec.MchID, &rec.Key, &aliases, &rec.Version, &data, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(aliases, &rec.Aliases); err != nil {
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
	return readOne(s, ctx, rMerchant, scanMerchant, func() string { return "merchant " + strconv.Quote(mchid) + " not found" }, mchid)
}

// ListMerchants returns every merchant, by mchid.
func (s *Store) ListMerchants(ctx context.Context) ([]*sandbox.Merchant, error) {
	return readList(s, ctx, rMerchants, scanMerchant)
}

// GetRecord returns the record of a kind by its merchant and key.
func (s *Store) GetRecord(ctx context.Context, kind, mchid, key string) (*sandbox.Record, error) {
	r, evictions := s.records.get(kind, mchid, key)
	if r != nil {
		return r, nil
	}
	r, err := readOne(s, ctx, rRecord, scanRecord, func() string {
		return "record " + kind + " " + strconv.Quote(key) + " of merchant " + strconv.Quote(mchid) + " not found"
	}, kind, mchid, key)
	if err == nil {
		s.records.fill(r, evictions)
	}
	return r, err
}

// FindRecord returns the merchant's record of a kind that owns the alias.
func (s *Store) FindRecord(ctx context.Context, kind, mchid, alias string) (*sandbox.Record, error) {
	r, evictions := s.records.find(kind, mchid, alias)
	if r != nil {
		return r, nil
	}
	r, err := readOne(s, ctx, rRecordByAlias, scanRecord, func() string {
		return "no record " + kind + " of merchant " + strconv.Quote(mchid) + " has the alias " + strconv.Quote(alias)
	}, kind, mchid, alias)
	if err == nil {
		s.records.fill(r, evictions)
	}
	return r, err
}

// ListRecords returns the records of a kind, of one merchant (every
// merchant when mchid is ""), newest first; limit defaults to 100, at most
// 1000.
func (s *Store) ListRecords(ctx context.Context, kind, mchid string, limit int) ([]*sandbox.Record, error) {
	if mchid == "" {
		return readList(s, ctx, rRecordsOfKind, scanRecord, kind, clampLimit(limit))
	}
	return readList(s, ctx, rRecords, scanRecord, kind, mchid, clampLimit(limit))
}

// GetSession returns a session by id.
func (s *Store) GetSession(ctx context.Context, id string) (*sandbox.Session, error) {
	return readOne(s, ctx, rSession, storedoc.Session, func() string { return "session " + strconv.Quote(id) + " not found" }, id)
}

// ListSessions returns the sessions f selects, newest first; f.Limit
// defaults to 100, at most 1000.
func (s *Store) ListSessions(ctx context.Context, f sandbox.SessionFilter) ([]*sandbox.Session, error) {
	q := newFilterQuery(`SELECT ` + docCols + ` FROM sessions`)
	q.and(f.MchID != "", "mchid = ?", f.MchID)
	q.and(f.Product != "", "product = ?", f.Product)
	q.and(f.State != "", "state = ?", string(f.State))
	return readFiltered(s, ctx, q.end("rowid DESC", f.Limit), storedoc.Session)
}

// DueSessions returns the merchant's pending sessions due at or before now,
// oldest due first.
func (s *Store) DueSessions(ctx context.Context, mchid string, now time.Time, limit int) ([]*sandbox.Session, error) {
	return readList(s, ctx, rDueSessions, storedoc.Session, mchid, storedoc.Nanos(now), clampLimit(limit))
}

// GetNotification returns a notification by id.
func (s *Store) GetNotification(ctx context.Context, id string) (*sandbox.Notification, error) {
	return readOne(s, ctx, rNotification, storedoc.Notification, func() string { return "notification " + strconv.Quote(id) + " not found" }, id)
}

// ListNotifications returns the notifications f selects, newest first;
// f.Limit defaults to 100, at most 1000.
func (s *Store) ListNotifications(ctx context.Context, f sandbox.NotificationFilter) ([]*sandbox.Notification, error) {
	q := newFilterQuery(`SELECT ` + docCols + ` FROM notifications`)
	q.and(f.MchID != "", "mchid = ?", f.MchID)
	q.and(f.Product != "", "product = ?", f.Product)
	q.and(f.Ref != "", "ref = ?", f.Ref)
	q.and(f.State != "", "state = ?", string(f.State))
	return readFiltered(s, ctx, q.end("rowid DESC", f.Limit), storedoc.Notification)
}

// DueNotifications returns the merchant's pending notifications due at or
// before now, oldest due first.
func (s *Store) DueNotifications(ctx context.Context, mchid string, now time.Time, limit int) ([]*sandbox.Notification, error) {
	return readList(s, ctx, rDueNotifications, storedoc.Notification, mchid, storedoc.Nanos(now), clampLimit(limit))
}

// NextDue returns the earliest DueAt of the merchant's pending sessions and
// notifications, or the zero time when there is none. A pending object
// stored with a zero DueAt (due at once) reports the Unix epoch, so that it
// is not mistaken for "none".
func (s *Store) NextDue(ctx context.Context, mchid string) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed()
	}
	var due sql.NullInt64
	if err := s.rstmts[rNextDue].QueryRowContext(ctx, mchid).Scan(&due); err != nil {
		return time.Time{}, s.fail("read", err)
	}
	if !due.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, due.Int64).UTC(), nil
}

// QueryJournal returns the exchanges f selects, newest first (oldest first
// with f.Oldest); f.Limit
// defaults to 100, at most 1000; f.MaxBytes ends the page early.
//
// The journal's one secondary index is by merchant and id, and carries
// each entry's session and notification (journal_merchant, schema 6). A
// session's or notification's entries are read in it from the object's
// journal_from on (every exchange that names it came later), under the
// filter's merchant or else under each merchant in the journal in turn
// (jm): a look at the entries since the object was stored, never a read
// of the table's documents. An object never stored (or stored before
// schema 6) has no journal_from: its entries are looked for in the whole
// index.
func (s *Store) QueryJournal(ctx context.Context, f sandbox.JournalFilter) ([]*sandbox.Exchange, error) {
	selectFrom := `SELECT id, time, json FROM journal`
	owned := f.SessionID != "" || f.NotifyID != ""
	if owned {
		selectFrom += ` INDEXED BY journal_merchant`
		if f.MchID == "" {
			selectFrom = `WITH RECURSIVE jm(v) AS (SELECT min(mchid) FROM journal
				UNION ALL SELECT (SELECT min(mchid) FROM journal WHERE mchid > jm.v) FROM jm WHERE jm.v IS NOT NULL) ` + selectFrom
		}
	}
	q := newFilterQuery(selectFrom)
	q.and(f.Product != "", "product = ?", f.Product)
	q.and(f.MchID != "", "mchid = ?", f.MchID)
	q.and(owned && f.MchID == "", "mchid IN (SELECT v FROM jm WHERE v IS NOT NULL)")
	q.and(f.SessionID != "", "session_id = ? AND id > coalesce((SELECT journal_from FROM sessions WHERE id = ?), 0)", f.SessionID, f.SessionID)
	q.and(f.NotifyID != "", "notify_id = ? AND id > coalesce((SELECT journal_from FROM notifications WHERE id = ?), 0)", f.NotifyID, f.NotifyID)
	q.and(f.Direction != "", "direction = ?", f.Direction)
	q.and(f.BeforeID > 0, "id < ?", f.BeforeID)
	q.and(f.AfterID > 0, "id > ?", f.AfterID)
	order := "id DESC"
	if f.Oldest {
		order = "id"
	}
	if f.MaxBytes <= 0 {
		return readFiltered(s, ctx, q.end(order, f.Limit), storedoc.Exchange)
	}
	used := 0
	return readFiltered(s, ctx, q.end(order, f.Limit), func(r storedoc.Scanner) (*sandbox.Exchange, error) {
		if used >= f.MaxBytes {
			return nil, storedoc.ErrPageFull
		}
		x, n, err := storedoc.ExchangeSized(r)
		used += n
		return x, err
	})
}

// GetExchange returns one journalled exchange.
func (s *Store) GetExchange(ctx context.Context, id int64) (*sandbox.Exchange, error) {
	return readOne(s, ctx, rExchange, storedoc.Exchange, func() string { return "exchange " + strconv.FormatInt(id, 10) + " not found" }, id)
}
