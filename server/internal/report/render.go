package report

import (
	"bytes"
	"fmt"
	"strconv"
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

// style is the HTML export's stylesheet: the page has no script and no
// external asset.
const style = `body{font:14px/1.5 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.15rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#59636e}.totals span{display:inline-block;margin-right:1rem;font-weight:600}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
.check{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
.check.failed{border-color:#cf222e;background:#fff5f5}.check.passed{border-color:#1a7f37}
.v{font-weight:600}.id{font-family:ui-monospace,monospace;color:#59636e}.bad{color:#cf222e}
dl{margin:.4rem 0}dt{font-weight:600;float:left;clear:left;width:7rem}dd{margin-left:7.5rem}
ul{margin:.3rem 0;padding-left:1.2rem}code{font-family:ui-monospace,monospace;font-size:.9em}
`

// HTML renders the report as one self-contained page for a go-live review.
// Evidence links point at base (the sandbox's address, "" for relative).
//
// It writes what html/template made of the page when it was a template,
// byte for byte (FuzzHTMLIsWhatTheTemplateMade keeps that template and
// compares): text and attribute values through html/template's HTML
// escaper, a link through its URL filter and normalizer, a fragment
// through its URL escaper. It is not a template because executing one
// links text/template's reflective method lookup, which keeps every
// exported method of every type in the binary: several MB,
// docs/PERFORMANCE.md.
func HTML(r *Report, base string) []byte {
	var b bytes.Buffer
	w := func(s ...string) {
		for _, x := range s {
			b.WriteString(x)
		}
	}
	n := strconv.Itoa
	w("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
		"<title>mpsandbox report — ", esc(r.MchID), "</title>\n<style>\n", style, "</style></head><body>\n",
		"<h1>mpsandbox integration report — merchant ", esc(r.MchID), "</h1>\n",
		"<p class=\"meta\">Window: ", esc(window(r)), " · generated ", esc(r.GeneratedAt.Format(time.RFC3339)),
		" · ", n(r.Entries), " journal entries")
	if r.Truncated {
		w(" (truncated: the oldest entries were not read)")
	}
	w("</p>\n<p class=\"totals\"><span>", n(r.Counts.Passed), " passed</span><span class=\"bad\">", n(r.Counts.Failed),
		" failed</span><span>", n(r.Counts.NotExercised), " not exercised</span></p>\n",
		"<table><thead><tr><th>product</th><th>check</th><th>verdict</th></tr></thead><tbody>\n")
	for _, p := range r.Products {
		for _, c := range p.Checks {
			w("<tr><td>", esc(p.Product), "</td><td><a href=\"#", urlEscape(p.Product), ".", urlEscape(c.ID), "\">",
				esc(c.Title), "</a></td><td class=\"v\">", esc(verdictMark(c.Verdict)), "</td></tr>\n")
		}
	}
	w("</tbody></table>\n")
	for _, p := range r.Products {
		w("<h2>", esc(p.Product), "</h2>\n")
		for _, c := range p.Checks {
			w("<div class=\"check ", esc(string(c.Verdict)), "\" id=\"", esc(p.Product), ".", esc(c.ID), "\">\n",
				"<div><span class=\"v\">", esc(verdictMark(c.Verdict)), "</span> — <strong>", esc(c.Title),
				"</strong> <span class=\"id\">", esc(c.ID), "</span></div>\n",
				"<p>", esc(c.Summary), "</p>\n",
				"<dl><dt>Rule</dt><dd>", esc(c.Rule))
			if c.Inferred {
				w(" <em>(inferred)</em>")
			}
			w("</dd><dt>Source</dt><dd>", esc(c.Source), "</dd>\n")
			if c.Fix != "" {
				w("<dt>How to fix</dt><dd>", esc(c.Fix), "</dd>")
			}
			w("</dl>\n")
			if len(c.Evidence) > 0 {
				w("<details")
				if c.Verdict == Failed {
					w(" open")
				}
				w("><summary>Evidence (", n(c.EvidenceTotal), ")</summary><ul>\n")
				for _, e := range c.Evidence {
					w("<li")
					if e.Bad {
						w(" class=\"bad\"")
					}
					w("><a href=\"", esc(urlNormalize(base)), esc(urlNormalize(e.Page)), "\">#", strconv.FormatInt(e.ID, 10),
						"</a> <code>", esc(e.What), "</code> — ", esc(e.Note), "</li>\n")
				}
				w("</ul></details>")
			}
			w("\n</div>\n")
		}
	}
	w("\n</body></html>\n")
	return b.Bytes()
}

// esc is html/template's escaper for text, RCDATA (<title>) and quoted
// attribute values: the same table, applied byte by byte (every character
// it replaces is ASCII, so no UTF-8 sequence holds one).
var esc = strings.NewReplacer("\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;", "+", "&#43;", "<", "&lt;", ">", "&gt;").Replace

// urlNormalize is html/template's URL filter and normalizer, for a value at
// the start of a link (or after another such value): a scheme other than
// http, https or mailto becomes "#ZgotmplZ", and bytes that may not stand
// in a URL are percent-encoded.
func urlNormalize(s string) string {
	if scheme, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(scheme, "/") &&
		!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") && !strings.EqualFold(scheme, "mailto") {
		return "#ZgotmplZ"
	}
	return percentEncode(s, true)
}

// urlEscape is html/template's URL escaper, for a value in a query or a
// fragment: everything but RFC 3986's unreserved characters is
// percent-encoded.
func urlEscape(s string) string { return percentEncode(s, false) }

// percentEncode is html/template's processURLOnto: norm keeps RFC 3986's
// reserved characters and valid %XX escapes as they are.
func percentEncode(s string, norm bool) string {
	var b strings.Builder
	written := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~", c) >= 0:
			continue
		case norm && strings.IndexByte("!#$&*+,/:;=?@[]", c) >= 0:
			continue
		case norm && c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			continue
		}
		b.WriteString(s[written:i])
		fmt.Fprintf(&b, "%%%02x", c)
		written = i + 1
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
