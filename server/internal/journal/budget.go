package journal

import (
	"strconv"
	"sync"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The bounds of one entry's fields, besides the bodies' MaxBody. A stranger
// controls every one of them (the URL, the violations of a body with
// thousands of duplicate fields, an unknown scenario id), so each is cut.
const (
	maxURL       = 8 << 10
	maxError     = 4 << 10
	maxShort     = 256 // ids, names, the method, the source
	maxViolPath  = 256
	maxViolMsg   = 1 << 10
	maxViolCount = 100

	// An unverified exchange is kept with this small fixed budget per
	// field: enough to see why its signature failed.
	unverifiedBody       = 2 << 10
	unverifiedURL        = 1 << 10
	unverifiedViolations = 10
)

// budget is how much of each field an entry keeps.
type budget struct {
	body, url, violations int
}

func (j *Journal) budgetOf(x *sandbox.Exchange) budget {
	if x.Unverified {
		return budget{body: min(unverifiedBody, j.o.MaxBody), url: unverifiedURL, violations: unverifiedViolations}
	}
	return budget{body: j.o.MaxBody, url: maxURL, violations: maxViolCount}
}

// bound masks secrets in x and cuts every stored field to b, marking each
// cut, so that an entry's size is bounded whatever the request held.
func bound(x *sandbox.Exchange, b budget) {
	x.RequestBody = cut(Mask(x.RequestBody), b.body)
	x.ResponseBody = cut(Mask(x.ResponseBody), b.body)
	x.Diagnostics = cut(Mask(x.Diagnostics), b.body)
	x.URL = cut(maskURL(x.URL), b.url)
	x.Error = cut(x.Error, maxError)
	for _, f := range []*string{&x.Direction, &x.Product, &x.MchID, &x.SessionID, &x.NotifyID, &x.Scenario, &x.RequestID, &x.Method, &x.Source} {
		*f = cut(*f, maxShort)
	}
	x.Violations = capViolations(x.Violations, b.violations)
	x.Warnings = capViolations(x.Warnings, b.violations)
}

// capViolations keeps the first n violations, each cut, and says how many
// more there were in a last one.
func capViolations(vs []sandbox.Violation, n int) []sandbox.Violation {
	if len(vs) == 0 {
		return vs
	}
	kept := min(len(vs), n)
	out := make([]sandbox.Violation, kept, kept+1)
	for i := range kept {
		out[i] = sandbox.Violation{Path: cut(vs[i].Path, maxViolPath), Message: cut(vs[i].Message, maxViolMsg)}
	}
	if more := len(vs) - kept; more > 0 {
		out = append(out, sandbox.Violation{Message: "… and " + thousands(more) + " more"})
	}
	return out
}

// thousands writes n with a comma every three digits: 6,993.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// size estimates the bytes an entry takes in the store.
func size(x *sandbox.Exchange) int64 {
	n := 256 + len(x.RequestBody) + len(x.ResponseBody) + len(x.Diagnostics) + len(x.URL) + len(x.Error)
	for _, vs := range [][]sandbox.Violation{x.Violations, x.Warnings} {
		for _, v := range vs {
			n += 32 + len(v.Path) + len(v.Message)
		}
	}
	return int64(n)
}

// sourceLimiter admits at most rate events per source per second. Its
// memory is bounded: past maxSources distinct sources in one second, the
// others share one allowance.
type sourceLimiter struct {
	rate int
	mu   sync.Mutex
	win  int64 // the second counted
	seen map[string]int
}

const maxSources = 4096

func newSourceLimiter(rate int) *sourceLimiter {
	return &sourceLimiter{rate: rate, seen: map[string]int{}}
}

func (l *sourceLimiter) allow(source string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Only a later second starts a new count: exchanges are recorded when
	// they end but stamped when they began, so a slow one from the second
	// before arrives after the count moved on, and used to start it over.
	if sec := now.Unix(); sec > l.win {
		l.win = sec
		clear(l.seen)
	}
	if _, ok := l.seen[source]; !ok && len(l.seen) >= maxSources {
		source = "" // the shared allowance
	}
	if l.seen[source] >= l.rate {
		return false
	}
	l.seen[source]++
	return true
}
