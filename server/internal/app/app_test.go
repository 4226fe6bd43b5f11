package app_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// fake is a product with one upstream route and one admin route; it keeps
// the Deps it was built from.
type fake struct{ d sandbox.Deps }

func (*fake) Name() string                      { return "fake" }
func (*fake) Targets() []sandbox.Target         { return nil }
func (*fake) Actions(*sandbox.Session) []string { return nil }
func (*fake) Launch(context.Context, *sandbox.Call) (*sandbox.Launched, error) {
	return nil, errors.New("no launch")
}
func (*fake) Resolve(context.Context, *sandbox.Session, string, time.Time) (*sandbox.Batch, error) {
	return nil, errors.New("no resolve")
}
func (*fake) BuildNotify(context.Context, *sandbox.Merchant, *sandbox.Notification) (*sandbox.OutboundRequest, error) {
	return nil, errors.New("no notifications")
}
func (*fake) Acknowledged(int, []byte) bool { return true }
func (*fake) Schedule() []time.Duration     { return nil }
func (*fake) Faults() []string              { return nil }
func (*fake) Register(r gin.IRouter) {
	r.GET("/fake/ping", func(c *gin.Context) { c.String(http.StatusOK, "pong") })
}
func (*fake) RegisterAdmin(g gin.IRouter) {
	g.GET("/fake-things", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"things": []string{}}) })
}

func newFake(d sandbox.Deps) (*fake, error) { return &fake{d: d}, nil }

func TestRegisterMountsEverySurface(t *testing.T) {
	s := apptest.Start(t, app.Options{Access: httpapi.Access{AdminToken: "tok"}, Products: []app.Constructor{app.Product(newFake)}})
	f := s.Products[0].(*fake)
	if f.d.Store != s.Store || f.d.Clock != s.Clock || f.d.Journal == nil || f.d.Validator == nil ||
		f.d.Scenarios == nil || f.d.Merchants == nil || f.d.Logger == nil {
		t.Fatalf("the product's Deps miss a component: %+v", f.d)
	}
	for _, tc := range []struct {
		path, token string
		status      int
		body        string
	}{
		{"/fake/ping", "", 200, "pong"},
		{"/sandbox/v1/fake-things", "tok", 200, `"things"`},
		{"/sandbox/v1/fake-things", "", 401, `"error"`},
		{"/sandbox/v1/merchants", "tok", 200, `1230000109`}, // the demo merchant: no merchants were given
		{"/miniprogram/v1/sessions/nope/return", "", 404, `errMsg`},
		{"/sdk/mpsandbox-wx.js", "", 200, "install"},
		{"/", "", 200, "<html"},
		{"/no/such/route", "", 404, `"error"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.Server.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if body := apptest.Send(t, req, tc.status); !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s: got %.200s, want %q in it", tc.path, body, tc.body)
		}
	}
}

func TestMerchantsAreStoredBeforeTheDirectoryLoads(t *testing.T) {
	m := &sandbox.Merchant{MchID: "1900000001", Name: "种子", AppID: "wx0000000000000001", Token: "mtok", CreatedAt: time.Now().UTC()}
	s := apptest.Start(t, app.Options{Merchants: []*sandbox.Merchant{m}})
	if _, ok := s.Merchants.Get(m.MchID); !ok {
		t.Fatal("the given merchant is not in the directory")
	}
	if _, ok := s.Merchants.Get("1230000109"); ok {
		t.Fatal("a store with merchants got the demo merchant too")
	}
	if mchid, ok := s.Merchants.ByToken("mtok"); !ok || mchid != m.MchID {
		t.Fatalf("merchant token: got %q %v", mchid, ok)
	}
}

func TestFrozenClockMovesOnlyByAdvance(t *testing.T) {
	base := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	s := apptest.Start(t, app.Options{Now: apptest.Frozen(base)})
	if got := s.Clock.Now("1230000109"); !got.Equal(base) {
		t.Fatalf("now: got %v, want %v", got, base)
	}
	s.Advance(t, "1230000109", time.Hour)
	if got := s.Clock.Now("1230000109"); !got.Equal(base.Add(time.Hour)) {
		t.Fatalf("after an hour's advance: got %v", got)
	}
}

func TestNewClosesTheStoreWhenAProductFails(t *testing.T) {
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err = app.New(context.Background(), app.Options{Store: st, Products: []app.Constructor{
		func(sandbox.Deps) (sandbox.Product, error) { return nil, boom },
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("New: got %v, want the product's error", err)
	}
	if _, err := st.ListMerchants(context.Background()); err == nil {
		t.Fatal("the store is still open after New failed")
	}
}

func TestCloseStopsTheWorkersAndClosesTheStore(t *testing.T) {
	a, err := app.New(context.Background(), app.Options{StorePath: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: a worker did not stop")
	}
	if _, err := a.Store.ListMerchants(context.Background()); err == nil {
		t.Fatal("the store is still open after Close")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}
