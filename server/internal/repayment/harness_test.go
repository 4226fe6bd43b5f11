package repayment

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// base is the real time the test clocks are frozen at: only Advance moves
// a merchant's clock, so what the user does when is exact.
var base = time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)

const (
	mchA = "1230000109" // the demo merchant's id
	mchB = "1900000109"
	// adminToken sees every merchant; each merchant's own token sees it.
	adminToken = "admintok"
)

// testMerchants are generated once per test binary: RSA key generation
// takes a good part of a second, and no key is committed.
var testMerchants = sync.OnceValues(func() ([2]*sandbox.Merchant, error) {
	var out [2]*sandbox.Merchant
	for i, id := range []string{mchA, mchB} {
		f, err := fixtures.NewMerchant(id, "商户 "+id)
		if err != nil {
			return out, err
		}
		out[i] = &sandbox.Merchant{MchID: f.MchID, Name: f.Name, AppID: f.AppID, ServiceID: f.ServiceID,
			MerchantSerialNo: f.MerchantSerialNo, MerchantPrivateKeyPEM: f.MerchantPrivateKeyPEM,
			MerchantCertificatePEM: f.MerchantCertificatePEM, MerchantPublicKeyPEM: f.MerchantPublicKeyPEM,
			APIv2Key: f.APIv2Key, APIv3Key: f.APIv3Key, PlatformPublicKeyID: f.PlatformPublicKeyID,
			PlatformPublicKeyPEM: f.PlatformPublicKeyPEM, PlatformSerialNo: f.PlatformSerialNo,
			PlatformCertificatePEM: f.PlatformCertificatePEM, PlatformPrivateKeyPEM: f.PlatformPrivateKeyPEM,
			Token: f.Token, NotifyHosts: []string{}, Active: map[string]sandbox.ActiveScenario{}, CreatedAt: base}
	}
	return out, nil
})

var schemaSet = sync.OnceValues(func() (*schema.Set, error) { return schema.Compile(schemas.FS) })

// world is the product wired as the server wires it (app.New, served by
// apptest): a real SQLite file, the embedded schemas and scenarios, the
// mini-program service, the admin API with the product's group, behind a
// loopback HTTP server.
type world struct {
	tb testing.TB
	*apptest.Sandbox
	set   *schema.Set
	p     *Product
	m     *sandbox.Merchant // the merchant every helper acts as
	other *sandbox.Merchant
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	ms, err := testMerchants()
	if err != nil {
		tb.Fatalf("generate merchants: %v", err)
	}
	set, err := schemaSet()
	if err != nil {
		tb.Fatalf("compile schemas: %v", err)
	}
	m, other := *ms[0], *ms[1] // copies: a world may edit its merchants
	s := apptest.Start(tb, app.Options{
		Now: apptest.Frozen(base), Schemas: set, Merchants: []*sandbox.Merchant{&m, &other},
		Access: httpapi.Access{AdminToken: adminToken}, Products: []app.Constructor{app.Product(New)},
	})
	return &world{tb: tb, Sandbox: s, set: set, p: s.Products[0].(*Product), m: &m, other: &other}
}

// advance moves the merchant's clock as POST /sandbox/v1/clock/advance does.
func (w *world) advance(d time.Duration) { w.tb.Helper(); w.Advance(w.tb, w.m.MchID, d) }

// do sends req and returns the status and body.
func (w *world) do(req *http.Request) (int, []byte) {
	w.tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// call sends a JSON body (nil for none) with the bearer token and decodes
// the answer, requiring status want.
func (w *world) call(method, path, token string, body any, want int) (map[string]any, []byte) {
	w.tb.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.Server.URL+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	status, raw := w.do(req)
	if status != want {
		w.tb.Fatalf("%s %s: status got %d, want %d; body %s", method, path, status, want, raw)
	}
	return w.decode(raw), raw
}

// valid checks raw against a schema.
func (w *world) valid(name string, raw []byte) { w.tb.Helper(); apptest.Valid(w.tb, w.set, name, raw) }

// users lists the merchant's vehicle users of a state as the admin sees them.
func (w *world) users(mchid, state string) []userView {
	w.tb.Helper()
	path := "/sandbox/v1/vehicle-users?mchid=" + mchid
	if state != "" {
		path += "&user_state=" + state
	}
	_, raw := w.call(http.MethodGet, path, adminToken, nil, http.StatusOK)
	w.valid("repayment/vehicle-users.response", raw)
	var out struct{ Users []userView }
	if err := json.Unmarshal(raw, &out); err != nil {
		w.tb.Fatal(err)
	}
	return out.Users
}

// user is the merchant's user with the openid, as the admin sees it.
func (w *world) user(openid string) userView {
	w.tb.Helper()
	for _, u := range w.users(w.m.MchID, "") {
		if u.OpenID == openid {
			return u
		}
	}
	w.tb.Fatalf("no vehicle user %s", openid)
	return userView{}
}

// createUser creates a vehicle user of the test merchant.
func (w *world) createUser(body map[string]any) userView {
	w.tb.Helper()
	if _, ok := body["mchid"]; !ok {
		body["mchid"] = w.m.MchID
	}
	_, raw := w.call(http.MethodPost, "/sandbox/v1/vehicle-users", adminToken, body, http.StatusCreated)
	w.valid("repayment/vehicle-user", raw)
	var u userView
	if err := json.Unmarshal(raw, &u); err != nil {
		w.tb.Fatal(err)
	}
	return u
}

// overdue creates an OVERDUE user owing the amounts.
func (w *world) overdue(amounts ...int64) userView {
	w.tb.Helper()
	advances := make([]map[string]any, len(amounts))
	for i, a := range amounts {
		advances[i] = map[string]any{"amount": a}
	}
	return w.createUser(map[string]any{"user_state": StateOverdue, "advances": advances})
}

// caller is the merchant's mini-program (or App) on a current base library.
func (w *world) caller() map[string]any {
	return map[string]any{"appId": w.m.AppID, "platform": "ios", "sdkVersion": "3.4.0"}
}

// extraData is the repayment page's extraData for the user, with a nonce_str that
// picks the scenario by its magic prefix.
func (w *world) extraData(openid, nonce string) map[string]any {
	return map[string]any{"appid": AppID, "mchid": w.m.MchID, "nonce_str": nonce, "openid": openid}
}

func navigateArgs(extra map[string]any) map[string]any {
	return map[string]any{"appId": AppID, "path": Page, "extraData": extra}
}

// appPath is the repayment page's App path for the user (Android's mchid).
func (w *world) appPath(openid, nonce string) string {
	return Page + "?mchid=" + w.m.MchID + "&appid=" + w.m.AppID + "&nonce_str=" + nonce + "&openid=" + openid
}

// jump calls the mini-program contract; want is the HTTP status expected.
func (w *world) jump(api string, args map[string]any, want int) map[string]any {
	w.tb.Helper()
	return w.decode(w.Call(w.tb, api, w.caller(), args, nil, want))
}

// decode reads a JSON object.
func (w *world) decode(raw []byte) map[string]any {
	w.tb.Helper()
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		w.tb.Fatalf("decode %s: %v", raw, err)
	}
	return out
}

// open jumps and returns the session id.
func (w *world) open(api string, args map[string]any) string {
	w.tb.Helper()
	out := w.jump(api, args, http.StatusOK)
	id, _ := out["session_id"].(string)
	if id == "" {
		w.tb.Fatalf("jump: no session: %v", out)
	}
	return id
}

// returned waits for the session's return and checks it against the
// schema of what the caller sees.
func (w *world) returned(sessionID, schemaName string) map[string]any {
	w.tb.Helper()
	return w.decode(w.Return(w.tb, sessionID, schemaName))
}

// session reads a session from the store.
func (w *world) session(id string) *sandbox.Session {
	w.tb.Helper()
	s, err := w.Store.GetSession(context.Background(), id)
	if err != nil {
		w.tb.Fatalf("get session %s: %v", id, err)
	}
	return s
}

// querystate posts a v2 query signed with the merchant's API v2 key
// (unless params carries a sign) and returns the answer's parameters.
func (w *world) querystate(params map[string]string) map[string]string {
	w.tb.Helper()
	return w.querystateAt("/vehicle/pay/querystate", params)
}

// querystateAt is querystate at the path given: the direct or the partner one.
func (w *world) querystateAt(path string, params map[string]string) map[string]string {
	w.tb.Helper()
	if _, ok := params["sign"]; !ok {
		sign, err := wxsign.V2Sign(params, w.m.APIv2Key, wxsign.SignTypeHMACSHA256)
		if err != nil {
			w.tb.Fatal(err)
		}
		params["sign"] = sign
	}
	return w.postXMLTo(path, wxpayv2.EncodeXML(params))
}

// postXML posts a raw body to the v2 query; v2 answers 200 whatever happens.
func (w *world) postXML(body []byte) map[string]string {
	w.tb.Helper()
	return w.postXMLTo("/vehicle/pay/querystate", body)
}

func (w *world) postXMLTo(path string, body []byte) map[string]string {
	w.tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.Server.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	status, raw := w.do(req)
	if status != http.StatusOK {
		w.tb.Fatalf("querystate: status %d, body %s", status, raw)
	}
	out, vs := wxpayv2.ParseXML(raw)
	if out == nil || len(vs) > 0 {
		w.tb.Fatalf("querystate answer is not v2 XML: %v\n%s", vs, raw)
	}
	return out
}

// stateParams is a valid query by openid for the test merchant.
func (w *world) stateParams(openid string) map[string]string {
	return map[string]string{"appid": w.m.AppID, "mch_id": w.m.MchID, "nonce_str": wxsign.NonceStr(32),
		"sign_type": wxsign.SignTypeHMACSHA256, "trade_scene": "PARKING", "version": "3.0", "openid": openid}
}

// state queries the user's state and checks the successful answer: its
// schema, and its sign with the merchant's key.
func (w *world) state(openid string) map[string]string {
	w.tb.Helper()
	out := w.querystate(w.stateParams(openid))
	w.validSuccess(out)
	return out
}

func (w *world) validSuccess(out map[string]string) {
	w.tb.Helper()
	raw, _ := json.Marshal(out)
	w.valid("repayment/querystate.response", raw)
	if err := wxsign.V2Verify(out, w.m.APIv2Key, wxsign.SignTypeHMACSHA256, out["sign"]); err != nil {
		w.tb.Fatalf("answer sign: %v", err)
	}
	if info := out["plate_number_info"]; info != "" {
		w.valid("repayment/plate-number-info", []byte(info))
	}
}

// sandboxRT sends the SDK's requests, addressed to the real host, to the
// test server and keeps each answer's body for schema checks.
type sandboxRT struct {
	u       *url.URL
	mu      sync.Mutex
	last    []byte
	lastURI string
}

func (t *sandboxRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	resp, err := http.DefaultTransport.RoundTrip(r2)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	t.mu.Lock()
	t.last, t.lastURI = body, r.URL.RequestURI()
	t.mu.Unlock()
	return resp, nil
}

// lastURL is the request URI of the last request.
func (t *sandboxRT) lastURL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastURI
}

func (t *sandboxRT) lastBody() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// sdk is wechatpay-go's client for the test merchant, in public-key mode,
// pointed at the test server.
func (w *world) sdk() (*core.Client, *sandboxRT) {
	w.tb.Helper()
	key, err := utils.LoadPrivateKey(w.m.MerchantPrivateKeyPEM)
	if err != nil {
		w.tb.Fatal(err)
	}
	pub, err := utils.LoadPublicKey(w.m.PlatformPublicKeyPEM)
	if err != nil {
		w.tb.Fatal(err)
	}
	u, _ := url.Parse(w.Server.URL)
	rt := &sandboxRT{u: u}
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(w.m.MchID, w.m.MerchantSerialNo, key, w.m.PlatformPublicKeyID, pub),
		option.WithHTTPClient(&http.Client{Transport: rt, Timeout: 10 * time.Second}))
	if err != nil {
		w.tb.Fatalf("core.NewClient: %v", err)
	}
	return client, rt
}

// paths returns the violation paths of a list.
func paths(vs []sandbox.Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Path
	}
	return out
}

// contains reports whether s holds every part.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
