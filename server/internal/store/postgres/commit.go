package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// txAttempts bounds how often a transaction PostgreSQL aborted as a
// deadlock victim is run again: nothing of it was written, and two batches
// that lock the same rows in different orders must both land.
const txAttempts = 3

// txTimeout bounds a transaction once begun, in place of its caller's
// context (see inTx).
const txTimeout = 30 * time.Second

// inTx runs fn in a transaction, again when PostgreSQL aborted it as a
// deadlock victim or a serialisation failure. fn's *sandbox.Error (a
// conflict) rolls back and is returned as it is.
//
// ctx bounds the wait for a connection only: as with the SQLite store's
// writer, a call whose context ends before its transaction began writes
// nothing, and one that began runs to its end (bounded by txTimeout) and
// gives a definite answer. Cancelling it half-way would drop what a caller
// that stops waiting still wants written (the journal's last batch at
// shutdown), and during COMMIT would leave the outcome unknown.
func (s *Store) inTx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.onConn(ctx, op, func(ctx context.Context, conn *pgxpool.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

// onConn runs fn on a connection of the pool, as inTx describes (ctx
// bounds the wait for the connection, txTimeout the work; again after a
// deadlock or a serialisation failure), without a transaction of its own:
// for work that is one statement, its own transaction in one round trip
// where BEGIN … COMMIT takes three.
func (s *Store) onConn(ctx context.Context, op string, fn func(ctx context.Context, conn *pgxpool.Conn) error) error {
	if s.closed.Load() {
		return errClosed()
	}
	if err := ctx.Err(); err != nil {
		return s.fail(op, err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.fail(op, err)
	}
	defer conn.Release()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := fn(tctx, conn)
		if err == nil {
			return nil
		}
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && attempt < txAttempts &&
			(pe.Code == codeDeadlockDetected || pe.Code == codeSerializationFailure) {
			continue
		}
		return s.fail(op, err)
	}
}

// querier runs a Commit's statements: its transaction, or the connection
// itself when the batch is one statement.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// oneStatement reports whether b writes with one statement — one session
// or one notification, inserted or compare-and-swapped (a failed swap's
// diagnosis only reads) — so that, announcing nothing, it needs no
// transaction of its own. A notification's attempt outcome is such a batch:
// one per delivery.
func oneStatement(b *sandbox.Batch) bool {
	return len(b.Merchants)+len(b.Creates)+len(b.Updates) == 0 && len(b.Sessions)+len(b.Notifications) == 1
}

// stamp is what the store sets on an object once its batch has committed.
type stamp struct {
	version          int64
	created, updated int64
}

func (st stamp) set(version *int64, created, updated *time.Time) {
	*version, *created, *updated = st.version, storedoc.FromNanos(st.created), storedoc.FromNanos(st.updated)
}

// wtx is one Commit's transaction (or its one statement).
type wtx struct {
	s   *Store
	ctx context.Context
	tx  querier
	now int64
}

// Commit applies b in one transaction. When it returns nil the batch is
// committed (durable as the server's synchronous_commit makes it) and b's
// objects carry their new Version, CreatedAt and UpdatedAt; otherwise they
// are unchanged. When the connection is lost during COMMIT the outcome is
// unknown and the error is CodeUnavailable.
//
// As in the SQLite store: merchants are applied first, then Creates,
// Updates, Sessions and Notifications; an Update with Version 0 inserts;
// an Update's Aliases are added to the record's, never removed.
func (s *Store) Commit(ctx context.Context, b *sandbox.Batch) error {
	if b.Empty() {
		return nil
	}
	if err := b.Check(); err != nil {
		return err
	}
	docs, err := encodeBatch(b)
	if err != nil {
		return err
	}
	var st stamps
	c := b.Committed()
	payloads := s.payloads(c)
	apply := func(ctx context.Context, q querier) error {
		st = newStamps(b)
		w := &wtx{s: s, ctx: ctx, tx: q, now: time.Now().UnixNano()}
		if err := w.apply(b, docs, &st); err != nil {
			return err
		}
		// Delivered to the other processes when, and only if, this commits.
		for _, p := range payloads {
			if _, err := q.Exec(ctx, "SELECT pg_notify($1, $2)", commitChannel, p); err != nil {
				return err
			}
		}
		return nil
	}
	if oneStatement(b) && len(payloads) == 0 {
		err = s.onConn(ctx, "commit", func(ctx context.Context, conn *pgxpool.Conn) error { return apply(ctx, conn) })
	} else {
		err = s.inTx(ctx, "commit", func(ctx context.Context, tx pgx.Tx) error { return apply(ctx, tx) })
	}
	if err != nil {
		return err
	}
	for i, m := range b.Merchants {
		m.CreatedAt, m.Version = storedoc.FromNanos(st.merchants[i].created), st.merchants[i].version
	}
	for i, r := range b.Creates {
		st.creates[i].set(&r.Version, &r.CreatedAt, &r.UpdatedAt)
	}
	for i, r := range b.Updates {
		st.updates[i].set(&r.Version, &r.CreatedAt, &r.UpdatedAt)
	}
	for i, x := range b.Sessions {
		st.sessions[i].set(&x.Version, &x.CreatedAt, &x.UpdatedAt)
	}
	for i, n := range b.Notifications {
		st.notifies[i].set(&n.Version, &n.CreatedAt, &n.UpdatedAt)
	}
	s.hooks.call(c)
	return nil
}

// stamps are a batch's stamps, aligned with its slices.
type stamps struct {
	merchants, creates, updates, sessions, notifies []stamp
}

func newStamps(b *sandbox.Batch) stamps {
	return stamps{
		merchants: make([]stamp, len(b.Merchants)), creates: make([]stamp, len(b.Creates)),
		updates: make([]stamp, len(b.Updates)), sessions: make([]stamp, len(b.Sessions)),
		notifies: make([]stamp, len(b.Notifications)),
	}
}

// docs are a batch's JSON documents, aligned with its slices; encoded
// before the transaction, so that it holds its locks for SQL only.
type docs struct {
	merchants, sessions, notifies [][]byte
}

func encodeBatch(b *sandbox.Batch) (docs, error) {
	var d docs
	var err error
	if d.merchants, err = encodeAll("/merchants", b.Merchants); err != nil {
		return d, err
	}
	if d.sessions, err = encodeAll("/sessions", b.Sessions); err != nil {
		return d, err
	}
	d.notifies, err = encodeAll("/notifications", b.Notifications)
	return d, err
}

func (w *wtx) apply(b *sandbox.Batch, d docs, st *stamps) error {
	for i, m := range b.Merchants {
		if err := w.putMerchant(m, d.merchants[i], &st.merchants[i]); err != nil {
			return err
		}
	}
	for i, r := range b.Creates {
		if err := w.insertRecord(r, &st.creates[i]); err != nil {
			return err
		}
	}
	for i, r := range b.Updates {
		var err error
		if r.Version == 0 {
			err = w.insertRecord(r, &st.updates[i])
		} else {
			err = w.updateRecord(r, &st.updates[i])
		}
		if err != nil {
			return err
		}
	}
	for i, x := range b.Sessions {
		err := w.put(versioned{what: "session", table: "sessions", id: x.ID, version: x.Version, st: &st.sessions[i],
			// A write ends the lease of a claim, as for notifications.
			cols: []string{"mchid", "product", "state", "due_at", "doc", "lease_owner", "lease_until"},
			vals: []any{x.MchID, x.Product, string(x.State), storedoc.Nanos(x.DueAt), d.sessions[i], "", 0}})
		if err != nil {
			return err
		}
	}
	for i, n := range b.Notifications {
		err := w.put(versioned{what: "notification", table: "notifications", id: n.ID, version: n.Version, st: &st.notifies[i],
			// A write ends the lease of a claim: the attempt's outcome or an
			// admin's change is in, and the notification is anyone's when
			// it is due again.
			cols: []string{"mchid", "product", "ref", "state", "due_at", "doc", "lease_owner", "lease_until"},
			vals: []any{n.MchID, n.Product, n.Ref, string(n.State), storedoc.Nanos(n.DueAt), d.notifies[i], "", 0}})
		if err != nil {
			return err
		}
	}
	return nil
}

// putMerchant writes a merchant as it is (Version 0: created or replaced)
// or, with a Version, updates it if that version is still current
// (compare-and-swap).
func (w *wtx) putMerchant(m *sandbox.Merchant, doc []byte, st *stamp) error {
	if m.Version == 0 {
		created := storedoc.Nanos(m.CreatedAt)
		if created == 0 {
			created = w.now
		}
		return w.tx.QueryRow(w.ctx, `INSERT INTO merchants (mchid, version, created, updated, platform_private_key_pem, token, doc)
			VALUES ($1, 1, $2, $3, $4, $5, $6)
			ON CONFLICT (mchid) DO UPDATE SET version = merchants.version + 1, updated = excluded.updated,
				platform_private_key_pem = excluded.platform_private_key_pem, token = excluded.token, doc = excluded.doc
			RETURNING created, version`, m.MchID, created, w.now, m.PlatformPrivateKeyPEM, m.Token, doc).
			Scan(&st.created, &st.version)
	}
	err := w.tx.QueryRow(w.ctx, `UPDATE merchants SET version = version + 1, updated = $1,
			platform_private_key_pem = $2, token = $3, doc = $4
		WHERE mchid = $5 AND version = $6 RETURNING created, version`,
		w.now, m.PlatformPrivateKeyPEM, m.Token, doc, m.MchID, m.Version).Scan(&st.created, &st.version)
	if errors.Is(err, pgx.ErrNoRows) {
		return w.casFailure(fmt.Sprintf("merchant %q", m.MchID), m.Version,
			`SELECT version FROM merchants WHERE mchid = $1`, m.MchID)
	}
	return err
}

func (w *wtx) insertRecord(r *sandbox.Record, st *stamp) error {
	aliases := r.UniqueAliases()
	tag, err := w.tx.Exec(w.ctx, `INSERT INTO records (kind, mchid, key, aliases, version, data, created, updated)
		VALUES ($1, $2, $3, $4, 1, $5, $6, $6) ON CONFLICT DO NOTHING`,
		r.Kind, r.MchID, r.Key, aliases, []byte(r.Data), w.now)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return sandbox.Errorf(sandbox.CodeConflict, "record %s %q of merchant %q already exists", r.Kind, r.Key, r.MchID)
	}
	for _, a := range aliases {
		if err := w.addAlias(r, a); err != nil {
			return err
		}
	}
	*st = stamp{version: 1, created: w.now, updated: w.now}
	return nil
}

// addAlias claims an alias for the record; an alias the record already
// owns is not a conflict. ON CONFLICT DO NOTHING waits for a concurrent
// transaction inserting the same alias and then sees its outcome.
func (w *wtx) addAlias(r *sandbox.Record, alias string) error {
	tag, err := w.tx.Exec(w.ctx, `INSERT INTO record_aliases (kind, mchid, alias, key) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, r.Kind, r.MchID, alias, r.Key)
	if err != nil {
		return err
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var key string
	if err := w.tx.QueryRow(w.ctx, `SELECT key FROM record_aliases WHERE kind = $1 AND mchid = $2 AND alias = $3`,
		r.Kind, r.MchID, alias).Scan(&key); err != nil {
		return err
	}
	if key == r.Key {
		return nil
	}
	return sandbox.Errorf(sandbox.CodeConflict, "alias %q of %s is already taken by another record of merchant %q", alias, r.Kind, r.MchID)
}

// updateRecord updates r if its version is current and adds its new
// aliases. Under READ COMMITTED a concurrent update of the row makes this
// UPDATE wait and then re-check the version on the row it committed, so
// exactly one of two updates from the same version wins.
func (w *wtx) updateRecord(r *sandbox.Record, st *stamp) error {
	var have []string
	err := w.tx.QueryRow(w.ctx, `UPDATE records SET version = version + 1, data = $1, updated = $2
		WHERE kind = $3 AND mchid = $4 AND key = $5 AND version = $6 RETURNING created, aliases`,
		[]byte(r.Data), w.now, r.Kind, r.MchID, r.Key, r.Version).Scan(&st.created, &have)
	if errors.Is(err, pgx.ErrNoRows) {
		return w.casFailure(fmt.Sprintf("record %s %q of merchant %q", r.Kind, r.Key, r.MchID), r.Version,
			`SELECT version FROM records WHERE kind = $1 AND mchid = $2 AND key = $3`, r.Kind, r.MchID, r.Key)
	}
	if err != nil {
		return err
	}
	st.version, st.updated = r.Version+1, w.now
	n := len(have)
	for _, a := range r.UniqueAliases() {
		if slices.Contains(have, a) {
			continue
		}
		if err := w.addAlias(r, a); err != nil {
			return err
		}
		have = append(have, a)
	}
	if len(have) == n {
		return nil
	}
	_, err = w.tx.Exec(w.ctx, `UPDATE records SET aliases = $1 WHERE kind = $2 AND mchid = $3 AND key = $4`,
		have, r.Kind, r.MchID, r.Key)
	return err
}

// casFailure explains a compare-and-swap update that matched no row: the
// object is missing (CodeNotFound) or its version moved on (CodeConflict).
func (w *wtx) casFailure(what string, want int64, query string, key ...any) error {
	var have int64
	err := w.tx.QueryRow(w.ctx, query, key...).Scan(&have)
	if errors.Is(err, pgx.ErrNoRows) {
		return sandbox.Errorf(sandbox.CodeNotFound, "%s not found", what)
	}
	if err != nil {
		return err
	}
	return sandbox.Errorf(sandbox.CodeConflict, "%s was changed concurrently: version %d is stale, the store has %d",
		what, want, have)
}

// versioned is an object stored by id with a version: its table, the
// columns it writes beside id, version and times, and where its stamp goes.
type versioned struct {
	what, table, id string
	version         int64
	st              *stamp
	cols            []string
	vals            []any
}

// put inserts the object (version 0) or updates it if its version is still
// v.version (compare-and-swap).
func (w *wtx) put(v versioned) error {
	if v.version == 0 {
		q := "INSERT INTO " + v.table + " (id, version, created, updated"
		vals := "$1, 1, $2, $2"
		args := []any{v.id, w.now}
		for i, c := range v.cols {
			q += ", " + c
			vals += fmt.Sprintf(", $%d", i+3)
		}
		tag, err := w.tx.Exec(w.ctx, q+") VALUES ("+vals+") ON CONFLICT DO NOTHING", append(args, v.vals...)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sandbox.Errorf(sandbox.CodeConflict, "%s %q already exists", v.what, v.id)
		}
		*v.st = stamp{version: 1, created: w.now, updated: w.now}
		return nil
	}
	q := "UPDATE " + v.table + " SET version = version + 1, updated = $3"
	for i, c := range v.cols {
		q += fmt.Sprintf(", %s = $%d", c, i+4)
	}
	q += " WHERE id = $1 AND version = $2 RETURNING created"
	err := w.tx.QueryRow(w.ctx, q, append([]any{v.id, v.version, w.now}, v.vals...)...).Scan(&v.st.created)
	if errors.Is(err, pgx.ErrNoRows) {
		return w.casFailure(fmt.Sprintf("%s %q", v.what, v.id), v.version,
			"SELECT version FROM "+v.table+" WHERE id = $1", v.id)
	}
	if err != nil {
		return err
	}
	v.st.version, v.st.updated = v.version+1, w.now
	return nil
}
