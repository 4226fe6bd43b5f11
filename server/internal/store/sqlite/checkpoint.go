package sqlite

import (
	"database/sql"
	"sync/atomic"
	"time"
)

const (
	// checkpointEvery is how often the checkpointer copies the WAL into the
	// database file while commits keep coming.
	checkpointEvery = 200 * time.Millisecond
	// walHandOverFrames is the WAL length (pages, 4 KiB each) beyond which
	// the checkpointer asks the writer to finish the job.
	walHandOverFrames = 1000
	// walRestartFrames is the WAL length beyond which the checkpointer,
	// finding readers in its way, waits for them and has the WAL start
	// over, so that it cannot grow without bound.
	walRestartFrames = 20000
)

// checkpointer copies the WAL into the database file beside the writer.
// SQLite's own automatic checkpoint runs inside the commit that crosses
// 1,000 pages — copying them and fsyncing the file — and every commit queued
// behind it waits. Here the writer connection has wal_autocheckpoint(0) and
// this goroutine, on its own connection, runs PASSIVE checkpoints, which
// take no lock a commit needs. But the WAL only starts over from its
// beginning when a write transaction finds it wholly copied, which never
// happens while commits keep landing during the copy; so, once the WAL is
// past walHandOverFrames, the checkpointer sets wanted and the writer runs
// one more PASSIVE checkpoint after its next commit: it copies only the
// pages committed since (the bulk is done and synced), and the writer's
// next transaction restarts the WAL. Durability is unchanged: a commit is
// in the WAL when it returns.
type checkpointer struct {
	db      *sql.DB
	commits atomic.Uint64 // bumped by the writer after each commit
	wanted  atomic.Bool   // the writer should checkpoint after its next commit
	stop    chan struct{}
	done    chan struct{}
}

func (s *Store) startCheckpointer(file string) error {
	db, err := sql.Open("sqlite", file)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	s.ckpt = &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go s.checkpointLoop()
	return nil
}

func (s *Store) checkpointLoop() {
	c := s.ckpt
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		n := c.commits.Load()
		if n == seen {
			continue
		}
		seen = n
		var busy, frames, copied int
		if err := c.db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
			s.log.Warn("store_checkpoint_failed", "error", err.Error())
			continue
		}
		if frames > walHandOverFrames {
			c.wanted.Store(true)
		}
		if frames > walRestartFrames {
			// RESTART waits for the readers (busy_timeout) and blocks
			// commits meanwhile: rare, and better than an endless WAL.
			if err := c.db.QueryRow("PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &copied); err != nil {
				s.log.Warn("store_checkpoint_failed", "mode", "restart", "error", err.Error())
			}
		}
	}
}

// stopCheckpointer ends the loop and closes its connection.
func (s *Store) stopCheckpointer() {
	if s.ckpt == nil {
		return
	}
	close(s.ckpt.stop)
	<-s.ckpt.done
	s.ckpt.db.Close()
}
