package sqlite

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/storedoc"
)

// Commit applies b atomically through the group-commit writer. When it
// returns nil, b is in the WAL file and survives a crash of the process;
// b's objects then carry their new Version, CreatedAt and UpdatedAt. When
// ctx ends before the writer took b, nothing of b was written.
//
// Within a batch, merchants are applied first, then Creates, Updates,
// Sessions and Notifications. An Update with Version 0 inserts, like a
// Create; an Update's Aliases are added to the record's (never removed).
func (s *Store) Commit(ctx context.Context, b *sandbox.Batch) error {
	if b == nil || len(b.Merchants)+len(b.Creates)+len(b.Updates)+len(b.Sessions)+len(b.Notifications) == 0 {
		return nil
	}
	o, err := encodeBatch(b)
	if err != nil {
		return err
	}
	if err := s.submit(ctx, o); err != nil {
		return err
	}
	for i, m := range b.Merchants {
		m.CreatedAt, m.Version = storedoc.FromNanos(o.mStamps[i].created), o.mStamps[i].version
	}
	for i, r := range b.Creates {
		o.cStamps[i].set(&r.Version, &r.CreatedAt, &r.UpdatedAt)
	}
	for i, r := range b.Updates {
		o.uStamps[i].set(&r.Version, &r.CreatedAt, &r.UpdatedAt)
	}
	for i, x := range b.Sessions {
		o.sStamps[i].set(&x.Version, &x.CreatedAt, &x.UpdatedAt)
	}
	for i, n := range b.Notifications {
		o.nStamps[i].set(&n.Version, &n.CreatedAt, &n.UpdatedAt)
	}
	o.recycle()
	c := b.Committed()
	s.hooksMu.RLock()
	hooks := s.hooks
	s.hooksMu.RUnlock()
	for _, h := range hooks {
		h(c)
	}
	return nil
}

// OnCommit registers a hook called after every successful Commit, before
// Commit returns.
func (s *Store) OnCommit(hook func(sandbox.Committed)) {
	s.hooksMu.Lock()
	s.hooks = append(slices.Clip(s.hooks), hook)
	s.hooksMu.Unlock()
}

func (st stamp) set(version *int64, created, updated *time.Time) {
	*version, *created, *updated = st.version, storedoc.FromNanos(st.created), storedoc.FromNanos(st.updated)
}

// encodeBatch checks b and encodes its JSON on the caller's goroutine, so
// that callers encode in parallel and the writer only runs SQL.
func encodeBatch(b *sandbox.Batch) (*op, error) {
	o := newOp()
	o.batch = b
	var err error
	if o.merchants, err = encodeDocs("/merchants", b.Merchants, func(m *sandbox.Merchant) string {
		return cond(m.MchID == "" || m.Version < 0, "a merchant needs an mchid and a version >= 0")
	}); err != nil {
		return nil, err
	}
	if o.createAliases, o.createAliasJSON, err = encodeRecords("/creates", b.Creates); err != nil {
		return nil, err
	}
	if o.updateAliases, o.updateAliasJSON, err = encodeRecords("/updates", b.Updates); err != nil {
		return nil, err
	}
	if o.sessions, err = encodeDocs("/sessions", b.Sessions, func(x *sandbox.Session) string {
		return cond(x.ID == "" || x.Version < 0, "a session needs an id and a version >= 0")
	}); err != nil {
		return nil, err
	}
	if o.notifies, err = encodeDocs("/notifications", b.Notifications, func(n *sandbox.Notification) string {
		return cond(n.ID == "" || n.Version < 0, "a notification needs an id and a version >= 0")
	}); err != nil {
		return nil, err
	}
	stamps := make([]stamp, len(b.Merchants)+len(b.Creates)+len(b.Updates)+len(b.Sessions)+len(b.Notifications))
	o.mStamps, stamps = stamps[:len(b.Merchants)], stamps[len(b.Merchants):]
	o.cStamps, stamps = stamps[:len(b.Creates)], stamps[len(b.Creates):]
	o.uStamps, stamps = stamps[:len(b.Updates)], stamps[len(b.Updates):]
	o.sStamps, o.nStamps = stamps[:len(b.Sessions)], stamps[len(b.Sessions):]
	return o, nil
}

// encodeDocs checks each object (check returns what is wrong, or "") and
// encodes it as JSON.
func encodeDocs[T any](path string, xs []*T, check func(*T) string) ([][]byte, error) {
	docs := make([][]byte, len(xs))
	for i, x := range xs {
		if x == nil {
			return nil, invalidBatch(path, i, "nil entry")
		}
		if msg := check(x); msg != "" {
			return nil, invalidBatch(path, i, msg)
		}
		var err error
		if docs[i], err = json.Marshal(x); err != nil {
			return nil, invalidBatch(path, i, err.Error())
		}
	}
	return docs, nil
}

// cond returns msg when bad holds.
func cond(bad bool, msg string) string {
	if bad {
		return msg
	}
	return ""
}

// encodeRecords returns each record's aliases without duplicates (a
// duplicate would conflict with itself) and as the JSON the aliases column
// holds.
func encodeRecords(path string, rs []*sandbox.Record) ([][]string, [][]byte, error) {
	aliases := make([][]string, len(rs))
	docs := make([][]byte, len(rs))
	for i, r := range rs {
		if r == nil || r.Kind == "" || r.MchID == "" || r.Key == "" || r.Version < 0 {
			return nil, nil, invalidBatch(path, i, "a record needs a kind, an mchid, a key and a version >= 0")
		}
		if len(r.Data) > 0 && !json.Valid(r.Data) {
			return nil, nil, invalidBatch(path, i, "data is not valid JSON")
		}
		as := make([]string, 0, len(r.Aliases))
		for _, a := range r.Aliases {
			if a == "" {
				return nil, nil, invalidBatch(path, i, "an alias is empty")
			}
			if !slices.Contains(as, a) {
				as = append(as, a)
			}
		}
		doc, err := json.Marshal(as)
		if err != nil {
			return nil, nil, invalidBatch(path, i, err.Error())
		}
		aliases[i], docs[i] = as, doc
	}
	return aliases, docs, nil
}

func invalidBatch(path string, i int, msg string) error {
	return sandbox.Invalid("invalid batch", sandbox.Violation{Path: path + "/" + strconv.Itoa(i), Message: msg})
}

// AppendExchanges journals xs through the writer, in one savepoint, and sets
// their IDs (and Time, when zero) once committed.
func (s *Store) AppendExchanges(ctx context.Context, xs []*sandbox.Exchange) error {
	if len(xs) == 0 {
		return nil
	}
	o := newOp()
	o.xs = xs
	o.xjson = make([][]byte, len(xs))
	o.ids = make([]int64, len(xs))
	var now time.Time
	for i, x := range xs {
		if x == nil {
			return invalidBatch("/exchanges", i, "nil exchange")
		}
		if x.Time.IsZero() {
			if now.IsZero() {
				now = time.Now().UTC()
			}
			x.Time = now
		}
		var err error
		if o.xjson[i], err = json.Marshal(x); err != nil {
			return invalidBatch("/exchanges", i, err.Error())
		}
	}
	if err := s.submit(ctx, o); err != nil {
		return err
	}
	for i, x := range xs {
		x.ID = o.ids[i]
	}
	o.recycle()
	return nil
}

// pruneChunk bounds the entries one writer transaction deletes.
const pruneChunk = 500

// PruneJournal deletes all but the newest keep exchanges (keep <= 0: no
// limit on the count), every exchange older than before (zero: no limit
// on the age) and the oldest exchanges while the stored documents hold more
// than maxBytes (<= 0: no limit on the bytes), returning how many it
// deleted. It deletes pruneChunk at a time, each in its own transaction, so
// that commits are not held up behind one long delete.
func (s *Store) PruneJournal(ctx context.Context, keep int, before time.Time, maxBytes int64) (int, error) {
	if keep <= 0 && before.IsZero() && maxBytes <= 0 {
		return 0, nil
	}
	total := 0
	for {
		o := newOp()
		o.prune, o.keep, o.before, o.maxBytes = true, keep, storedoc.Nanos(before), maxBytes
		if err := s.submit(ctx, o); err != nil {
			return total, err
		}
		pruned := o.pruned
		o.recycle()
		if total += pruned; pruned == 0 {
			return total, nil
		}
	}
}
