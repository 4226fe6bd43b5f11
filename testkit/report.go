package testkit

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Verdicts of a report check.
const (
	Passed       = "passed"
	Failed       = "failed"
	NotExercised = "not_exercised"
)

// Report is a merchant's integration report card: what its own code did,
// judged from the sandbox's journal over a window (GET
// /sandbox/v1/merchants/{mchid}/report; the checks, their rules and sources
// are in docs/REPORT.md). It is a view of the JSON answer: the sandbox's
// own types are internal to it.
type Report struct {
	MchID       string    `json:"mchid"`
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	GeneratedAt time.Time `json:"generated_at"`
	// Entries is how many journal entries fell in the window; Truncated
	// says it held more than a report reads.
	Entries   int             `json:"entries"`
	Truncated bool            `json:"truncated,omitempty"`
	Counts    ReportCounts    `json:"counts"`
	Products  []ReportProduct `json:"products"`
}

// ReportCounts counts verdicts.
type ReportCounts struct {
	Passed       int `json:"passed"`
	Failed       int `json:"failed"`
	NotExercised int `json:"not_exercised"`
}

// ReportProduct is one product's checks.
type ReportProduct struct {
	Product string        `json:"product"`
	Counts  ReportCounts  `json:"counts"`
	Checks  []ReportCheck `json:"checks"`
}

// ReportCheck is one rule applied to one product's exchanges: its verdict
// (Passed, Failed, NotExercised), what was found, how to fix it, and the
// journal entries it used.
type ReportCheck struct {
	ID            string           `json:"id"`
	Product       string           `json:"product"`
	Title         string           `json:"title"`
	Rule          string           `json:"rule"`
	Source        string           `json:"source"`
	Inferred      bool             `json:"inferred,omitempty"`
	Verdict       string           `json:"verdict"`
	Summary       string           `json:"summary"`
	Fix           string           `json:"fix,omitempty"`
	Evidence      []ReportEvidence `json:"evidence"`
	EvidenceTotal int              `json:"evidence_total"`
}

// ReportEvidence is a journal entry a check used; Bad marks one it failed
// on. URL is the entry in the admin API.
type ReportEvidence struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	What string    `json:"what"`
	Note string    `json:"note,omitempty"`
	Bad  bool      `json:"bad,omitempty"`
	URL  string    `json:"url"`
}

// Failed returns the failed checks, product by product.
func (r *Report) Failed() []ReportCheck {
	var out []ReportCheck
	for _, p := range r.Products {
		for _, c := range p.Checks {
			if c.Verdict == Failed {
				out = append(out, c)
			}
		}
	}
	return out
}

// Check returns the product's check id ("notify.bad_signature"), or false.
func (r *Report) Check(product, id string) (ReportCheck, bool) {
	for _, p := range r.Products {
		for _, c := range p.Checks {
			if p.Product == product && c.ID == id {
				return c, true
			}
		}
	}
	return ReportCheck{}, false
}

// Report returns the merchant's report card over what happened since
// (zero: the whole journal) — a suite's TestMain can fail the run on
// Report(ctx, start).Failed().
func (m *Merchant) Report(ctx context.Context, since time.Time) (*Report, error) {
	path := m.path("/report")
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	var r Report
	if err := m.sb.Admin(ctx, http.MethodGet, path, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
