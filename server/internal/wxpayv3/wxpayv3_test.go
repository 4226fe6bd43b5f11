package wxpayv3

import (
	"bytes"
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

	"github.com/gin-gonic/gin"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

func init() { gin.SetMode(gin.ReleaseMode) }

const apiHost = "https://api.mch.weixin.qq.com"

type harness struct {
	api   *API
	dir   *merchants
	j     *journal
	clock *sandbox.Clock
	m     *sandbox.Merchant
	srv   *httptest.Server
	h     http.Handler
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	h := &harness{dir: &merchants{m: map[string]*sandbox.Merchant{}}, j: &journal{}, clock: sandbox.NewClock(1, nil), m: testMerchant(tb)}
	h.dir.put(h.m)
	h.api = New(Options{Merchants: h.dir, Clock: h.clock})
	e := gin.New()
	e.Use(httpapi.RequestIDs(), httpapi.ReadBody(httpapi.DefaultMaxBody, httpapi.BodyTime{}))
	g := e.Group("/v3", h.api.Middleware(h.j, "test")...)
	g.GET("/certificates", httpapi.Handle(h.api.HandleCertificates))
	echo := httpapi.Handle(func(c *gin.Context) error {
		return h.api.JSON(c, http.StatusOK, map[string]string{"mchid": Merchant(c).MchID, "uri": c.Request.RequestURI, "body": string(httpapi.Body(c))})
	})
	g.POST("/echo", echo)
	g.GET("/echo", echo)
	g.POST("/empty", httpapi.Handle(h.api.NoContent))
	g.GET("/invalid", httpapi.Handle(func(c *gin.Context) error {
		return sandbox.Invalid("query does not match", sandbox.Violation{Path: "/appid", Message: "is required"}, sandbox.Violation{Path: "/service_id", Message: "is required"})
	}))
	g.POST("/state", httpapi.Handle(func(c *gin.Context) error {
		return &sandbox.Error{Code: sandbox.CodeState, Upstream: "INVALID_ORDER_STATE", Message: "单据状态错误"}
	}))
	h.h = e
	h.srv = httptest.NewServer(e)
	tb.Cleanup(h.srv.Close)
	return h
}

// hostRewrite sends the SDK's requests for api.mch.weixin.qq.com to the
// test server, as SOURCES.md §6's verified snippet does.
type hostRewrite struct{ u *url.URL }

func (t hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

func (h *harness) sdk(tb testing.TB) *core.Client {
	tb.Helper()
	u, _ := url.Parse(h.srv.URL)
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(testMchID, testMchSerial, testKey(tb, merchantKey), testPubKeyID, &testKey(tb, platformKey).PublicKey),
		option.WithHTTPClient(&http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second}))
	if err != nil {
		tb.Fatalf("core.NewClient: %v", err)
	}
	return c
}

func TestSDKAcceptsSignedAnswers(t *testing.T) {
	h := newHarness(t)
	client := h.sdk(t)
	ctx := context.Background()

	t.Run("post", func(t *testing.T) {
		res, err := client.Post(ctx, apiHost+"/v3/echo", map[string]string{"service_introduction": "某某酒店"})
		if err != nil {
			t.Fatalf("SDK Post: %v", err)
		}
		var got map[string]string
		if err := json.NewDecoder(res.Response.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got["mchid"] != testMchID || !strings.Contains(got["body"], "某某酒店") {
			t.Errorf("got %v, want the handler to see merchant %s and the body", got, testMchID)
		}
		if x := h.j.last(t); x.MchID != testMchID || x.Product != "test" || x.Status != 200 {
			t.Errorf("journal: got mchid %q product %q status %d, want %s test 200", x.MchID, x.Product, x.Status, testMchID)
		}
		if got, want := res.Response.Header.Get("Request-ID"), res.Response.Header.Get("X-Request-Id"); got == "" || got != want {
			t.Errorf("Request-ID: got %q, want the request id %q", got, want)
		}
	})
	t.Run("get with an escaped query", func(t *testing.T) {
		if _, err := client.Get(ctx, apiHost+"/v3/echo?out_order_no=A%7CB&appid="+testAppID); err != nil {
			t.Fatalf("SDK Get: %v", err)
		}
	})
	t.Run("204 is signed too", func(t *testing.T) {
		res, err := client.Post(ctx, apiHost+"/v3/empty", map[string]string{})
		if err != nil {
			t.Fatalf("SDK Post: %v", err)
		}
		if res.Response.StatusCode != http.StatusNoContent || res.Response.Header.Get(wxsign.HeaderSignature) == "" {
			t.Errorf("got %d with signature %q, want a signed 204", res.Response.StatusCode, res.Response.Header.Get(wxsign.HeaderSignature))
		}
	})
	t.Run("certificates decrypt to the platform certificate", func(t *testing.T) {
		res, err := client.Get(ctx, apiHost+"/v3/certificates")
		if err != nil {
			t.Fatalf("SDK Get: %v", err)
		}
		body, _ := io.ReadAll(res.Response.Body)
		validate(t, "wxpay/certificates.response", body)
		var got CertificatesResponse
		if err := json.Unmarshal(body, &got); err != nil || len(got.Data) != 1 {
			t.Fatalf("decode %s: %v", body, err)
		}
		c := got.Data[0]
		plain, err := utils.DecryptAES256GCM(testAPIv3Key, c.EncryptCertificate.AssociatedData, c.EncryptCertificate.Nonce, c.EncryptCertificate.Ciphertext)
		if err != nil {
			t.Fatalf("SDK decrypt: %v", err)
		}
		if plain != h.m.PlatformCertificatePEM || c.SerialNo != testPlatSer || c.EncryptCertificate.AssociatedData != "certificate" {
			t.Errorf("got serial %s ad %q and a PEM equal to the platform's: %v", c.SerialNo, c.EncryptCertificate.AssociatedData, plain == h.m.PlatformCertificatePEM)
		}
		if want := "2023-11-15T06:13:20+08:00"; c.EffectiveTime != want {
			t.Errorf("effective_time: got %s, want %s", c.EffectiveTime, want)
		}
	})
}

func (h *harness) request(tb testing.TB, method, uri, body string, ts int64, key int) *http.Request {
	tb.Helper()
	req := httptest.NewRequest(method, uri, strings.NewReader(body))
	req.Header.Set("Authorization", authorization(tb, testKey(tb, key), testMchID, testMchSerial, method, uri, ts, body))
	return req
}

func TestAuthenticationFailures(t *testing.T) {
	h := newHarness(t)
	now := time.Now().Unix()
	const body = `{"out_order_no":"1234"}`
	sign := func(key int, mchid, serial, method, uri string, ts int64, signed string) string {
		return authorization(t, testKey(t, key), mchid, serial, method, uri, ts, signed)
	}
	for _, tc := range []struct {
		name, auth       string
		field, issuePart string
		diagnostics      bool
	}{
		{"missing header", "", "Authorization", "missing", false},
		{"wrong scheme", strings.Replace(sign(merchantKey, testMchID, testMchSerial, "POST", "/v3/echo", now, body), "WECHATPAY2-SHA256-RSA2048", "Bearer", 1), "Authorization", "scheme", false},
		{"unknown mchid", sign(merchantKey, "1999999999", testMchSerial, "POST", "/v3/echo", now, body), "mchid", "1999999999", false},
		{"unknown serial", sign(merchantKey, testMchID, "ABCDEF", "POST", "/v3/echo", now, body), "serial_no", testMchSerial, false},
		{"timestamp 300 s old", sign(merchantKey, testMchID, testMchSerial, "POST", "/v3/echo", now-300, body), "timestamp", "300 s", false},
		{"timestamp 10 min ahead", sign(merchantKey, testMchID, testMchSerial, "POST", "/v3/echo", now+600, body), "timestamp", "300 s", false},
		{"signed by another key", sign(strangerKey, testMchID, testMchSerial, "POST", "/v3/echo", now, body), "signature", `POST\n/v3/echo\n`, true},
		{"signed another body", sign(merchantKey, testMchID, testMchSerial, "POST", "/v3/echo", now, `{"out_order_no":"9"}`), "signature", `{\"out_order_no\":\"1234\"}`, true},
		{"signed another path", sign(merchantKey, testMchID, testMchSerial, "POST", "/v3/other", now, body), "signature", `/v3/echo`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v3/echo", strings.NewReader(body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, req)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status: got %d, want 401 (%s)", w.Code, w.Body)
			}
			validate(t, "wxpay/error", w.Body.Bytes())
			var got ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Code != "SIGN_ERROR" || got.Message != SignErrorMessage || got.Detail == nil || got.Detail.Location != "authorization" {
				t.Fatalf("got %s, want the real SIGN_ERROR body", w.Body)
			}
			if got.Detail.Field != tc.field || !strings.Contains(got.Detail.Issue, tc.issuePart) {
				t.Errorf("detail: got field %q issue %q, want field %q and an issue mentioning %q", got.Detail.Field, got.Detail.Issue, tc.field, tc.issuePart)
			}
			if tc.diagnostics != (got.Diagnostics != "") {
				t.Errorf("diagnostics: got %q, want present=%v", got.Diagnostics, tc.diagnostics)
			}
			if strings.Contains(w.Body.String(), "PRIVATE KEY") || strings.Contains(w.Body.String(), testAPIv3Key) {
				t.Errorf("the error leaks a secret: %s", w.Body)
			}
			if w.Header().Get(wxsign.HeaderSignature) != "" {
				t.Errorf("a 401 is signed; the SDKs do not check it and it costs a signature")
			}
		})
	}
}

func TestSignatureMismatchShowsTheStringToSign(t *testing.T) {
	h := newHarness(t)
	ts := time.Now().Unix()
	req := h.request(t, http.MethodPost, "/v3/echo", `{"a":"x&y<z>"}`, ts, strangerKey)
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, req)
	var got ErrorBody
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	a, _ := wxsign.ParseAuthorization(req.Header.Get("Authorization"))
	want := "POST\n/v3/echo\n" + strconv.FormatInt(ts, 10) + "\n" + a.NonceStr + "\n{\"a\":\"x&y<z>\"}\n"
	if got.Diagnostics != want {
		t.Errorf("diagnostics: got %q, want %q", got.Diagnostics, want)
	}
	if !strings.Contains(w.Body.String(), `x&y<z>`) {
		t.Errorf("the answer is HTML-escaped: %s", w.Body)
	}
	if x := h.j.last(t); x.Diagnostics != want || x.MchID != testMchID {
		t.Errorf("journal: got diagnostics %q mchid %q, want the string-to-sign and the merchant", x.Diagnostics, x.MchID)
	}
}

func TestTimestampOnTheSandboxClockIsAccepted(t *testing.T) {
	h := newHarness(t)
	h.clock.Advance(testMchID, 2*time.Hour)
	for _, tc := range []struct {
		name   string
		ts     int64
		status int
	}{
		{"wall clock", time.Now().Unix(), 200},
		{"sandbox clock", h.clock.Now(testMchID).Unix(), 200},
		{"neither", time.Now().Add(time.Hour).Unix(), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, h.request(t, http.MethodGet, "/v3/echo", "", tc.ts, merchantKey))
			if w.Code != tc.status {
				t.Errorf("got %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
		})
	}
}

func TestKeysFollowTheMerchant(t *testing.T) {
	h := newHarness(t)
	do := func(key int) int {
		w := httptest.NewRecorder()
		h.h.ServeHTTP(w, h.request(t, http.MethodGet, "/v3/echo", "", time.Now().Unix(), key))
		return w.Code
	}
	if got := do(merchantKey); got != 200 {
		t.Fatalf("before: got %d, want 200", got)
	}
	m2 := *h.m
	m2.MerchantPublicKeyPEM = pkixPEM(t, &testKey(t, strangerKey).PublicKey)
	h.dir.put(&m2)
	if got := do(merchantKey); got != 401 {
		t.Errorf("old key after the merchant registered another: got %d, want 401", got)
	}
	if got := do(strangerKey); got != 200 {
		t.Errorf("newly registered key: got %d, want 200", got)
	}
}

func TestErrorsListEveryViolation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
		code, field, loc   string
		violations         int
	}{
		{"param error", http.MethodGet, "/v3/invalid", 400, "PARAM_ERROR", "/appid", "query", 2},
		{"upstream code", http.MethodPost, "/v3/state", 400, "INVALID_ORDER_STATE", "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, h.request(t, tc.method, tc.path, "", time.Now().Unix(), merchantKey))
			validate(t, "wxpay/error", w.Body.Bytes())
			var got ErrorBody
			_ = json.Unmarshal(w.Body.Bytes(), &got)
			if w.Code != tc.status || got.Code != tc.code || len(got.Violations) != tc.violations {
				t.Fatalf("got %d %s, want %d %s with %d violations", w.Code, w.Body, tc.status, tc.code, tc.violations)
			}
			if tc.field != "" && (got.Detail == nil || got.Detail.Field != tc.field || got.Detail.Location != tc.loc) {
				t.Errorf("detail: got %+v, want field %s location %s", got.Detail, tc.field, tc.loc)
			}
		})
	}
}

func TestNotificationParsesWithTheSDK(t *testing.T) {
	h := newHarness(t)
	at := time.Date(2015, 5, 20, 5, 29, 35, 0, time.UTC)
	resource := json.RawMessage(`{"out_order_no":"1234323JKHDFE1243252","state":"DOING"}`)
	ev := NewEvent(at, "PAYSCORE.USER_CONFIRM", "确认订单", "payscore", "payscore", resource)
	payload, _ := json.Marshal(ev)
	handler, err := notify.NewRSANotifyHandler(testAPIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(testPubKeyID, testKey(t, platformKey).PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		bad  bool
	}{{"good", false}, {"bad signature", true}} {
		t.Run(tc.name, func(t *testing.T) {
			n := &sandbox.Notification{ID: "ntf_1", URL: "http://127.0.0.1:1/notify", Payload: payload, Faults: sandbox.Faults{BadSignature: tc.bad}}
			out, err := h.api.BuildNotify(context.Background(), h.m, n)
			if err != nil {
				t.Fatalf("BuildNotify: %v", err)
			}
			validate(t, "wxpay/notification", out.Body)
			req := httptest.NewRequest(out.Method, out.URL, bytes.NewReader(out.Body))
			req.Header = out.Header.Clone()
			var content map[string]any
			got, err := handler.ParseNotifyRequest(context.Background(), req, &content)
			if tc.bad {
				if err == nil {
					t.Fatalf("the SDK accepted a notification with Faults.BadSignature")
				}
				return
			}
			if err != nil {
				t.Fatalf("SDK ParseNotifyRequest: %v", err)
			}
			if got.EventType != "PAYSCORE.USER_CONFIRM" || got.ID != ev.ID || got.ResourceType != "encrypt-resource" || got.Summary != "确认订单" {
				t.Errorf("got %+v, want the event", got)
			}
			if got.Resource.OriginalType != "payscore" || got.Resource.AssociatedData != "payscore" || content["state"] != "DOING" {
				t.Errorf("resource: got %+v content %v", got.Resource, content)
			}
			if want := "2015-05-20T13:29:35+08:00"; ev.CreateTime != want || !strings.HasPrefix(ev.ID, "EV-20150520132935") {
				t.Errorf("event: got create_time %s id %s, want %s and an id from it", ev.CreateTime, ev.ID, want)
			}
		})
	}
}

func TestAcknowledgedAndSchedule(t *testing.T) {
	for status, want := range map[int]bool{200: true, 204: true, 202: false, 301: false, 400: false, 500: false} {
		if got := Acknowledged(status, nil); got != want {
			t.Errorf("Acknowledged(%d) = %v, want %v", status, got, want)
		}
	}
	var secs []int
	for _, d := range Schedule() {
		secs = append(secs, int(d/time.Second))
	}
	if got, want := secs, []int{15, 15, 30, 180, 1800, 1800, 1800, 1800, 3600}; !equalInts(got, want) {
		t.Errorf("Schedule: got %v, want %v", got, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEmptyQueryEitherWay: a URI with an empty query is accepted signed
// with or without its "?", with a warning in a header and in the journal;
// the answer is signed as usual.
func TestEmptyQueryEitherWay(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ name, sent, signed string }{
		{"sent with ?, signed without", "/v3/echo?", "/v3/echo"},
		{"sent without ?, signed with", "/v3/echo", "/v3/echo?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.srv.URL+tc.sent, nil)
			req.Header.Set("Authorization", authorization(t, testKey(t, merchantKey), testMchID, testMchSerial, http.MethodGet, tc.signed, time.Now().Unix(), ""))
			req.Header.Set(wxsign.HeaderSerial, testPubKeyID)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", res.StatusCode, body)
			}
			var got map[string]string
			_ = json.Unmarshal(body, &got)
			if got["uri"] != tc.sent {
				t.Fatalf("the server saw %q, want %q as sent", got["uri"], tc.sent)
			}
			warning := res.Header.Get(httpapi.HeaderWarning)
			if !strings.Contains(warning, "/signature") || !strings.Contains(warning, strconv.Quote(tc.signed)) {
				t.Errorf("X-Sandbox-Warning: got %q, want the signature's URI named", warning)
			}
			msg := res.Header.Get(wxsign.HeaderTimestamp) + "\n" + res.Header.Get(wxsign.HeaderNonce) + "\n" + string(body) + "\n"
			if err := wxsign.RSAVerify(&testKey(t, platformKey).PublicKey, msg, res.Header.Get(wxsign.HeaderSignature)); err != nil {
				t.Errorf("the answer's signature: %v", err)
			}
			if x := h.j.last(t); len(x.Warnings) != 1 || x.Warnings[0].Path != "/signature" || x.Status != 200 {
				t.Errorf("journal: got status %d warnings %+v, want the warning", x.Status, x.Warnings)
			}
		})
	}
	t.Run("another URI is still refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v3/echo?", nil)
		req.Header.Set("Authorization", authorization(t, testKey(t, merchantKey), testMchID, testMchSerial, http.MethodGet, "/v3/echo?a=1", time.Now().Unix(), ""))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get(httpapi.HeaderWarning) != "" {
			t.Errorf("got %d warning %q, want 401 and no warning", res.StatusCode, res.Header.Get(httpapi.HeaderWarning))
		}
	})
}
