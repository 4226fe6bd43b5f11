package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/notify"
)

// credentialFields are every credential a merchant has.
var credentialFields = []string{"mchid", "name", "appid", "service_id", "notify_hosts", "merchant_token",
	"merchant_serial_no", "merchant_private_key_pem", "merchant_certificate_pem", "merchant_public_key_pem",
	"api_v2_key", "api_v3_key", "platform_public_key_id", "platform_public_key_pem", "platform_serial_no",
	"platform_certificate_pem", "pcloud_app_id", "pcloud_app_secret", "pcloud_merchant"}

// TestExportedMerchantsComeBack exports two merchants, starts a sandbox on
// a fresh data dir with the exports as its merchants file, and finds the
// same credentials there — the official SDK signs with them and verifies
// the new sandbox's answers with them — and the same settings in the admin
// API's view: platform key mode, strict, sub-merchants, API faults, active
// scenarios.
func TestExportedMerchantsComeBack(t *testing.T) {
	_, a := start(t, func(c *Config) {
		c.Addr, c.AdminToken = "0.0.0.0:0", "s3cret"
		c.NotifyAllow = notify.MustPolicy(notify.DefaultAllow + ",staging.example.com:443")
	})
	if r := send(t, "POST", a+"/sandbox/v1/merchants", "s3cret", `{"mchid":"1900000077","notify_hosts":["staging.example.com:443"]}`); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", "", `{"platform_key_mode":"switching","strict":true,"sub_merchants":[{"sub_mchid":"1900000109","sub_appid":"wx00000000000000a1"},{"sub_mchid":"1900000110"}]}`},
		{"POST", "/api-faults", `{"method":"POST","path":"/v3/payscore/serviceorder","kind":"timeout","times":3,"hold":"5s"}`},
		{"POST", "/api-faults", `{"path":"/v3/vehicle/transactions/*","kind":"rate_limited"}`},
		{"PUT", "/scenarios/payscore", `{"id":"payscore.cancel","once":true}`},
		{"PUT", "/scenarios/repayment", `{"id":"repayment.failed"}`},
	} {
		if r := send(t, c.method, a+"/sandbox/v1/merchants/1900000077"+c.path, "s3cret", c.body); r.Status != 200 && r.Status != 201 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.Status, r.Raw)
		}
	}
	settings := func(base, token, mchid string) string {
		t.Helper()
		v := send(t, "GET", base+"/sandbox/v1/merchants/"+mchid, token, "").Body
		faults, _ := v["api_faults"].([]any)
		for _, f := range faults { // made anew on import
			delete(f.(map[string]any), "id")
			delete(f.(map[string]any), "created_at")
		}
		b, _ := json.Marshal(map[string]any{"platform_key_mode": v["platform_key_mode"], "strict": v["strict"],
			"sub_merchants": v["sub_merchants"], "api_faults": faults, "active_scenarios": v["active_scenarios"]})
		return string(b)
	}
	wantSettings := map[string]string{"1230000109": settings(a, "s3cret", "1230000109"), "1900000077": settings(a, "s3cret", "1900000077")}
	var file strings.Builder
	want := map[string]map[string]any{}
	for _, mchid := range []string{"1230000109", "1900000077"} {
		cred := send(t, "GET", a+"/sandbox/v1/merchants/"+mchid+"/credentials", "s3cret", "")
		want[mchid] = cred.Body
		// The merchant's own token may export it, and only it.
		r := send(t, "GET", a+"/sandbox/v1/merchants/"+mchid+"/export", cred.Body["merchant_token"].(string), "")
		if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/yaml") {
			t.Fatalf("export %s: %d %v\n%s", mchid, r.Status, r.Header, r.Raw)
		}
		file.WriteString(r.Raw)
	}
	if r := send(t, "GET", a+"/sandbox/v1/merchants/1900000077/export", want["1230000109"]["merchant_token"].(string), ""); r.Status != 404 {
		t.Errorf("another merchant's token: got %d, want 404", r.Status)
	}

	path := filepath.Join(t.TempDir(), "merchants.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, b := start(t, func(c *Config) { c.MerchantsFile = path })
	for mchid, w := range wantSettings {
		if got := settings(b, "", mchid); got != w {
			t.Errorf("%s settings after the round trip:\n got %s\nwant %s", mchid, got, w)
		}
	}
	if !strings.Contains(wantSettings["1900000077"], `"hold":"5s"`) || !strings.Contains(wantSettings["1900000077"], `"once":true`) {
		t.Errorf("the settings set before the export are not in the view: %s", wantSettings["1900000077"])
	}
	for mchid, w := range want {
		got := send(t, "GET", b+"/sandbox/v1/merchants/"+mchid+"/credentials", "", "").Body
		for _, f := range credentialFields {
			if g, w := got[f], w[f]; !equalJSON(g, w) {
				t.Errorf("%s %s after the round trip: got %v, want %v", mchid, f, g, w)
			}
		}
	}

	cred := want["1900000077"]
	ctx := context.Background()
	client := sdkClient(t, cred, b, http.DefaultTransport)
	_, err := client.Get(ctx, "https://api.mch.weixin.qq.com/v3/payscore/serviceorder?service_id="+cred["service_id"].(string)+
		"&appid="+cred["appid"].(string)+"&out_order_no=NOSUCHORDER")
	if !core.IsAPIError(err, "ORDER_NOT_EXIST") {
		t.Errorf("the SDK with the exported credentials: got %v, want APIError ORDER_NOT_EXIST", err)
	}
	res, err := client.Get(ctx, "https://api.mch.weixin.qq.com/v3/certificates")
	if err != nil {
		t.Fatalf("GET /v3/certificates, whose answer the SDK verifies with the exported platform key: %v", err)
	}
	res.Response.Body.Close()
}

// TestCredentialsSeed: two fresh sandboxes with one seed hand out the same
// credentials, for the demo merchant and for one created later; another
// seed gives others.
func TestCredentialsSeed(t *testing.T) {
	creds := func(seed string) map[string]any {
		_, base := start(t, func(c *Config) { c.InMemory = true; c.CredentialsSeed = seed })
		send(t, "POST", base+"/sandbox/v1/merchants", "", `{"mchid":"1900000088"}`)
		out := map[string]any{}
		for _, mchid := range []string{"1230000109", "1900000088"} {
			out[mchid] = send(t, "GET", base+"/sandbox/v1/merchants/"+mchid+"/credentials", "", "").Body["merchant_private_key_pem"]
			out[mchid+"/token"] = send(t, "GET", base+"/sandbox/v1/merchants/"+mchid+"/credentials", "", "").Body["merchant_token"]
		}
		return out
	}
	a, b, c := creds("ci-42"), creds("ci-42"), creds("ci-43")
	for k, v := range a {
		if v == nil || !equalJSON(b[k], v) {
			t.Errorf("%s: the same seed gave %v and %v", k, v, b[k])
		}
		if equalJSON(c[k], v) {
			t.Errorf("%s: another seed gave the same", k)
		}
	}
}

func equalJSON(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// sdkClient is wechatpay-go in public-key mode for the merchant whose
// /credentials are cred, unchanged but for the host: its requests for
// api.mch.weixin.qq.com go to base over rt (the host is not part of a v3
// signature).
func sdkClient(t testing.TB, cred map[string]any, base string, rt http.RoundTripper) *core.Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	key, err := utils.LoadPrivateKey(cred["merchant_private_key_pem"].(string))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := utils.LoadPublicKey(cred["platform_public_key_pem"].(string))
	if err != nil {
		t.Fatal(err)
	}
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(cred["mchid"].(string), cred["merchant_serial_no"].(string), key,
			cred["platform_public_key_id"].(string), pub),
		option.WithHTTPClient(&http.Client{Timeout: 10 * time.Second, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			r2.URL.Scheme, r2.URL.Host, r2.Host = u.Scheme, u.Host, u.Host
			return rt.RoundTrip(r2)
		})}))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestBadMerchantsFileNamesEveryProblem: start-up stops and says which
// entry and which field, all of them at once.
func TestBadMerchantsFileNamesEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "merchants.yaml")
	body := "merchants:\n  - mchid: \"1900000099\"\n    api_v3_key: short\n    platform_public_key_pem: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"\n  - mchid: \"12\"\n" +
		"  - mchid: \"1900000098\"\n    platform_key_mode: cert\n    sub_merchants: [{sub_mchid: \"019\", sub_appid: wxNOPE}]\n" +
		"    api_faults: [{path: v3/x, kind: slow, hold: 90s}]\n    active_scenarios: {payscore: {id: repayment.failed}}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := parseConfig(nil, func(string) string { return "" })
	cfg.Addr, cfg.InMemory, cfg.MerchantsFile = "127.0.0.1:0", true, path
	m := NewMain(cfg, io.Discard)
	err := m.Run(context.Background())
	if err == nil {
		m.Close()
		t.Fatal("a bad merchants file must stop the start")
	}
	for _, want := range []string{"merchants[0] (1900000099).api_v3_key", "merchants[0] (1900000099).platform_public_key_pem", "merchants[1] (12).mchid",
		"merchants[2] (1900000098).platform_key_mode", "merchants[2] (1900000098).sub_merchants.0.sub_mchid", "merchants[2] (1900000098).sub_merchants.0.sub_appid",
		"merchants[2] (1900000098).api_faults.0.path", "merchants[2] (1900000098).api_faults.0.kind", "merchants[2] (1900000098).api_faults.0.hold",
		"merchants[2] (1900000098).active_scenarios.payscore.id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}

// TestMerchantsFileExample: the README's example file creates its merchant
// with exactly its credentials.
func TestMerchantsFileExample(t *testing.T) {
	path := filepath.Join(repoRoot, "docs", "merchants.example.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, base := start(t, func(c *Config) { c.InMemory = true; c.MerchantsFile = path })
	got := send(t, "GET", base+"/sandbox/v1/merchants/1900000001/credentials", "", "")
	if got.Status != 200 {
		t.Fatalf("the example's merchant: %d %s", got.Status, got.Raw)
	}
	for _, f := range []string{"api_v3_key", "merchant_token", "platform_public_key_id", "pcloud_app_secret", "merchant_serial_no"} {
		if v, _ := got.Body[f].(string); v == "" || !strings.Contains(string(raw), f+": "+v+"\n") {
			t.Errorf("%s is %q, not the example's", f, v)
		}
	}
	view := send(t, "GET", base+"/sandbox/v1/merchants/1900000001", "", "")
	settings, _ := json.Marshal(map[string]any{"platform_key_mode": view.Body["platform_key_mode"], "strict": view.Body["strict"],
		"sub_merchants": view.Body["sub_merchants"], "active_scenarios": view.Body["active_scenarios"]})
	const want = `{"active_scenarios":{"payscore":{"id":"payscore.cancel","once":true}},"platform_key_mode":"switching","strict":true,` +
		`"sub_merchants":[{"sub_appid":"wx00000000000000a1","sub_mchid":"1900000109"},{"sub_mchid":"1900000110"}]}`
	if string(settings) != want {
		t.Errorf("the example's settings:\n got %s\nwant %s", settings, want)
	}
	faults, _ := view.Body["api_faults"].([]any)
	if len(faults) != 1 || !strings.Contains(fmt.Sprint(faults[0]), "hold:5s") || !strings.Contains(fmt.Sprint(faults[0]), "remaining:3") {
		t.Errorf("the example's API fault: got %v", faults)
	}
}
