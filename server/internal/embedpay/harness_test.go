package embedpay

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/notify"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// base is the real time the test clocks are frozen at: only Advance moves
// a merchant's clock, so timelines are exact.
var base = time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)

// world is the product wired as the server wires it (app.New, served by
// apptest): a real SQLite file, the embedded schemas and scenarios, the
// mini-program service and the notification worker, behind a loopback HTTP
// server.
type world struct {
	tb testing.TB
	*apptest.Sandbox
	set   *schema.Set
	p     *Product
	recv  *receiver
	m     *sandbox.Merchant // the merchant every helper acts as
	other *sandbox.Merchant // a second merchant
}

// testMerchant is a merchant with only what P云 and the mini-program need.
func testMerchant(mchid, appid, pcloudApp, secret, pcloudMerchant string) *sandbox.Merchant {
	return &sandbox.Merchant{
		MchID: mchid, Name: "商户 " + mchid, AppID: appid,
		PCloudAppID: pcloudApp, PCloudAppSecret: secret, PCloudMerchant: pcloudMerchant,
		CreatedAt: base,
	}
}

// The doc's own merchant (trade-prepare.md): the golden vector verifies
// against it.
const (
	docAppID    = "op0096196358123123"
	docSecret   = "6409292d66625a2a12342134"
	docMerchant = "62626601"
)

func newWorld(tb testing.TB) *world {
	tb.Helper()
	m := testMerchant("1230000109", "wx1234567890abcdef", docAppID, docSecret, docMerchant)
	other := testMerchant("1900000109", "wxfedcba0987654321", "op1111111111111", "othersecretothersecretothersecre", "70000001")
	s := apptest.Start(tb, app.Options{
		Now: apptest.Frozen(base), Merchants: []*sandbox.Merchant{m, other}, Products: []app.Constructor{app.Product(New)},
		// The doc's example notifies https://a.b.c/notify.
		NotifyAllow: notify.MustPolicy(notify.DefaultAllow + ",a.b.c"),
	})
	w := &world{tb: tb, Sandbox: s, set: s.Schemas, p: s.Products[0].(*Product), m: m, other: other}
	w.recv = newReceiver(tb, w.Merchants)
	return w
}

// advance moves the merchant's clock as POST /sandbox/v1/clock/advance does.
func (w *world) advance(d time.Duration) { w.tb.Helper(); w.Advance(w.tb, w.m.MchID, d) }

func (w *world) now() time.Time { return w.Clock.Now(w.m.MchID) }

// post sends a form (or a raw body with contentType) and decodes the JSON
// answer; it fails on any HTTP status but 200, which P云 always answers.
func (w *world) post(path, contentType, body string, header map[string]string) (map[string]any, []byte) {
	w.tb.Helper()
	req, err := http.NewRequest(http.MethodPost, w.Server.URL+path, strings.NewReader(body))
	if err != nil {
		w.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return w.do(req, http.StatusOK)
}

func (w *world) do(req *http.Request, want int) (map[string]any, []byte) {
	w.tb.Helper()
	raw := apptest.Send(w.tb, req, want)
	return decode(w.tb, raw), raw
}

// decode reads a JSON object, numbers as json.Number.
func decode(tb testing.TB, raw []byte) map[string]any {
	tb.Helper()
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		tb.Fatalf("decode %s: %v", raw, err)
	}
	return out
}

// form encodes params, signing them with secret unless a sign is given.
func form(params map[string]string, secret string) string {
	v := url.Values{}
	for k, s := range params {
		v.Set(k, s)
	}
	if _, ok := params["sign"]; !ok && secret != "" {
		v.Set("sign", wxsign.PCloudSign(params, secret))
	}
	return v.Encode()
}

// prepareParams is a valid trade-prepare for the test merchant.
func (w *world) prepareParams(payOrder, value string) map[string]string {
	return map[string]string{
		"app_id": w.m.PCloudAppID, "merchant": w.m.PCloudMerchant, "pay_order": payOrder,
		"subject": "停车支付", "value": value, "notify_url": w.recv.url + "/notify", "trade_scene": "GENERIC",
	}
}

// prepare prepares a trade and returns its pay_id, checking the answer
// against its schema.
func (w *world) prepare(payOrder, value string) string {
	w.tb.Helper()
	out, raw := w.post("/gate/1.0/payment/trade/prepare", formType, form(w.prepareParams(payOrder, value), w.m.PCloudAppSecret), nil)
	w.valid(SchemaPrepareResponse, raw)
	id, _ := out["pay_id"].(string)
	return id
}

// prepareErr posts a prepare expected to fail and checks its P云 error shape.
func (w *world) prepareErr(body string, header map[string]string) errorBody {
	w.tb.Helper()
	_, raw := w.post("/gate/1.0/payment/trade/prepare", formType, body, header)
	return w.pcloudError(raw)
}

func (w *world) pcloudError(raw []byte) errorBody {
	w.tb.Helper()
	w.valid("common/pcloud-error", raw)
	if bytes.Contains(raw, []byte(`\u0026`)) {
		w.tb.Errorf("the error is HTML-escaped (\\u0026 for &): %s", raw)
	}
	var e errorBody
	if err := json.Unmarshal(raw, &e); err != nil {
		w.tb.Fatalf("decode error %s: %v", raw, err)
	}
	return e
}

// query asks trade/query by pay_order (POST form) and checks the answer.
func (w *world) query(payOrder string) map[string]any {
	w.tb.Helper()
	p := map[string]string{"app_id": w.m.PCloudAppID, "merchant": w.m.PCloudMerchant, "pay_order": payOrder}
	out, raw := w.post("/gate/1.0/payment/trade/query", formType, form(p, w.m.PCloudAppSecret), nil)
	if out["code"] != codeOK {
		w.tb.Fatalf("query %s: %s", payOrder, raw)
	}
	w.valid(SchemaQueryResponse, raw)
	return out
}

func (w *world) status(payOrder string) string {
	w.tb.Helper()
	return w.query(payOrder)["status"].(json.Number).String()
}

// caller is a WeChat caller on a current base library.
func (w *world) caller() map[string]any {
	return map[string]any{"appId": w.m.AppID, "platform": "ios", "sdkVersion": "3.4.0"}
}

func cashierArgs(appID, payID string) map[string]any {
	return map[string]any{"appId": appID, "path": "/" + CashierPage + "?pay_id=" + payID}
}

// jump calls openEmbeddedMiniProgram; want is the HTTP status expected.
func (w *world) jump(caller, args map[string]any, header map[string]string, want int) map[string]any {
	w.tb.Helper()
	return decode(w.tb, w.Call(w.tb, sandbox.APIOpenEmbeddedMiniProgram, caller, args, header, want))
}

// open prepares nothing: it jumps to payID as the test merchant and returns
// the session id.
func (w *world) open(payID string, header map[string]string) string {
	w.tb.Helper()
	out := w.jump(w.caller(), cashierArgs(WeChatAppID, payID), header, http.StatusOK)
	if out["errMsg"] != "openEmbeddedMiniProgram:ok" {
		w.tb.Fatalf("jump: %v", out)
	}
	return out["session_id"].(string)
}

// returned waits (briefly, in real time: the service resolves on a timer
// or at once after Advance) for the session's App.onShow options and
// checks them against the schema.
func (w *world) returned(sessionID string) map[string]any {
	w.tb.Helper()
	return decode(w.tb, w.Return(w.tb, sessionID, SchemaReturn))
}

// pending checks that the user has not come back yet.
func (w *world) pending(sessionID string) { w.tb.Helper(); w.Pending(w.tb, sessionID) }

func (w *world) valid(name string, raw []byte) { w.tb.Helper(); apptest.Valid(w.tb, w.set, name, raw) }

// notifications lists the trade's notification rows, oldest first.
func (w *world) notifications(payOrder string) []*sandbox.Notification {
	w.tb.Helper()
	return w.Notifications(w.tb, w.m.MchID, payOrder)
}

// received is one trade-notify at the receiver.
type received struct {
	params   map[string]string
	raw      []byte
	signedOK bool
}

// receiver is the merchant's notify_url: it verifies the MD5 sign as a
// careful merchant does and answers 1001 only to a genuine notification.
type receiver struct {
	url string
	got chan received
	dir *merchant.Directory
}

func newReceiver(tb testing.TB, dir *merchant.Directory) *receiver {
	tb.Helper()
	r := &receiver{got: make(chan received, 64), dir: dir}
	srv := httptest.NewServer(r)
	tb.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	v, _ := url.ParseQuery(string(raw))
	params := map[string]string{}
	for k := range v {
		params[k] = v.Get(k)
	}
	rec := received{params: params, raw: raw}
	if m, ok := r.dir.ByPCloudAppID(params["app_id"]); ok {
		rec.signedOK = wxsign.PCloudVerify(params, m.PCloudAppSecret, params["sign"]) == nil
	}
	select {
	case r.got <- rec:
	default:
		// Nobody reads (a benchmark): refuse, so the sandbox keeps it.
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !rec.signedOK {
		w.Write([]byte(`{"code":"400","message":"签名错误","hint":"sign"}`))
		return
	}
	w.Write([]byte(`{"code":"1001","message":"通知成功","hint":""}`))
}

// next returns the next notification received; the deliveries are
// asynchronous, so it waits for it in real time, bounded.
func (r *receiver) next(tb testing.TB) received {
	tb.Helper()
	select {
	case got := <-r.got:
		return got
	case <-time.After(5 * time.Second):
		tb.Fatalf("receiver: no trade-notify within 5s")
		return received{}
	}
}

// none checks that nothing more arrived by the time the worker has
// settled: every notification of the trade is in a final or not-yet-due
// state and nothing is queued at the receiver.
func (r *receiver) none(tb testing.TB) {
	tb.Helper()
	select {
	case got := <-r.got:
		tb.Fatalf("receiver: unexpected trade-notify %v", got.params)
	default:
	}
}

// v is a violation, for tables.
func v(path, message string) sandbox.Violation {
	return sandbox.Violation{Path: path, Message: message}
}
