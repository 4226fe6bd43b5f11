package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// strictValidator accepts only {"a": <string>} so that DecodeJSON can be
// tested without the real schema set (the schema package tests that).
type strictValidator struct{}

func (strictValidator) Validate(string, any) ([]sandbox.Violation, error) { return nil, nil }
func (strictValidator) ValidateJSON(_ string, raw []byte) ([]sandbox.Violation, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return []sandbox.Violation{{Path: "", Message: err.Error()}}, nil
	}
	var out []sandbox.Violation
	for k, v := range m {
		if k != "a" {
			out = append(out, sandbox.Violation{Path: "/" + k, Message: "not allowed"})
		} else if _, ok := v.(string); !ok {
			out = append(out, sandbox.Violation{Path: "/a", Message: "expected string"})
		}
	}
	return out, nil
}

type recorder struct {
	mu  sync.Mutex
	got []*sandbox.Exchange
}

func (r *recorder) Record(x *sandbox.Exchange) {
	r.mu.Lock()
	r.got = append(r.got, x)
	r.mu.Unlock()
}

// last is the latest entry, nil when none.
func (r *recorder) last() *sandbox.Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return nil
	}
	return r.got[len(r.got)-1]
}

func testEngine(j sandbox.Journal) *gin.Engine {
	e := gin.New()
	e.Use(RequestIDs(), Recovery(slog.New(slog.DiscardHandler)), ReadBody(64, BodyTime{}))
	g := e.Group("/t", UseRenderer(RenderAdmin), Journaled(j, "test"))
	g.POST("/decode", Handle(func(c *gin.Context) error {
		var v struct {
			A string `json:"a"`
		}
		if err := DecodeJSON(strictValidator{}, "x", Body(c), &v); err != nil {
			return err
		}
		Exchange(c).MchID = "m1"
		c.JSON(http.StatusOK, gin.H{"a": v.A})
		return nil
	}))
	g.GET("/panic", Handle(func(c *gin.Context) error { panic("boom") }))
	g.GET("/warn", Handle(func(c *gin.Context) error {
		Warn(c, sandbox.Violation{Path: "/extraData/appid", Message: "inferred rule:\n missing"})
		Warn(c, sandbox.Violation{Message: "签名 " + strings.Repeat("很长", 400)})
		for range 10 {
			Warn(c, sandbox.Violation{Path: "/x", Message: "again"})
		}
		c.JSON(http.StatusOK, gin.H{"ok": true})
		return nil
	}))
	return e
}

func do(t *testing.T, h http.Handler, method, path, body string) (*httptest.ResponseRecorder, AdminError) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var e AdminError
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return w, e
}

func TestBadInputIsA4xxNamingThePath(t *testing.T) {
	j := &recorder{}
	h := testEngine(j)
	for _, tc := range []struct {
		name, body string
		status     int
		path       string
	}{
		{"empty", "", 400, ""},
		{"malformed", `{"a":`, 400, ""},
		{"wrong type", `{"a":1}`, 400, "/a"},
		{"unknown field", `{"a":"x","b":1}`, 400, "/b"},
		{"invalid utf-8", "{\"a\":\"\xff\"}", 400, ""},
		{"too large", `{"a":"` + strings.Repeat("x", 100) + `"}`, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, e := do(t, h, http.MethodPost, "/t/decode", tc.body)
			if w.Code != tc.status {
				t.Fatalf("status: got %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if e.Error.Message == "" || e.Error.RequestID == "" {
				t.Fatalf("house envelope incomplete: %s", w.Body)
			}
			if tc.status == 400 {
				if len(e.Error.Fields) == 0 || e.Error.Fields[0].Path != tc.path {
					t.Fatalf("fields: got %+v, want a field at %q", e.Error.Fields, tc.path)
				}
			}
		})
	}
}

func TestGoodInputIsJournalledWithNotes(t *testing.T) {
	j := &recorder{}
	w, _ := do(t, testEngine(j), http.MethodPost, "/t/decode", `{"a":"hello"}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "hello") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if len(j.got) != 1 {
		t.Fatalf("journal: got %d exchanges, want 1", len(j.got))
	}
	x := j.got[0]
	if x.MchID != "m1" || x.Product != "test" || x.Status != 200 || x.RequestBody != `{"a":"hello"}` || !strings.Contains(x.ResponseBody, "hello") || x.RequestID == "" {
		t.Fatalf("exchange: %+v", x)
	}
}

func TestWarningsGoToTheHeaderAndTheJournal(t *testing.T) {
	j := &recorder{}
	w, _ := do(t, testEngine(j), http.MethodGet, "/t/warn", "")
	if w.Code != http.StatusOK || w.Body.String() != `{"ok":true}` {
		t.Fatalf("got %d %s: a warning must not change the answer", w.Code, w.Body)
	}
	hs := w.Header().Values(HeaderWarning)
	if len(hs) != maxWarnings {
		t.Fatalf("got %d %s headers, want at most %d", len(hs), HeaderWarning, maxWarnings)
	}
	if hs[0] != "/extraData/appid: inferred rule: missing" {
		t.Errorf("first header %q, want path: message on one line", hs[0])
	}
	dec, err := new(mime.WordDecoder).DecodeHeader(hs[1])
	if err != nil || !strings.HasPrefix(hs[1], "=?utf-8?") || !strings.HasPrefix(dec, "签名 很长") || len(dec) > maxWarningHeader {
		t.Errorf("second header %q decodes to %d bytes (%v), want an encoded word of at most %d bytes", hs[1][:40], len(dec), err, maxWarningHeader)
	}
	if len(j.got) != 1 || len(j.got[0].Warnings) != maxWarnings || !strings.HasSuffix(j.got[0].Warnings[1].Message, "很长") {
		t.Errorf("journal: got %+v, want the %d warnings whole", j.got, maxWarnings)
	}
}

func TestPanicBecomesAnInternalErrorNotADroppedConnection(t *testing.T) {
	w, e := do(t, testEngine(&recorder{}), http.MethodGet, "/t/panic", "")
	if w.Code != 500 || e.Error.Code != "internal" {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func TestRequestIDIsEchoedOrMade(t *testing.T) {
	h := testEngine(&recorder{})
	req := httptest.NewRequest(http.MethodGet, "/t/panic", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := w.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("got %q, want the caller's id", got)
	}
	req.Header.Set("X-Request-Id", "bad id with spaces\n")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := w.Header().Get("X-Request-Id"); !strings.HasPrefix(got, "req_") {
		t.Fatalf("got %q, want a fresh id", got)
	}
}

func TestAccess(t *testing.T) {
	a := Access{AdminToken: "admintok", MerchantByToken: func(tok string) (string, bool) { return "m1", tok == "m1tok" }}
	e := gin.New()
	e.GET("/x", UseRenderer(RenderAdmin), a.Require(), func(c *gin.Context) {
		s := ScopeOf(c)
		c.String(200, "%v %s", s.All, s.MchID)
	})
	for _, tc := range []struct{ name, header, want string }{
		{"none", "", "401"},
		{"wrong", "Bearer nope", "401"},
		{"admin", "Bearer admintok", "true "},
		{"merchant", "Bearer m1tok", "false m1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, req)
			body, _ := io.ReadAll(w.Body)
			got := string(body)
			if w.Code == 401 {
				got = "401"
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAccessLoopback: bound to loopback, only a local client naming a local
// host goes without a token; a rebound name, a proxy, a page of another
// origin and a form post (a no-cors fetch) do not (issue 13, item 5).
func TestAccessLoopback(t *testing.T) {
	a := Access{Open: true, AdminToken: "admintok"}
	e := gin.New()
	ok := func(c *gin.Context) { c.String(200, "%v", ScopeOf(c).All) }
	e.GET("/sandbox/v1/x", UseRenderer(RenderAdmin), a.Require(), ok)
	e.GET("/sandbox/v1/journal/stream", UseRenderer(RenderAdmin), a.Require(), ok)
	e.POST("/sandbox/v1/x", UseRenderer(RenderAdmin), a.Require(), ok)
	for _, tc := range []struct {
		name, method, path, host, remote string
		header                           map[string]string
		want                             int
	}{
		{"local", "GET", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", nil, 200},
		{"localhost", "GET", "/sandbox/v1/x", "localhost:8080", "[::1]:5000", nil, 200},
		{"rebound name", "GET", "/sandbox/v1/x", "rebind.attacker.example:8080", "127.0.0.1:5000", nil, 421},
		{"through a proxy", "GET", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, 401},
		{"through a proxy, with the token", "GET", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer admintok"}, 200},
		{"a page elsewhere", "GET", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"Origin": "http://evil.example"}, 403},
		{"its own page", "GET", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"Origin": "http://127.0.0.1:8080"}, 200},
		{"no-cors form post", "POST", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"Content-Type": "text/plain"}, 415},
		{"json post", "POST", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200},
		{"bodiless post with X-Requested-With", "POST", "/sandbox/v1/x", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"X-Requested-With": "curl"}, 200},
		{"?token= is for streams only", "GET", "/sandbox/v1/x?token=admintok", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"X-Forwarded-For": "x"}, 401},
		{"?token= on the stream", "GET", "/sandbox/v1/journal/stream?token=admintok", "127.0.0.1:8080", "127.0.0.1:5000", map[string]string{"X-Forwarded-For": "x"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.Host, req.RemoteAddr = tc.host, tc.remote
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
	// Off loopback with names given, other names are refused too.
	named := Access{AdminToken: "admintok", Hosts: []string{"sandbox.staging.example"}}
	e2 := gin.New()
	e2.GET("/x", UseRenderer(RenderAdmin), named.Require(), ok)
	for host, want := range map[string]int{"sandbox.staging.example": 200, "SANDBOX.staging.example:443": 200, "other.example": 421} {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer admintok")
		w := httptest.NewRecorder()
		e2.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %s: got %d, want %d", host, w.Code, want)
		}
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false, "[::]:80": false,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestErrorsAreNotHTMLEscaped(t *testing.T) {
	e := gin.New()
	e.GET("/x", UseRenderer(RenderAdmin), Handle(func(*gin.Context) error {
		return &sandbox.Error{Code: sandbox.CodeInvalid, Message: "a<b", Diagnostics: "k=v&app_secret=***"}
	}))
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	if body := w.Body.String(); !strings.Contains(body, `"diagnostics":"k=v&app_secret=***"`) || !strings.Contains(body, `"a<b"`) {
		t.Errorf("got %s, want & and < as they are", body)
	}
}
