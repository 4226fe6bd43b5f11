package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// credentialsOf reads a merchant's test credentials from the admin API.
func credentialsOf(t *testing.T, s *server, mchid string) map[string]string {
	t.Helper()
	var raw map[string]any
	s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+mchid+"/credentials", nil, http.StatusOK, &raw)
	out := map[string]string{}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// launch makes a wx.* call as the merchant's mini-program and returns the
// pending manual session it opened.
func launch(t *testing.T, s *server, api string, caller, args map[string]any) string {
	t.Helper()
	var out struct {
		ErrMsg    string `json:"errMsg"`
		SessionID string `json:"session_id"`
		Mode      string `json:"mode"`
		State     string `json:"state"`
	}
	s.json(t, http.MethodPost, "/miniprogram/v1/"+api, map[string]any{"caller": caller, "args": args}, http.StatusOK, &out)
	if !strings.HasSuffix(out.ErrMsg, ":ok") || out.Mode != "manual" || out.State != "pending" {
		t.Fatalf("%s: %+v, want a pending manual session", api, out)
	}
	return out.SessionID
}

// session reads a session's action and what its caller sees.
func session(t *testing.T, s *server, id string) (action string, ret map[string]any) {
	t.Helper()
	var out struct {
		Session struct {
			State  string          `json:"state"`
			Action string          `json:"action"`
			Return json.RawMessage `json:"return"`
		} `json:"session"`
	}
	s.json(t, http.MethodGet, "/sandbox/v1/sessions/"+id, nil, http.StatusOK, &out)
	if out.Session.State != "returned" {
		t.Fatalf("session %s is %s, want returned", id, out.Session.State)
	}
	if err := json.Unmarshal(out.Session.Return, &ret); err != nil {
		t.Fatalf("return of %s: %v", id, err)
	}
	return out.Session.Action, ret
}

// payScore is the demo merchant's WeChat Pay v3 client (the official SDK)
// and what it needs to jump to the 支付分 mini-program.
type payScore struct {
	s      *server
	c      map[string]string
	client *core.Client
	notify string
}

// hostRewrite sends the SDK's requests for api.mch.weixin.qq.com to the
// sandbox, as a merchant's staging does.
type hostRewrite struct{ u *url.URL }

func (h hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = h.u.Scheme, h.u.Host, h.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

func newPayScore(t *testing.T, s *server) *payScore {
	t.Helper()
	c := credentialsOf(t, s, demoMchID)
	key, err := utils.LoadPrivateKey(c["merchant_private_key_pem"])
	if err != nil {
		t.Fatal(err)
	}
	pub, err := utils.LoadPublicKey(c["platform_public_key_pem"])
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.URL)
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(c["mchid"], c["merchant_serial_no"], key, c["platform_public_key_id"], pub),
		option.WithHTTPClient(&http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatalf("core.NewClient: %v", err)
	}
	// PAYSCORE notifications go somewhere on loopback; these tests look
	// at the page, not at them.
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	return &payScore{s: s, c: c, client: client, notify: recv.URL + "/payscore/notify"}
}

// open creates a service order (PSMANUAL… is the manual scenario's magic
// prefix) and opens the 支付分 mini-program with wx.openBusinessView.
func (p *payScore) open(t *testing.T, outOrderNo string) string {
	t.Helper()
	return p.openFor(t, "", "", outOrderNo)
}

// openFor is open for a partner (服务商) order of sub-merchant sub when sub
// is set: created at the partner path, jumped to from the sub-merchant's
// mini-program subAppID.
func (p *payScore) openFor(t *testing.T, sub, subAppID, outOrderNo string) string {
	t.Helper()
	path, caller := "/v3/payscore/serviceorder", p.c["appid"]
	body := map[string]any{
		"out_order_no": outOrderNo, "appid": p.c["appid"], "service_id": p.c["service_id"],
		"service_introduction": "共享充电宝",
		"time_range":           map[string]any{"start_time": "OnAccept"},
		"risk_fund":            map[string]any{"name": "DEPOSIT", "amount": 9900},
		"notify_url":           p.notify,
	}
	if sub != "" {
		path, caller, body["sub_mchid"], body["sub_appid"] = "/v3/payscore/partner/serviceorder", subAppID, sub, subAppID
	}
	res, err := p.client.Post(context.Background(), "https://api.mch.weixin.qq.com"+path, body)
	if err != nil {
		t.Fatalf("create %s: %v", outOrderNo, err)
	}
	var order struct {
		Package string `json:"package"`
	}
	if err := json.NewDecoder(res.Response.Body).Decode(&order); err != nil || order.Package == "" {
		t.Fatalf("create %s: %v %+v", outOrderNo, err, order)
	}
	ed := map[string]string{
		"mch_id": p.c["mchid"], "package": order.Package, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"nonce_str": wxsign.NonceStr(32), "sign_type": wxsign.SignTypeHMACSHA256,
	}
	sign, err := wxsign.V2Sign(ed, p.c["api_v2_key"], wxsign.SignTypeHMACSHA256)
	if err != nil {
		t.Fatal(err)
	}
	extraData := map[string]any{"sign": sign}
	for k, v := range ed {
		extraData[k] = v
	}
	return launch(t, p.s, "openBusinessView",
		map[string]any{"appId": caller, "platform": "ios", "wechatVersion": "8.0.50", "sdkVersion": "3.4.0"},
		map[string]any{"businessType": "wxpayScoreUse", "extraData": extraData})
}

// TestActAsTheUserOnEveryStandIn opens /act/{session} for a manual
// session of each product and resolves it with the stand-in's own
// buttons: the 支付分 confirm page's two ways back and its cancel, the
// repayment page, the issuer plugin's page.
func TestActAsTheUserOnEveryStandIn(t *testing.T) {
	b := newBrowser(t)
	s := startSandbox(t, "127.0.0.1:0")
	tab := b.ctx
	c := credentialsOf(t, s, demoMchID)
	ps := newPayScore(t, s)

	payScoreOrder := func(t *testing.T) string {
		return ps.open(t, "PSMANUAL"+strconv.FormatInt(time.Now().UnixNano(), 10))
	}
	repayment := func(t *testing.T) string {
		var user struct {
			OpenID string `json:"openid"`
		}
		s.json(t, http.MethodPost, "/sandbox/v1/vehicle-users", map[string]any{
			"mchid": demoMchID, "user_state": "OVERDUE", "advances": []map[string]any{{"amount": 1500}},
		}, http.StatusCreated, &user)
		// A nonce_str starting MANUAL picks repayment.manual.
		return launch(t, s, "navigateToMiniProgram",
			map[string]any{"appId": c["appid"], "platform": "android", "sdkVersion": "3.4.0"},
			map[string]any{"appId": "wx5e73c65404eee268", "path": "pages/invest_list/invest_list",
				"extraData": map[string]any{"appid": "wx5e73c65404eee268", "mchid": demoMchID, "nonce_str": "MANUAL" + wxsign.NonceStr(16), "openid": user.OpenID}})
	}
	issuerLogin := func(t *testing.T) string {
		return launch(t, s, "plugin/navigate",
			map[string]any{"appId": c["appid"], "platform": "android", "sdkVersion": "3.4.0", "scenario": "issuer.manual",
				"appJson": map[string]any{"pages": []string{"pages/index/index"},
					"plugins": map[string]any{"issuer-plugin": map[string]any{"version": "1.0.0", "provider": "wx06bc6021dc900553"}}}},
			map[string]any{"url": "plugin://issuer-plugin/login?type=1&redirectUrl=/pages/index/index&mobile=13800000000"})
	}
	extraData := func(ret map[string]any) (map[string]any, bool) {
		ed, ok := ret["referrerInfo"].(map[string]any)["extraData"].(map[string]any)
		return ed, ok
	}

	for _, tc := range []struct {
		name, product string
		launch        func(t *testing.T) string
		// see are shown first, then shot is taken; steps lead to the
		// page where exit decides, then shotAfter is taken.
		see             []string
		shot            string
		steps           []chromedp.Action[chromedp.Void]
		shotAfter, exit string
		want            string
		check           func(ret map[string]any) bool
	}{
		{
			name: "payscore confirm, in-page back button", product: "payscore", launch: payScoreOrder,
			see: []string{`[data-step="confirm"]`, `.stack [data-action="cancel"]`}, shot: "act-payscore",
			steps:     []chromedp.Action[chromedp.Void]{click(`[data-step="confirm"]`), visible(`.nav [data-action="confirm_back_icon"]`)},
			shotAfter: "act-payscore-confirmed", exit: `.stack [data-action="confirm"]`, want: "confirm",
			check: func(ret map[string]any) bool { ed, _ := extraData(ret); return ed["query_id"] != nil },
		},
		{
			name: "payscore confirm, top-left back icon", product: "payscore", launch: payScoreOrder,
			steps: []chromedp.Action[chromedp.Void]{click(`[data-step="confirm"]`), visible(`.stack [data-action="confirm"]`)},
			exit:  `.nav [data-action="confirm_back_icon"]`, want: "confirm_back_icon",
			check: func(ret map[string]any) bool { _, has := extraData(ret); return !has },
		},
		{
			name: "payscore cancel", product: "payscore", launch: payScoreOrder,
			exit: `.stack [data-action="cancel"]`, want: "cancel",
			check: func(ret map[string]any) bool { ed, _ := extraData(ret); return ed["query_id"] != nil },
		},
		{
			name: "repayment repay", product: "repayment", launch: repayment,
			see: []string{`.stack [data-action="fail"]`, `.stack [data-action="cancel"]`, `.nav [data-action="cancel"]`}, shot: "act-repayment",
			exit: `.stack [data-action="repay"]`, want: "repay",
		},
		{
			name: "issuer login fails", product: "issuer", launch: issuerLogin,
			see: []string{`.stack [data-action="success"]`, `.stack [data-action="cancel"]`}, shot: "act-issuer",
			exit: `.stack [data-action="failure"]`, want: "failure",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.launch(t)
			do(t, tab, "open the stand-in",
				chromedp.Navigate(s.URL+"/act/"+id),
				visible(`.act[data-product="`+tc.product+`"][data-state="pending"] .phone`))
			for _, sel := range tc.see {
				do(t, tab, "see "+sel, visible(sel))
			}
			if tc.shot != "" {
				screenshot(t, tab, tc.shot)
			}
			do(t, tab, "go on", tc.steps...)
			if tc.shotAfter != "" {
				screenshot(t, tab, tc.shotAfter)
			}
			do(t, tab, "decide", click(tc.exit), visible(`.act[data-state="returned"]`))
			action, ret := session(t, s, id)
			if action != tc.want || tc.check != nil && !tc.check(ret) {
				t.Errorf("after %s: action %q, the caller sees %v; want %s", tc.exit, action, ret, tc.want)
			}
			if n := get(t, tab, "count buttons", chromedp.Evaluate[int](`document.querySelectorAll('[data-action]').length`)); n != 0 {
				t.Errorf("the decided session's page still has %d action buttons", n)
			}
		})
	}

	// The sessions list with all of them, and one more waiting.
	waiting := issuerLogin(t)
	do(t, tab, "list the sessions", chromedp.Navigate(s.URL+"/#sessions"),
		visible(`.session[data-session="`+waiting+`"].waiting [data-op="act"]`))
	if n := get(t, tab, "count sessions", chromedp.Evaluate[int](`document.querySelectorAll('.session[data-state="returned"]').length`)); n != 5 {
		t.Errorf("the sessions list shows %d returned sessions, want 5", n)
	}
	screenshot(t, tab, "sessions")
}
