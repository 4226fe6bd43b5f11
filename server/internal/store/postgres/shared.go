package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// Shared returns the value every process on the database shares under
// name, making it with create when there is none yet. Processes starting
// at once may each make one; the first insert wins (ON CONFLICT DO
// NOTHING) and every one of them returns the winner's, so they agree.
// created says whether this call's value was the one kept. The generated
// admin token, the local CA of --tls-self-signed and the clock's start are
// kept so, so that replicas behind one name serve as one sandbox.
func (s *Store) Shared(ctx context.Context, name string, create func() ([]byte, error)) (value []byte, created bool, err error) {
	if s.closed.Load() {
		return nil, false, errClosed()
	}
	err = s.pool.QueryRow(ctx, "SELECT value FROM shared_values WHERE name = $1", name).Scan(&value)
	switch {
	case err == nil:
		return value, false, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, false, s.fail("read shared "+name, err)
	}
	mine, err := create()
	if err != nil {
		return nil, false, err
	}
	tag, err := s.pool.Exec(ctx, "INSERT INTO shared_values (name, created, value) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
		name, storedoc.Nanos(time.Now()), mine)
	if err != nil {
		return nil, false, s.fail("write shared "+name, err)
	}
	if tag.RowsAffected() == 1 {
		return mine, true, nil
	}
	// Another process's insert won: return its value.
	if err := s.pool.QueryRow(ctx, "SELECT value FROM shared_values WHERE name = $1", name).Scan(&value); err != nil {
		return nil, false, s.fail("read shared "+name, err)
	}
	return value, false, nil
}
