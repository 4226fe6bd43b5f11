package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// commitChannel is the NOTIFY channel every Commit announces itself on.
const commitChannel = "mpsandbox_commit"

// maxPayload bounds a NOTIFY payload below PostgreSQL's 8,000 bytes
// (https://www.postgresql.org/docs/15/sql-notify.html); a commit with more
// ids than fit is announced in several.
const maxPayload = 7000

// notice is a sandbox.Committed on the wire, with the process that
// committed it, so that a process skips its own (its hooks heard of them
// from Commit).
type notice struct {
	From string `json:"from"`
	sandbox.Committed
}

// hooks are the OnCommit hooks; the committing goroutine and the listener
// call them.
type hooks struct {
	mu   sync.RWMutex
	list []func(sandbox.Committed)
}

func (h *hooks) add(f func(sandbox.Committed)) {
	h.mu.Lock()
	h.list = append(h.list[:len(h.list):len(h.list)], f)
	h.mu.Unlock()
}

func (h *hooks) call(c sandbox.Committed) {
	h.mu.RLock()
	list := h.list
	h.mu.RUnlock()
	for _, f := range list {
		f(c)
	}
}

// OnCommit registers a hook called after every successful commit: this
// store's own, before Commit returns, and every other process's on the
// same database, from the listener goroutine (LISTEN/NOTIFY), in the
// order they committed. Hooks must be quick and must not commit.
func (s *Store) OnCommit(hook func(sandbox.Committed)) { s.hooks.add(hook) }

// payloads are the NOTIFY payloads announcing c: one, or c's ids split
// over several when they do not fit in one.
//
// A commit that changes nothing the others follow (records only, a
// notification's final outcome) has none: a NOTIFY costs a round trip and
// takes PostgreSQL's cluster-wide notification lock at commit, which every
// delivery of every replica would otherwise queue for.
func (s *Store) payloads(c sandbox.Committed) []string {
	if reflect.ValueOf(c).IsZero() {
		return nil
	}
	raw, _ := json.Marshal(notice{From: s.id, Committed: c})
	if len(raw) <= maxPayload {
		return []string{string(raw)}
	}
	var a, b sandbox.Committed
	switch {
	case len(c.Sessions) > 1:
		a, b = c, sandbox.Committed{Sessions: c.Sessions[len(c.Sessions)/2:]}
		a.Sessions = c.Sessions[:len(c.Sessions)/2]
	case len(c.Merchants) > 1:
		a, b = c, sandbox.Committed{Merchants: c.Merchants[len(c.Merchants)/2:]}
		a.Merchants = c.Merchants[:len(c.Merchants)/2]
	case len(c.NotifyMerchants) > 1:
		a, b = c, sandbox.Committed{NotifyMerchants: c.NotifyMerchants[len(c.NotifyMerchants)/2:]}
		a.NotifyMerchants = c.NotifyMerchants[:len(c.NotifyMerchants)/2]
	default:
		// One id too long for a payload: ids come from the sandbox's
		// requests and are far shorter; the others poll.
		s.log.Warn("store_notify_skipped", "bytes", len(raw))
		return nil
	}
	return append(s.payloads(a), s.payloads(b)...)
}

// newID names this store among the processes sharing the database.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Listen backoff: how long the listener waits before connecting again
// after it lost its connection, doubling up to the maximum.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// startListening starts the listener and waits until it listens, so that
// no commit made after Open returns goes unheard.
func (s *Store) startListening(ctx context.Context, cfg *pgx.ConnConfig) error {
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListening, s.listening = cancel, make(chan struct{})
	ready := make(chan struct{})
	var once sync.Once
	go s.listen(lctx, cfg, func() { once.Do(func() { close(ready) }) })
	var err error
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(cfg.ConnectTimeout + time.Second):
		err = errors.New("no LISTEN connection within the connect timeout")
	}
	cancel()
	<-s.listening
	return err
}

// listen hands the commits of other processes to the hooks until ctx
// ends. It holds one connection of its own, outside the pool, and comes
// back after losing it; a commit announced meanwhile is not delivered, so
// the process's own polling (the notification worker's, the session
// scheduler's) stays the fallback.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig, ready func()) {
	defer close(s.listening)
	wait := listenRetryMin
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, cfg, func() { wait = listenRetryMin; ready() })
		if ctx.Err() != nil {
			return
		}
		s.counts.listenLost.Add(1)
		s.log.Warn("store_listen_lost", "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, listenRetryMax)
	}
}

// listenOnce connects, listens and delivers until the connection fails;
// connected is called once it listens.
func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+commitChannel); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var x notice
		if err := json.Unmarshal([]byte(n.Payload), &x); err != nil {
			s.log.Warn("store_listen_bad_payload", "error", err.Error())
			continue
		}
		if x.From != s.id {
			s.hooks.call(x.Committed)
		}
	}
}
