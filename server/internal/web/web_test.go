package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/report"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

func engine(t *testing.T) *gin.Engine {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	p, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := gin.New()
	p.Register(e)
	return e
}

func serveHTTP(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// assetLinks are the /ui/… URLs the shell links to.
var assetLink = regexp.MustCompile(`(?:href|src)="(/ui/([^"?]+)\?v=([0-9a-f]+))"`)

func TestShellIsServedAtTheRootAndAtAct(t *testing.T) {
	e := engine(t)
	for _, tc := range []struct{ name, method, path string }{
		{"root", http.MethodGet, "/"},
		{"act", http.MethodGet, "/act/ses_0123456789abcdef01234567"},
		{"act with an id to escape", http.MethodGet, "/act/%3Cscript%3E"},
		{"head", http.MethodHead, "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := serveHTTP(e, tc.method, tc.path, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status got %d, want 200", w.Code)
			}
			h := w.Header()
			for k, want := range map[string]string{
				"Content-Type":           "text/html; charset=utf-8",
				"Cache-Control":          "no-cache",
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s got %q, want %q", k, got, want)
				}
			}
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("Content-Security-Policy %q must allow only the page's own scripts", csp)
			}
			if tc.method == http.MethodHead {
				return
			}
			body := w.Body.String()
			if strings.Contains(body, "<script>") || strings.Contains(body, "script%3E") || strings.Contains(body, "style=") {
				t.Error("the shell has an inline script or style, which the CSP refuses, or echoes the path")
			}
			if got := len(assetLink.FindAllString(body, -1)); got < 3 {
				t.Errorf("the shell links %d assets, want the icon, the style and the script", got)
			}
		})
	}
}

func TestShellRevalidatesWithItsETag(t *testing.T) {
	e := engine(t)
	etag := serveHTTP(e, http.MethodGet, "/", nil).Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the shell")
	}
	if w := serveHTTP(e, http.MethodGet, "/act/x", http.Header{"If-None-Match": {etag}}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("a matching If-None-Match got %d with %d bytes, want 304 and no body", w.Code, w.Body.Len())
	}
	if w := serveHTTP(e, http.MethodGet, "/", http.Header{"If-None-Match": {`"other"`}}); w.Code != http.StatusOK {
		t.Errorf("another ETag got %d, want 200", w.Code)
	}
}

func TestAssetsAreCachedForGoodUnderTheirHash(t *testing.T) {
	e := engine(t)
	shell := serveHTTP(e, http.MethodGet, "/", nil).Body.String()
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	seen := map[string]bool{}
	for _, m := range assetLink.FindAllStringSubmatch(shell, -1) {
		link, name, hash := m[1], m[2], m[3]
		if seen[link] {
			continue
		}
		seen[link] = true
		t.Run(name, func(t *testing.T) {
			w := serveHTTP(e, http.MethodGet, link, nil)
			if w.Code != http.StatusOK || w.Body.Len() == 0 {
				t.Fatalf("GET %s: %d, %d bytes", link, w.Code, w.Body.Len())
			}
			if ct, want := w.Header().Get("Content-Type"), wantType[name[strings.LastIndex(name, "."):]]; !strings.HasPrefix(ct, want) {
				t.Errorf("Content-Type got %q, want %s", ct, want)
			}
			if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
				t.Errorf("Cache-Control with the current hash got %q, want immutable", cc)
			}
			if cc := serveHTTP(e, http.MethodGet, "/ui/"+name+"?v=stale", nil).Header().Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control with another hash got %q, want no-cache", cc)
			}
			if w := serveHTTP(e, http.MethodGet, "/ui/"+name, http.Header{"If-None-Match": {`W/"` + hash + `"`}}); w.Code != http.StatusNotModified {
				t.Errorf("If-None-Match of its hash got %d, want 304", w.Code)
			}
		})
	}
	for _, path := range []string{"/ui/nope.js", "/ui/page.html", "/ui/i18n.json"} {
		if w := serveHTTP(e, http.MethodGet, path, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s got %d, want 404", path, w.Code)
		}
	}
}

// words is the dictionary, checked to have both languages.
func words(t *testing.T) map[string]string {
	t.Helper()
	d, err := dictionary()
	if err != nil {
		t.Fatal(err)
	}
	zh, en := d["zh"], d["en"]
	if len(zh) == 0 || len(d) != 2 {
		t.Fatalf("the dictionary has languages %v, want zh and en", reflect.ValueOf(d).MapKeys())
	}
	placeholder := regexp.MustCompile(`\{\w+\}`)
	for k, v := range zh {
		e, ok := en[k]
		switch {
		case !ok:
			t.Errorf("%s has no English", k)
		case strings.TrimSpace(v) == "" || strings.TrimSpace(e) == "":
			t.Errorf("%s is empty in a language", k)
		case !slices.Equal(sorted(placeholder.FindAllString(v, -1)), sorted(placeholder.FindAllString(e, -1))):
			t.Errorf("%s has placeholders %v in Chinese and %v in English", k, placeholder.FindAllString(v, -1), placeholder.FindAllString(e, -1))
		}
	}
	for k := range en {
		if _, ok := zh[k]; !ok {
			t.Errorf("%s has no Chinese", k)
		}
	}
	return zh
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

func asset(t *testing.T, name string) string {
	t.Helper()
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEveryWordIsInBothLanguages checks that each key the page uses —
// written out in app.js or page.html, or made from data (products,
// actions, states, faults, credentials) — is in the dictionary in Chinese
// and English.
func TestEveryWordIsInBothLanguages(t *testing.T) {
	dict := words(t)
	namespaces := map[string]bool{}
	for k := range dict {
		namespaces[strings.SplitN(k, ".", 2)[0]] = true
	}
	used := map[string]string{}
	js, html := asset(t, "app.js"), asset(t, "page.html")
	for _, m := range regexp.MustCompile(`'([a-z][a-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)'`).FindAllStringSubmatch(js, -1) {
		if ns := strings.SplitN(m[1], ".", 2)[0]; namespaces[ns] && strings.Contains(m[1], ".") || dict[m[1]] != "" {
			used[m[1]] = "app.js"
		}
	}
	for _, m := range regexp.MustCompile(`\bt\('([^']+)'`).FindAllStringSubmatch(js, -1) {
		used[m[1]] = "app.js t()"
	}
	for _, m := range regexp.MustCompile(`data-i18n="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		used[m[1]] = "page.html"
	}

	// Keys made from data.
	sc := scenarioSchema(t)
	for _, p := range sc.products {
		used["product."+p] = "scenario.schema.json product"
		used["product."+p+".what"] = "scenario.schema.json product"
		used["action."+p+"."+sandbox.ActionTimeout] = "sandbox.ActionTimeout"
	}
	for product, actions := range sc.actions {
		for _, a := range actions {
			used["action."+product+"."+a] = "scenario.schema.json user.action"
		}
	}
	for _, f := range sc.faults {
		used["fault."+f] = "scenario.schema.json notify.faults"
	}
	for _, m := range sc.modes {
		used["mode."+m] = "scenario.schema.json mode"
	}
	for _, s := range []sandbox.SessionState{sandbox.SessionPending, sandbox.SessionReturned, sandbox.SessionExpired} {
		used["state."+string(s)] = "sandbox.SessionState"
	}
	for _, s := range []sandbox.NotifyState{sandbox.NotifyPending, sandbox.NotifyHeld, sandbox.NotifyDelivered, sandbox.NotifyFailed, sandbox.NotifyDropped, sandbox.NotifyRefused} {
		used["nstate."+string(s)] = "sandbox.NotifyState"
	}
	for _, d := range []string{sandbox.DirectionIn, sandbox.DirectionOut} {
		used["dir."+d] = "sandbox.Direction"
	}
	for _, d := range jsList(t, js, "ADVANCES") {
		used["dur."+d] = "ADVANCES"
	}
	for _, f := range credentialFields(t, js) {
		used["cred."+f] = "CREDS"
	}
	for _, k := range sandbox.APIFaultKinds {
		used["apifault.kind."+k] = "sandbox.APIFaultKinds"
	}
	for _, m := range sandbox.PlatformKeyModes {
		used["keymode."+m] = "sandbox.PlatformKeyModes"
	}
	for _, op := range []string{"redeliver", "hold", "release", "fail-next"} {
		used["notify.done."+op] = "notification operations"
	}
	for _, v := range []report.Verdict{report.Passed, report.Failed, report.NotExercised} {
		used["verdict."+string(v)] = "report.Verdict"
	}
	for _, id := range jsList(t, js, "PARKING_OUTCOMES") {
		used["parking.outcome."+id] = "PARKING_OUTCOMES"
	}
	used["report.window.all"] = "REPORT_WINDOWS ''"
	for _, w := range jsList(t, js, "REPORT_WINDOWS") {
		used["report.window."+w] = "REPORT_WINDOWS"
	}

	for k, where := range used {
		if strings.HasSuffix(k, ".") {
			continue // a prefix, completed from data above
		}
		if _, ok := dict[k]; !ok {
			t.Errorf("%q (from %s) is not in the dictionary", k, where)
		}
	}
}

type scenarioEnums struct {
	products []string
	actions  map[string][]string
	faults   []string
	modes    []string
}

// scenarioSchema reads the enums the page shows words for from
// schemas/scenario.schema.json.
func scenarioSchema(t *testing.T) scenarioEnums {
	t.Helper()
	b, err := schemas.FS.ReadFile("scenario.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type enum struct {
		Enum  []string `json:"enum"`
		Const string   `json:"const"`
	}
	var s struct {
		Properties struct {
			Product enum `json:"product"`
			Mode    enum `json:"mode"`
			Notify  struct {
				Properties struct {
					Faults struct {
						Items enum `json:"items"`
					} `json:"faults"`
				} `json:"properties"`
			} `json:"notify"`
		} `json:"properties"`
		AllOf []struct {
			If struct {
				Properties struct {
					Product enum `json:"product"`
				} `json:"properties"`
			} `json:"if"`
			Then struct {
				Properties struct {
					User struct {
						Properties struct {
							Action enum `json:"action"`
						} `json:"properties"`
					} `json:"user"`
				} `json:"properties"`
			} `json:"then"`
		} `json:"allOf"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := scenarioEnums{products: s.Properties.Product.Enum, actions: map[string][]string{}, faults: s.Properties.Notify.Properties.Faults.Items.Enum, modes: s.Properties.Mode.Enum}
	for _, a := range s.AllOf {
		if p := a.If.Properties.Product.Const; p != "" {
			out.actions[p] = a.Then.Properties.User.Properties.Action.Enum
		}
	}
	if len(out.products) == 0 || len(out.actions) != len(out.products) || len(out.faults) == 0 || len(out.modes) == 0 {
		t.Fatalf("scenario.schema.json has changed shape: actions %v, faults %v, modes %v", out.actions, out.faults, out.modes)
	}
	return out
}

// jsList reads the strings of `const NAME = [...]` in app.js.
func jsList(t *testing.T, js, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`const ` + name + ` = \[([^\]]*)\]`).FindStringSubmatch(js)
	if m == nil {
		t.Fatalf("app.js has no const %s", name)
	}
	var out []string
	for _, q := range regexp.MustCompile(`'([^']+)'`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, q[1])
	}
	return out
}

// credentialFields reads the fields app.js's CREDS lists, and checks that
// it lists every string credential GET …/credentials answers, so a new
// credential cannot be left off the page unnoticed.
func credentialFields(t *testing.T, js string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)const CREDS = \[(.*?)\n  \];`).FindStringSubmatch(js)
	if m == nil {
		t.Fatal("app.js has no CREDS")
	}
	var listed []string
	for _, q := range regexp.MustCompile(`\['([a-z0-9_]+)'`).FindAllStringSubmatch(m[1], -1) {
		listed = append(listed, q[1])
	}
	// Not credentials: shown elsewhere on the page, or not strings.
	notCredentials := map[string]bool{"name": true, "notify_hosts": true, "active_scenarios": true, "clock_offset_ns": true, "created_at": true,
		"platform_key_mode": true, "api_faults": true, "sub_merchants": true, "strict": true}
	want := []string{"merchant_token"}
	typ := reflect.TypeFor[sandbox.Merchant]()
	for i := range typ.NumField() {
		name := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if name != "" && name != "-" && !notCredentials[name] {
			want = append(want, name)
		}
	}
	for _, f := range want {
		if !slices.Contains(listed, f) {
			t.Errorf("the credential %s is not in app.js's CREDS, so the page does not show it", f)
		}
	}
	return listed
}

// BenchmarkNew is the page's share of the server's start-up.
func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		if _, err := New(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShell serves the page's shell, as every load and /act does.
func BenchmarkShell(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	e := gin.New()
	p.Register(e)
	req := httptest.NewRequest(http.MethodGet, "/act/ses_0123456789abcdef01234567", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
