// Package report is the integration report card: it judges what a
// merchant's own code did — its signatures, its notification receiver, what
// it did after the user came back, how it met client limits — from the
// journal of its exchanges over a time window, product by product. Every
// check names the real rule it applies and its public source, says passed,
// failed or not_exercised, and links the journal entries it used; a check
// without evidence is not_exercised, never passed. docs/REPORT.md lists the
// checks.
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Verdict is a check's outcome.
type Verdict string

// Verdicts.
const (
	Passed       Verdict = "passed"
	Failed       Verdict = "failed"
	NotExercised Verdict = "not_exercised"
)

// Limits on one report: the journal entries read, and the sessions and
// notifications looked up, so that a report over a busy merchant's history
// costs a bounded read. Past them the report says it is truncated.
const (
	DefaultMaxEntries = 20000
	maxLookups        = 2000
	pageSize          = 1000
	// maxEvidence is how many entries a check lists; EvidenceTotal counts
	// them all.
	maxEvidence = 50
)

// Evidence is one journal entry a check used.
type Evidence struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	// What is the exchange in a line: "POST /v3/payscore/serviceorder 401".
	What string `json:"what"`
	// Note is what the check read in it.
	Note string `json:"note,omitempty"`
	// Bad marks an entry the check failed on.
	Bad bool `json:"bad,omitempty"`
	// URL is the entry in the admin API; Page is it in the QA page.
	URL  string `json:"url"`
	Page string `json:"page"`
}

// Check is one rule applied to one product's exchanges.
type Check struct {
	ID      string `json:"id"`
	Product string `json:"product"`
	Title   string `json:"title"`
	// Rule is the real system's rule, Source where it is written. Inferred
	// marks a rule the sandbox derived rather than read.
	Rule     string `json:"rule"`
	Source   string `json:"source"`
	Inferred bool   `json:"inferred,omitempty"`

	Verdict Verdict `json:"verdict"`
	// Summary is what the check found, in a sentence with counts.
	Summary string `json:"summary"`
	// Fix is what to change (failed) or to run (not_exercised).
	Fix           string     `json:"fix,omitempty"`
	Evidence      []Evidence `json:"evidence"`
	EvidenceTotal int        `json:"evidence_total"`
}

// Counts counts verdicts.
type Counts struct {
	Passed       int `json:"passed"`
	Failed       int `json:"failed"`
	NotExercised int `json:"not_exercised"`
}

func (c *Counts) add(v Verdict) {
	switch v {
	case Passed:
		c.Passed++
	case Failed:
		c.Failed++
	default:
		c.NotExercised++
	}
}

// ProductReport is one product's checks.
type ProductReport struct {
	Product string  `json:"product"`
	Counts  Counts  `json:"counts"`
	Checks  []Check `json:"checks"`
}

// Report is a merchant's report card over [Since, Until].
type Report struct {
	MchID       string    `json:"mchid"`
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	GeneratedAt time.Time `json:"generated_at"`
	// Entries is how many journal entries of the merchant fell in the
	// window; Truncated says the window held more than the report reads,
	// and the oldest were left out.
	Entries   int             `json:"entries"`
	Truncated bool            `json:"truncated,omitempty"`
	Counts    Counts          `json:"counts"`
	Products  []ProductReport `json:"products"`
}

// Failed returns the failed checks, product by product.
func (r *Report) Failed() []Check {
	var out []Check
	for _, p := range r.Products {
		for _, c := range p.Checks {
			if c.Verdict == Failed {
				out = append(out, c)
			}
		}
	}
	return out
}

// Builder builds reports from the store.
type Builder struct {
	Store     sandbox.Store
	Scenarios sandbox.Scenarios
	// Products names the registered products, in the server's order: the
	// report has a part for each.
	Products []string
	// Acknowledged is each product's rule for an answer that acknowledges
	// a notification (its sandbox.NotifyBuilder's).
	Acknowledged map[string]func(status int, body []byte) bool
	// TargetProduct names the product a wx.* call was for, when the journal
	// entry does not (a call refused before it became a session).
	TargetProduct func(api string, args json.RawMessage) string
	// Flush waits until every exchange recorded so far is in the store
	// (the journal's Flush), so that a report asked for right after a
	// suite's last request sees it. Nil skips it.
	Flush func(context.Context) error
	// MaxEntries bounds the journal entries read (default
	// DefaultMaxEntries).
	MaxEntries int
}

// Build evaluates every check for the merchant over [since, until] (real
// time, as the journal records it).
func (b *Builder) Build(ctx context.Context, mchid string, since, until time.Time) (*Report, error) {
	m, err := b.Store.GetMerchant(ctx, mchid)
	if err != nil {
		return nil, err
	}
	if b.Flush != nil {
		if err := b.Flush(ctx); err != nil {
			return nil, err
		}
	}
	f, err := b.gather(ctx, m, since, until)
	if err != nil {
		return nil, err
	}
	r := &Report{MchID: mchid, Since: since, Until: until, GeneratedAt: time.Now().UTC(), Entries: len(f.xs), Truncated: f.truncated}
	for _, p := range b.Products {
		pr := ProductReport{Product: p}
		for _, def := range checks {
			if def.products != nil && !slices.Contains(def.products, p) {
				continue
			}
			c := def.eval(f, p)
			c.ID, c.Product, c.Title, c.Rule, c.Source, c.Inferred = def.id, p, def.title, def.rule(p), def.source(p), def.inferred
			c.finish()
			pr.Counts.add(c.Verdict)
			r.Counts.add(c.Verdict)
			pr.Checks = append(pr.Checks, c)
		}
		r.Products = append(r.Products, pr)
	}
	return r, nil
}

// finish orders the evidence, bad entries first, and bounds it.
func (c *Check) finish() {
	if c.Evidence == nil {
		c.Evidence = []Evidence{}
	}
	slices.SortStableFunc(c.Evidence, func(a, b Evidence) int {
		switch {
		case a.Bad != b.Bad && a.Bad:
			return -1
		case a.Bad != b.Bad:
			return 1
		}
		return int(a.ID - b.ID)
	})
	c.EvidenceTotal = len(c.Evidence)
	if len(c.Evidence) > maxEvidence {
		c.Evidence = c.Evidence[:maxEvidence]
	}
	if c.Verdict == Passed {
		c.Fix = ""
	}
}

// evidence describes x for a check.
func evidence(x *sandbox.Exchange, bad bool, format string, args ...any) Evidence {
	what := x.Method + " " + pathOf(x)
	if x.Direction == sandbox.DirectionOut {
		what = "notify " + x.NotifyID + " attempt " + fmt.Sprint(x.Attempt) + " → " + x.URL
	}
	if x.Status != 0 {
		what += fmt.Sprintf(" %d", x.Status)
	} else if x.Error != "" {
		what += " (no answer)"
	}
	id := fmt.Sprint(x.ID)
	return Evidence{ID: x.ID, Time: x.Time, What: what, Note: fmt.Sprintf(format, args...), Bad: bad,
		URL: "/sandbox/v1/journal/" + id, Page: "/#journal/" + id}
}

// pathOf is the exchange's path. Inbound URLs are a request URI, which is
// cut without parsing: the checks ask it of every entry, many times.
func pathOf(x *sandbox.Exchange) string {
	if strings.HasPrefix(x.URL, "/") {
		p, _, _ := strings.Cut(x.URL, "?")
		return p
	}
	u, err := url.Parse(x.URL)
	if err != nil {
		return x.URL
	}
	return u.Path
}
