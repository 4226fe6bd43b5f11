package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// wechatPayAPI is the host the merchant's SDK calls; the testkit's
// Transport sends it to the container instead.
const wechatPayAPI = "https://api.mch.weixin.qq.com"

// payScore is a merchant integrating pay score against a sandbox, with the
// official SDK in public-key mode.
type payScore struct {
	s       *Sandbox
	m       *testkit.Merchant
	client  *core.Client
	handler *notify.Handler
}

func newPayScore(t *testing.T, s *Sandbox) *payScore {
	t.Helper()
	p := &payScore{s: s, m: s.merchant(t, demoMchID)}
	p.client = p.sdk(t, p.m.MerchantPrivateKey)
	var err error
	if p.handler, err = notify.NewRSANotifyHandler(p.m.APIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(p.m.PlatformPublicKeyID, *p.m.PlatformPublicKey)); err != nil {
		t.Fatal(err)
	}
	return p
}

// sdk is the merchant's core.Client, signing with key.
func (p *payScore) sdk(t *testing.T, key *rsa.PrivateKey) *core.Client {
	t.Helper()
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(p.m.MchID, p.m.MerchantSerialNo, key, p.m.PlatformPublicKeyID, p.m.PlatformPublicKey),
		option.WithHTTPClient(&http.Client{Transport: p.s.Transport(), Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatalf("core.NewClient: %v", err)
	}
	return client
}

// call sends a v3 request through the SDK (which verifies the answer's
// signature) and decodes a 2xx answer.
func (p *payScore) call(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var res *core.APIResult
	var err error
	if method == http.MethodGet {
		res, err = p.client.Get(context.Background(), wechatPayAPI+path)
	} else {
		res, err = p.client.Post(context.Background(), wechatPayAPI+path, body)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var out map[string]any
	if err := json.NewDecoder(res.Response.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return out
}

func (p *payScore) create(t *testing.T, outOrderNo, notifyURL string) string {
	t.Helper()
	out := p.call(t, http.MethodPost, "/v3/payscore/serviceorder", map[string]any{
		"out_order_no": outOrderNo, "appid": p.m.AppID, "service_id": p.m.ServiceID, "service_introduction": "停车服务",
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
		"time_range":    map[string]any{"start_time": "OnAccept"},
		"risk_fund":     map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
		"notify_url":    notifyURL,
	})
	if out["state"] != "CREATED" || out["package"] == nil {
		t.Fatalf("create: got %v, want CREATED with a package", out)
	}
	return out["package"].(string)
}

func (p *payScore) query(t *testing.T, key, value string) map[string]any {
	t.Helper()
	return p.call(t, http.MethodGet, "/v3/payscore/serviceorder?service_id="+p.m.ServiceID+"&appid="+p.m.AppID+"&"+key+"="+url.QueryEscape(value), nil)
}

// extraData is what the merchant's backend hands its mini-program.
func (p *payScore) extraData(pkg string) map[string]string {
	ed := map[string]string{
		"mch_id": p.m.MchID, "package": pkg, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"nonce_str": strings.ToLower(rand.Text())[:26], "sign_type": "HMAC-SHA256",
	}
	ed["sign"] = testkit.V2HMACSign(ed, p.m.APIv2Key)
	return ed
}

// jump is wx.openBusinessView({businessType: 'wxpayScoreUse', extraData})
// from the merchant's mini-program; it must be accepted.
func (p *payScore) jump(t *testing.T, ed map[string]string) string {
	t.Helper()
	l, err := p.m.Jump(context.Background(), testkit.OpenBusinessView{BusinessType: "wxpayScoreUse", ExtraData: ed})
	if err != nil {
		t.Fatalf("jump: %v", err)
	}
	if l.ErrMsg != "openBusinessView:ok" {
		t.Fatalf("jump: got %+v", l)
	}
	return l.SessionID
}

// refused is a jump the sandbox must refuse.
func (p *payScore) refused(t *testing.T, ed map[string]string) *testkit.CallError {
	t.Helper()
	_, err := p.m.Jump(context.Background(), testkit.OpenBusinessView{BusinessType: "wxpayScoreUse", ExtraData: ed})
	var ce *testkit.CallError
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Fatalf("jump: got %v, want a 400 refusal", err)
	}
	return ce
}

func (p *payScore) advance(t *testing.T, by time.Duration) {
	t.Helper()
	if err := p.m.AdvanceClock(context.Background(), by); err != nil {
		t.Fatal(err)
	}
}

// returned lets the simulated user act (2 s on the clock) and reads what
// App.onShow receives.
func (p *payScore) returned(t *testing.T, sessionID string) *testkit.Return {
	t.Helper()
	p.advance(t, 2*time.Second)
	ret, err := p.s.Return(context.Background(), sessionID, 10*time.Second)
	if err != nil || ret.Pending {
		t.Fatalf("return: got %+v, %v", ret, err)
	}
	return ret
}

// next waits for the next notification, which the testkit's Receiver must
// have verified and decrypted, and requires the SDK's notify handler to
// accept the same request as event, with the same resource.
func (p *payScore) next(t *testing.T, recv *testkit.Receiver, event string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := recv.Next(ctx)
	if err != nil {
		t.Fatalf("receiver: %v", err)
	}
	req, err := http.NewRequest(n.Method, "http://merchant.example"+n.Path, bytes.NewReader(n.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = n.Header
	var content, mine map[string]any
	parsed, err := p.handler.ParseNotifyRequest(context.Background(), req, &content)
	if err != nil {
		t.Fatalf("notify.NewRSANotifyHandler refuses the notification: %v", err)
	}
	if err := n.Decode(&mine); err != nil {
		t.Fatal(err)
	}
	if parsed.EventType != event || n.EventType != event || mine["out_order_no"] != content["out_order_no"] {
		t.Fatalf("event_type: got %s (testkit %s), want %s", parsed.EventType, n.EventType, event)
	}
	return content
}

func stateOf(o map[string]any) string {
	s, _ := o["state"].(string)
	if d, _ := o["state_description"].(string); d != "" {
		s += "/" + d
	}
	return s
}

func queryID(ret *testkit.Return) string {
	if ret.ReferrerInfo == nil {
		return ""
	}
	id, _ := ret.ReferrerInfo.ExtraData["query_id"].(string)
	return id
}

func TestPayScore(t *testing.T) {
	s := startSandbox(t)
	p := newPayScore(t, s)
	recv := p.m.Receiver(t)
	notifyURL := recv.URL + "/payscore/notify"

	t.Run("confirm, query by query_id, complete, paid", func(t *testing.T) {
		pkg := p.create(t, "E2E0001", notifyURL)
		ret := p.returned(t, p.jump(t, p.extraData(pkg)))
		qid := queryID(ret)
		if ret.Scene != 1038 || qid == "" {
			t.Fatalf("return: got %s, want scene 1038 with extraData.query_id", ret.Body)
		}
		if o := p.query(t, "query_id", qid); stateOf(o) != "DOING/USER_CONFIRM" || o["out_order_no"] != "E2E0001" {
			t.Fatalf("query by query_id: got %v, want E2E0001 DOING/USER_CONFIRM", o)
		}
		p.advance(t, time.Second)
		if res := p.next(t, recv, "PAYSCORE.USER_CONFIRM"); stateOf(res) != "DOING/USER_CONFIRM" || res["out_order_no"] != "E2E0001" {
			t.Errorf("USER_CONFIRM resource: got %v", res)
		}
		done := p.call(t, http.MethodPost, "/v3/payscore/serviceorder/E2E0001/complete", map[string]any{
			"appid": p.m.AppID, "service_id": p.m.ServiceID, "total_amount": 1500,
			"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
			"time_range":    map[string]any{"end_time": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405")},
		})
		if stateOf(done) != "DOING/MCH_COMPLETE" {
			t.Fatalf("complete: got %v", done)
		}
		p.advance(t, time.Second)
		res := p.next(t, recv, "PAYSCORE.USER_PAID")
		col, _ := res["collection"].(map[string]any)
		if stateOf(res) != "DONE" || col["state"] != "USER_PAID" || col["paid_amount"] != float64(1500) {
			t.Errorf("USER_PAID resource: got %v", res)
		}
		if o := p.query(t, "out_order_no", "E2E0001"); stateOf(o) != "DONE" {
			t.Errorf("final query: got %v", o)
		}
	})

	t.Run("partner (服务商) mode: for a sub-merchant, from its mini-program", func(t *testing.T) {
		const sub, subApp = "1900000109", "wx00000000000000a1"
		var m struct {
			Subs []map[string]any `json:"sub_merchants"`
		}
		s.JSON(t, http.MethodPatch, "/sandbox/v1/merchants/"+p.m.MchID, map[string]any{
			"sub_merchants": []any{map[string]any{"sub_mchid": sub, "sub_appid": subApp}}}, http.StatusOK, &m)
		if len(m.Subs) != 1 || m.Subs[0]["sub_mchid"] != sub {
			t.Fatalf("PATCH sub_merchants: got %v", m.Subs)
		}
		precv := p.m.Receiver(t)
		created := p.call(t, http.MethodPost, "/v3/payscore/partner/serviceorder", map[string]any{
			"out_order_no": "E2EP0001", "appid": p.m.AppID, "sub_mchid": sub, "sub_appid": subApp, "service_id": p.m.ServiceID,
			"service_introduction": "停车服务", "post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
			"time_range": map[string]any{"start_time": "OnAccept"}, "risk_fund": map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
			"notify_url": precv.URL + "/payscore/partner/notify",
		})
		pkg, _ := created["package"].(string)
		if created["state"] != "CREATED" || pkg == "" || created["mchid"] != p.m.MchID || created["sub_mchid"] != sub || created["sub_appid"] != subApp {
			t.Fatalf("partner create: got %v, want CREATED with a package, mchid the provider, sub_mchid and sub_appid", created)
		}
		// The user jumps from the sub-merchant's mini-program; extraData is
		// the provider's (its mch_id, signed with its API v2 key).
		l, err := p.m.Jump(context.Background(), testkit.OpenBusinessView{BusinessType: "wxpayScoreUse", ExtraData: p.extraData(pkg)},
			testkit.Caller{AppID: subApp, Platform: "ios", WechatVersion: "8.0.50", SDKVersion: "3.4.0"})
		if err != nil || l.ErrMsg != "openBusinessView:ok" {
			t.Fatalf("jump from the sub-merchant's mini-program: %+v, %v", l, err)
		}
		qid := queryID(p.returned(t, l.SessionID))
		if qid == "" {
			t.Fatal("return: no query_id")
		}
		query := "/v3/payscore/partner/serviceorder?service_id=" + p.m.ServiceID + "&sub_mchid=" + sub + "&"
		if o := p.call(t, http.MethodGet, query+"query_id="+url.QueryEscape(qid), nil); stateOf(o) != "DOING/USER_CONFIRM" || o["out_order_no"] != "E2EP0001" || o["sub_mchid"] != sub {
			t.Fatalf("partner query by query_id: got %v", o)
		}
		p.advance(t, time.Second)
		res := p.next(t, precv, "PAYSCORE.USER_CONFIRM")
		for k, want := range map[string]any{"mchid": p.m.MchID, "sub_mchid": sub, "sub_appid": subApp, "appid": p.m.AppID, "out_order_no": "E2EP0001"} {
			if res[k] != want {
				t.Errorf("USER_CONFIRM %s: got %v, want %v", k, res[k], want)
			}
		}
		if res["openid"] == nil || res["sub_openid"] == nil || stateOf(res) != "DOING/USER_CONFIRM" {
			t.Errorf("USER_CONFIRM: got %v, want DOING/USER_CONFIRM with openid and sub_openid", res)
		}
		done := p.call(t, http.MethodPost, "/v3/payscore/partner/serviceorder/E2EP0001/complete", map[string]any{
			"service_id": p.m.ServiceID, "sub_mchid": sub, "total_amount": 1500,
			"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
			"time_range":    map[string]any{"end_time": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405")},
		})
		if stateOf(done) != "DOING/MCH_COMPLETE" || done["sub_mchid"] != sub {
			t.Fatalf("partner complete: got %v", done)
		}
		p.advance(t, time.Second)
		if paid := p.next(t, precv, "PAYSCORE.USER_PAID"); stateOf(paid) != "DONE" || paid["sub_mchid"] != sub || paid["mchid"] != p.m.MchID {
			t.Errorf("USER_PAID: got %v", paid)
		}
		if o := p.call(t, http.MethodGet, query+"out_order_no=E2EP0001", nil); stateOf(o) != "DONE" {
			t.Errorf("final partner query: got %v", o)
		}
		// The provider's direct path does not find the sub-merchant's order.
		_, err = p.client.Get(context.Background(), wechatPayAPI+"/v3/payscore/serviceorder?service_id="+p.m.ServiceID+"&appid="+p.m.AppID+"&out_order_no=E2EP0001")
		var ae *core.APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || ae.Code != "ORDER_NOT_EXIST" {
			t.Errorf("direct query of the partner order: got %v, want 404 ORDER_NOT_EXIST", err)
		}
	})

	t.Run("a bad request signature is the real 401", func(t *testing.T) {
		stranger, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.sdk(t, stranger).Post(context.Background(), wechatPayAPI+"/v3/payscore/serviceorder", map[string]any{"out_order_no": "E2E0002"})
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "SIGN_ERROR" || apiErr.Message != "签名错误,请检查后再试" {
			t.Fatalf("got %v, want 401 SIGN_ERROR", err)
		}
		detail, _ := apiErr.Detail.(map[string]any)
		issue, _ := detail["issue"].(string)
		if detail["field"] != "signature" || detail["location"] != "authorization" || !strings.Contains(issue, `POST\n/v3/payscore/serviceorder\n`) {
			t.Errorf("detail: got %v, want the expected string-to-sign", detail)
		}
	})

	t.Run("a bad extraData sign shows the masked string-to-sign", func(t *testing.T) {
		pkg := p.create(t, "E2E0003", notifyURL)
		ed := p.extraData(pkg)
		ed["sign"] = testkit.V2HMACSign(ed, p.m.APIv3Key) // the classic mistake: the v3 key
		out := p.refused(t, ed)
		msg, diag := out.ErrMsg, out.Diagnostics
		if !strings.HasPrefix(msg, "openBusinessView:fail ") || !strings.Contains(msg, "/args/extraData/sign") || !strings.HasSuffix(diag, "&key=***") {
			t.Errorf("got %s, want a sign failure with the masked string-to-sign", out.Body)
		}
		if strings.Contains(msg+diag, p.m.APIv2Key) || strings.Contains(msg+diag, p.m.APIv3Key) {
			t.Errorf("the answer leaks a key: %s", out.Body)
		}
	})

	t.Run("the back icon returns no query_id", func(t *testing.T) {
		pkg := p.create(t, "PSBACK-E2E0004", notifyURL)
		ret := p.returned(t, p.jump(t, p.extraData(pkg)))
		if ri := ret.ReferrerInfo; ri == nil || ri.AppID != "wxd8f3793ea3b935b8" || ri.ExtraData != nil {
			t.Errorf("return: got %s, want referrerInfo without extraData", ret.Body)
		}
		if o := p.query(t, "out_order_no", "PSBACK-E2E0004"); stateOf(o) != "DOING/USER_CONFIRM" {
			t.Errorf("query: got %v, want the order confirmed all the same", o)
		}
		p.advance(t, time.Second)
		p.next(t, recv, "PAYSCORE.USER_CONFIRM")
	})

	t.Run("a notify target that answers 500, then 200", func(t *testing.T) {
		var calls atomic.Int32
		flaky := p.m.Receiver(t, func(n *testkit.Notification, err error) (int, []byte) {
			if calls.Add(1) == 1 {
				return http.StatusInternalServerError, []byte(`{"code":"FAIL","message":"失败"}`)
			}
			return testkit.DefaultAnswer(n, err)
		})
		pkg := p.create(t, "E2E0005", flaky.URL+"/notify")
		p.returned(t, p.jump(t, p.extraData(pkg)))
		p.advance(t, time.Second)
		p.next(t, flaky, "PAYSCORE.USER_CONFIRM") // answered 500
		type notification struct {
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
		}
		// waitFor polls until the worker has committed the attempt's outcome:
		// the receiver sees the request before the sandbox records it.
		waitFor := func(done func(n notification) bool) []notification {
			var list struct {
				Notifications []notification `json:"notifications"`
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				s.JSON(t, http.MethodGet, "/sandbox/v1/notifications?ref=E2E0005", nil, http.StatusOK, &list)
				if len(list.Notifications) == 1 && done(list.Notifications[0]) || time.Now().After(deadline) {
					return list.Notifications
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		// The retry is scheduled from the failed attempt's time: advance only
		// once that failure is recorded, or the retry lands past the advance.
		waitFor(func(n notification) bool { return n.Attempts == 1 })
		p.advance(t, 15*time.Second)              // WeChat's first retry interval
		p.next(t, flaky, "PAYSCORE.USER_CONFIRM") // answered 204
		list := struct{ Notifications []notification }{waitFor(func(n notification) bool { return n.State == "delivered" })}
		if len(list.Notifications) != 1 || list.Notifications[0].State != "delivered" || list.Notifications[0].Attempts != 2 {
			t.Errorf("notifications: got %+v, want one delivered after 2 attempts", list.Notifications)
		}
	})

	// Last: it moves the merchant's clock by an hour.
	t.Run("an expired package is refused", func(t *testing.T) {
		pkg := p.create(t, "E2E0006", notifyURL)
		p.advance(t, time.Hour)
		out := p.refused(t, p.extraData(pkg))
		if !strings.Contains(out.ErrMsg, "/args/extraData/package") || !strings.Contains(out.ErrMsg, "expired") {
			t.Errorf("got %s, want a package violation saying it expired", out.Body)
		}
	})
}
