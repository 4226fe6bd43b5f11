package payscore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	wxnotify "github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// base is the real time the test clocks are frozen at: only Advance moves
// a merchant's clock, so timelines are exact. Signature timestamps use the
// wall clock, as the SDK does.
var base = time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)

// apiHost is what the SDK is told to call; the transport sends it to the
// test server (SOURCES.md §6).
const apiHost = "https://api.mch.weixin.qq.com"

// world is the product wired as the server wires it (app.New, served by
// apptest): a real SQLite file, the embedded schemas and scenarios, the
// merchant directory, the mini-program service and the notification
// worker, behind a loopback HTTP server, driven by the official SDK.
type world struct {
	tb testing.TB
	*apptest.Sandbox
	set  *schema.Set
	p    *Product
	recv *receiver
	m    *sandbox.Merchant // the merchant every helper acts as
	sdk  *core.Client
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	return newWorldWith(tb, app.Options{Now: apptest.Frozen(base)})
}

// newWorldWith is newWorld on the options given (the product is added).
func newWorldWith(tb testing.TB, o app.Options) *world {
	tb.Helper()
	// No merchants given: the sandbox creates its demo merchant.
	o.Products = []app.Constructor{app.Product(New)}
	s := apptest.Start(tb, o)
	m, _ := s.Merchants.Get("1230000109")
	w := &world{tb: tb, Sandbox: s, set: s.Schemas, p: s.Products[0].(*Product), m: m}
	w.recv = newReceiver(tb, m)
	w.sdk = w.client(m)
	return w
}

// hostRewrite sends the SDK's requests for api.mch.weixin.qq.com to the
// test server, as SOURCES.md §6's verified snippet does.
type hostRewrite struct{ u *url.URL }

func (t hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

// client is the official SDK in public-key mode for m.
func (w *world) client(m *sandbox.Merchant) *core.Client {
	w.tb.Helper()
	key, err := utils.LoadPrivateKey(m.MerchantPrivateKeyPEM)
	if err != nil {
		w.tb.Fatal(err)
	}
	pub, err := utils.LoadPublicKey(m.PlatformPublicKeyPEM)
	if err != nil {
		w.tb.Fatal(err)
	}
	u, _ := url.Parse(w.Server.URL)
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(m.MchID, m.MerchantSerialNo, key, m.PlatformPublicKeyID, pub),
		option.WithHTTPClient(&http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second}))
	if err != nil {
		w.tb.Fatalf("core.NewClient: %v", err)
	}
	return c
}

// other creates a second merchant, with fresh keys.
func (w *world) other() *sandbox.Merchant {
	w.tb.Helper()
	m, err := w.Merchants.Create(context.Background(), merchant.CreateRequest{MchID: "1900000109"})
	if err != nil {
		w.tb.Fatalf("create merchant: %v", err)
	}
	return m
}

// with returns the world acting for a subtest: its helpers fail tb.
func (w *world) with(tb testing.TB) *world {
	c := *w
	c.tb = tb
	return &c
}

// advance moves the merchant's clock as POST /sandbox/v1/clock/advance does.
func (w *world) advance(d time.Duration) { w.tb.Helper(); w.Advance(w.tb, w.m.MchID, d) }

func (w *world) valid(name string, raw []byte) { w.tb.Helper(); apptest.Valid(w.tb, w.set, name, raw) }

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

// v3 calls the API with the SDK; a 2xx answer (signature verified by the
// SDK) is returned with a nil error, anything else as the APIError.
func (w *world) v3(method, path string, body any) ([]byte, *core.APIError) {
	w.tb.Helper()
	ctx := context.Background()
	var res *core.APIResult
	var err error
	if method == http.MethodGet {
		res, err = w.sdk.Get(ctx, apiHost+path)
	} else {
		res, err = w.sdk.Post(ctx, apiHost+path, body)
	}
	if err != nil {
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) {
			w.tb.Fatalf("%s %s: %v", method, path, err)
		}
		w.valid("wxpay/error", []byte(apiErr.Body))
		return nil, apiErr
	}
	raw, _ := io.ReadAll(res.Response.Body)
	return raw, nil
}

// ok calls the API and requires a 2xx answer valid against schema.
func (w *world) ok(method, path string, body any, schema string) map[string]any {
	w.tb.Helper()
	raw, apiErr := w.v3(method, path, body)
	if apiErr != nil {
		w.tb.Fatalf("%s %s: %d %s", method, path, apiErr.StatusCode, apiErr.Body)
	}
	w.valid(schema, raw)
	return decode(w.tb, raw)
}

// fail calls the API and requires the v3 error status and code.
func (w *world) fail(method, path string, body any, status int, code string) map[string]any {
	w.tb.Helper()
	raw, apiErr := w.v3(method, path, body)
	if apiErr == nil {
		w.tb.Fatalf("%s %s: got 2xx %s, want %d %s", method, path, raw, status, code)
	}
	if apiErr.StatusCode != status || apiErr.Code != code {
		w.tb.Fatalf("%s %s: got %d %s, want %d %s", method, path, apiErr.StatusCode, apiErr.Body, status, code)
	}
	return decode(w.tb, []byte(apiErr.Body))
}

// createBody is a valid create request for the test merchant.
func (w *world) createBody(outOrderNo string) map[string]any {
	return map[string]any{
		"out_order_no": outOrderNo, "appid": w.m.AppID, "service_id": w.m.ServiceID,
		"service_introduction": "某某酒店",
		"post_payments":        []any{map[string]any{"name": "就餐费用", "amount": 40000, "description": "就餐人均100元", "count": 4}},
		"post_discounts":       []any{map[string]any{"name": "满20减1元", "description": "不与其他优惠叠加", "amount": 100, "count": 1}},
		"time_range":           map[string]any{"start_time": "20250301100000", "end_time": "20250301120000"},
		"location":             map[string]any{"start_location": "嗨客时尚主题展餐厅"},
		"risk_fund":            map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 50000, "description": "就餐的预估费用"},
		"attach":               "Easdfowealsdkjfnlaksjdlfkwqoi&wl3l2sald",
		"notify_url":           w.recv.url + "/payscore/notify",
	}
}

// create creates an order and returns its package.
func (w *world) create(outOrderNo string) string {
	w.tb.Helper()
	out := w.ok(http.MethodPost, "/v3/payscore/serviceorder", w.createBody(outOrderNo), schemaCreateResponse)
	pkg, _ := out["package"].(string)
	return pkg
}

func (w *world) queryPath(key, value string) string {
	return "/v3/payscore/serviceorder?service_id=" + w.m.ServiceID + "&" + key + "=" + url.QueryEscape(value) + "&appid=" + w.m.AppID
}

// query reads the order by out_order_no.
func (w *world) query(outOrderNo string) map[string]any {
	w.tb.Helper()
	return w.ok(http.MethodGet, w.queryPath("out_order_no", outOrderNo), nil, schemaOrder)
}

func stateOf(o map[string]any) string {
	s := o["state"].(string)
	if d, _ := o["state_description"].(string); d != "" {
		s += "/" + d
	}
	if c, ok := o["collection"].(map[string]any); ok {
		s += " " + c["state"].(string)
	}
	return s
}

// completeBody completes for 39900 fen: 40000 − 100.
func (w *world) completeBody() map[string]any {
	return map[string]any{
		"appid": w.m.AppID, "service_id": w.m.ServiceID,
		"post_payments":  []any{map[string]any{"name": "就餐费用", "amount": 40000, "description": "就餐人均100元", "count": 4}},
		"post_discounts": []any{map[string]any{"name": "满20减1元", "description": "不与其他优惠叠加", "amount": 100, "count": 1}},
		"total_amount":   39900,
		"time_range":     map[string]any{"end_time": "20250301113000"},
	}
}

// extraData returns the extraData for pkg, signed with the merchant's API
// v2 key as the merchant's backend would.
func (w *world) extraData(pkg string) map[string]any {
	w.tb.Helper()
	ed := map[string]string{
		"mch_id": w.m.MchID, "package": pkg, "timestamp": strconv.FormatInt(base.Unix(), 10),
		"nonce_str": wxsign.NonceStr(32), "sign_type": "HMAC-SHA256",
	}
	sign, err := wxsign.V2Sign(ed, w.m.APIv2Key, wxsign.SignTypeHMACSHA256)
	if err != nil {
		w.tb.Fatal(err)
	}
	out := map[string]any{"sign": sign}
	for k, v := range ed {
		out[k] = v
	}
	return out
}

// caller is a WeChat caller on current versions.
func (w *world) caller() map[string]any {
	return map[string]any{"appId": w.m.AppID, "platform": "ios", "wechatVersion": "8.0.50", "sdkVersion": "3.4.0"}
}

func businessViewArgs(extraData map[string]any) map[string]any {
	return map[string]any{"businessType": BusinessType, "extraData": extraData}
}

// jump makes a wx.* call; want is the HTTP status expected.
func (w *world) jump(api string, caller, args map[string]any, header map[string]string, want int) map[string]any {
	w.tb.Helper()
	return decode(w.tb, w.Call(w.tb, api, caller, args, header, want))
}

func (w *world) do(req *http.Request, want int) (map[string]any, []byte) {
	w.tb.Helper()
	raw := apptest.Send(w.tb, req, want)
	return decode(w.tb, raw), raw
}

// open jumps with openBusinessView to pkg and returns the session id.
func (w *world) open(pkg string, header map[string]string) string {
	w.tb.Helper()
	out := w.jump(sandbox.APIOpenBusinessView, w.caller(), businessViewArgs(w.extraData(pkg)), header, http.StatusOK)
	if out["errMsg"] != "openBusinessView:ok" {
		w.tb.Fatalf("jump: %v", out)
	}
	return out["session_id"].(string)
}

// returned advances the clock past the user's 2 s and reads the
// App.onShow options the caller sees, checked against the schema.
func (w *world) returned(sessionID string) map[string]any {
	w.tb.Helper()
	w.advance(2 * time.Second)
	return decode(w.tb, w.Return(w.tb, sessionID, schemaReturn))
}

func queryIDOf(ret map[string]any) string {
	ri, _ := ret["referrerInfo"].(map[string]any)
	ed, _ := ri["extraData"].(map[string]any)
	id, _ := ed["query_id"].(string)
	return id
}

// confirmed creates an order, jumps, and lets the user confirm; it
// returns the query_id.
func (w *world) confirmed(outOrderNo string) string {
	w.tb.Helper()
	ret := w.returned(w.open(w.create(outOrderNo), nil))
	return queryIDOf(ret)
}

// notifications lists the order's notification rows, oldest first.
func (w *world) notifications(outOrderNo string) []*sandbox.Notification {
	w.tb.Helper()
	return w.Notifications(w.tb, w.m.MchID, outOrderNo)
}

// received is one notification at the receiver, parsed by the SDK.
type received struct {
	event    string
	resource []byte
	raw      []byte
	err      error // the SDK's verdict
}

// receiver is the merchant's notify_url: it parses each notification with
// the SDK's RSA notify handler and answers as respond says (200 when nil).
type receiver struct {
	url     string
	got     chan received
	mu      sync.Mutex
	respond func(n int) int // n counts requests from 1
	n       int
}

func newReceiver(tb testing.TB, m *sandbox.Merchant) *receiver {
	tb.Helper()
	pub, err := utils.LoadPublicKey(m.PlatformPublicKeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := wxnotify.NewRSANotifyHandler(m.APIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(m.PlatformPublicKeyID, *pub))
	if err != nil {
		tb.Fatal(err)
	}
	r := &receiver{got: make(chan received, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(raw))
		var content json.RawMessage
		n, err := h.ParseNotifyRequest(req.Context(), req, &content)
		rec := received{raw: raw, err: err, resource: content}
		if err == nil {
			rec.event = n.EventType
		}
		r.mu.Lock()
		r.n++
		status := http.StatusOK
		if r.respond != nil {
			status = r.respond(r.n)
		}
		r.mu.Unlock()
		if err != nil {
			status = http.StatusUnauthorized
		}
		r.got <- rec
		rw.WriteHeader(status)
	}))
	tb.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) setRespond(f func(n int) int) {
	r.mu.Lock()
	r.respond, r.n = f, 0
	r.mu.Unlock()
}

// next waits for the next notification, or fails.
func (w *world) next(event string) received {
	w.tb.Helper()
	select {
	case rec := <-w.recv.got:
		if event != "" && rec.event != event {
			w.tb.Fatalf("notification: got %q (%v) %s, want %s", rec.event, rec.err, rec.raw, event)
		}
		if rec.err == nil {
			w.valid("wxpay/notification", rec.raw)
			w.valid(schemaResource, rec.resource)
		}
		return rec
	case <-time.After(5 * time.Second):
		w.tb.Fatalf("no notification within 5 s; want %s", event)
		return received{}
	}
}

func contains(vs []any, path string) bool {
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok && m["path"] == path {
			return true
		}
	}
	return false
}

func paths(vs []any) string {
	var out []string
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m["path"].(string))
		}
	}
	return strings.Join(out, ",")
}
