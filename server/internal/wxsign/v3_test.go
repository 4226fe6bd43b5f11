package wxsign

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
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

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/credentials"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
)

const (
	testMchID     = "1900000001"
	testMchSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	testPubKeyID  = "PUB_KEY_ID_0119000000012025010100000000000001"
	testAPIv3Key  = "mpsandboxTestAPIv3Key00000000000"
)

func TestV3Messages(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"post request", V3RequestMessage("POST", "/v3/payscore/serviceorder", "1554208460", "593BEC0C", `{"a":1}`), "POST\n/v3/payscore/serviceorder\n1554208460\n593BEC0C\n{\"a\":1}\n"},
		{"get request has an empty body line", V3RequestMessage("GET", "/v3/certificates?x=1", "1", "n", ""), "GET\n/v3/certificates?x=1\n1\nn\n\n"},
		{"response", V3ResponseMessage("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c", `{"data":[]}`), "1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{\"data\":[]}\n"},
		{"204 response", V3ResponseMessage("1", "n", ""), "1\nn\n\n"},
		{"paySign", PaySignMessage("wx8888888888888888", "1414561699", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "prepay_id=wx201410272009395522657a690389285100"),
			"wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestRSASignVerifiesWithSDK(t *testing.T) {
	platform := testKey(t, platformKey)
	msg := V3ResponseMessage("1554209980", NonceStr(32), `{"state":"CREATED"}`)
	sig, err := RSASign(platform, msg)
	if err != nil {
		t.Fatalf("RSASign: %v", err)
	}
	ctx := context.Background()
	v := verifiers.NewSHA256WithRSAPubkeyVerifier(testPubKeyID, platform.PublicKey)
	if err := v.Verify(ctx, testPubKeyID, msg, sig); err != nil {
		t.Errorf("SDK verifier rejects RSASign: %v", err)
	}
	if err := v.Verify(ctx, testPubKeyID, msg+"x", sig); err == nil {
		t.Errorf("SDK verifier accepts the signature over another message; the check above proves nothing")
	}
	if err := RSAVerify(&platform.PublicKey, msg, sig); err != nil {
		t.Errorf("RSAVerify rejects RSASign: %v", err)
	}
}

func TestRSAVerifyFailures(t *testing.T) {
	merchant := testKey(t, merchantKey)
	msg := V3RequestMessage("GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", "")
	good, err := RSASign(merchant, msg)
	if err != nil {
		t.Fatal(err)
	}
	byStranger, err := RSASign(testKey(t, strangerKey), msg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  string
		sig  string
		want string
	}{
		{"missing", msg, "", "signature is missing"},
		{"not base64", msg, "abc$", "not standard base64"},
		{"url-safe base64", msg, strings.NewReplacer("+", "-", "/", "_").Replace(good) + "-_", "not standard base64"},
		{"wrong length", msg, base64.StdEncoding.EncodeToString([]byte("short")), "signature is 5 bytes, a signature by the registered 2048-bit key has 256"},
		{"other key", msg, byStranger, "does not verify"},
		{"other message", strings.Replace(msg, "GET", "POST", 1), good, "does not verify"},
		{"message without the trailing newline", strings.TrimSuffix(msg, "\n"), good, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := wantSandboxError(t, RSAVerify(&merchant.PublicKey, tt.msg, tt.sig), sandbox.CodeUnauthorized, tt.want)
			if e.Diagnostics != tt.msg {
				t.Errorf("got diagnostics %q, want the expected message %q", e.Diagnostics, tt.msg)
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		wantSandboxError(t, RSAVerify(nil, msg, good), sandbox.CodeInternal)
		_, err := RSASign(nil, msg)
		wantSandboxError(t, err, sandbox.CodeInternal)
	})
}

func TestSDKAuthorizationParsesAndVerifies(t *testing.T) {
	merchant := testKey(t, merchantKey)
	cred := credentials.WechatPayCredentials{Signer: &signers.SHA256WithRSASigner{
		MchID: testMchID, CertificateSerialNo: testMchSerial, PrivateKey: merchant,
	}}
	const uri = "/v3/payscore/serviceorder?appid=wxd678efh567hg6787&out_order_no=1234323JKHDFE1243252&service_id=500001"
	body := `{"reason":"用户投诉"}`
	header, err := cred.GenerateAuthorizationHeader(context.Background(), "POST", uri, body)
	if err != nil {
		t.Fatalf("SDK GenerateAuthorizationHeader: %v", err)
	}
	a, vs := ParseAuthorization(header)
	if len(vs) != 0 {
		t.Fatalf("got violations %+v for the SDK's header %s", vs, header)
	}
	if a.MchID != testMchID || a.SerialNo != testMchSerial || len(a.NonceStr) != 32 {
		t.Errorf("got %+v, want mchid %s, serial %s and a 32-char nonce", a, testMchID, testMchSerial)
	}
	if ts, err := strconv.ParseInt(a.Timestamp, 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("got timestamp %q, want about now", a.Timestamp)
	}
	if err := RSAVerify(&merchant.PublicKey, V3RequestMessage("POST", uri, a.Timestamp, a.NonceStr, body), a.Signature); err != nil {
		t.Errorf("RSAVerify rejects the SDK's request signature: %v", err)
	}
	if err := RSAVerify(&merchant.PublicKey, V3RequestMessage("POST", uri, a.Timestamp, a.NonceStr, body+" "), a.Signature); err == nil {
		t.Errorf("RSAVerify accepts the SDK's signature for another body")
	}
	if got := FormatAuthorization(a); got != header {
		t.Errorf("FormatAuthorization\ngot  %s\nwant %s (the SDK's)", got, header)
	}
}

// sdkResponse returns an *http.Response as the SDK's validator reads it.
func sdkResponse(h http.Header, body string) *http.Response {
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func TestSetV3ResponseHeadersPassesSDKValidator(t *testing.T) {
	platform := testKey(t, platformKey)
	validator := validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(testPubKeyID, platform.PublicKey))
	now := strconv.FormatInt(time.Now().Unix(), 10)
	tests := []struct {
		name     string
		body     string
		sent     string // the body on the wire, when it differs
		serial   string
		ts       string
		wantFail bool
	}{
		{name: "json body", body: `{"code":"OK"}`, serial: testPubKeyID, ts: now},
		{name: "204 empty body", body: "", serial: testPubKeyID, ts: now},
		{name: "altered body", body: `{"amount":1}`, sent: `{"amount":2}`, serial: testPubKeyID, ts: now, wantFail: true},
		{name: "serial the SDK does not know", body: "{}", serial: "PUB_KEY_ID_OTHER", ts: now, wantFail: true},
		{name: "timestamp 5 minutes old", body: "{}", serial: testPubKeyID, ts: strconv.FormatInt(time.Now().Add(-301*time.Second).Unix(), 10), wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			nonce := NonceStr(32)
			if err := SetV3ResponseHeaders(h, platform, tt.serial, tt.ts, nonce, tt.body); err != nil {
				t.Fatalf("SetV3ResponseHeaders: %v", err)
			}
			for _, name := range []string{HeaderTimestamp, HeaderNonce, HeaderSerial, HeaderSignature} {
				if h.Get(name) == "" {
					t.Errorf("header %s not set", name)
				}
			}
			sent := tt.body
			if tt.sent != "" {
				sent = tt.sent
			}
			err := validator.Validate(context.Background(), sdkResponse(h, sent))
			if gotFail := err != nil; gotFail != tt.wantFail {
				t.Errorf("got SDK validation error %v, want failure %v", err, tt.wantFail)
			}
		})
	}
}

// stubV3 is a v3 endpoint built from this package the way the products
// build theirs: it verifies the request signature with the merchant's public
// key and signs its answer with the platform key.
type stubV3 struct {
	merchantPub *rsa.PublicKey
	platform    *rsa.PrivateKey

	mu     sync.Mutex
	auths  []Authorization
	errors []*sandbox.Error
}

func (s *stubV3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a, vs := ParseAuthorization(r.Header.Get("Authorization"))
	err = nil
	if len(vs) > 0 {
		err = sandbox.Invalid("bad Authorization", vs...)
	} else {
		err = RSAVerify(s.merchantPub, V3RequestMessage(r.Method, r.RequestURI, a.Timestamp, a.NonceStr, string(body)), a.Signature)
	}
	s.mu.Lock()
	s.auths = append(s.auths, a)
	if err != nil {
		s.errors = append(s.errors, sandbox.AsError(err))
	}
	s.mu.Unlock()
	if err != nil {
		// Non-2xx answers are not signature-checked by the SDK (SOURCES.md §1).
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":"SIGN_ERROR","message":"签名错误,请检查后再试"}`)
		return
	}
	var resp []byte
	if r.URL.Path == "/v3/pay/transactions/jsapi" {
		resp = []byte(`{"prepay_id":"wx201410272009395522657a690389285100"}`)
	} else {
		resp, _ = json.Marshal(map[string]string{"mchid": a.MchID, "uri": r.RequestURI, "body": string(body)})
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	if err := SetV3ResponseHeaders(w.Header(), s.platform, testPubKeyID, ts, NonceStr(32), string(resp)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(resp)
}

// hostRewrite sends the SDK's requests for api.mch.weixin.qq.com to the
// test server, as SOURCES.md §6's verified snippet does.
type hostRewrite struct{ u *url.URL }

func (t hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

func newSDKClient(tb testing.TB, srv *httptest.Server, merchantPriv *rsa.PrivateKey, platformPub *rsa.PublicKey) *core.Client {
	tb.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(testMchID, testMchSerial, merchantPriv, testPubKeyID, platformPub),
		option.WithHTTPClient(&http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second}))
	if err != nil {
		tb.Fatalf("core.NewClient: %v", err)
	}
	return c
}

func TestSDKClientRoundTrip(t *testing.T) {
	merchant, platform := testKey(t, merchantKey), testKey(t, platformKey)
	stub := &stubV3{merchantPub: &merchant.PublicKey, platform: platform}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	ctx := context.Background()
	const api = "https://api.mch.weixin.qq.com"

	t.Run("post and get pass both signatures", func(t *testing.T) {
		client := newSDKClient(t, srv, merchant, &platform.PublicKey)
		res, err := client.Post(ctx, api+"/v3/payscore/serviceorder", map[string]any{"out_order_no": "1234323JKHDFE1243252", "service_introduction": "某某酒店"})
		if err != nil {
			t.Fatalf("SDK Post: %v", err)
		}
		var got map[string]string
		if err := json.NewDecoder(res.Response.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got["mchid"] != testMchID || !strings.Contains(got["body"], "某某酒店") {
			t.Errorf("got %v, want the stub to have seen mchid %s and the body", got, testMchID)
		}
		_, err = client.Get(ctx, api+"/v3/payscore/serviceorder?service_id=500001&out_order_no=A%7CB&appid=wxd678efh567hg6787")
		if err != nil {
			t.Fatalf("SDK Get with a query: %v", err)
		}
	})

	t.Run("request signed by another key is refused", func(t *testing.T) {
		client := newSDKClient(t, srv, testKey(t, strangerKey), &platform.PublicKey)
		_, err := client.Post(ctx, api+"/v3/payscore/serviceorder/X/cancel", map[string]string{"reason": "r"})
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "SIGN_ERROR" {
			t.Fatalf("got %v, want a 401 SIGN_ERROR APIError", err)
		}
		stub.mu.Lock()
		last := stub.errors[len(stub.errors)-1]
		stub.mu.Unlock()
		// The SDK's json.Encoder ends the body with a newline, and the body
		// line of the message keeps it: products must sign the raw bytes.
		if !strings.HasPrefix(last.Diagnostics, "POST\n/v3/payscore/serviceorder/X/cancel\n") || !strings.HasSuffix(last.Diagnostics, "\n{\"reason\":\"r\"}\n\n") {
			t.Errorf("got diagnostics %q, want the request message", last.Diagnostics)
		}
	})

	t.Run("response signed by another platform key is refused by the SDK", func(t *testing.T) {
		client := newSDKClient(t, srv, merchant, &testKey(t, strangerKey).PublicKey)
		if _, err := client.Get(ctx, api+"/v3/certificates"); err == nil {
			t.Fatalf("the SDK accepted a response it cannot verify; the other subtests prove nothing")
		}
	})

	t.Run("jsapi paySign", func(t *testing.T) {
		client := newSDKClient(t, srv, merchant, &platform.PublicKey)
		svc := jsapi.JsapiApiService{Client: client}
		resp, _, err := svc.PrepayWithRequestPayment(ctx, jsapi.PrepayRequest{
			Appid: core.String("wxd678efh567hg6787"), Mchid: core.String(testMchID),
			Description: core.String("停车费"), OutTradeNo: core.String("1217752501201407033233368018"),
			NotifyUrl: core.String("https://merchant.example/notify"),
			Amount:    &jsapi.Amount{Total: core.Int64(100)},
			Payer:     &jsapi.Payer{Openid: core.String("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")},
		})
		if err != nil {
			t.Fatalf("SDK PrepayWithRequestPayment: %v", err)
		}
		msg := PaySignMessage(*resp.Appid, *resp.TimeStamp, *resp.NonceStr, *resp.Package)
		if err := RSAVerify(&merchant.PublicKey, msg, *resp.PaySign); err != nil {
			t.Errorf("RSAVerify rejects the SDK's paySign: %v", err)
		}
		// PKCS#1 v1.5 is deterministic: the same key and message give the
		// SDK's exact bytes.
		got, err := PaySignRSA(merchant, *resp.Appid, *resp.TimeStamp, *resp.NonceStr, *resp.Package)
		if err != nil {
			t.Fatal(err)
		}
		if got != *resp.PaySign {
			t.Errorf("got paySign %s, the SDK made %s", got, *resp.PaySign)
		}
	})
}

func TestNotificationParsedBySDK(t *testing.T) {
	platform := testKey(t, platformKey)
	plain := []byte(`{"out_order_no":"1234323JKHDFE1243252","state":"DOING","state_description":"USER_CONFIRM"}`)
	nonce := NonceStr(12)
	ct, err := EncryptAESGCM(testAPIv3Key, nonce, "payscore", plain)
	if err != nil {
		t.Fatalf("EncryptAESGCM: %v", err)
	}
	body, err := json.Marshal(map[string]any{
		"id": "EV-2018022511223320873", "create_time": "2015-05-20T13:29:35+08:00", "resource_type": "encrypt-resource",
		"event_type": "PAYSCORE.USER_CONFIRM", "summary": "确认订单",
		"resource": map[string]string{"algorithm": AlgorithmAESGCM, "ciphertext": ct, "nonce": nonce, "associated_data": "payscore", "original_type": "payscore"},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "https://merchant.example/notify", bytes.NewReader(body))
	if err := SetV3ResponseHeaders(req.Header, platform, testPubKeyID, strconv.FormatInt(time.Now().Unix(), 10), NonceStr(32), string(body)); err != nil {
		t.Fatal(err)
	}
	h, err := notify.NewRSANotifyHandler(testAPIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(testPubKeyID, platform.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var content map[string]string
	n, err := h.ParseNotifyRequest(context.Background(), req, &content)
	if err != nil {
		t.Fatalf("SDK ParseNotifyRequest: %v", err)
	}
	if n.EventType != "PAYSCORE.USER_CONFIRM" || n.Resource.Plaintext != string(plain) || content["state_description"] != "USER_CONFIRM" {
		t.Errorf("got event %q plaintext %q content %v, want the notification as built", n.EventType, n.Resource.Plaintext, content)
	}
}
