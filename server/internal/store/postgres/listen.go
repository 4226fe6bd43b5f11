package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// commitChannel is the NOTIFY channel every Commit announces itself on.
const commitChannel = "mpsandbox_commit"

// maxPayload bounds a commit's NOTIFY payload below PostgreSQL's 8,000
// bytes (https://www.postgresql.org/docs/15/sql-notify.html); a batch with
// more ids than fit is announced as Overflow.
const maxPayload = 7000

// Committed names, by id, what one commit changed: what a process must
// refresh or wake for. The store hands it to Options.OnCommit after each
// of its own commits and, through LISTEN/NOTIFY, after each commit another
// process made on the same database.
type Committed struct {
	// Merchants were upserted (credentials, scenarios, clock offsets).
	Merchants []string `json:"merchants,omitempty"`
	// Sessions were inserted or updated.
	Sessions []CommittedSession `json:"sessions,omitempty"`
	// NotifyMerchants have notifications that were inserted or updated.
	NotifyMerchants []string `json:"notify_merchants,omitempty"`
	// Overflow says the ids did not fit in one notification: treat every
	// merchant and session as changed.
	Overflow bool `json:"overflow,omitempty"`
}

// CommittedSession is a session a commit wrote.
type CommittedSession struct {
	ID    string `json:"id"`
	MchID string `json:"mchid"`
}

// notice is a Committed on the wire, with the process that committed it.
type notice struct {
	From string `json:"from"`
	Committed
}

// committed lists what b writes.
func committed(b *sandbox.Batch) Committed {
	var c Committed
	for _, m := range b.Merchants {
		c.Merchants = append(c.Merchants, m.MchID)
	}
	for _, x := range b.Sessions {
		c.Sessions = append(c.Sessions, CommittedSession{ID: x.ID, MchID: x.MchID})
	}
	for _, n := range b.Notifications {
		if !slices.Contains(c.NotifyMerchants, n.MchID) {
			c.NotifyMerchants = append(c.NotifyMerchants, n.MchID)
		}
	}
	return c
}

// payload is the NOTIFY payload announcing c.
func (s *Store) payload(c Committed) string {
	raw, _ := json.Marshal(notice{From: s.id, Committed: c})
	if len(raw) > maxPayload {
		raw, _ = json.Marshal(notice{From: s.id, Committed: Committed{Overflow: true}})
	}
	return string(raw)
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
// no commit made after Open returns goes unseen.
func (s *Store) startListening(ctx context.Context, cfg *pgx.ConnConfig) error {
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListening, s.listening = cancel, make(chan struct{})
	ready := make(chan struct{})
	var once sync.Once
	go s.listen(lctx, cfg, s.onCommit, func() { once.Do(func() { close(ready) }) })
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

// listen hands the commits of other processes to OnCommit until ctx ends.
// It holds one connection of its own, outside the pool, and comes back
// after losing it; a commit announced meanwhile is not delivered, so the
// process's own polling (the notification worker's, the session
// scheduler's) stays the fallback.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig, onCommit func(Committed), ready func()) {
	defer close(s.listening)
	wait := listenRetryMin
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, cfg, onCommit, func() { wait = listenRetryMin; ready() })
		if ctx.Err() != nil {
			return
		}
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
func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, onCommit func(Committed), connected func()) error {
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
			onCommit(x.Committed)
		}
	}
}
