package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
)

// migrations[i] brings the schema from version i to i+1; PRAGMA user_version
// holds the version reached. Append, never edit: a database in the field
// has run the old steps.
//
// Times are UTC unix nanoseconds (0 for the zero time). Each object is kept
// whole as JSON beside the columns that filters and ordering need; the
// columns win where both hold a value (version, times).
var migrations = []string{
	`
CREATE TABLE IF NOT EXISTS merchants (
	mchid   TEXT PRIMARY KEY,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	-- not in json: these fields are json:"-" so that they are never rendered
	platform_private_key_pem TEXT NOT NULL DEFAULT '',
	token   TEXT NOT NULL DEFAULT '',
	json    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
	kind    TEXT NOT NULL,
	mchid   TEXT NOT NULL,
	key     TEXT NOT NULL,
	aliases BLOB NOT NULL DEFAULT '[]',
	version INTEGER NOT NULL,
	data    BLOB,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	UNIQUE (kind, mchid, key)
);
CREATE TABLE IF NOT EXISTS record_aliases (
	kind  TEXT NOT NULL,
	alias TEXT NOT NULL,
	mchid TEXT NOT NULL,
	key   TEXT NOT NULL,
	PRIMARY KEY (kind, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
	id      TEXT PRIMARY KEY,
	mchid   TEXT NOT NULL,
	product TEXT NOT NULL,
	state   TEXT NOT NULL,
	due_at  INTEGER NOT NULL,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	version INTEGER NOT NULL,
	json    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_due ON sessions (mchid, state, due_at);
CREATE TABLE IF NOT EXISTS notifications (
	id      TEXT PRIMARY KEY,
	mchid   TEXT NOT NULL,
	product TEXT NOT NULL,
	ref     TEXT NOT NULL,
	state   TEXT NOT NULL,
	due_at  INTEGER NOT NULL,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	version INTEGER NOT NULL,
	json    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (mchid, state, due_at);
CREATE INDEX IF NOT EXISTS notifications_ref ON notifications (ref);
-- AUTOINCREMENT: ids are never reused after a prune, so AfterID paging
-- and the live stream never see an old id again.
CREATE TABLE IF NOT EXISTS journal (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	time       INTEGER NOT NULL,
	mchid      TEXT NOT NULL,
	product    TEXT NOT NULL,
	session_id TEXT NOT NULL,
	notify_id  TEXT NOT NULL,
	direction  TEXT NOT NULL,
	json       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_mchid ON journal (mchid);
-- partial: most exchanges have no session or notification, and queries
-- repeat the "<> ''" term so that the planner may use these.
CREATE INDEX IF NOT EXISTS journal_session ON journal (session_id) WHERE session_id <> '';
CREATE INDEX IF NOT EXISTS journal_notify ON journal (notify_id) WHERE notify_id <> '';
CREATE INDEX IF NOT EXISTS journal_time ON journal (time);
`,
	// 2: aliases are unique per kind and merchant, no longer across
	// merchants, so products stop writing the merchant into them: the
	// repayment user's "<mchid>/plate/…" and "<mchid>/trade/…" and the
	// issuer order's "wechatSignNo:<mchid>:…" lose it, in the alias table
	// and in each record's list.
	`
CREATE TABLE record_aliases_v2 (
	kind  TEXT NOT NULL,
	mchid TEXT NOT NULL,
	alias TEXT NOT NULL,
	key   TEXT NOT NULL,
	PRIMARY KEY (kind, mchid, alias)
) WITHOUT ROWID;
INSERT INTO record_aliases_v2 (kind, mchid, alias, key)
	SELECT kind, mchid, CASE
		WHEN kind = 'repayment.user' AND substr(alias, 1, length(mchid) + 1) = mchid || '/'
			THEN substr(alias, length(mchid) + 2)
		WHEN kind = 'issuer.order' AND substr(alias, 1, length(mchid) + 14) = 'wechatSignNo:' || mchid || ':'
			THEN 'wechatSignNo:' || substr(alias, length(mchid) + 15)
		ELSE alias END, key
	FROM record_aliases;
DROP TABLE record_aliases;
ALTER TABLE record_aliases_v2 RENAME TO record_aliases;
UPDATE records SET aliases = (
	SELECT json_group_array(a.alias) FROM record_aliases a
	WHERE a.kind = records.kind AND a.mchid = records.mchid AND a.key = records.key)
	WHERE kind IN ('repayment.user', 'issuer.order');
`,
	// 3: merchants carry a version for compare-and-swap, so that two
	// concurrent changes to one merchant (a scenario, a PATCH, a clock
	// advance) are never lost.
	`
ALTER TABLE merchants ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
`,
	// 4: the journal's time index goes: only pruning by age read it, and
	// that now walks the oldest ids (writer.go, wPruneBefore). One B-tree
	// and one WAL page less per commit on the jump path.
	`
DROP INDEX IF EXISTS journal_time;
`,
	// 5: the write probe's row (health.go).
	`
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, pad BLOB NOT NULL);
`,
	// 6: fewer B-trees per commit on the jump path (docs/PERFORMANCE.md,
	// issue 15). The due indexes hold pending objects only, so that a
	// resolution or a delivery deletes one entry instead of moving it. The
	// journal's three secondary indexes become one, by merchant, that
	// carries each entry's session and notification: an exchange enters
	// one index instead of two. A session's or notification's entries are
	// read from it under each merchant, from journal_from on: the
	// journal's last id when the object was stored (0 for the objects
	// stored before this version, which are looked up in the whole index).
	`
DROP INDEX IF EXISTS sessions_due;
CREATE INDEX sessions_pending ON sessions (mchid, due_at) WHERE state = 'pending';
DROP INDEX IF EXISTS notifications_due;
CREATE INDEX notifications_pending ON notifications (mchid, due_at) WHERE state = 'pending';
DROP INDEX IF EXISTS journal_mchid;
DROP INDEX IF EXISTS journal_session;
DROP INDEX IF EXISTS journal_notify;
CREATE INDEX journal_merchant ON journal (mchid, id, session_id, notify_id);
ALTER TABLE sessions ADD COLUMN journal_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN journal_from INTEGER NOT NULL DEFAULT 0;
`,
}

// migrate applies the migrations the database has not run, in one
// transaction, so that a crash leaves the previous version intact, and
// proves the database writable.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this build's %d; use a newer mpsandbox", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
	}
	// Written even when unchanged: a write is how a read-only file (which
	// SQLite silently opens read-only) is refused now rather than at the
	// first Commit. PRAGMA takes no bound parameters; the value is ours.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if v < len(migrations) {
		log.Info("store_migrated", "from_version", v, "to_version", len(migrations))
	}
	return nil
}
