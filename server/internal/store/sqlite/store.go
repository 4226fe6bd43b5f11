// Package sqlite is the embedded default sandbox.Store, on modernc.org/sqlite
// (pure Go). Writes go through one writer goroutine that commits every batch
// queued at that moment in a single transaction (group commit), each batch in
// its own savepoint; reads use a separate pool of connections, which WAL mode
// lets run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// MemoryPath is the Options.Path of a throwaway in-memory database.
const MemoryPath = ":memory:"

// WALKeepBytes is what the WAL file is cut back to when it starts over
// (journal_size_limit), so that one burst does not hold its disk space for
// good. Not less: a busy jump path fills some 15 MiB between two restarts
// (checkpoint.go), and cutting the file back below that at each restart,
// for the writes to grow it again, cost 2 % more CPU per jump and 5 % fewer
// jumps a second at 8 MiB (docs/PERFORMANCE.md, issue 15).
const WALKeepBytes = 64 << 20

const (
	// busyTimeoutMS is how long a connection waits for another process's
	// lock before SQLITE_BUSY; it only matters when two processes share a
	// file, since this process has a single writer.
	busyTimeoutMS = 5000
	// queueSize bounds the batches waiting for the writer: beyond it Commit
	// blocks (honouring its context) instead of buffering without limit.
	queueSize = 1024
	// groupMax bounds one group commit, so that one transaction (and the
	// latency of the first caller in it) stays short.
	groupMax = 256
	// defaultLimit and maxLimit bound list queries.
	defaultLimit = 100
	maxLimit     = 1000
)

// Options configures Open.
type Options struct {
	// Path is the database file; ":memory:" gives a throwaway in-memory
	// database (one connection, shared by the writer and the readers).
	Path string
	// Logger receives the store's few operational messages; nil discards.
	Logger *slog.Logger
}

// Store is the SQLite sandbox.Store. It is safe for concurrent use.
type Store struct {
	path string
	log  *slog.Logger
	wdb  *sql.DB // one connection: the writer's
	rdb  *sql.DB // the readers' pool; the same *sql.DB as wdb in memory

	wstmts [numWriteStmts]*sql.Stmt
	rstmts [numReadStmts]*sql.Stmt
	// dyn caches the statements of filtered list queries by SQL text; the
	// texts come from a fixed set of filter combinations, so it is bounded.
	dyn sync.Map
	// records caches records in front of the readers (cache.go).
	records *recordCache
	// ckpt checkpoints the WAL beside the writer (checkpoint.go); nil in
	// memory.
	ckpt *checkpointer
	// journalBytes is the writer's running total of the journal's stored
	// bytes (journalbytes.go); only the writer goroutine touches it.
	journalBytes struct {
		held  int64
		known bool
	}
	// hooks are called after every successful Commit (OnCommit).
	hooksMu sync.RWMutex
	hooks   []func(sandbox.Committed)

	// mu orders enqueueing against Close: senders hold it shared, so Close
	// never closes the queue under a sender.
	mu         sync.RWMutex
	closed     atomic.Bool
	queue      chan *op
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

var _ sandbox.Store = (*Store)(nil)

// Open opens (creating if needed) the database at o.Path, brings its schema
// up to date and starts the writer.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Path == "" {
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "open store: empty path")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: o.Path, log: log, queue: make(chan *op, queueSize), writerDone: make(chan struct{}),
		records: newRecordCache()}
	if err := s.open(ctx); err != nil {
		s.closeDBs()
		return nil, openError(o.Path, err)
	}
	go s.writeLoop()
	log.Debug("store_open", "path", o.Path)
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	var err error
	if s.path == MemoryPath {
		// One connection holds the whole in-memory database: a second one
		// would see another, empty database. Readers queue behind the writer.
		if s.wdb, err = sql.Open("sqlite", "file::memory:?_txlock=immediate"); err != nil {
			return err
		}
		s.wdb.SetMaxOpenConns(1)
		s.wdb.SetMaxIdleConns(1)
		s.rdb = s.wdb
	} else {
		file := "file:" + uriEscaper.Replace(s.path)
		pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS)
		// WAL + synchronous=NORMAL: a commit is written to the WAL (so it
		// survives the process being killed) but not fsynced; IMMEDIATE
		// takes the write lock at BEGIN, so no transaction fails upgrading.
		// wal_autocheckpoint(0): the checkpointer does it, off the writer.
		// journal_size_limit: see WALKeepBytes.
		w := file + "?" + pragmas + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)" +
			"&_pragma=journal_size_limit(" + strconv.Itoa(WALKeepBytes) + ")&_txlock=immediate"
		if s.wdb, err = sql.Open("sqlite", w); err != nil {
			return err
		}
		s.wdb.SetMaxOpenConns(1)
		s.wdb.SetMaxIdleConns(1)
		// A reader's page cache is emptied at its first read after any
		// commit (WAL mode), so a large one would only hold memory: 512 KiB
		// serves one query.
		if s.rdb, err = sql.Open("sqlite", file+"?"+pragmas+"&_pragma=query_only(1)&_pragma=cache_size(-512)"); err != nil {
			return err
		}
		n := max(4, 2*runtime.GOMAXPROCS(0))
		s.rdb.SetMaxOpenConns(n)
		s.rdb.SetMaxIdleConns(n)
	}
	if err := migrate(ctx, s.wdb, s.log); err != nil {
		return err
	}
	for i, q := range writeSQL {
		if s.wstmts[i], err = s.wdb.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	for i, q := range readSQL {
		if s.rstmts[i], err = s.rdb.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	if s.path == MemoryPath {
		return nil
	}
	// A checkpoint copies WAL frames through its own buffer, not the page
	// cache: the connection needs next to none.
	return s.startCheckpointer("file:" + uriEscaper.Replace(s.path) + fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=cache_size(-64)", busyTimeoutMS))
}

// uriEscaper escapes what would end or change the path part of a SQLite URI.
var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

func openError(path string, err error) error {
	if e, ok := errors.AsType[*sandbox.Error](err); ok {
		return e
	}
	msg := fmt.Sprintf("open store %s: %v", path, err)
	if se, ok := errors.AsType[*msqlite.Error](err); ok {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CANTOPEN:
			// SQLite does not say why it cannot open; the directory usually does.
			msg += ": " + dirProblem(filepath.Dir(path))
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR:
			// "disk I/O error" names neither the disk nor the cause.
			msg += ": " + writeProblem(filepath.Dir(path))
		}
	}
	return &sandbox.Error{Code: sandbox.CodeUnavailable, Message: msg, Err: err}
}

// dirProblem says why a database file cannot be created in dir.
func dirProblem(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil {
		return err.Error()
	}
	if !fi.IsDir() {
		return dir + " is not a directory"
	}
	f, err := os.CreateTemp(dir, ".mpsandbox-probe-*")
	if err != nil {
		return err.Error()
	}
	f.Close()
	os.Remove(f.Name())
	return "the directory is writable; check the file's permissions"
}

// Close lets every queued Commit finish, checkpoints the WAL into the
// database file and closes it. Calls after Close fail with CodeUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.queue)
		s.mu.Unlock()
		<-s.writerDone
		for _, st := range s.rstmts {
			st.Close()
		}
		s.dyn.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
		s.stopCheckpointer()
		if s.rdb != s.wdb {
			// Readers go first: a checkpoint cannot truncate the WAL under
			// a reader's snapshot.
			s.rdb.Close()
			if _, err := s.wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				s.closeErr = s.fail("checkpoint", err)
			}
		}
		for _, st := range s.wstmts {
			st.Close()
		}
		if err := s.wdb.Close(); err != nil && s.closeErr == nil {
			s.closeErr = s.fail("close", err)
		}
		s.log.Debug("store_closed", "path", s.path)
	})
	return s.closeErr
}

func (s *Store) closeDBs() {
	s.stopCheckpointer()
	for _, st := range s.rstmts {
		if st != nil {
			st.Close()
		}
	}
	for _, st := range s.wstmts {
		if st != nil {
			st.Close()
		}
	}
	if s.rdb != nil && s.rdb != s.wdb {
		s.rdb.Close()
	}
	if s.wdb != nil {
		s.wdb.Close()
	}
}

// errClosed is what every call after Close returns.
func errClosed() error {
	return sandbox.Errorf(sandbox.CodeUnavailable, "store is closed")
}

// fail turns a driver or context error into the *sandbox.Error callers
// render: a cancelled context, a busy, full or failing disk is
// CodeUnavailable (retry later); anything else is a bug, CodeInternal.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*sandbox.Error](err); ok {
		return e
	}
	code := sandbox.CodeInternal
	if s.closed.Load() || errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code = sandbox.CodeUnavailable
	} else if se, ok := errors.AsType[*msqlite.Error](err); ok {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
			code = sandbox.CodeUnavailable
		}
	}
	return &sandbox.Error{Code: code, Message: "store: " + op + ": " + err.Error(), Err: err}
}

// clampLimit applies the default and the maximum to a list limit.
func clampLimit(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return min(n, maxLimit)
}
