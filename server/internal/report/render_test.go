package report

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"testing"
	"time"
)

// hostile is a report whose evidence quotes what a merchant's receiver
// answered: markup, a backtick, a pipe and a line break.
func hostile() *Report {
	c := Check{ID: "notify.acknowledged", Title: "Valid notifications acknowledged", Verdict: Failed, Summary: "s", Rule: "r", Source: "src",
		Evidence: []Evidence{{ID: 7, What: "notify `x` | y", Note: "answered 200 <script>alert(1)</script>\n# heading", Bad: true, Page: "/#journal/7"}}, EvidenceTotal: 1}
	return &Report{MchID: "1230000109", Until: time.Now(), Products: []ProductReport{{Product: "embedpay", Checks: []Check{c}}}}
}

func TestHTMLEscapesWhatMerchantsSent(t *testing.T) {
	if s := string(HTML(hostile(), "http://127.0.0.1:8080")); strings.Contains(s, "<script>") || !strings.Contains(s, "&lt;script&gt;") {
		t.Errorf("the HTML export does not escape a merchant's answer:\n%s", s)
	}
}

func TestMarkdownKeepsItsShape(t *testing.T) {
	md := string(Markdown(hostile(), "http://127.0.0.1:8080"))
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "# heading") {
			t.Errorf("a merchant's answer starts a heading of its own:\n%s", md)
		}
	}
	if strings.Contains(md, "<script>") || strings.Contains(md, "`x`") {
		t.Errorf("the Markdown export carries markup or code spans from a merchant's answer:\n%s", md)
	}
	if !strings.Contains(md, "[#7](http://127.0.0.1:8080/#journal/7)") {
		t.Errorf("the evidence link is missing:\n%s", md)
	}
}

// byTemplate is the HTML export as it was made before HTML wrote it
// itself: the same page as an html/template template, which escaped each
// value for where it stands. HTML must write the same bytes.
var byTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"mark":   verdictMark,
	"window": window,
	"time":   func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mpsandbox report — {{.R.MchID}}</title>
<style>
` + style + `</style></head><body>
<h1>mpsandbox integration report — merchant {{.R.MchID}}</h1>
<p class="meta">Window: {{window .R}} · generated {{time .R.GeneratedAt}} · {{.R.Entries}} journal entries{{if .R.Truncated}} (truncated: the oldest entries were not read){{end}}</p>
<p class="totals"><span>{{.R.Counts.Passed}} passed</span><span class="bad">{{.R.Counts.Failed}} failed</span><span>{{.R.Counts.NotExercised}} not exercised</span></p>
<table><thead><tr><th>product</th><th>check</th><th>verdict</th></tr></thead><tbody>
{{range .R.Products}}{{$p := .Product}}{{range .Checks}}<tr><td>{{$p}}</td><td><a href="#{{$p}}.{{.ID}}">{{.Title}}</a></td><td class="v">{{mark .Verdict}}</td></tr>
{{end}}{{end}}</tbody></table>
{{range .R.Products}}{{$p := .Product}}<h2>{{$p}}</h2>
{{range .Checks}}<div class="check {{.Verdict}}" id="{{$p}}.{{.ID}}">
<div><span class="v">{{mark .Verdict}}</span> — <strong>{{.Title}}</strong> <span class="id">{{.ID}}</span></div>
<p>{{.Summary}}</p>
<dl><dt>Rule</dt><dd>{{.Rule}}{{if .Inferred}} <em>(inferred)</em>{{end}}</dd><dt>Source</dt><dd>{{.Source}}</dd>
{{if .Fix}}<dt>How to fix</dt><dd>{{.Fix}}</dd>{{end}}</dl>
{{if .Evidence}}<details{{if eq .Verdict "failed"}} open{{end}}><summary>Evidence ({{.EvidenceTotal}})</summary><ul>
{{range .Evidence}}<li{{if .Bad}} class="bad"{{end}}><a href="{{$.Base}}{{.Page}}">#{{.ID}}</a> <code>{{.What}}</code> — {{.Note}}</li>
{{end}}</ul></details>{{end}}
</div>
{{end}}{{end}}
</body></html>
`))

// firstDifference shows where got and want part.
func firstDifference(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return fmt.Sprintf("at byte %d, after %q:\n got %q\nwant %q", i, got[from:i], got[i:min(len(got), i+80)], want[i:min(len(want), i+80)])
}

func templateHTML(t testing.TB, r *Report, base string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := byTemplate.Execute(&b, struct {
		R    *Report
		Base string
	}{r, base}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sampleReport has every part of the page: a truncated window, two
// products, checks of each verdict, inferred rules, fixes, evidence good and
// bad, and the given text in every field a merchant's exchanges can reach.
func sampleReport(text, page string) *Report {
	at := time.Date(2026, 12, 3, 14, 0, 0, 0, time.FixedZone("CST", 8*3600))
	ev := []Evidence{{ID: 7, What: "POST /v3/x " + text, Note: text, Bad: true, Page: page}, {ID: -1, What: text, Page: "/#journal/8"}}
	return &Report{
		MchID: text, Since: at.Add(-time.Hour), Until: at, GeneratedAt: at, Entries: 12345, Truncated: true,
		Counts: Counts{Passed: 1, Failed: 2, NotExercised: 3},
		Products: []ProductReport{
			{Product: "payscore" + text, Checks: []Check{
				{ID: "a." + text, Title: text, Rule: text, Source: text, Inferred: true, Verdict: Failed, Summary: text, Fix: text, Evidence: ev, EvidenceTotal: 60},
				{ID: "b", Title: "t", Rule: "r", Source: "s", Verdict: Passed, Summary: "ok", Evidence: ev[1:], EvidenceTotal: 1},
			}},
			{Product: "parking", Checks: []Check{{ID: "c", Title: "t", Verdict: NotExercised, Fix: "run it"}}},
			{Product: "empty"},
		},
	}
}

// hostileText is what a merchant's answers may hold: markup, quotes,
// entities, a plus, a NUL, invalid UTF-8, Chinese, percent signs valid and
// not, URL punctuation.
const hostileText = "<script>alert('x')</script> \"q\" &amp; a+b \x00 \xe4\xb8 中文 %41%zz #?&=/ `|` \u2028"

func TestHTMLIsWhatTheTemplateMade(t *testing.T) {
	for _, tc := range []struct{ text, base, page string }{
		{"plain", "http://127.0.0.1:8080", "/#journal/7"},
		{hostileText, "https://sandbox.example:8443", "/#journal/7?x=" + hostileText},
		{hostileText, "javascript:alert(1)//", "data:text/html,<b>"},
		{"", "", ""},
	} {
		r := sampleReport(tc.text, tc.page)
		if got, want := HTML(r, tc.base), templateHTML(t, r, tc.base); !bytes.Equal(got, want) {
			t.Errorf("text %q, base %q: HTML differs from the template's page %s", tc.text, tc.base, firstDifference(got, want))
		}
	}
	if got, want := HTML(&Report{}, ""), templateHTML(t, &Report{}, ""); !bytes.Equal(got, want) {
		t.Errorf("empty report: HTML differs from the template's page %s", firstDifference(got, want))
	}
}

func FuzzHTMLIsWhatTheTemplateMade(f *testing.F) {
	f.Add("plain", "http://127.0.0.1:8080", "/#journal/7")
	f.Add(hostileText, "HTTPS://h", "mailto:x@y")
	f.Add("%", "vbscript:x", "//evil.example/%2")
	f.Fuzz(func(t *testing.T, text, base, page string) {
		r := sampleReport(text, page)
		if got, want := HTML(r, base), templateHTML(t, r, base); !bytes.Equal(got, want) {
			t.Errorf("text %q, base %q, page %q: HTML differs from the template's page %s", text, base, page, firstDifference(got, want))
		}
	})
}
