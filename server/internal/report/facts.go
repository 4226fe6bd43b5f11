package report

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// facts is what the checks read: the merchant's exchanges in the window,
// oldest first, and the sessions and notifications they name.
type facts struct {
	b         *Builder
	m         *sandbox.Merchant
	xs        []*sandbox.Exchange
	truncated bool
	sessions  map[string]*sandbox.Session
	notes     map[string]*sandbox.Notification
	// product is each exchange's product, including wx.* calls refused
	// before they became a session.
	product map[int64]string
	// parsed caches params: the checks ask again and again.
	parsed map[int64]map[string]string
}

// params returns x's parameters, parsed once.
func (f *facts) params(x *sandbox.Exchange) map[string]string {
	if p, ok := f.parsed[x.ID]; ok {
		return p
	}
	p := params(x)
	f.parsed[x.ID] = p
	return p
}

// gather reads the journal backwards from until to since, then the
// sessions and notifications its entries name.
func (b *Builder) gather(ctx context.Context, m *sandbox.Merchant, since, until time.Time) (*facts, error) {
	limit := b.MaxEntries
	if limit <= 0 {
		limit = DefaultMaxEntries
	}
	f := &facts{b: b, m: m, sessions: map[string]*sandbox.Session{}, notes: map[string]*sandbox.Notification{}, product: map[int64]string{}, parsed: map[int64]map[string]string{}}
	var before int64
read:
	for {
		page, err := b.Store.QueryJournal(ctx, sandbox.JournalFilter{MchID: m.MchID, BeforeID: before, Limit: pageSize})
		if err != nil {
			return nil, err
		}
		for _, x := range page {
			before = x.ID
			if x.Time.After(until) {
				continue
			}
			if x.Time.Before(since) {
				break read
			}
			if len(f.xs) == limit {
				f.truncated = true
				break read
			}
			f.xs = append(f.xs, x)
		}
		if len(page) < pageSize {
			break
		}
	}
	slices.Reverse(f.xs)
	for _, x := range f.xs {
		f.product[x.ID] = x.Product
		if api, ok := launchAPI(x); ok && x.Product == "" && b.TargetProduct != nil {
			var body struct {
				Args json.RawMessage `json:"args"`
			}
			if json.Unmarshal([]byte(x.RequestBody), &body) == nil {
				f.product[x.ID] = b.TargetProduct(api, body.Args)
			}
		}
		for _, err := range []error{
			lookup(ctx, f, f.sessions, x.SessionID, b.Store.GetSession),
			lookup(ctx, f, f.notes, x.NotifyID, b.Store.GetNotification),
		} {
			if err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// lookup reads id into seen once; one gone since (a pruned row) is left
// out. Past maxLookups the report is truncated.
func lookup[T any](ctx context.Context, f *facts, seen map[string]*T, id string, get func(context.Context, string) (*T, error)) error {
	if _, ok := seen[id]; ok || id == "" {
		return nil
	}
	if len(seen) >= maxLookups {
		f.truncated = true
		return nil
	}
	v, err := get(ctx, id)
	if sandbox.IsCode(err, sandbox.CodeNotFound) {
		seen[id] = nil
		return nil
	}
	if err != nil {
		return err
	}
	seen[id] = v
	return nil
}

// of returns the product's exchanges that match.
func (f *facts) of(product string, match func(*sandbox.Exchange) bool) []*sandbox.Exchange {
	var out []*sandbox.Exchange
	for _, x := range f.xs {
		if f.product[x.ID] == product && match(x) {
			out = append(out, x)
		}
	}
	return out
}

const mpPrefix = "/miniprogram/v1/"

// launchAPI returns the wx.* API of a call (POST /miniprogram/v1/{api}).
func launchAPI(x *sandbox.Exchange) (string, bool) {
	p := pathOf(x)
	if x.Direction != sandbox.DirectionIn || x.Method != "POST" || !strings.HasPrefix(p, mpPrefix) {
		return "", false
	}
	return strings.TrimPrefix(p, mpPrefix), true
}

func isLaunch(x *sandbox.Exchange) bool { _, ok := launchAPI(x); return ok }

// isReturn is a read of a session's return that found the user back.
func isReturn(x *sandbox.Exchange) bool {
	p := pathOf(x)
	return x.Method == "GET" && x.Status == 200 && strings.HasPrefix(p, mpPrefix+"sessions/") && strings.HasSuffix(p, "/return")
}

// isGetter is a read of a plugin result getter.
func isGetter(x *sandbox.Exchange) bool {
	p := pathOf(x)
	return x.Method == "GET" && strings.HasPrefix(p, mpPrefix+"sessions/") && strings.Contains(p, "/plugin/")
}

// isUpstream is a request to a simulated upstream API (not the mini-program
// contract, not the sandbox's own API).
func isUpstream(x *sandbox.Exchange) bool {
	if x.Direction != sandbox.DirectionIn {
		return false
	}
	p := pathOf(x)
	return !strings.HasPrefix(p, mpPrefix) && !strings.HasPrefix(p, "/sandbox/")
}

func isAttempt(x *sandbox.Exchange) bool { return x.Direction == sandbox.DirectionOut }

func ok2xx(x *sandbox.Exchange) bool { return x.Status >= 200 && x.Status < 300 }

// hasViolation reports whether x was refused over one of the paths.
func hasViolation(x *sandbox.Exchange, paths ...string) (sandbox.Violation, bool) {
	for _, v := range x.Violations {
		if slices.Contains(paths, v.Path) {
			return v, true
		}
	}
	return sandbox.Violation{}, false
}

// params reads a request's parameters: the query, then a form or JSON
// object body (string and number values), then v2 XML.
func params(x *sandbox.Exchange) map[string]string {
	out := map[string]string{}
	if u, err := url.Parse(x.URL); err == nil {
		for k, v := range u.Query() {
			out[k] = v[0]
		}
	}
	body := strings.TrimSpace(x.RequestBody)
	switch {
	case strings.HasPrefix(body, "{"):
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) == nil {
			for k, v := range m {
				if t := text(v); t != "" {
					out[k] = t
				}
			}
		}
	case strings.HasPrefix(body, "<"):
		for k, v := range xmlParams(body) {
			out[k] = v
		}
	case strings.Contains(body, "="):
		if v, err := url.ParseQuery(body); err == nil {
			for k, vs := range v {
				out[k] = vs[0]
			}
		}
	}
	return out
}

// returnData is the extraData a return shows the caller (App.onShow's
// referrerInfo.extraData), nil when it carries none.
func returnData(x *sandbox.Exchange) map[string]any {
	var out struct {
		ReferrerInfo struct {
			ExtraData map[string]any `json:"extraData"`
		} `json:"referrerInfo"`
	}
	if json.Unmarshal([]byte(x.ResponseBody), &out) != nil {
		return nil
	}
	return out.ReferrerInfo.ExtraData
}

// sorted returns the product's exchanges that match, by start time.
func (f *facts) sorted(product string, match func(*sandbox.Exchange) bool) []*sandbox.Exchange {
	xs := f.of(product, match)
	slices.SortStableFunc(xs, func(a, b *sandbox.Exchange) int { return a.Time.Compare(b.Time) })
	return xs
}

// after returns the earliest exchange of xs (sorted by start time) that
// started after x and matches. Start times, not ids, order them: a
// notification attempt is journalled once answered, so a query the
// merchant made on receiving it can have the smaller id.
func after(xs []*sandbox.Exchange, x *sandbox.Exchange, match func(*sandbox.Exchange) bool) *sandbox.Exchange {
	i, _ := slices.BinarySearchFunc(xs, x.Time, func(y *sandbox.Exchange, t time.Time) int {
		if y.Time.After(t) {
			return 1
		}
		return -1
	})
	for _, y := range xs[i:] {
		if match(y) {
			return y
		}
	}
	return nil
}
