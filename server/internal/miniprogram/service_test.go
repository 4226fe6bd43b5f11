package miniprogram_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/miniprogram"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// fakeProduct is a target whose behaviour the call's args choose, so that
// the contract itself — sessions, scheduling, waiting, errMsg — is tested
// apart from any real product.
type fakeProduct struct{}

func (fakeProduct) Name() string { return "fake" }
func (fakeProduct) Targets() []sandbox.Target {
	return []sandbox.Target{{API: sandbox.APINavigateToMiniProgram, Key: "wxfake0000000000"}}
}

// Launch names the scenario the args choose: manual, a delay, or the
// default auto one that acts at once.
func (fakeProduct) Launch(_ context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	var args struct {
		ExtraData struct {
			Mode  string `json:"mode"`
			Delay string `json:"delay"`
			Bad   bool   `json:"bad"`
		} `json:"extraData"`
	}
	_ = json.Unmarshal(call.Args, &args)
	if args.ExtraData.Bad {
		return nil, sandbox.Invalid("bad extraData",
			sandbox.Violation{Path: "/args/extraData/sign", Message: "signature mismatch"},
			sandbox.Violation{Path: "/args/extraData/package", Message: "expired"})
	}
	switch {
	case args.ExtraData.Mode == sandbox.ModeManual:
		return &sandbox.Launched{Scenario: "fake.manual"}, nil
	case args.ExtraData.Delay != "":
		return &sandbox.Launched{Scenario: "fake.after-" + args.ExtraData.Delay}, nil
	}
	return &sandbox.Launched{}, nil
}

// fakeScenarios is the catalogue of the fake products: "<product>.default"
// acts at once, "<product>.manual" waits for a person and
// "<product>.after-<duration>" acts after the duration; any other id is
// an auto scenario that acts at once.
type fakeScenarios struct{}

func (fakeScenarios) Get(id string) (*sandbox.Scenario, bool) {
	product, name, _ := strings.Cut(id, ".")
	sc := &sandbox.Scenario{ID: id, Product: product, Mode: sandbox.ModeAuto, User: sandbox.UserStep{Action: "ok"}}
	if name == "manual" {
		sc.Mode, sc.User = sandbox.ModeManual, sandbox.UserStep{}
	}
	if d, ok := strings.CutPrefix(name, "after-"); ok {
		after, _ := time.ParseDuration(d)
		sc.User.After = sandbox.Duration(after)
	}
	return sc, true
}

func (f fakeScenarios) List(string) []*sandbox.Scenario { return nil }

func (f fakeScenarios) Default(product string) *sandbox.Scenario {
	sc, _ := f.Get(product + ".default")
	return sc
}

func (f fakeScenarios) Pick(product, explicit string, _ map[string]string, _ *sandbox.Merchant) (*sandbox.Scenario, error) {
	if explicit != "" {
		sc, _ := f.Get(explicit)
		return sc, nil
	}
	return f.Default(product), nil
}

func (fakeProduct) Resolve(_ context.Context, s *sandbox.Session, action string, _ time.Time) (*sandbox.Batch, error) {
	s.State, s.Action = sandbox.SessionReturned, action
	s.Return, _ = json.Marshal(map[string]any{"scene": 1038, "referrerInfo": map[string]any{
		"appId": "wxfake0000000000", "extraData": map[string]any{"action": action}}})
	return nil, nil
}

func (fakeProduct) Actions(*sandbox.Session) []string { return []string{"ok", "cancel"} }

type harness struct {
	t     testing.TB
	srv   *httptest.Server
	svc   *miniprogram.Service
	clock *sandbox.Clock
	dir   *merchant.Directory
	demo  *sandbox.Merchant
	mu    sync.Mutex
	now   time.Time
}

type nopJournal struct{}

func (nopJournal) Record(*sandbox.Exchange) {}

func newHarness(t testing.TB) *harness { return newHarnessWith(t, harnessOptions{}) }

// harnessOptions vary the harness: the clock's real time (a frozen one by
// default), the longest wait between scans, and a wrapper of the store.
type harnessOptions struct {
	tick    time.Duration // how far real time moves at each reading
	maxPoll time.Duration
	store   func(sandbox.Store) sandbox.Store
	extra   func(*sandbox.Clock) sandbox.Product // a second product
}

func newHarnessWith(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: t.TempDir() + "/t.db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.clock = sandbox.NewClock(1, func() time.Time {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.now = h.now.Add(o.tick)
		return h.now
	})
	h.dir, err = merchant.Load(ctx, st, h.clock)
	if err != nil {
		t.Fatal(err)
	}
	h.demo = h.dir.List()[0]
	if o.maxPoll == 0 {
		o.maxPoll = 5 * time.Millisecond
	}
	var store sandbox.Store = st
	if o.store != nil {
		store = o.store(st)
	}
	products := []sandbox.Product{fakeProduct{}}
	if o.extra != nil {
		products = append(products, o.extra(h.clock))
	}
	h.svc, err = miniprogram.New(miniprogram.Options{Store: store, Clock: h.clock, Merchants: h.dir, Scenarios: fakeScenarios{},
		Products: products, ManualTimeout: time.Hour, MaxPoll: o.maxPoll})
	if err != nil {
		t.Fatal(err)
	}
	// As app wires them.
	st.OnCommit(h.svc.Committed)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { h.svc.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e := gin.New()
	e.Use(httpapi.RequestIDs(), httpapi.ReadBody(httpapi.DefaultMaxBody, httpapi.BodyTime{}))
	h.svc.Register(e, set, nopJournal{})
	h.srv = httptest.NewServer(e)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) call(api, body string) (int, map[string]any) {
	h.t.Helper()
	resp, err := http.Post(h.srv.URL+"/miniprogram/v1/"+api, "application/json", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	return decode(h.t, resp)
}

func (h *harness) get(path string) (int, map[string]any) {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	return decode(h.t, resp)
}

func decode(t testing.TB, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func (h *harness) launch(extra string) string {
	h.t.Helper()
	code, body := h.call("navigateToMiniProgram", fmt.Sprintf(
		`{"caller":{"appId":%q},"args":{"appId":"wxfake0000000000","extraData":%s}}`, h.demo.AppID, extra))
	if code != 200 || body["errMsg"] != "navigateToMiniProgram:ok" {
		h.t.Fatalf("launch: got %d %v", code, body)
	}
	return body["session_id"].(string)
}

func extraAction(t *testing.T, body map[string]any) any {
	t.Helper()
	ref, ok := body["referrerInfo"].(map[string]any)
	if !ok {
		t.Fatalf("no referrerInfo in %v", body)
	}
	return ref["extraData"].(map[string]any)["action"]
}

func TestAutoReturnsAtOnce(t *testing.T) {
	h := newHarness(t)
	id := h.launch(`{}`)
	code, body := h.get("/miniprogram/v1/sessions/" + id + "/return")
	if code != 200 || body["scene"] != float64(1038) || extraAction(t, body) != "ok" {
		t.Fatalf("got %d %v", code, body)
	}
}

func TestDelayedAutoReturnsWhenTheClockGetsThere(t *testing.T) {
	h := newHarness(t)
	id := h.launch(`{"delay":"10m"}`)
	if code, body := h.get("/miniprogram/v1/sessions/" + id + "/return"); code != 202 || body["state"] != "pending" {
		t.Fatalf("before: got %d %v, want 202 pending", code, body)
	}
	h.clock.Advance(h.demo.MchID, 10*time.Minute)
	code, body := h.get("/miniprogram/v1/sessions/" + id + "/return?wait=5s")
	if code != 200 || extraAction(t, body) != "ok" {
		t.Fatalf("after: got %d %v", code, body)
	}
}

func TestManualWaitsForAPerson(t *testing.T) {
	h := newHarness(t)
	id := h.launch(`{"mode":"manual"}`)
	if _, err := h.svc.Resolve(context.Background(), id, "fly"); !sandbox.IsCode(err, sandbox.CodeInvalid) ||
		!strings.Contains(err.Error(), "ok, cancel") {
		t.Fatalf("unknown action: got %v, want invalid listing the actions", err)
	}
	got := make(chan map[string]any)
	go func() {
		_, body := h.get("/miniprogram/v1/sessions/" + id + "/return?wait=10s")
		got <- body
	}()
	if _, err := h.svc.Resolve(context.Background(), id, "cancel"); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-got:
		if extraAction(t, body) != "cancel" {
			t.Fatalf("got %v", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not return when the session was resolved")
	}
	if _, err := h.svc.Resolve(context.Background(), id, "ok"); !sandbox.IsCode(err, sandbox.CodeConflict) {
		t.Fatalf("second resolve: got %v, want conflict", err)
	}
}

func TestManualTimesOutOnTheClock(t *testing.T) {
	h := newHarness(t)
	id := h.launch(`{"mode":"manual"}`)
	h.clock.Advance(h.demo.MchID, time.Hour)
	code, body := h.get("/miniprogram/v1/sessions/" + id + "/return?wait=5s")
	if code != 200 || extraAction(t, body) != sandbox.ActionTimeout {
		t.Fatalf("got %d %v, want a return with the timeout action", code, body)
	}
}

func TestOnceScenarioIsUsedUp(t *testing.T) {
	h := newHarness(t)
	if _, err := h.dir.Update(context.Background(), h.demo.MchID, func(m *sandbox.Merchant) error {
		m.Active = map[string]sandbox.ActiveScenario{"fake": {ID: "fake.default", Once: true}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.launch(`{}`)
	m, _ := h.dir.Get(h.demo.MchID)
	if _, still := m.Active["fake"]; still {
		t.Fatalf("a once scenario must be cleared after the launch: %v", m.Active)
	}
}

func TestCallErrorsAreErrMsgWithEveryViolation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, api, body string
		status          int
		errMsgPrefix    string
		paths           []string
	}{
		{"unknown api", "openFoo", `{"caller":{"appId":"` + h.demo.AppID + `"},"args":{}}`, 404, "openFoo:fail", nil},
		{"unknown caller", "navigateToMiniProgram", `{"caller":{"appId":"wxnobody"},"args":{"appId":"wxfake0000000000"}}`, 400, "navigateToMiniProgram:fail", []string{"/caller/appId"}},
		{"unknown target", "navigateToMiniProgram", `{"caller":{"appId":"` + h.demo.AppID + `"},"args":{"appId":"wx123"}}`, 400, "navigateToMiniProgram:fail", []string{"/args/appId"}},
		{"no caller", "navigateToMiniProgram", `{"args":{}}`, 400, "navigateToMiniProgram:fail", []string{"/caller"}},
		{"malformed", "navigateToMiniProgram", `{"caller":`, 400, "navigateToMiniProgram:fail", []string{""}},
		{"product violations", "navigateToMiniProgram", `{"caller":{"appId":"` + h.demo.AppID + `"},"args":{"appId":"wxfake0000000000","extraData":{"bad":true}}}`, 400, "navigateToMiniProgram:fail", []string{"/args/extraData/sign", "/args/extraData/package"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := h.call(tc.api, tc.body)
			if code != tc.status {
				t.Fatalf("status: got %d, want %d (%v)", code, tc.status, body)
			}
			msg, _ := body["errMsg"].(string)
			if !strings.HasPrefix(msg, tc.errMsgPrefix) {
				t.Fatalf("errMsg: got %q, want prefix %q", msg, tc.errMsgPrefix)
			}
			vs, _ := body["violations"].([]any)
			for _, p := range tc.paths {
				found := false
				for _, v := range vs {
					if v.(map[string]any)["path"] == p {
						found = true
					}
				}
				if !found {
					t.Errorf("no violation at %q in %v", p, vs)
				}
			}
		})
	}
}

func TestUnknownSessionIs404(t *testing.T) {
	h := newHarness(t)
	if code, body := h.get("/miniprogram/v1/sessions/ses_nope/return"); code != 404 || !strings.Contains(body["errMsg"].(string), ":fail") {
		t.Fatalf("got %d %v", code, body)
	}
}

func BenchmarkLaunchReturn(b *testing.B) {
	h := newHarness(b)
	body := fmt.Sprintf(`{"caller":{"appId":%q},"args":{"appId":"wxfake0000000000","extraData":{}}}`, h.demo.AppID)
	client := h.srv.Client()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(h.srv.URL+"/miniprogram/v1/navigateToMiniProgram", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				SessionID string `json:"session_id"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			r2, err := client.Get(h.srv.URL + "/miniprogram/v1/sessions/" + out.SessionID + "/return")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, r2.Body)
			r2.Body.Close()
			if r2.StatusCode != 200 {
				b.Fatalf("return: %d", r2.StatusCode)
			}
		}
	})
}
