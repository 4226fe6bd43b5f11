// Package storedoc is what the SQL stores (sqlite, postgres) share in how
// they keep the domain's objects: times as Unix nanoseconds, and rows of
// (version, created, updated, document) decoded into a domain type whose
// bookkeeping fields the columns override.
package storedoc

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Scanner is a row of either driver: database/sql's *Row and *Rows, pgx's
// Row and Rows.
type Scanner interface{ Scan(dest ...any) error }

// Nanos is t as Unix nanoseconds; the zero time is 0.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos is the UTC time of Unix nanoseconds n; 0 is the zero time.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Doc decodes a row of (version, created, updated, doc) into a new T; meta
// gives the fields the columns override.
func Doc[T any](meta func(*T) (*int64, *time.Time, *time.Time)) func(Scanner) (*T, error) {
	return func(r Scanner) (*T, error) {
		var version, created, updated int64
		var doc []byte
		if err := r.Scan(&version, &created, &updated, &doc); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(doc, v); err != nil {
			return nil, err
		}
		pv, pc, pu := meta(v)
		*pv, *pc, *pu = version, FromNanos(created), FromNanos(updated)
		return v, nil
	}
}

// Session and Notification decode the rows of their tables.
var (
	Session = Doc(func(x *sandbox.Session) (*int64, *time.Time, *time.Time) {
		return &x.Version, &x.CreatedAt, &x.UpdatedAt
	})
	Notification = Doc(func(n *sandbox.Notification) (*int64, *time.Time, *time.Time) {
		return &n.Version, &n.CreatedAt, &n.UpdatedAt
	})
)

// ErrPageFull ends a list read early: the page has its bytes.
var ErrPageFull = errors.New("page full")

// Rows is what both drivers' result sets offer (*sql.Rows, pgx.Rows).
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect decodes every row with scan, stopping early (without an error)
// when scan says the page is full (ErrPageFull).
func Collect[T any](rows Rows, scan func(Scanner) (*T, error)) ([]*T, error) {
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if errors.Is(err, ErrPageFull) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Exchange decodes a journal row of (id, time, doc).
func Exchange(r Scanner) (*sandbox.Exchange, error) {
	x, _, err := ExchangeSized(r)
	return x, err
}

// ExchangeSized is Exchange that also returns the bytes of the stored
// document, what the journal's byte bounds count.
func ExchangeSized(r Scanner) (*sandbox.Exchange, int, error) {
	var id, t int64
	var doc []byte
	if err := r.Scan(&id, &t, &doc); err != nil {
		return nil, 0, err
	}
	x := &sandbox.Exchange{}
	if err := json.Unmarshal(doc, x); err != nil {
		return nil, 0, err
	}
	x.ID, x.Time = id, FromNanos(t)
	return x, len(doc), nil
}
