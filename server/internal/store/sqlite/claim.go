package sqlite

import (
	"context"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// ClaimNotifications is DueNotifications: one process owns the file, and
// its notification worker keeps track of its own attempts in flight, so
// there is no other owner to hold a notification against.
func (s *Store) ClaimNotifications(ctx context.Context, mchid string, now time.Time, _ string, _ time.Duration, limit int) ([]*sandbox.Notification, error) {
	return s.DueNotifications(ctx, mchid, now, limit)
}

// ClaimSessions is DueSessions, for the same reason: the process's one
// scheduler is the only owner.
func (s *Store) ClaimSessions(ctx context.Context, mchid string, now time.Time, _ string, _ time.Duration, limit int) ([]*sandbox.Session, error) {
	return s.DueSessions(ctx, mchid, now, limit)
}

// ReleaseClaims has nothing to release: claims hold nothing here.
func (s *Store) ReleaseClaims(context.Context, string) error { return nil }
