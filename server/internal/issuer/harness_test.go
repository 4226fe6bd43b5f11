package issuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// base is the real time the test clocks are frozen at: only Advance moves
// a merchant's clock.
var base = time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)

// merchantKey is the test merchant's RSA key, generated once per test
// binary: a 2048-bit key costs about 100 ms.
var merchantKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// apiV2Key is the test merchant's API v2 key.
const apiV2Key = "192006250b4c09247ec02edce69f6a2d"

// world is the product wired as the server wires it (app.New, served by
// apptest): a real SQLite file, the embedded schemas and scenarios, and the
// mini-program service behind a loopback HTTP server.
type world struct {
	tb testing.TB
	*apptest.Sandbox
	set   *schema.Set
	p     *Product
	m     *sandbox.Merchant // the merchant every helper acts as
	other *sandbox.Merchant // a second merchant
}

func testMerchant(tb testing.TB, mchid, appid string) *sandbox.Merchant {
	tb.Helper()
	pub, err := fixtures.PublicKeyPEM(&merchantKey().PublicKey)
	if err != nil {
		tb.Fatalf("public key: %v", err)
	}
	return &sandbox.Merchant{MchID: mchid, Name: "商户 " + mchid, AppID: appid,
		MerchantPublicKeyPEM: pub, APIv2Key: apiV2Key, CreatedAt: base}
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	m := testMerchant(tb, "1230000109", "wx1234567890abcdef")
	other := testMerchant(tb, "1900000109", "wxfedcba0987654321")
	s := apptest.Start(tb, app.Options{
		Now: apptest.Frozen(base), Merchants: []*sandbox.Merchant{m, other}, Products: []app.Constructor{app.Product(New)},
	})
	return &world{tb: tb, Sandbox: s, set: s.Schemas, p: s.Products[0].(*Product), m: m, other: other}
}

// compiledSchemas compiles the embedded schema set.
func compiledSchemas(tb testing.TB) *schema.Set {
	tb.Helper()
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		tb.Fatalf("compile schemas: %v", err)
	}
	return set
}

// advance moves the merchant's clock as POST /sandbox/v1/clock/advance does.
func (w *world) advance(d time.Duration) { w.tb.Helper(); w.Advance(w.tb, w.m.MchID, d) }

func (w *world) now() time.Time { return w.Clock.Now(w.m.MchID) }

// do sends a request and decodes the JSON answer, failing on a status other
// than want.
func (w *world) do(method, path string, body any, header map[string]string, want int) (map[string]any, []byte) {
	w.tb.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			w.tb.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.Server.URL+path, r)
	if err != nil {
		w.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	raw := apptest.Send(w.tb, req, want)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		w.tb.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
	}
	return out, raw
}

// appJSON is a host's app.json with the plugin and the functional pages.
func appJSON() map[string]any {
	return map[string]any{
		"pages":           []string{"pages/index/index"},
		"plugins":         map[string]any{Alias: map[string]any{"version": "1.0.0", "provider": Provider}},
		"functionalPages": true,
	}
}

// caller is the test merchant's mini-program with app.json.
func (w *world) caller(aj map[string]any) map[string]any {
	c := map[string]any{"appId": w.m.AppID, "platform": "ios", "sdkVersion": "3.4.0"}
	if aj != nil {
		c["appJson"] = aj
	}
	return c
}

// call posts a wx.* call and checks its answer against the errMsg schema.
func (w *world) call(api string, caller, args map[string]any, scenarioID string, want int) map[string]any {
	w.tb.Helper()
	header := map[string]string{}
	if scenarioID != "" {
		header["X-Sandbox-Scenario"] = scenarioID
	}
	var out map[string]any
	if raw := w.Call(w.tb, api, caller, args, header, want); json.Unmarshal(raw, &out) != nil {
		w.tb.Fatalf("%s: decode %s", api, raw)
	}
	return out
}

// navigate opens a plugin URL as the test merchant and returns the session
// id, requiring navigateTo:ok.
func (w *world) navigate(pluginURL, scenarioID string) string {
	w.tb.Helper()
	out := w.call(sandbox.APIPluginNavigate, w.caller(appJSON()), map[string]any{"url": pluginURL}, scenarioID, http.StatusOK)
	if out["errMsg"] != "navigateTo:ok" {
		w.tb.Fatalf("navigate %s: %v", pluginURL, out)
	}
	return out["session_id"].(string)
}

// refused opens a plugin URL that must fail and returns the violations.
func (w *world) refused(caller map[string]any, args map[string]any) []sandbox.Violation {
	w.tb.Helper()
	out := w.call(sandbox.APIPluginNavigate, caller, args, "", http.StatusBadRequest)
	return violationsOf(w.tb, out)
}

func violationsOf(tb testing.TB, out map[string]any) []sandbox.Violation {
	tb.Helper()
	b, _ := json.Marshal(out["violations"])
	var vs []sandbox.Violation
	if err := json.Unmarshal(b, &vs); err != nil {
		tb.Fatalf("violations of %v: %v", out, err)
	}
	return vs
}

// back waits for the session's way back and checks it against its schema.
func (w *world) back(id string) visitReturn {
	w.tb.Helper()
	raw := w.Return(w.tb, id, SchemaReturn)
	var r visitReturn
	if err := json.Unmarshal(raw, &r); err != nil {
		w.tb.Fatal(err)
	}
	return r
}

// pending checks that the user is still in the plugin.
func (w *world) pending(id string) { w.tb.Helper(); w.Pending(w.tb, id) }

// getter reads one of the plugin's getters and checks it against its schema.
func (w *world) getter(id, name string) map[string]any {
	w.tb.Helper()
	out, raw := w.do(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/plugin/"+name, nil, nil, http.StatusOK)
	w.valid(getterSchema(name), raw)
	return out
}

func getterSchema(name string) string {
	switch name {
	case GetterActive:
		return SchemaActiveResult
	case GetterSignPro:
		return SchemaSignProResult
	}
	return SchemaSignCarService
}

// state reads a getter's state.
func (w *world) state(id, name string) int {
	w.tb.Helper()
	return int(w.getter(id, name)["state"].(float64))
}

func (w *world) valid(name string, raw []byte) { w.tb.Helper(); apptest.Valid(w.tb, w.set, name, raw) }

// apply walks a new application's login with the instant scenario and
// returns the way back, whose query holds orderNo and plateNum.
func (w *world) apply(etcProductID string) visitReturn {
	w.tb.Helper()
	id := w.navigate(loginURL(etcProductID), "issuer.instant")
	return w.back(id)
}

func loginURL(etcProductID string) string {
	return "plugin://issuer-plugin/login?etcProductId=" + etcProductID + "&accountType=1&carType=0&redirectUrl=/pages/login/login&mobile=13912345678"
}

// loadOrder and loadDevice read the records as the store holds them.
func (w *world) loadOrder(no string) *order      { return mustLoad[order](w, KindOrder, no) }
func (w *world) loadDevice(plate string) *device { return mustLoad[device](w, KindDevice, plate) }

func mustLoad[T any](w *world, kind, key string) *T {
	w.tb.Helper()
	s, err := load[T](context.Background(), w.Store, kind, w.m.MchID, key)
	if err != nil || s == nil {
		w.tb.Fatalf("%s %s: %v", kind, key, err)
	}
	return s.V
}

// visit opens a plugin URL under a scenario whose user takes two seconds,
// advances the clock past them, and returns the session id and the way back.
func (w *world) visit(pluginURL, scenarioID string) (string, visitReturn) {
	w.tb.Helper()
	id := w.navigate(pluginURL, scenarioID)
	w.advance(2 * time.Second)
	return id, w.back(id)
}

// paymentArgsFor returns what beforeRequestPayment hands back for prepayID,
// signed with signType as the merchant's backend signs it.
func (w *world) paymentArgsFor(prepayID, nonce, signType string) map[string]any {
	w.tb.Helper()
	ts := strconv.FormatInt(w.now().Unix(), 10)
	pkg := "prepay_id=" + prepayID
	var sign string
	var err error
	if signType == paySignRSA {
		sign, err = wxsign.PaySignRSA(merchantKey(), w.m.AppID, ts, nonce, pkg)
	} else {
		sign, err = wxsign.V2Sign(map[string]string{"appId": w.m.AppID, "timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": signType}, apiV2Key, signType)
	}
	if err != nil {
		w.tb.Fatalf("sign: %v", err)
	}
	return map[string]any{"timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": signType, "paySign": sign}
}

// pay posts the payment args as the test merchant's host.
func (w *world) pay(args map[string]any, scenarioID string, want int) map[string]any {
	w.tb.Helper()
	return w.call(sandbox.APIRequestPayment, w.caller(appJSON()), args, scenarioID, want)
}

// answer is a raw answer to a call, for tests that accept any status.
type answer struct {
	status int
	errMsg string
	body   []byte
}

// post opens a plugin URL with the instant scenario and returns the answer
// whatever its status.
func (w *world) post(pluginURL string) (answer, error) {
	b, _ := json.Marshal(map[string]any{"caller": w.caller(appJSON()), "args": map[string]any{"url": pluginURL}})
	req, _ := http.NewRequest(http.MethodPost, w.Server.URL+"/miniprogram/v1/plugin/navigate", bytes.NewReader(b))
	req.Header.Set("X-Sandbox-Scenario", "issuer.instant")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		ErrMsg string `json:"errMsg"`
	}
	_ = json.Unmarshal(raw, &out)
	return answer{status: resp.StatusCode, errMsg: out.ErrMsg, body: raw}, nil
}
