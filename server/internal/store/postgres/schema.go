package postgres

import (
	"context"
	"fmt"
)

// migrations[i] brings the schema from version i to i+1; the one row of
// mpsandbox_schema holds the version reached. Append, never edit: a
// database in the field has run the old steps.
//
// The layout follows the SQLite store's: times are UTC unix nanoseconds (0
// for the zero time); each object is kept whole as JSON (bytea: byte for
// byte as written) beside the columns that filters and ordering need; the
// columns win where both hold a value (version, times). seq orders lists
// newest first, as SQLite's rowid does.
var migrations = []string{
	`
CREATE TABLE merchants (
	mchid   text PRIMARY KEY,
	-- +1 at each write: a merchant written with a version is
	-- compare-and-swap on it
	version bigint NOT NULL,
	created bigint NOT NULL,
	updated bigint NOT NULL,
	-- not in doc: these fields are json:"-" so that they are never rendered
	platform_private_key_pem text NOT NULL DEFAULT '',
	token   text NOT NULL DEFAULT '',
	doc     bytea NOT NULL
);
CREATE TABLE records (
	kind    text NOT NULL,
	mchid   text NOT NULL,
	key     text NOT NULL,
	seq     bigint GENERATED ALWAYS AS IDENTITY,
	aliases text[] NOT NULL DEFAULT '{}',
	version bigint NOT NULL,
	data    bytea,
	created bigint NOT NULL,
	updated bigint NOT NULL,
	PRIMARY KEY (kind, mchid, key)
);
CREATE INDEX records_newest ON records (kind, mchid, seq);
CREATE INDEX records_kind_newest ON records (kind, seq);
-- An alias is unique per kind and merchant, and names one of that
-- merchant's records.
CREATE TABLE record_aliases (
	kind  text NOT NULL,
	mchid text NOT NULL,
	alias text NOT NULL,
	key   text NOT NULL,
	PRIMARY KEY (kind, mchid, alias)
);
CREATE TABLE sessions (
	id      text PRIMARY KEY,
	seq     bigint GENERATED ALWAYS AS IDENTITY,
	mchid   text NOT NULL,
	product text NOT NULL,
	state   text NOT NULL,
	due_at  bigint NOT NULL,
	created bigint NOT NULL,
	updated bigint NOT NULL,
	version bigint NOT NULL,
	doc     bytea NOT NULL
);
CREATE INDEX sessions_due ON sessions (mchid, due_at, seq) WHERE state = 'pending';
CREATE INDEX sessions_newest ON sessions (seq);
CREATE INDEX sessions_mchid_newest ON sessions (mchid, seq);
CREATE TABLE notifications (
	id      text PRIMARY KEY,
	seq     bigint GENERATED ALWAYS AS IDENTITY,
	mchid   text NOT NULL,
	product text NOT NULL,
	ref     text NOT NULL,
	state   text NOT NULL,
	due_at  bigint NOT NULL,
	created bigint NOT NULL,
	updated bigint NOT NULL,
	version bigint NOT NULL,
	doc     bytea NOT NULL
);
CREATE INDEX notifications_due ON notifications (mchid, due_at, seq) WHERE state = 'pending';
CREATE INDEX notifications_ref ON notifications (ref);
CREATE INDEX notifications_newest ON notifications (seq);
CREATE INDEX notifications_mchid_newest ON notifications (mchid, seq);
-- An identity is never reused after a prune, so AfterID paging and the
-- live stream never see an old id again. size is the entry's bytes.
CREATE TABLE journal (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time       bigint NOT NULL,
	mchid      text NOT NULL,
	product    text NOT NULL,
	session_id text NOT NULL,
	notify_id  text NOT NULL,
	direction  text NOT NULL,
	size       integer NOT NULL,
	doc        bytea NOT NULL
);
CREATE INDEX journal_mchid ON journal (mchid, id);
CREATE INDEX journal_session ON journal (session_id) WHERE session_id <> '';
CREATE INDEX journal_notify ON journal (notify_id) WHERE notify_id <> '';
CREATE INDEX journal_time ON journal (time);
`,
	// Notification leases (ClaimNotifications): the process holding a
	// notification and until when, in the database server's time (unix
	// nanoseconds), so that replicas' clocks need not agree.
	`
ALTER TABLE notifications ADD COLUMN lease_owner text NOT NULL DEFAULT '',
	ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;
`,
	// Values every replica must share (Store.Shared): the generated admin
	// token, the local CA of --tls-self-signed, the clock's start.
	`
CREATE TABLE shared_values (
	name    text PRIMARY KEY,
	created bigint NOT NULL,
	value   bytea NOT NULL
);
`,
	// Session leases (ClaimSessions), as notifications have: one replica's
	// scheduler resolves each due session.
	`
ALTER TABLE sessions ADD COLUMN lease_owner text NOT NULL DEFAULT '',
	ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;
`,
}

// Advisory lock keys (pg_advisory_lock takes any bigint; these spell
// "mpsbxMIG", "mpsbxJNL" and "mpsbxPRN" in ASCII, so that they do not collide with
// another application's by chance).
const (
	migrateLock int64 = 0x6d707362784d4947
	journalLock int64 = 0x6d707362784a4e4c
	pruneLock   int64 = 0x6d7073627850524e
)

// migrate applies the migrations the database has not run. It holds a
// session advisory lock meanwhile, so that replicas starting at once
// migrate one after the other: the first applies them, the rest find the
// schema current. Each migration commits with its version, so a crash
// leaves the previous version intact.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return err
	}
	// A session lock outlives a failed statement: unlock in any case (a
	// broken connection releases it with the session).
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS mpsandbox_schema (version integer NOT NULL);
		INSERT INTO mpsandbox_schema SELECT 0 WHERE NOT EXISTS (SELECT FROM mpsandbox_schema)`); err != nil {
		return err
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT version FROM mpsandbox_schema").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this build's %d; use a newer mpsandbox", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, "UPDATE mpsandbox_schema SET version = $1", i+1); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		s.log.Info("store_migrated", "from_version", i, "to_version", i+1)
	}
	return nil
}
