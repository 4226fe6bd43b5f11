package web

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"testing"
)

// byTemplate renders page.html with html/template, as New did before it
// had its own renderer: the reference render must match.
func byTemplate(t *testing.T, files map[string]*file, dict map[string]map[string]string) []byte {
	t.Helper()
	tmpl, err := template.New("page.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			f, ok := files[name]
			if !ok {
				return "", fmt.Errorf("page.html links to %s, which is not in assets/", name)
			}
			return "/ui/" + name + "?v=" + f.hash, nil
		},
	}).ParseFS(assetFS, "assets/page.html")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct{ Dict map[string]map[string]string }{dict}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestShellIsWhatHTMLTemplateMakesOfPageHTML(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	dict, err := dictionary()
	if err != nil {
		t.Fatal(err)
	}
	// The real dictionary, then one with what a JSON script must escape:
	// a closing tag, markup, quotes, U+2028 and U+2029 (line breaks to
	// JavaScript), a NUL.
	hostile := map[string]map[string]string{
		"zh": {"a": "</script><script>alert(1)</script>", "b": `&amp; ' " + \ /`},
		"en": {"c": "line\u2028para\u2029end", "d": "nul\x00 tab\t 中文"},
	}
	page, err := assetFS.ReadFile("assets/page.html")
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]map[string]map[string]string{"i18n.json": dict, "hostile": hostile} {
		want := byTemplate(t, p.files, d)
		got, err := render(page, p.files, d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the shell differs from html/template's:\n got %s\nwant %s", name, got, want)
		}
		if name == "i18n.json" && !bytes.Equal(p.shell.body, want) {
			t.Errorf("New's shell differs from html/template's:\n got %s\nwant %s", p.shell.body, want)
		}
	}
}

func TestRenderRefusesWhatItDoesNotKnow(t *testing.T) {
	files := map[string]*file{"app.js": newFile([]byte("x"), "text/javascript; charset=utf-8")}
	for page, want := range map[string]string{
		`<a href="{{.URL}}">`:              "is neither",
		`<p>{{if .Dict}}x{{end}}</p>`:      "is neither",
		`<script src="{{asset app.js}}">`:  "is neither",
		`<script src="{{asset "no.js"}}">`: "no.js, which is not in assets/",
	} {
		if _, err := render([]byte(page), files, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", page, err, want)
		}
	}
	if got, err := render([]byte(`<script src="{{ asset "app.js" }}">`), files, nil); err != nil || string(got) != `<script src="/ui/app.js?v=`+files["app.js"].hash+`">` {
		t.Errorf("got %s, %v", got, err)
	}
}
