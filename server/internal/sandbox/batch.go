package sandbox

import (
	"encoding/json"
	"slices"
	"strconv"
)

// List limits every store applies: a list query returns DefaultListLimit
// entries when asked for none, and never more than MaxListLimit.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListLimit applies the default and the maximum to a list limit.
func ListLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return min(n, MaxListLimit)
}

// Empty reports whether the batch writes nothing.
func (b *Batch) Empty() bool {
	return b == nil || len(b.Merchants)+len(b.Creates)+len(b.Updates)+len(b.Sessions)+len(b.Notifications) == 0
}

// Check returns a CodeInvalid error naming every entry of the batch a store
// cannot write, by its path ("/creates/0"), or nil.
func (b *Batch) Check() error {
	var vs []Violation
	bad := func(path string, i int, msg string) {
		vs = append(vs, Violation{Path: path + "/" + strconv.Itoa(i), Message: msg})
	}
	for i, m := range b.Merchants {
		if m == nil || m.MchID == "" || m.Version < 0 {
			bad("/merchants", i, "a merchant needs an mchid and a version >= 0")
		}
	}
	for _, part := range []struct {
		path string
		rs   []*Record
	}{{"/creates", b.Creates}, {"/updates", b.Updates}} {
		for i, r := range part.rs {
			switch {
			case r == nil || r.Kind == "" || r.MchID == "" || r.Key == "" || r.Version < 0:
				bad(part.path, i, "a record needs a kind, an mchid, a key and a version >= 0")
			case len(r.Data) > 0 && !json.Valid(r.Data):
				bad(part.path, i, "data is not valid JSON")
			case slices.Contains(r.Aliases, ""):
				bad(part.path, i, "an alias is empty")
			}
		}
	}
	for i, x := range b.Sessions {
		if x == nil || x.ID == "" || x.Version < 0 {
			bad("/sessions", i, "a session needs an id and a version >= 0")
		}
	}
	for i, n := range b.Notifications {
		if n == nil || n.ID == "" || n.Version < 0 {
			bad("/notifications", i, "a notification needs an id and a version >= 0")
		}
	}
	if len(vs) > 0 {
		return Invalid("invalid batch", vs...)
	}
	return nil
}

// UniqueAliases returns the record's aliases without repeats, in order: a
// repeated alias would conflict with itself.
func (r *Record) UniqueAliases() []string {
	as := make([]string, 0, len(r.Aliases))
	for _, a := range r.Aliases {
		if !slices.Contains(as, a) {
			as = append(as, a)
		}
	}
	return as
}
