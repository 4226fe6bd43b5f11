package report

import (
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
	page, err := HTML(hostile(), "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(page); strings.Contains(s, "<script>") || !strings.Contains(s, "&lt;script&gt;") {
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
