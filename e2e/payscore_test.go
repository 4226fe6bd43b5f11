package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// wechatPayAPI is the host the merchant's SDK calls; sandboxTransport
// sends it to the container instead (SOURCES.md §6).
const wechatPayAPI = "https://api.mch.weixin.qq.com"

// sandboxTransport rewrites the host of every request, the verified
// snippet of SOURCES.md §6: the host is not signed, so signatures hold.
type sandboxTransport struct{ u *url.URL }

func (t sandboxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

// hmacSign is the v2 HMAC-SHA256 rule of the wxpayScoreUse extraData sign
// (SOURCES.md §2), written here from the document: non-empty fields but
// sign, sorted, k=v&…, then &key=<API v2 key>; HMAC-SHA256 keyed with the
// same key; upper-case hex.
func hmacSign(params map[string]string, key string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + params[k] + "&")
	}
	b.WriteString("key=" + key)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(b.String()))
	return strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
}

func TestPayScoreSignGoldenVector(t *testing.T) {
	// The v2 doc's example (SOURCES.md §2): the suite's signer must agree
	// with the document before it judges the sandbox.
	p := map[string]string{"appid": "wxd930ea5d5a258f4f", "body": "test", "device_info": "1000", "mch_id": "10000100", "nonce_str": "ibuaiVcKdpRxkhJA"}
	if got := hmacSign(p, "192006250b4c09247ec02edce69f6a2d"); got != "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6" {
		t.Fatalf("got %s, want the doc's HMAC-SHA256", got)
	}
}

// payScore is a merchant integrating pay score against a sandbox, with the
// official SDK in public-key mode.
type payScore struct {
	s                  *Sandbox
	mchid, appid       string
	serviceID          string
	apiV2Key, apiV3Key string
	client             *core.Client
	handler            *notify.Handler
	merchantKey        *rsa.PrivateKey
	serial, pubKeyID   string
	platformPub        *rsa.PublicKey
}

func newPayScore(t *testing.T, s *Sandbox) *payScore {
	t.Helper()
	c := credentials(t, s, demoMchID)
	str := func(k string) string { return c[k].(string) }
	p := &payScore{s: s, mchid: str("mchid"), appid: str("appid"), serviceID: str("service_id"),
		apiV2Key: str("api_v2_key"), apiV3Key: str("api_v3_key"), serial: str("merchant_serial_no"), pubKeyID: str("platform_public_key_id")}
	var err error
	if p.merchantKey, err = utils.LoadPrivateKey(str("merchant_private_key_pem")); err != nil {
		t.Fatal(err)
	}
	if p.platformPub, err = utils.LoadPublicKey(str("platform_public_key_pem")); err != nil {
		t.Fatal(err)
	}
	p.client = p.sdk(t, p.merchantKey)
	if p.handler, err = notify.NewRSANotifyHandler(p.apiV3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(p.pubKeyID, *p.platformPub)); err != nil {
		t.Fatal(err)
	}
	return p
}

// sdk is the merchant's core.Client, signing with key.
func (p *payScore) sdk(t *testing.T, key *rsa.PrivateKey) *core.Client {
	t.Helper()
	u, _ := url.Parse(p.s.URL)
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(p.mchid, p.serial, key, p.pubKeyID, p.platformPub),
		option.WithHTTPClient(&http.Client{Transport: sandboxTransport{u}, Timeout: 10 * time.Second}))
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
		"out_order_no": outOrderNo, "appid": p.appid, "service_id": p.serviceID, "service_introduction": "停车服务",
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
	return p.call(t, http.MethodGet, "/v3/payscore/serviceorder?service_id="+p.serviceID+"&appid="+p.appid+"&"+key+"="+url.QueryEscape(value), nil)
}

// extraData is what the merchant's backend hands its mini-program.
func (p *payScore) extraData(pkg string) map[string]string {
	ed := map[string]string{
		"mch_id": p.mchid, "package": pkg, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"nonce_str": strings.ToLower(rand.Text())[:26], "sign_type": "HMAC-SHA256",
	}
	ed["sign"] = hmacSign(ed, p.apiV2Key)
	return ed
}

// jump is wx.openBusinessView({businessType: 'wxpayScoreUse', extraData})
// from the merchant's mini-program.
func (p *payScore) jump(t *testing.T, ed map[string]string, want int) map[string]any {
	t.Helper()
	var out map[string]any
	p.s.JSON(t, http.MethodPost, "/miniprogram/v1/openBusinessView", map[string]any{
		"caller": map[string]any{"appId": p.appid, "platform": "android", "wechatVersion": "8.0.50", "sdkVersion": "3.4.0"},
		"args":   map[string]any{"businessType": "wxpayScoreUse", "extraData": ed},
	}, want, &out)
	return out
}

func (p *payScore) advance(t *testing.T, by string) {
	t.Helper()
	p.s.JSON(t, http.MethodPost, "/sandbox/v1/clock/advance", map[string]any{"mchid": p.mchid, "by": by}, http.StatusOK, nil)
}

// returned lets the simulated user act (2 s on the clock) and reads what
// App.onShow receives.
func (p *payScore) returned(t *testing.T, sessionID string) map[string]any {
	t.Helper()
	p.advance(t, "2s")
	var out map[string]any
	p.s.JSON(t, http.MethodGet, "/miniprogram/v1/sessions/"+sessionID+"/return?wait=10s", nil, http.StatusOK, &out)
	return out
}

// parse hands a received notification to the SDK's notify handler.
func (p *payScore) parse(t *testing.T, r Received) (*notify.Request, map[string]any, error) {
	t.Helper()
	req, err := http.NewRequest(r.Method, "http://merchant.example"+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header
	var content map[string]any
	n, err := p.handler.ParseNotifyRequest(context.Background(), req, &content)
	return n, content, err
}

// next waits for the next notification and requires the SDK to accept it
// as event.
func (p *payScore) next(t *testing.T, recv *Receiver, event string) map[string]any {
	t.Helper()
	n, content, err := p.parse(t, recv.Next(t, 10*time.Second))
	if err != nil {
		t.Fatalf("notify.NewRSANotifyHandler refuses the notification: %v", err)
	}
	if n.EventType != event {
		t.Fatalf("event_type: got %s, want %s", n.EventType, event)
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

func queryID(ret map[string]any) string {
	ri, _ := ret["referrerInfo"].(map[string]any)
	ed, _ := ri["extraData"].(map[string]any)
	id, _ := ed["query_id"].(string)
	return id
}

func TestPayScore(t *testing.T) {
	s := startSandbox(t, Options{})
	p := newPayScore(t, s)
	recv := newReceiver(t, nil)
	notifyURL := recv.URL + "/payscore/notify"

	t.Run("confirm, query by query_id, complete, paid", func(t *testing.T) {
		pkg := p.create(t, "E2E0001", notifyURL)
		out := p.jump(t, p.extraData(pkg), http.StatusOK)
		if out["errMsg"] != "openBusinessView:ok" {
			t.Fatalf("jump: got %v", out)
		}
		ret := p.returned(t, out["session_id"].(string))
		qid := queryID(ret)
		if ret["scene"] != float64(1038) || qid == "" {
			t.Fatalf("return: got %v, want scene 1038 with extraData.query_id", ret)
		}
		if o := p.query(t, "query_id", qid); stateOf(o) != "DOING/USER_CONFIRM" || o["out_order_no"] != "E2E0001" {
			t.Fatalf("query by query_id: got %v, want E2E0001 DOING/USER_CONFIRM", o)
		}
		p.advance(t, "1s")
		if res := p.next(t, recv, "PAYSCORE.USER_CONFIRM"); stateOf(res) != "DOING/USER_CONFIRM" || res["out_order_no"] != "E2E0001" {
			t.Errorf("USER_CONFIRM resource: got %v", res)
		}
		done := p.call(t, http.MethodPost, "/v3/payscore/serviceorder/E2E0001/complete", map[string]any{
			"appid": p.appid, "service_id": p.serviceID, "total_amount": 1500,
			"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
			"time_range":    map[string]any{"end_time": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405")},
		})
		if stateOf(done) != "DOING/MCH_COMPLETE" {
			t.Fatalf("complete: got %v", done)
		}
		p.advance(t, "1s")
		res := p.next(t, recv, "PAYSCORE.USER_PAID")
		col, _ := res["collection"].(map[string]any)
		if stateOf(res) != "DONE" || col["state"] != "USER_PAID" || col["paid_amount"] != float64(1500) {
			t.Errorf("USER_PAID resource: got %v", res)
		}
		if o := p.query(t, "out_order_no", "E2E0001"); stateOf(o) != "DONE" {
			t.Errorf("final query: got %v", o)
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
		ed["sign"] = hmacSign(ed, p.apiV3Key) // the classic mistake: the v3 key
		out := p.jump(t, ed, http.StatusBadRequest)
		msg, _ := out["errMsg"].(string)
		diag, _ := out["diagnostics"].(string)
		if !strings.HasPrefix(msg, "openBusinessView:fail ") || !strings.Contains(msg, "/args/extraData/sign") || !strings.HasSuffix(diag, "&key=***") {
			t.Errorf("got %v, want a sign failure with the masked string-to-sign", out)
		}
		if strings.Contains(msg+diag, p.apiV2Key) || strings.Contains(msg+diag, p.apiV3Key) {
			t.Errorf("the answer leaks a key: %v", out)
		}
	})

	t.Run("the back icon returns no query_id", func(t *testing.T) {
		pkg := p.create(t, "PSBACK-E2E0004", notifyURL)
		ret := p.returned(t, p.jump(t, p.extraData(pkg), http.StatusOK)["session_id"].(string))
		if ri, _ := ret["referrerInfo"].(map[string]any); ri["appId"] != "wxd8f3793ea3b935b8" || ri["extraData"] != nil {
			t.Errorf("return: got %v, want referrerInfo without extraData", ret)
		}
		if o := p.query(t, "out_order_no", "PSBACK-E2E0004"); stateOf(o) != "DOING/USER_CONFIRM" {
			t.Errorf("query: got %v, want the order confirmed all the same", o)
		}
		p.advance(t, "1s")
		p.next(t, recv, "PAYSCORE.USER_CONFIRM")
	})

	t.Run("a notify target that answers 500, then 200", func(t *testing.T) {
		var calls atomic.Int32
		flaky := newReceiver(t, func(Received) (int, []byte) {
			if calls.Add(1) == 1 {
				return http.StatusInternalServerError, []byte(`{"code":"FAIL","message":"失败"}`)
			}
			return http.StatusNoContent, nil
		})
		pkg := p.create(t, "E2E0005", flaky.URL+"/notify")
		p.returned(t, p.jump(t, p.extraData(pkg), http.StatusOK)["session_id"].(string))
		p.advance(t, "1s")
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
		p.advance(t, "15s")                       // WeChat's first retry interval
		p.next(t, flaky, "PAYSCORE.USER_CONFIRM") // answered 204
		list := struct{ Notifications []notification }{waitFor(func(n notification) bool { return n.State == "delivered" })}
		if len(list.Notifications) != 1 || list.Notifications[0].State != "delivered" || list.Notifications[0].Attempts != 2 {
			t.Errorf("notifications: got %+v, want one delivered after 2 attempts", list.Notifications)
		}
	})

	// Last: it moves the merchant's clock by an hour.
	t.Run("an expired package is refused", func(t *testing.T) {
		pkg := p.create(t, "E2E0006", notifyURL)
		p.advance(t, "1h")
		out := p.jump(t, p.extraData(pkg), http.StatusBadRequest)
		if msg, _ := out["errMsg"].(string); !strings.Contains(msg, "/args/extraData/package") || !strings.Contains(msg, "expired") {
			t.Errorf("got %v, want a package violation saying it expired", out)
		}
	})
}
