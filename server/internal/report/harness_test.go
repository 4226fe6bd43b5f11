package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
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
	"github.com/mpsandbox/mpsandbox/server/internal/embedpay"
	"github.com/mpsandbox/mpsandbox/server/internal/issuer"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/payscore"
	"github.com/mpsandbox/mpsandbox/server/internal/repayment"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// base is the real time the merchants' clocks are frozen at: only an
// advance moves them, so the scenarios' timelines are exact. Signatures
// and the journal use the wall clock.
var base = time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)

// startSandbox wires every product as the server does, on a real SQLite
// file behind a loopback HTTP server.
func startSandbox(tb testing.TB, o app.Options) *apptest.Sandbox {
	tb.Helper()
	o.Now = apptest.Frozen(base)
	o.Products = []app.Constructor{app.Product(embedpay.New), app.Product(payscore.New), app.Product(repayment.New), app.Product(issuer.New)}
	return apptest.Start(tb, o)
}

// shop is one merchant's integration, written well or badly: its backend
// (signing, queries) and its notification receiver.
type shop struct {
	tb   testing.TB
	sb   *apptest.Sandbox
	m    *sandbox.Merchant
	good bool
	sdk  *core.Client
	recv *receiver
}

func newShop(tb testing.TB, sb *apptest.Sandbox, mchid string, good bool) *shop {
	tb.Helper()
	m, err := sb.Merchants.Create(context.Background(), merchant.CreateRequest{MchID: mchid})
	if err != nil {
		tb.Fatalf("create merchant %s: %v", mchid, err)
	}
	s := &shop{tb: tb, sb: sb, m: m, good: good}
	s.recv = newReceiver(tb, m, good)
	key, err := utils.LoadPrivateKey(m.MerchantPrivateKeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := utils.LoadPublicKey(m.PlatformPublicKeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse(sb.Server.URL)
	if s.sdk, err = core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(m.MchID, m.MerchantSerialNo, key, m.PlatformPublicKeyID, pub),
		option.WithHTTPClient(&http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second})); err != nil {
		tb.Fatalf("core.NewClient: %v", err)
	}
	return s
}

// hostRewrite sends the SDK's requests for api.mch.weixin.qq.com to the
// sandbox: the host is not signed.
type hostRewrite struct{ u *url.URL }

func (t hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

// advance moves the merchant's clock once every attempt answered so far
// has been committed: a retry is scheduled from the clock at its commit.
func (s *shop) advance(d time.Duration) {
	s.tb.Helper()
	s.settle()
	s.sb.Advance(s.tb, s.m.MchID, d)
}

// send makes a request and returns the status and body.
func (s *shop) send(method, path, contentType string, body []byte, header map[string]string) (int, []byte) {
	s.tb.Helper()
	req, err := http.NewRequest(method, s.sb.Server.URL+path, bytes.NewReader(body))
	if err != nil {
		s.tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// call makes a wx.* call and returns the status and the answer.
func (s *shop) call(api string, caller, args map[string]any, header map[string]string) (int, map[string]any) {
	s.tb.Helper()
	body, _ := json.Marshal(map[string]any{"caller": caller, "args": args})
	status, raw := s.send(http.MethodPost, "/miniprogram/v1/"+api, "application/json", body, header)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		s.tb.Fatalf("%s: %s: %v", api, raw, err)
	}
	return status, out
}

// launch makes a wx.* call that must open a session.
func (s *shop) launch(api string, caller, args map[string]any, header map[string]string) string {
	s.tb.Helper()
	status, out := s.call(api, caller, args, header)
	id, _ := out["session_id"].(string)
	if status != http.StatusOK || id == "" {
		s.tb.Fatalf("%s: %d %v", api, status, out)
	}
	return id
}

// back reads the session's return, waiting for the user.
func (s *shop) back(id string) map[string]any {
	s.tb.Helper()
	status, raw := s.send(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/return?wait=5s", "", nil, nil)
	if status != http.StatusOK {
		sess, _ := s.sb.Store.GetSession(context.Background(), id)
		s.tb.Fatalf("return of %s: %d %s; session %+v", id, status, raw, sess)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func (s *shop) caller() map[string]any {
	return map[string]any{"appId": s.m.AppID, "platform": "ios", "wechatVersion": "8.0.50", "sdkVersion": "3.4.0"}
}

// ---- 支付分

const apiHost = "https://api.mch.weixin.qq.com"

func (s *shop) v3(method, path string, body any) {
	s.tb.Helper()
	var err error
	if method == http.MethodGet {
		_, err = s.sdk.Get(context.Background(), apiHost+path)
	} else {
		_, err = s.sdk.Post(context.Background(), apiHost+path, body)
	}
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
}

// staleQuery queries an order with an Authorization signed right but
// stamped 10 minutes ago, as a backend that caches its timestamp does.
func (s *shop) staleQuery(outOrderNo string) {
	s.tb.Helper()
	key, err := wxsign.ParsePrivateKey(s.m.MerchantPrivateKeyPEM)
	if err != nil {
		s.tb.Fatal(err)
	}
	uri := "/v3/payscore/serviceorder?service_id=" + s.m.ServiceID + "&out_order_no=" + outOrderNo + "&appid=" + s.m.AppID
	a := wxsign.Authorization{MchID: s.m.MchID, NonceStr: wxsign.NonceStr(32), SerialNo: s.m.MerchantSerialNo,
		Timestamp: strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)}
	if a.Signature, err = wxsign.RSASign(key, wxsign.V3RequestMessage(http.MethodGet, uri, a.Timestamp, a.NonceStr, "")); err != nil {
		s.tb.Fatal(err)
	}
	status, raw := s.send(http.MethodGet, uri, "", nil, map[string]string{"Authorization": wxsign.FormatAuthorization(a)})
	if status != http.StatusUnauthorized {
		s.tb.Fatalf("a query stamped 10 minutes ago: %d %s, want 401", status, raw)
	}
}

// apiFault scripts one API fault on the merchant's next call to path.
func (s *shop) apiFault(method, path, kind string) {
	s.tb.Helper()
	body, _ := json.Marshal(map[string]any{"method": method, "path": path, "kind": kind, "times": 1})
	if status, raw := s.send(http.MethodPost, "/sandbox/v1/merchants/"+s.m.MchID+"/api-faults", "application/json", body, nil); status/100 != 2 {
		s.tb.Fatalf("script an API fault: %d %s", status, raw)
	}
}

// create posts a pay-score create (the prefix of the out_order_no picks
// the scenario).
func (s *shop) create(outOrderNo string) (*core.APIResult, error) {
	return s.sdk.Post(context.Background(), apiHost+"/v3/payscore/serviceorder", map[string]any{
		"out_order_no": outOrderNo, "appid": s.m.AppID, "service_id": s.m.ServiceID, "service_introduction": "停车服务",
		"time_range": map[string]any{"start_time": "OnAccept"},
		"risk_fund":  map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
		"notify_url": s.recv.url + "/payscore",
	})
}

// createOrder creates a pay-score order and returns its package.
func (s *shop) createOrder(outOrderNo string) string {
	s.tb.Helper()
	res, err := s.create(outOrderNo)
	if err != nil {
		s.tb.Fatalf("create %s: %v", outOrderNo, err)
	}
	var out struct {
		Package string `json:"package"`
	}
	raw, _ := io.ReadAll(res.Response.Body)
	_ = json.Unmarshal(raw, &out)
	return out.Package
}

// extraData signs the 支付分 extraData with key (the API v2 key, or the v3
// key by mistake).
func (s *shop) extraData(pkg, key string) map[string]any {
	s.tb.Helper()
	ed := map[string]string{"mch_id": s.m.MchID, "package": pkg, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"nonce_str": wxsign.NonceStr(32), "sign_type": wxsign.SignTypeHMACSHA256}
	sign, err := wxsign.V2Sign(ed, key, wxsign.SignTypeHMACSHA256)
	if err != nil {
		s.tb.Fatal(err)
	}
	out := map[string]any{"sign": sign}
	for k, v := range ed {
		out[k] = v
	}
	return out
}

func scoreArgs(ed map[string]any) map[string]any {
	return map[string]any{"businessType": payscore.BusinessType, "extraData": ed}
}

// queryOrder reads the order as a careful backend does after a return.
func (s *shop) queryOrder(outOrderNo string) {
	s.tb.Helper()
	s.v3(http.MethodGet, "/v3/payscore/serviceorder?service_id="+s.m.ServiceID+"&out_order_no="+outOrderNo+"&appid="+s.m.AppID, nil)
}

// ---- P云

func (s *shop) pcloud(path string, params map[string]string) map[string]any {
	s.tb.Helper()
	params["sign"] = wxsign.PCloudSign(params, s.m.PCloudAppSecret)
	v := url.Values{}
	for k, x := range params {
		v.Set(k, x)
	}
	status, raw := s.send(http.MethodPost, path, "application/x-www-form-urlencoded", []byte(v.Encode()), nil)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || status != http.StatusOK || out["code"] != "1001" {
		s.tb.Fatalf("%s: %d %s", path, status, raw)
	}
	return out
}

// prepare prepares a P云 trade; the value picks the scenario.
func (s *shop) prepare(payOrder, value string) string {
	s.tb.Helper()
	out := s.pcloud("/gate/1.0/payment/trade/prepare", map[string]string{
		"app_id": s.m.PCloudAppID, "merchant": s.m.PCloudMerchant, "pay_order": payOrder, "subject": "停车费",
		"value": value, "notify_url": s.recv.url + "/pcloud", "trade_scene": "PARKING", "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
	})
	return out["pay_id"].(string)
}

func (s *shop) queryTrade(payOrder string) {
	s.tb.Helper()
	s.pcloud("/gate/1.0/payment/trade/query", map[string]string{
		"app_id": s.m.PCloudAppID, "merchant": s.m.PCloudMerchant, "pay_order": payOrder, "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
	})
}

func cashier(payID string) map[string]any {
	return map[string]any{"appId": embedpay.WeChatAppID, "path": "/" + embedpay.CashierPage + "?pay_id=" + payID}
}

// ---- 垫资还款

// vehicleUser creates an overdue vehicle user of the merchant and returns
// its openid.
func (s *shop) vehicleUser() string {
	s.tb.Helper()
	body, _ := json.Marshal(map[string]any{"mchid": s.m.MchID, "user_state": "OVERDUE", "advances": []any{map[string]any{"amount": 1500}}})
	status, raw := s.send(http.MethodPost, "/sandbox/v1/vehicle-users", "application/json", body, nil)
	var u struct {
		OpenID string `json:"openid"`
	}
	if err := json.Unmarshal(raw, &u); err != nil || status != http.StatusCreated {
		s.tb.Fatalf("vehicle user: %d %s", status, raw)
	}
	return u.OpenID
}

// queryState posts the v2 user state query signed with key.
func (s *shop) queryState(openid, key string) {
	s.tb.Helper()
	params := map[string]string{"appid": s.m.AppID, "mch_id": s.m.MchID, "nonce_str": wxsign.NonceStr(32),
		"sign_type": wxsign.SignTypeHMACSHA256, "trade_scene": "PARKING", "version": "3.0", "openid": openid}
	sign, err := wxsign.V2Sign(params, key, wxsign.SignTypeHMACSHA256)
	if err != nil {
		s.tb.Fatal(err)
	}
	params["sign"] = sign
	if status, raw := s.send(http.MethodPost, "/vehicle/pay/querystate", "text/xml", wxpayv2.EncodeXML(params), nil); status != http.StatusOK {
		s.tb.Fatalf("querystate: %d %s", status, raw)
	}
}

// ---- the receiver

// receiver is the merchant's notify_url. A good one verifies each
// notification's signature and answers a duplicate as the original; a bad
// one acknowledges whatever comes, once, and fails on a repeat.
type receiver struct {
	url  string
	good bool
	mu   sync.Mutex
	seen map[string]bool
	hits int
	got  chan string // what arrived: the P云 status, or the v3 event type
}

func newReceiver(tb testing.TB, m *sandbox.Merchant, good bool) *receiver {
	tb.Helper()
	pub, err := utils.LoadPublicKey(m.PlatformPublicKeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	v3, err := wxnotify.NewRSANotifyHandler(m.APIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(m.PlatformPublicKeyID, *pub))
	if err != nil {
		tb.Fatal(err)
	}
	r := &receiver{good: good, seen: map[string]bool{}, got: make(chan string, 256)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(raw))
		var key, what string
		var verified bool
		if req.URL.Path == "/pcloud" {
			form, _ := url.ParseQuery(string(raw))
			params := map[string]string{}
			for k := range form {
				params[k] = form.Get(k)
			}
			verified = wxsign.PCloudVerify(params, m.PCloudAppSecret, params["sign"]) == nil
			key, what = params["pay_order"]+"|"+params["status"]+"|"+params["trade_time"], params["status"]
		} else {
			var content json.RawMessage
			n, err := v3.ParseNotifyRequest(req.Context(), req, &content)
			verified = err == nil
			var env struct {
				ID        string `json:"id"`
				EventType string `json:"event_type"`
			}
			_ = json.Unmarshal(raw, &env)
			key, what = env.ID, env.EventType
			if n != nil {
				what = n.EventType
			}
		}
		r.mu.Lock()
		repeat := r.seen[key]
		r.seen[key] = true
		r.hits++
		r.mu.Unlock()
		ack := r.good && verified || !r.good && !repeat
		switch {
		case req.URL.Path == "/pcloud" && ack:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"code":"1001","message":"通知成功","hint":""}`)
		case req.URL.Path == "/pcloud":
			_, _ = io.WriteString(w, "FAIL")
		case ack:
			w.WriteHeader(http.StatusNoContent)
		case r.good:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
		r.got <- what
	}))
	tb.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// expect waits for a notification carrying what (a P云 status or a v3
// event type), skipping others.
func (s *shop) expect(what string) {
	s.tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-s.recv.got:
			if got == what {
				return
			}
		case <-deadline:
			s.tb.Fatalf("merchant %s: no %q notification within 10 s", s.m.MchID, what)
		}
	}
}

// settle waits until every notification the receiver answered is in the
// journal (an attempt is journalled after its answer).
func (s *shop) settle() {
	s.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := s.sb.Journal.Flush(context.Background()); err != nil {
			s.tb.Fatal(err)
		}
		xs, err := s.sb.Store.QueryJournal(context.Background(), sandbox.JournalFilter{MchID: s.m.MchID, Direction: sandbox.DirectionOut, Limit: 1000})
		if err != nil {
			s.tb.Fatal(err)
		}
		s.recv.mu.Lock()
		hits := s.recv.hits
		s.recv.mu.Unlock()
		if len(xs) >= hits {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("merchant %s: %d attempts journalled, %d answered", s.m.MchID, len(xs), hits)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
