package sandbox

import (
	"context"
	"encoding/json"
)

// Stored is a record with its data decoded as a T.
type Stored[T any] struct {
	Rec *Record
	V   *T
}

// Get reads the merchant's record of kind by key and decodes it; a missing
// one is CodeNotFound.
func Get[T any](ctx context.Context, st Store, kind, mchid, key string) (*Stored[T], error) {
	return stored[T](st.GetRecord(ctx, kind, mchid, key))
}

// Find reads the merchant's record of kind by alias and decodes it; a
// missing one is CodeNotFound.
func Find[T any](ctx context.Context, st Store, kind, mchid, alias string) (*Stored[T], error) {
	return stored[T](st.FindRecord(ctx, kind, mchid, alias))
}

func stored[T any](rec *Record, err error) (*Stored[T], error) {
	if err != nil {
		return nil, err
	}
	v, err := Decode[T](rec)
	if err != nil {
		return nil, err
	}
	return &Stored[T]{Rec: rec, V: v}, nil
}

// Decode decodes a record's data as a T; data that does not decode is
// CodeInternal, naming the record.
func Decode[T any](rec *Record) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(rec.Data, v); err != nil {
		return nil, &Error{Code: CodeInternal, Message: "stored " + rec.Kind + " " + rec.Key + " does not decode", Err: err}
	}
	return v, nil
}

// Record returns a copy of the record holding V as it is now, to commit as
// an Update: compare-and-swap on the version read.
func (s *Stored[T]) Record() (*Record, error) {
	data, err := json.Marshal(s.V)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "encode " + s.Rec.Kind + " " + s.Rec.Key, Err: err}
	}
	up := *s.Rec
	up.Data = data
	return &up, nil
}

// NewRecord returns v as a new record to commit as a Create, with the
// aliases given.
func NewRecord(kind, mchid, key string, v any, aliases ...string) (*Record, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "encode " + kind + " " + key, Err: err}
	}
	return &Record{Kind: kind, MchID: mchid, Key: key, Aliases: aliases, Data: data}, nil
}

// UpdateTries bounds the compare-and-swap retries of one Update: a change
// that loses the race this often in a row reports the conflict.
const UpdateTries = 4

// Update reads the merchant's record of kind by key, lets change alter it
// and add whatever must be committed with it to b, and commits both. When
// another change to the record commits first, it reads the record again
// and calls change again, so that of two concurrent changes one wins and
// the other decides on the winner's state. An error of change (or of the
// read: CodeNotFound for a missing record) is returned as it is.
func Update[T any](ctx context.Context, st Store, kind, mchid, key string, change func(v *T, b *Batch) error) (*T, error) {
	for try := 1; ; try++ {
		s, err := Get[T](ctx, st, kind, mchid, key)
		if err != nil {
			return nil, err
		}
		b := &Batch{}
		if err := change(s.V, b); err != nil {
			return nil, err
		}
		up, err := s.Record()
		if err != nil {
			return nil, err
		}
		b.Updates = append(b.Updates, up)
		err = st.Commit(ctx, b)
		if err == nil || !IsCode(err, CodeConflict) || try == UpdateTries {
			return s.V, err
		}
	}
}
