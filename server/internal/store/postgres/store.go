// Package postgres is the sandbox.Store for a replicated deployment: several
// sandbox processes share one PostgreSQL database (github.com/jackc/pgx/v5,
// pgxpool). Every Commit is one transaction; the database, not this
// process, orders concurrent writers, so a compare-and-swap has exactly one
// winner across every replica.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// connectTimeout bounds one connection attempt when the URL sets none
// (connect_timeout), so that a database that went away fails a call
// instead of holding it.
const connectTimeout = 5 * time.Second

// Options configures Open.
type Options struct {
	// URL is a PostgreSQL connection URL or keyword/value string, with
	// pgx's and pgxpool's parameters (pool_max_conns, sslmode, …).
	URL string
	// Logger receives the store's few operational messages; nil discards.
	Logger *slog.Logger
}

// Store is the PostgreSQL sandbox.Store. It is safe for concurrent use, and
// several processes may share its database.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	where  string // the URL without its password, for messages
	closed atomic.Bool
	// id names this store in its commit announcements.
	id    string
	hooks hooks
	// stopListening ends the listener; listening closes when it has.
	stopListening context.CancelFunc
	listening     chan struct{}
	counts        counters
}

var _ sandbox.Store = (*Store)(nil)

// Open connects to the database, brings its schema up to date (under an
// advisory lock, so that replicas starting together migrate once) and
// returns the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	where := Redact(o.URL)
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "open store %s: not a PostgreSQL connection URL", where)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, openError(where, err)
	}
	s := &Store{pool: pool, log: log, where: where, id: newID()}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, openError(where, err)
	}
	if err := s.startListening(ctx, cfg.ConnConfig.Copy()); err != nil {
		pool.Close()
		return nil, openError(where, err)
	}
	log.Debug("store_open", "database", where)
	return s, nil
}

// Redact returns the connection URL with its password replaced, for
// messages and logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// A keyword/value string: name only the host and database.
		var keep []string
		for _, kv := range strings.Fields(raw) {
			if k, _, _ := strings.Cut(kv, "="); k == "host" || k == "port" || k == "dbname" || k == "user" {
				keep = append(keep, kv)
			}
		}
		return strings.Join(keep, " ")
	}
	return u.Redacted()
}

func openError(where string, err error) error {
	if e, ok := errors.AsType[*sandbox.Error](err); ok {
		return e
	}
	return &sandbox.Error{Code: sandbox.CodeUnavailable, Message: fmt.Sprintf("open store %s: %v", where, err), Err: err}
}

// Close closes the pool, waiting for the calls in flight. Calls after Close
// fail with CodeUnavailable.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.stopListening()
		<-s.listening
		s.pool.Close()
		s.log.Debug("store_closed", "database", s.where)
	}
	return nil
}

// ProbeWrite proves the database reachable and writable now, for
// /readyz: a transaction that rewrites the schema version with its own
// value. A stopped server, a lost network or a read-only standby fails it
// as it would fail a real commit.
func (s *Store) ProbeWrite(ctx context.Context) error {
	return s.inTx(ctx, "probe write", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE mpsandbox_schema SET version = version")
		return err
	})
}

// errClosed is what every call after Close returns.
func errClosed() error {
	return sandbox.Errorf(sandbox.CodeUnavailable, "store is closed")
}

// PostgreSQL error codes the store tells apart
// (https://www.postgresql.org/docs/15/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeReadOnlyTransaction  = "25006" // a standby, or default_transaction_read_only
	// A text value with a NUL byte or bytes that are not UTF-8, which
	// PostgreSQL's text cannot hold (SQLite's can): the caller's input.
	codeCharacterNotInRepertoire = "22021"
	codeUntranslatableCharacter  = "22P05"
)

// badText reports whether err is PostgreSQL refusing a text value.
func badText(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (pe.Code == codeCharacterNotInRepertoire || pe.Code == codeUntranslatableCharacter)
}

// fail turns a driver or context error into the *sandbox.Error callers
// render: a lost or refused connection, a server shutting down or out of
// resources, a read-only server and a cancelled context are
// CodeUnavailable (retry later); a unique violation or a lost
// serialisation is CodeConflict; anything else is a bug, CodeInternal.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*sandbox.Error](err); ok {
		return e
	}
	code := sandbox.CodeInternal
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case pe.Code == codeUniqueViolation, pe.Code == codeSerializationFailure, pe.Code == codeDeadlockDetected:
			code = sandbox.CodeConflict
		case badText(err):
			return &sandbox.Error{Code: sandbox.CodeInvalid, Err: err,
				Message: "store: " + op + ": a value holds a NUL byte or bytes that are not UTF-8, which the store cannot keep"}
		case pe.Code == codeReadOnlyTransaction,
			// connection exception, insufficient resources, operator
			// intervention (shutdown, cannot connect now), system error
			strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"),
			strings.HasPrefix(pe.Code, "57"), strings.HasPrefix(pe.Code, "58"):
			code = sandbox.CodeUnavailable
		}
	} else if s.closed.Load() || lostConnection(err) {
		code = sandbox.CodeUnavailable
	}
	return &sandbox.Error{Code: code, Message: "store: " + op + ": " + err.Error(), Err: err}
}

// lostConnection reports whether err says the database could not be
// reached or the connection broke, rather than that a statement failed.
func lostConnection(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgx.ErrTxClosed) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	// pgx reports a connection it already knows to be dead, and a closed
	// pool, with these plain errors.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool")
}

// nanos stores a time as UTC unix nanoseconds, as the SQLite store does:
// timestamptz keeps microseconds, and the objects' times must read back as
// they were written. The zero time is 0, since UnixNano of year 1 is out of
