package report

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"
)

// verdictMark is a verdict as the exports show it.
func verdictMark(v Verdict) string {
	switch v {
	case Passed:
		return "✅ passed"
	case Failed:
		return "❌ failed"
	}
	return "⚪ not exercised"
}

func window(r *Report) string {
	since := "the start of the journal"
	if !r.Since.IsZero() {
		since = r.Since.Format(time.RFC3339)
	}
	return since + " – " + r.Until.Format(time.RFC3339)
}

// Markdown renders the report for a go-live review: a summary table, then
// each product's checks with their rule, source, finding, fix and evidence.
// Evidence links point at base (the sandbox's address, "" for relative).
func Markdown(r *Report, base string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# mpsandbox integration report — merchant %s\n\n", r.MchID)
	fmt.Fprintf(&b, "Window: %s · generated %s · %d journal entries", window(r), r.GeneratedAt.Format(time.RFC3339), r.Entries)
	if r.Truncated {
		b.WriteString(" (truncated: the oldest entries were not read)")
	}
	fmt.Fprintf(&b, "\n\n**%d passed · %d failed · %d not exercised**\n\n", r.Counts.Passed, r.Counts.Failed, r.Counts.NotExercised)
	b.WriteString("| product | check | verdict |\n|---|---|---|\n")
	for _, p := range r.Products {
		for _, c := range p.Checks {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", p.Product, mdText(c.Title), verdictMark(c.Verdict))
		}
	}
	for _, p := range r.Products {
		fmt.Fprintf(&b, "\n## %s\n", p.Product)
		for _, c := range p.Checks {
			fmt.Fprintf(&b, "\n### %s — %s\n\n", verdictMark(c.Verdict), c.Title)
			fmt.Fprintf(&b, "`%s`. %s\n\n", c.ID, c.Summary)
			rule := c.Rule
			if c.Inferred {
				rule += " *(inferred)*"
			}
			fmt.Fprintf(&b, "- **Rule:** %s\n- **Source:** %s\n", rule, c.Source)
			if c.Fix != "" {
				fmt.Fprintf(&b, "- **How to fix:** %s\n", c.Fix)
			}
			if len(c.Evidence) > 0 {
				fmt.Fprintf(&b, "- **Evidence** (%d):\n", c.EvidenceTotal)
				for _, e := range c.Evidence {
					mark := ""
					if e.Bad {
						mark = "❌ "
					}
					fmt.Fprintf(&b, "  - %s[#%d](%s%s) `%s` — %s\n", mark, e.ID, base, e.Page, mdText(e.What), mdText(e.Note))
				}
			}
		}
	}
	return b.Bytes()
}

// mdText keeps text that quotes what merchants sent (their answers, their
// URLs) from shaping the Markdown: one line, no markup, no code span, no
// table cell break.
var mdText = strings.NewReplacer("\r", " ", "\n", " ", "<", "&lt;", ">", "&gt;", "`", "'", "|", `\|`).Replace

// page is the self-contained HTML export: no script, no external asset.
var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"mark":   verdictMark,
	"window": window,
	"time":   func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mpsandbox report — {{.R.MchID}}</title>
<style>
body{font:14px/1.5 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.15rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#59636e}.totals span{display:inline-block;margin-right:1rem;font-weight:600}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
.check{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
.check.failed{border-color:#cf222e;background:#fff5f5}.check.passed{border-color:#1a7f37}
.v{font-weight:600}.id{font-family:ui-monospace,monospace;color:#59636e}.bad{color:#cf222e}
dl{margin:.4rem 0}dt{font-weight:600;float:left;clear:left;width:7rem}dd{margin-left:7.5rem}
ul{margin:.3rem 0;padding-left:1.2rem}code{font-family:ui-monospace,monospace;font-size:.9em}
</style></head><body>
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

// HTML renders the report as one self-contained page for a go-live review.
// Evidence links point at base (the sandbox's address, "" for relative).
func HTML(r *Report, base string) ([]byte, error) {
	var b bytes.Buffer
	if err := page.Execute(&b, struct {
		R    *Report
		Base string
	}{r, base}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
