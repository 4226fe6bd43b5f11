package postgres

import (
	"sync/atomic"
	"time"
)

// Stats is what /metrics shows of the store: its connection pool (pgxpool's
// own figures), its notification claims and its LISTEN connection.
type Stats struct {
	// Connections: in use, idle, open in all, and the pool's bound.
	Acquired, Idle, Total, Max int32
	// Acquires counts connections taken from the pool; EmptyAcquires
	// those that had to wait for one; AcquireWait is their wait in all.
	Acquires, EmptyAcquires int64
	AcquireWait             time.Duration
	// Claims counts ClaimNotifications calls; Claimed the notifications
	// they leased (a renewal of a lease counts again).
	Claims, Claimed int64
	// ListenLost counts the times the LISTEN connection was lost (and
	// then made again, after a back-off).
	ListenLost int64
}

// counters are the store's own counts behind Stats.
type counters struct {
	claims, claimed, listenLost atomic.Int64
}

// Stats reads the pool's figures and the store's counts.
func (s *Store) Stats() Stats {
	p := s.pool.Stat()
	return Stats{
		Acquired: p.AcquiredConns(), Idle: p.IdleConns(), Total: p.TotalConns(), Max: p.MaxConns(),
		Acquires: p.AcquireCount(), EmptyAcquires: p.EmptyAcquireCount(), AcquireWait: p.AcquireDuration(),
		Claims: s.counts.claims.Load(), Claimed: s.counts.claimed.Load(), ListenLost: s.counts.listenLost.Load(),
	}
}
