package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// The writer's statements, prepared once on the write connection.
const (
	wSavepoint = iota
	wRelease
	wRollbackTo
	wMerchantUpsert
	wMerchantUpdate
	wMerchantVersion
	wRecordInsert
	wRecordUpdate
	wRecordVersion
	wRecordSetAliases
	wAliasInsert
	wAliasOwner
	wSessionInsert
	wSessionUpdate
	wSessionVersion
	wNotifyInsert
	wNotifyUpdate
	wNotifyVersion
	wJournalInsert
	wPruneKeep
	wPruneBefore
	wPruneUpTo
	numWriteStmts
)

// Inserts use ON CONFLICT DO NOTHING and look at the rows affected: a
// duplicate is an expected outcome (CodeConflict), not an error to parse.
var writeSQL = [numWriteStmts]string{
	wSavepoint:  "SAVEPOINT batch",
	wRelease:    "RELEASE batch",
	wRollbackTo: "ROLLBACK TO batch",
	wMerchantUpsert: `INSERT INTO merchants (mchid, created, updated, platform_private_key_pem, token, json)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (mchid) DO UPDATE SET updated = excluded.updated,
			platform_private_key_pem = excluded.platform_private_key_pem, token = excluded.token, json = excluded.json,
			version = merchants.version + 1
		RETURNING created, version`,
	wMerchantUpdate: `UPDATE merchants SET updated = ?, platform_private_key_pem = ?, token = ?, json = ?, version = version + 1
		WHERE mchid = ? AND version = ? RETURNING created, version`,
	wMerchantVersion: `SELECT version FROM merchants WHERE mchid = ?`,
	wRecordInsert: `INSERT INTO records (kind, mchid, key, aliases, version, data, created, updated)
		VALUES (?, ?, ?, ?, 1, ?, ?, ?) ON CONFLICT DO NOTHING`,
	wRecordUpdate: `UPDATE records SET version = version + 1, data = ?, updated = ?
		WHERE kind = ? AND mchid = ? AND key = ? AND version = ? RETURNING created, aliases`,
	wRecordVersion:    `SELECT version FROM records WHERE kind = ? AND mchid = ? AND key = ?`,
	wRecordSetAliases: `UPDATE records SET aliases = ? WHERE kind = ? AND mchid = ? AND key = ?`,
	wAliasInsert: `INSERT INTO record_aliases (kind, alias, mchid, key) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
	wAliasOwner: `SELECT key FROM record_aliases WHERE kind = ? AND mchid = ? AND alias = ?`,
	// journal_from: every exchange journalled later has a greater id
	// (QueryJournal).
	wSessionInsert: `INSERT INTO sessions (id, mchid, product, state, due_at, created, updated, version, json, journal_from)
		VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, (SELECT coalesce(max(id), 0) FROM journal)) ON CONFLICT DO NOTHING`,
	wSessionUpdate: `UPDATE sessions SET mchid = ?, product = ?, state = ?, due_at = ?, updated = ?,
		version = version + 1, json = ? WHERE id = ? AND version = ?`,
	wSessionVersion: `SELECT version FROM sessions WHERE id = ?`,
	wNotifyInsert: `INSERT INTO notifications (id, mchid, product, ref, state, due_at, created, updated, version, json, journal_from)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, (SELECT coalesce(max(id), 0) FROM journal)) ON CONFLICT DO NOTHING`,
	wNotifyUpdate: `UPDATE notifications SET mchid = ?, product = ?, ref = ?, state = ?, due_at = ?, updated = ?,
		version = version + 1, json = ? WHERE id = ? AND version = ?`,
	wNotifyVersion: `SELECT version FROM notifications WHERE id = ?`,
	wJournalInsert: `INSERT INTO journal (time, mchid, product, session_id, notify_id, direction, json)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
	// Ids grow and only the oldest entries are ever deleted, so the newest
	// keep entries are those above max(id) - keep. Each statement deletes
	// at most pruneChunk rows: PruneJournal repeats it, so that no single
	// transaction holds the writer for long.
	// Each returns the bytes of the documents it deleted, for the byte
	// bound's running total (journalbytes.go).
	wPruneKeep: `DELETE FROM journal WHERE id IN (
		SELECT id FROM journal WHERE id <= (SELECT max(id) FROM journal) - ?1 ORDER BY id LIMIT ?2) RETURNING length(json)`,
	// By age, among the oldest ids: an exchange is journalled when it
	// ends, so times grow with ids but for one that took long (a long
	// poll) among quick ones. PruneJournal stops at the first chunk of
	// the oldest with nothing older than before; such a straggler goes
	// with the next chunk, a little later than its age says.
	wPruneBefore: `DELETE FROM journal WHERE id IN (
		SELECT id FROM (SELECT id, time FROM journal ORDER BY id LIMIT ?2) WHERE time < ?1) RETURNING length(json)`,
	wPruneUpTo: `DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE id <= ?1 ORDER BY id LIMIT ?2) RETURNING length(json)`,
}

// op states: the caller and the writer race to move an op out of queued, so
// that an op is either abandoned before the writer touches it (its caller
// got ctx.Err and nothing was written) or applied while its caller waits.
const (
	opQueued int32 = iota
	opRunning
	opAbandoned
)

// stamp is what the store sets on an object once its batch has committed.
type stamp struct {
	version          int64
	created, updated int64
}

// op is one Commit, AppendExchanges or PruneJournal on its way through the
// writer. JSON is encoded by the caller, in parallel, before it is queued;
// the writer only runs SQL.
type op struct {
	state atomic.Int32
	done  chan error

	// A Commit: JSON documents and record aliases (deduplicated) aligned
	// with the batch's slices, and the stamps to set once committed.
	batch                            *sandbox.Batch
	merchants, sessions, notifies    [][]byte
	createAliases, updateAliases     [][]string
	createAliasJSON, updateAliasJSON [][]byte
	mStamps, cStamps, uStamps        []stamp
	sStamps, nStamps                 []stamp
	// written is every record as committed, for the record cache.
	written []*sandbox.Record

	xs    []*sandbox.Exchange
	xjson [][]byte
	ids   []int64

	probe bool // ProbeWrite

	prune    bool
	keep     int
	before   int64
	maxBytes int64 // the byte bound of the journal (journalbytes.go)
	pruned   int
	// jdelta is what the op changed the journal's stored bytes by.
	jdelta int64

	err error
}

// opPool reuses ops: the jump path queues two or three a request.
var opPool = sync.Pool{New: func() any { return &op{done: make(chan error, 1)} }}

func newOp() *op { return opPool.Get().(*op) }

// recycle returns o to the pool once its caller has read its outcome: the
// writer let go of it when it sent on done. Only a caller whose submit
// succeeded recycles; an abandoned op may still sit in the queue.
func (o *op) recycle() {
	done := o.done
	*o = op{done: done}
	opPool.Put(o)
}

// submit queues o and waits for its outcome. A cancelled ctx abandons o if
// the writer has not started it (nothing was written); once started, the
// caller waits, which is short and gives it a definite answer.
func (s *Store) submit(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return s.fail("commit", err)
	}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return errClosed()
	}
	select {
	case s.queue <- o:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return s.fail("commit", ctx.Err())
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opAbandoned) {
			return s.fail("commit", ctx.Err())
		}
		return <-o.done
	}
}

// writeLoop is the single writer: it takes every op queued at the moment,
// up to groupMax, and commits them in one transaction. Before it starts
// the transaction it yields its processor a few times (gather), so that
// the request handlers that are about to commit share the transaction
// instead of each paying a COMMIT (its WAL frames, a write system call per
// page) and a BEGIN of their own.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	group := make([]*op, 0, groupMax)
	w := &wtx{s: s}
	for o := range s.queue {
		group = s.gather(append(group[:0], o))
		w.run(group)
		clear(group)
	}
}

// gather adds to group the ops that come while the writer yields its
// processor up to maxYields times: the handlers ready to run queue their
// commits meanwhile. It never waits on a timer: under a closed loop of
// callers (each waits for its commit before it sends again) a wait for
// more company idles the processors — a 2 ms linger for ops less than
// 250 µs apart cut the bench's jump rate by a fifth (docs/PERFORMANCE.md,
// issue 15) — while a group that goes at once lets the next group's
// handlers run beside its commit.
func (s *Store) gather(group []*op) []*op {
	for yields := 0; len(group) < groupMax; {
		before := len(group)
		group = s.drain(group)
		if len(group) == before {
			if yields == maxYields {
				break
			}
			yields++
			runtime.Gosched()
		}
	}
	return group
}

// drain appends the ops queued at the moment to group, up to groupMax.
func (s *Store) drain(group []*op) []*op {
	for len(group) < groupMax {
		select {
		case o, ok := <-s.queue:
			if !ok {
				return group
			}
			group = append(group, o)
		default:
			return group
		}
	}
	return group
}

// maxYields bounds how often the writer yields before a group commit: on
// the bench's jump path (16 connections, 2 cores) groups grew from about 2
// ops to about 6-7 with 2 to 4 yields (docs/PERFORMANCE.md, issue 15).
const maxYields = 4

// wtx is one group transaction and the statements bound to it.
type wtx struct {
	s   *Store
	tx  *sql.Tx
	st  [numWriteStmts]*sql.Stmt
	now int64
	// pending is what the ops applied so far in this transaction changed
	// the journal's stored bytes by.
	pending int64
}

func (w *wtx) stmt(i int) *sql.Stmt {
	if w.st[i] == nil {
		w.st[i] = w.tx.Stmt(w.s.wstmts[i])
	}
	return w.st[i]
}

func (w *wtx) exec(i int, args ...any) (sql.Result, error) { return w.stmt(i).Exec(args...) }

// affected runs an insert and reports whether it inserted a row.
func (w *wtx) affected(i int, args ...any) (bool, error) {
	res, err := w.exec(i, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// run commits one group. Each op runs inside its own savepoint, so a
// conflict rolls back that op alone; an error that breaks the transaction
// itself fails the whole group.
func (w *wtx) run(group []*op) {
	running := group[:0:0]
	for _, o := range group {
		if o.state.CompareAndSwap(opQueued, opRunning) {
			running = append(running, o)
		}
	}
	if len(running) == 0 {
		return
	}
	fatal := w.apply(running)
	w.tx, w.st = nil, [numWriteStmts]*sql.Stmt{}
	if fatal != nil {
		w.s.log.Error("store_commit_failed", "batches", len(running), "error", fatal.Error())
	}
	for _, o := range running {
		if fatal != nil {
			o.err = fatal
		}
		o.done <- o.err
	}
}

func (w *wtx) apply(running []*op) error {
	all := running
	tx, err := w.s.wdb.Begin()
	if err != nil {
		return w.s.fail("begin", err)
	}
	w.tx, w.pending = tx, 0
	if err := w.countJournal(running); err != nil {
		tx.Rollback()
		return err
	}
	if len(running) == 1 {
		// Alone in its transaction, an op needs no savepoint: when it fails
		// the whole transaction is rolled back.
		o := running[0]
		w.now = time.Now().UnixNano()
		if o.err = w.applyOp(o); o.err != nil {
			tx.Rollback()
			return nil
		}
		running = nil
	}
	for _, o := range running {
		w.now = time.Now().UnixNano()
		if o.oneStatement() {
			// SQLite applies a statement whole or not at all: a conflict
			// or a stale version leaves nothing of o written. Any other
			// failure may have ended the transaction (a full disk), so it
			// fails the group, as a failed ROLLBACK TO would.
			if o.err = w.applyOp(o); o.err != nil && !sandbox.IsCode(o.err, sandbox.CodeConflict) && !sandbox.IsCode(o.err, sandbox.CodeNotFound) {
				tx.Rollback()
				return o.err
			}
			continue
		}
		if _, err := w.exec(wSavepoint); err != nil {
			tx.Rollback()
			return w.s.fail("savepoint", err)
		}
		if o.err = w.applyOp(o); o.err != nil {
			// After some errors (a full disk) SQLite has already rolled the
			// whole transaction back; then this fails and so does the group.
			if _, err := w.exec(wRollbackTo); err != nil {
				tx.Rollback()
				return w.s.fail("rollback", err)
			}
		} else {
			w.pending += o.jdelta
		}
		if _, err := w.exec(wRelease); err != nil {
			tx.Rollback()
			return w.s.fail("release", err)
		}
	}
	// The record cache stops answering for what this transaction wrote
	// before the file shows it, and has the new versions before any caller
	// hears of the commit (cache.go).
	var written []*sandbox.Record
	for _, o := range all {
		if o.err == nil {
			written = append(written, o.written...)
		}
	}
	w.s.records.commit(written)
	err = tx.Commit()
	w.s.records.committed(written, err == nil)
	if err != nil {
		w.s.journalBytes.known = false // count again rather than drift
		return w.s.fail("commit", err)
	}
	for _, o := range all {
		if o.err == nil {
			w.s.journalBytes.held += o.jdelta
		}
	}
	if c := w.s.ckpt; c != nil {
		c.commits.Add(1)
		if c.wanted.CompareAndSwap(true, false) {
			// See checkpointer: the rest of a checkpoint, so that the WAL
			// can start over.
			if _, err := w.s.wdb.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				w.s.log.Warn("store_checkpoint_failed", "error", err.Error())
			}
		}
	}
	return nil
}

// oneStatement reports whether o writes with a single statement — one
// merchant, session or notification (a record has its aliases too) —, so
// that it needs no savepoint of its own in a group: the session insert and
// the resolution of the jump path.
func (o *op) oneStatement() bool {
	b := o.batch
	return b != nil && len(b.Creates)+len(b.Updates) == 0 && len(b.Merchants)+len(b.Sessions)+len(b.Notifications) == 1
}

func (w *wtx) applyOp(o *op) error {
	switch {
	case o.batch != nil:
		return w.applyBatch(o)
	case o.prune:
		return w.applyPrune(o)
	case o.probe:
		return w.applyProbe()
	default:
		return w.applyExchanges(o)
	}
}

func (w *wtx) applyBatch(o *op) error {
	b := o.batch
	for i, m := range b.Merchants {
		if err := w.putMerchant(m, o.merchants[i], &o.mStamps[i]); err != nil {
			return err
		}
	}
	for i, r := range b.Creates {
		if err := w.insertRecord(r, o.createAliases[i], o.createAliasJSON[i], &o.cStamps[i]); err != nil {
			return err
		}
		o.wrote(r, o.createAliases[i], o.cStamps[i])
	}
	for i, r := range b.Updates {
		aliases, err := o.updateAliases[i], error(nil)
		if r.Version == 0 {
			err = w.insertRecord(r, aliases, o.updateAliasJSON[i], &o.uStamps[i])
		} else {
			aliases, err = w.updateRecord(r, aliases, &o.uStamps[i])
		}
		if err != nil {
			return err
		}
		o.wrote(r, aliases, o.uStamps[i])
	}
	for i, x := range b.Sessions {
		if err := w.putSession(x, o.sessions[i], &o.sStamps[i]); err != nil {
			return err
		}
	}
	for i, n := range b.Notifications {
		if err := w.putNotification(n, o.notifies[i], &o.nStamps[i]); err != nil {
			return err
		}
	}
	return nil
}

// putMerchant writes a merchant as it is (Version 0) or, with a Version,
// updates it if that version is still current (compare-and-swap).
func (w *wtx) putMerchant(m *sandbox.Merchant, doc []byte, st *stamp) error {
	if m.Version == 0 {
		created := storedoc.Nanos(m.CreatedAt)
		if created == 0 {
			created = w.now
		}
		err := w.stmt(wMerchantUpsert).QueryRow(m.MchID, created, w.now, m.PlatformPrivateKeyPEM, m.Token, doc).
			Scan(&st.created, &st.version)
		if err != nil {
			return w.s.fail("upsert merchant", err)
		}
		return nil
	}
	err := w.stmt(wMerchantUpdate).QueryRow(w.now, m.PlatformPrivateKeyPEM, m.Token, doc, m.MchID, m.Version).
		Scan(&st.created, &st.version)
	if errors.Is(err, sql.ErrNoRows) {
		return w.casFailure(wMerchantVersion, fmt.Sprintf("merchant %q", m.MchID), m.Version, m.MchID)
	}
	if err != nil {
		return w.s.fail("update merchant", err)
	}
	return nil
}

// wrote notes a record as committed (aliases: all it owns now), for the
// record cache.
func (o *op) wrote(r *sandbox.Record, aliases []string, st stamp) {
	c := *r
	c.Aliases = nil
	if len(aliases) > 0 {
		c.Aliases = aliases
	}
	st.set(&c.Version, &c.CreatedAt, &c.UpdatedAt)
	o.written = append(o.written, &c)
}

func (w *wtx) insertRecord(r *sandbox.Record, aliases []string, aliasJSON []byte, st *stamp) error {
	ok, err := w.affected(wRecordInsert, r.Kind, r.MchID, r.Key, aliasJSON, []byte(r.Data), w.now, w.now)
	if err != nil {
		return w.s.fail("insert record", err)
	}
	if !ok {
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
// owns is not a conflict.
func (w *wtx) addAlias(r *sandbox.Record, alias string) error {
	ok, err := w.affected(wAliasInsert, r.Kind, alias, r.MchID, r.Key)
	if err != nil {
		return w.s.fail("insert alias", err)
	}
	if ok {
		return nil
	}
	var key string
	if err := w.stmt(wAliasOwner).QueryRow(r.Kind, r.MchID, alias).Scan(&key); err != nil {
		return w.s.fail("find alias", err)
	}
	if key == r.Key {
		return nil
	}
	return sandbox.Errorf(sandbox.CodeConflict, "alias %q of %s is already taken by another record of merchant %q", alias, r.Kind, r.MchID)
}

// updateRecord updates r if its version is current and adds its new
// aliases, returning every alias the record owns now.
func (w *wtx) updateRecord(r *sandbox.Record, aliases []string, st *stamp) ([]string, error) {
	var stored []byte
	err := w.stmt(wRecordUpdate).QueryRow([]byte(r.Data), w.now, r.Kind, r.MchID, r.Key, r.Version).Scan(&st.created, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, w.casFailure(wRecordVersion, fmt.Sprintf("record %s %q of merchant %q", r.Kind, r.Key, r.MchID), r.Version,
			r.Kind, r.MchID, r.Key)
	}
	if err != nil {
		return nil, w.s.fail("update record", err)
	}
	st.version, st.updated = r.Version+1, w.now
	var have []string
	if err := json.Unmarshal(stored, &have); err != nil {
		return nil, w.s.fail("decode aliases", err)
	}
	n := len(have)
	for _, a := range aliases {
		if slices.Contains(have, a) {
			continue
		}
		if err := w.addAlias(r, a); err != nil {
			return nil, err
		}
		have = append(have, a)
	}
	if len(have) == n {
		return have, nil
	}
	all, err := json.Marshal(have)
	if err != nil {
		return nil, w.s.fail("encode aliases", err)
	}
	if _, err := w.exec(wRecordSetAliases, all, r.Kind, r.MchID, r.Key); err != nil {
		return nil, w.s.fail("update aliases", err)
	}
	return have, nil
}

// casFailure explains a compare-and-swap update that matched no row: the
// object is missing (CodeNotFound) or its version moved on (CodeConflict).
func (w *wtx) casFailure(versionStmt int, what string, want int64, key ...any) error {
	var have int64
	err := w.stmt(versionStmt).QueryRow(key...).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) {
		return sandbox.Errorf(sandbox.CodeNotFound, "%s not found", what)
	}
	if err != nil {
		return w.s.fail("read version", err)
	}
	return sandbox.Errorf(sandbox.CodeConflict, "%s was changed concurrently: version %d is stale, the store has %d",
		what, want, have)
}

// putSession and putNotification box only the arguments of the statement
// they run: these are the jump path's writes.
func (w *wtx) putSession(x *sandbox.Session, doc []byte, st *stamp) error {
	v := versioned{what: "session", id: x.ID, version: x.Version, created: storedoc.Nanos(x.CreatedAt), st: st,
		insert: wSessionInsert, update: wSessionUpdate, current: wSessionVersion}
	if v.version == 0 {
		return w.insert(v, x.ID, x.MchID, x.Product, string(x.State), storedoc.Nanos(x.DueAt), w.now, w.now, doc)
	}
	return w.update(v, x.MchID, x.Product, string(x.State), storedoc.Nanos(x.DueAt), w.now, doc, x.ID, x.Version)
}

func (w *wtx) putNotification(n *sandbox.Notification, doc []byte, st *stamp) error {
	v := versioned{what: "notification", id: n.ID, version: n.Version, created: storedoc.Nanos(n.CreatedAt), st: st,
		insert: wNotifyInsert, update: wNotifyUpdate, current: wNotifyVersion}
	if v.version == 0 {
		return w.insert(v, n.ID, n.MchID, n.Product, n.Ref, string(n.State), storedoc.Nanos(n.DueAt), w.now, w.now, doc)
	}
	return w.update(v, n.MchID, n.Product, n.Ref, string(n.State), storedoc.Nanos(n.DueAt), w.now, doc, n.ID, n.Version)
}

// versioned describes an object stored by id with a version (and created
// at created, as the caller read it): its statements and where its stamp
// goes.
type versioned struct {
	what, id                string
	version, created        int64
	st                      *stamp
	insert, update, current int
}

// insert stores a new object (version 0).
func (w *wtx) insert(v versioned, args ...any) error {
	ok, err := w.affected(v.insert, args...)
	if err != nil {
		return w.s.fail("insert "+v.what, err)
	}
	if !ok {
		return sandbox.Errorf(sandbox.CodeConflict, "%s %q already exists", v.what, v.id)
	}
	*v.st = stamp{version: 1, created: w.now, updated: w.now}
	return nil
}

// update updates the object if its version is still v.version
// (compare-and-swap).
func (w *wtx) update(v versioned, args ...any) error {
	// No RETURNING: SQLite gathers a RETURNING clause's rows in a temporary
	// table first. The version matching proves the row is the one the
	// caller read, so its creation time is the caller's.
	ok, err := w.affected(v.update, args...)
	if err != nil {
		return w.s.fail("update "+v.what, err)
	}
	if !ok {
		return w.casFailure(v.current, fmt.Sprintf("%s %q", v.what, v.id), v.version, v.id)
	}
	*v.st = stamp{version: v.version + 1, created: v.created, updated: w.now}
	return nil
}

func (w *wtx) applyExchanges(o *op) error {
	for i, x := range o.xs {
		res, err := w.exec(wJournalInsert, storedoc.Nanos(x.Time), x.MchID, x.Product, x.SessionID, x.NotifyID, x.Direction, o.xjson[i])
		if err != nil {
			return w.s.fail("append exchange", err)
		}
		if o.ids[i], err = res.LastInsertId(); err != nil {
			return w.s.fail("append exchange", err)
		}
		o.jdelta += int64(len(o.xjson[i]))
	}
	return nil
}

func (w *wtx) applyPrune(o *op) error {
	for _, p := range []struct {
		on   bool
		stmt int
		arg  int64
	}{{o.keep > 0, wPruneKeep, int64(o.keep)}, {o.before != 0, wPruneBefore, o.before}} {
		if !p.on {
			continue
		}
		if err := w.deleteJournal(o, p.stmt, p.arg); err != nil {
			return err
		}
	}
	return w.pruneBytes(o)
}
