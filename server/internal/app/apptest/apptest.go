// Package apptest serves the sandbox wired by app.New on a loopback test
// server, so that a product's tests drive it as the server wires it. It
// imports no product: a product's internal tests pass their own
// constructor.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// MaxPoll is the default longest real wait of the worker and the session
// scheduler in tests: short, so that waits on them are short too.
const MaxPoll = 20 * time.Millisecond

// Sandbox is the wired sandbox and the test server in front of it.
type Sandbox struct {
	*app.App
	Server *httptest.Server
}

// Start builds the sandbox from o with the server's engine, serves it on a
// loopback httptest.Server, starts the workers, and tears it all down when
// the test ends, in the server's order (shutdown signal, server, workers,
// journal, store). Test defaults for what o leaves zero: a fresh SQLite
// file in tb.TempDir(), MaxPoll, a shutdown channel closed at the end, and
// the admin API open when no admin token is given, as the server opens it
// on a loopback address.
func Start(tb testing.TB, o app.Options) *Sandbox {
	tb.Helper()
	if o.Access.AdminToken == "" {
		o.Access.Open = true
	}
	if o.Store == nil && o.StorePath == "" {
		o.StorePath = filepath.Join(tb.TempDir(), "sandbox.db")
	}
	if o.MaxPoll == 0 {
		o.MaxPoll = MaxPoll
	}
	var shutdown chan struct{}
	if o.Shutdown == nil {
		shutdown = make(chan struct{})
		o.Shutdown = shutdown
	}
	a, err := app.New(context.Background(), o)
	if err != nil {
		tb.Fatalf("wire the sandbox: %v", err)
	}
	engine := app.NewEngine(app.EngineOptions{Logger: o.Logger})
	a.Register(engine)
	s := &Sandbox{App: a, Server: httptest.NewServer(engine)}
	a.Start()
	tb.Cleanup(func() {
		if shutdown != nil {
			close(shutdown)
		}
		s.Server.Close()
		if err := a.Close(); err != nil {
			tb.Errorf("close the sandbox: %v", err)
		}
	})
	return s
}

// Frozen is a real time that stands still: with it as app.Options.Now,
// only an advance moves a merchant's clock, so timelines are exact.
func Frozen(t time.Time) func() time.Time { return func() time.Time { return t } }

// Advance moves the merchant's clock as POST /sandbox/v1/clock/advance does.
func (s *Sandbox) Advance(tb testing.TB, mchid string, d time.Duration) {
	tb.Helper()
	if _, err := s.Merchants.AdvanceClock(context.Background(), mchid, d); err != nil {
		tb.Fatalf("advance clock: %v", err)
	}
}

// Notifications lists the notification rows of a merchant's object (ref),
// oldest first.
func (s *Sandbox) Notifications(tb testing.TB, mchid, ref string) []*sandbox.Notification {
	tb.Helper()
	ns, err := s.Store.ListNotifications(context.Background(), sandbox.NotificationFilter{MchID: mchid, Ref: ref})
	if err != nil {
		tb.Fatalf("list notifications: %v", err)
	}
	for i, j := 0, len(ns)-1; i < j; i, j = i+1, j-1 {
		ns[i], ns[j] = ns[j], ns[i]
	}
	return ns
}

// Valid fails tb unless raw matches the named schema of set.
func Valid(tb testing.TB, set *schema.Set, name string, raw []byte) {
	tb.Helper()
	vs, err := set.ValidateJSON(name, raw)
	if err != nil {
		tb.Fatalf("validate %s: %v", name, err)
	}
	if len(vs) > 0 {
		tb.Fatalf("%s does not match %s: %+v", raw, name, vs)
	}
}

// Send sends req with http.DefaultClient and returns the answer's body,
// failing tb on a transport error or a status other than want.
func Send(tb testing.TB, req *http.Request, want int) []byte {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		tb.Fatalf("%s %s: status got %d, want %d; body %s", req.Method, req.URL.Path, resp.StatusCode, want, raw)
	}
	return raw
}

// Subject returns what GET /sandbox/v1/sessions/{id} shows as the session's
// subject, each value as text, failing tb when it shows none.
func (s *Sandbox) Subject(tb testing.TB, id string) map[string]string {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, s.Server.URL+"/sandbox/v1/sessions/"+id, nil)
	if err != nil {
		tb.Fatal(err)
	}
	raw := Send(tb, req, http.StatusOK)
	var out struct {
		Subject map[string]any `json:"subject"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Subject == nil {
		tb.Fatalf("GET /sandbox/v1/sessions/%s shows no subject (%v): %s", id, err, raw)
	}
	text := map[string]string{}
	for k, v := range out.Subject {
		text[k] = fmt.Sprint(v)
	}
	return text
}

// Call makes a wx.* call as a mini-program does — POST
// /miniprogram/v1/{api} with {caller, args} and the headers given — and
// returns the answer's body, failing tb unless its status is want and it
// matches the contract's common/errmsg-result schema.
func (s *Sandbox) Call(tb testing.TB, api string, caller, args map[string]any, header map[string]string, want int) []byte {
	tb.Helper()
	body, err := json.Marshal(map[string]any{"caller": caller, "args": args})
	if err != nil {
		tb.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.Server.URL+"/miniprogram/v1/"+api, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	raw := Send(tb, req, want)
	Valid(tb, s.Schemas, "common/errmsg-result", raw)
	return raw
}

// Return waits up to 5 s for the user to come back from session id and
// returns what the caller sees, failing tb unless it came back and the
// answer matches the named schema.
func (s *Sandbox) Return(tb testing.TB, id, schemaName string) []byte {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, s.Server.URL+"/miniprogram/v1/sessions/"+id+"/return?wait=5s", nil)
	if err != nil {
		tb.Fatal(err)
	}
	raw := Send(tb, req, http.StatusOK)
	Valid(tb, s.Schemas, schemaName, raw)
	return raw
}

// Pending fails tb unless the user of session id is still away (202).
func (s *Sandbox) Pending(tb testing.TB, id string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, s.Server.URL+"/miniprogram/v1/sessions/"+id+"/return", nil)
	if err != nil {
		tb.Fatal(err)
	}
	Send(tb, req, http.StatusAccepted)
}
