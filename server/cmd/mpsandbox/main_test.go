package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/notify"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// start runs a real server on a free loopback port with a fresh data dir.
func start(t testing.TB, mutate func(*Config)) (*Main, string) {
	t.Helper()
	cfg, err := parseConfig(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AccessLog = false
	if mutate != nil {
		mutate(&cfg)
	}
	m := NewMain(cfg, io.Discard)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, "http://" + m.Addr
}

type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func send(t testing.TB, method, url, token, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{"MPSANDBOX_ADDR": "127.0.0.1:9999", "MPSANDBOX_CLOCK_SCALE": "60", "MPSANDBOX_DATA_DIR": "/env"}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig([]string{"--data-dir", "/flag"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || c.ClockScale != 60 || c.DataDir != "/flag" || c.LogFormat != "text" {
		t.Fatalf("got addr %q scale %v data %q log %q", c.Addr, c.ClockScale, c.DataDir, c.LogFormat)
	}
	env["MPSANDBOX_CLOCK_SCALE"] = "fast"
	env["MPSANDBOX_LOG_FORMAT"] = "xml"
	_, err = parseConfig(nil, getenv)
	if err == nil || !strings.Contains(err.Error(), "MPSANDBOX_CLOCK_SCALE") || !strings.Contains(err.Error(), "xml") {
		t.Fatalf("got %v, want both problems named", err)
	}
}

func TestServesTheDemoMerchant(t *testing.T) {
	_, base := start(t, nil)
	for _, p := range []string{"/healthz", "/readyz", "/version"} {
		if r := send(t, "GET", base+p, "", ""); r.Status != 200 {
			t.Fatalf("%s: %d %s", p, r.Status, r.Raw)
		}
	}
	r := send(t, "GET", base+"/sandbox/v1/merchants", "", "")
	ms, _ := r.Body["merchants"].([]any)
	if r.Status != 200 || len(ms) != 1 || ms[0].(map[string]any)["mchid"] != "1230000109" {
		t.Fatalf("merchants: %d %s", r.Status, r.Raw)
	}
	c := send(t, "GET", base+"/sandbox/v1/merchants/1230000109/credentials", "", "")
	for _, k := range []string{"mchid", "appid", "service_id", "merchant_serial_no", "merchant_private_key_pem",
		"merchant_certificate_pem", "api_v2_key", "api_v3_key", "platform_public_key_id", "platform_public_key_pem",
		"platform_serial_no", "platform_certificate_pem", "pcloud_app_id", "pcloud_app_secret", "pcloud_merchant"} {
		if v, _ := c.Body[k].(string); v == "" {
			t.Errorf("credentials: %s is empty", k)
		}
	}
	if _, err := wxsign.ParsePrivateKey(c.Body["merchant_private_key_pem"].(string)); err != nil {
		t.Errorf("merchant key does not parse: %v", err)
	}
	if strings.Contains(c.Raw, "PRIVATE KEY") && strings.Count(c.Raw, "PRIVATE KEY") != 2 {
		t.Errorf("only the merchant's own private key may be shown, never the platform's")
	}
}

func TestUnknownRoutesAndMethodsAnswerInTheHouseEnvelope(t *testing.T) {
	_, base := start(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/nope", 404},
		{"DELETE", "/sandbox/v1/merchants", 405},
	} {
		r := send(t, tc.method, base+tc.path, "", "")
		errBody, _ := r.Body["error"].(map[string]any)
		if r.Status != tc.status || errBody["message"] == "" || r.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: got %d %s", tc.method, tc.path, r.Status, r.Raw)
		}
	}
}

func TestAdminNeedsATokenOffLoopback(t *testing.T) {
	_, base := start(t, func(c *Config) { c.Addr = "0.0.0.0:0"; c.AdminToken = "s3cret" })
	base = strings.Replace(base, "0.0.0.0", "127.0.0.1", 1)
	base = strings.Replace(base, "[::]", "127.0.0.1", 1)
	if r := send(t, "GET", base+"/sandbox/v1/merchants", "", ""); r.Status != 401 {
		t.Fatalf("without token: got %d, want 401", r.Status)
	}
	if r := send(t, "GET", base+"/sandbox/v1/merchants", "wrong", ""); r.Status != 401 {
		t.Fatalf("wrong token: got %d, want 401", r.Status)
	}
	created := send(t, "POST", base+"/sandbox/v1/merchants", "s3cret", `{"mchid":"1900000001","name":"second"}`)
	if created.Status != 201 {
		t.Fatalf("create: %d %s", created.Status, created.Raw)
	}
	tok, _ := created.Body["merchant_token"].(string)
	if tok == "" {
		t.Fatalf("no merchant_token in %s", created.Raw)
	}
	all := send(t, "GET", base+"/sandbox/v1/merchants", "s3cret", "")
	mine := send(t, "GET", base+"/sandbox/v1/merchants", tok, "")
	if n := len(all.Body["merchants"].([]any)); n != 2 {
		t.Fatalf("admin sees %d merchants, want 2", n)
	}
	ms := mine.Body["merchants"].([]any)
	if len(ms) != 1 || ms[0].(map[string]any)["mchid"] != "1900000001" {
		t.Fatalf("merchant token sees %s", mine.Raw)
	}
	if r := send(t, "GET", base+"/sandbox/v1/merchants/1230000109/credentials", tok, ""); r.Status != 404 {
		t.Fatalf("another merchant's credentials: got %d, want 404", r.Status)
	}
	if r := send(t, "GET", base+"/healthz", "", ""); r.Status != 200 {
		t.Fatalf("healthz must stay open: %d", r.Status)
	}
}

func TestGeneratedAdminTokenIsLoggedOnce(t *testing.T) {
	var log bytes.Buffer
	cfg, _ := parseConfig(nil, func(string) string { return "" })
	cfg.Addr, cfg.DataDir, cfg.AccessLog = "0.0.0.0:0", t.TempDir(), false
	m := NewMain(cfg, &log)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if n := strings.Count(log.String(), "admin_token=mps_"); n != 1 {
		t.Fatalf("got the token %d times in the log, want once:\n%s", n, log.String())
	}
}

func TestBadAdminInput(t *testing.T) {
	_, base := start(t, nil)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"malformed", "POST", "/sandbox/v1/merchants", `{"mchid":`, 400, ""},
		{"unknown field", "POST", "/sandbox/v1/merchants", `{"mchid":"1900000002","color":"red"}`, 400, "/color"},
		{"wrong type", "POST", "/sandbox/v1/merchants", `{"mchid":1900000002}`, 400, "/mchid"},
		{"bad mchid", "POST", "/sandbox/v1/merchants", `{"mchid":"12"}`, 400, "/mchid"},
		{"invalid utf-8", "POST", "/sandbox/v1/merchants", "{\"name\":\"\xc3\x28\"}", 400, ""},
		{"too large", "POST", "/sandbox/v1/merchants", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
		{"unknown merchant", "GET", "/sandbox/v1/merchants/999/credentials", "", 404, ""},
		{"unknown scenario", "PUT", "/sandbox/v1/merchants/1230000109/scenarios/embedpay", `{"id":"embedpay.nope"}`, 400, ""},
		{"unknown product", "PUT", "/sandbox/v1/merchants/1230000109/scenarios/stripe", `{"id":"x"}`, 400, "/product"},
		{"bad limit", "GET", "/sandbox/v1/journal?limit=abc", "", 400, "/limit"},
		{"advance without duration", "POST", "/sandbox/v1/clock/advance", `{"mchid":"1230000109"}`, 400, ""},
		{"unknown schema", "POST", "/sandbox/v1/validate/nope", `{}`, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.method, base+tc.path, "", tc.body)
			if r.Status != tc.status {
				t.Fatalf("got %d, want %d: %s", r.Status, tc.status, r.Raw)
			}
			e, _ := r.Body["error"].(map[string]any)
			if e == nil || e["message"] == "" || e["request_id"] == "" {
				t.Fatalf("not the house envelope: %s", r.Raw)
			}
			if tc.field != "" {
				found := false
				for _, f := range e["fields"].([]any) {
					if f.(map[string]any)["path"] == tc.field {
						found = true
					}
				}
				if !found {
					t.Fatalf("no field %q in %s", tc.field, r.Raw)
				}
			}
		})
	}
	// Nothing accepted before is lost: the demo merchant is still whole.
	if r := send(t, "GET", base+"/sandbox/v1/merchants/1230000109", "", ""); r.Status != 200 {
		t.Fatalf("demo merchant: %d", r.Status)
	}
}

func TestValidateEndpoint(t *testing.T) {
	_, base := start(t, nil)
	ok := send(t, "POST", base+"/sandbox/v1/validate/miniprogram/call", "", `{"caller":{"appId":"wx1234567890abcdef"},"args":{}}`)
	if ok.Status != 200 || ok.Body["valid"] != true {
		t.Fatalf("valid doc: %d %s", ok.Status, ok.Raw)
	}
	bad := send(t, "POST", base+"/sandbox/v1/validate/miniprogram/call", "", `{"caller":{"appId":7},"args":{}}`)
	vs, _ := bad.Body["violations"].([]any)
	if bad.Status != 200 || bad.Body["valid"] != false || len(vs) == 0 || vs[0].(map[string]any)["path"] != "/caller/appId" {
		t.Fatalf("invalid doc: %d %s", bad.Status, bad.Raw)
	}
	if r := send(t, "GET", base+"/sandbox/v1/schemas/scenario", "", ""); r.Status != 200 || !strings.Contains(r.Raw, "2020-12") {
		t.Fatalf("schema source: %d", r.Status)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	m1, base := start(t, func(c *Config) { c.DataDir = dir })
	created := send(t, "POST", base+"/sandbox/v1/merchants", "", `{"mchid":"1900000003"}`)
	if created.Status != 201 {
		t.Fatalf("create: %d %s", created.Status, created.Raw)
	}
	send(t, "POST", base+"/sandbox/v1/clock/advance", "", `{"mchid":"1900000003","by":"2h"}`)
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	_, base2 := start(t, func(c *Config) { c.DataDir = dir })
	again := send(t, "GET", base2+"/sandbox/v1/merchants/1900000003/credentials", "", "")
	if again.Status != 200 || again.Body["merchant_private_key_pem"] != created.Body["merchant_private_key_pem"] {
		t.Fatalf("after restart: %d, same key: %v", again.Status, again.Body["merchant_private_key_pem"] == created.Body["merchant_private_key_pem"])
	}
	clock := send(t, "GET", base2+"/sandbox/v1/clock?mchid=1900000003", "", "")
	if off, _ := clock.Body["offset_seconds"].(float64); off < 7200 {
		t.Fatalf("clock offset lost: %s", clock.Raw)
	}
}

func TestJournalSeesMiniProgramCalls(t *testing.T) {
	_, base := start(t, nil)
	creds := send(t, "GET", base+"/sandbox/v1/merchants/1230000109/credentials", "", "")
	r := send(t, "POST", base+"/miniprogram/v1/navigateToMiniProgram", "",
		fmt.Sprintf(`{"caller":{"appId":%q},"args":{"appId":"wx0000000000000000"}}`, creds.Body["appid"]))
	if r.Status != 400 || !strings.HasPrefix(r.Body["errMsg"].(string), "navigateToMiniProgram:fail") {
		t.Fatalf("call: %d %s", r.Status, r.Raw)
	}
	reqID := r.Header.Get("X-Request-Id")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		j := send(t, "GET", base+"/sandbox/v1/journal?mchid=1230000109", "", "")
		for _, x := range j.Body["exchanges"].([]any) {
			e := x.(map[string]any)
			if e["request_id"] == reqID {
				if e["status"] != float64(400) || len(e["violations"].([]any)) == 0 {
					t.Fatalf("journalled without status or violations: %v", e)
				}
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // the journal writes in the background
	}
	t.Fatal("the call never reached the journal")
}

func TestMerchantsFileAndUpdates(t *testing.T) {
	file := filepath.Join(t.TempDir(), "merchants.yaml")
	if err := os.WriteFile(file, []byte("merchants:\n  - mchid: \"1900000042\"\n    name: 文件商户\n    notify_hosts: [\"127.0.0.1:9000\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := start(t, func(c *Config) {
		c.MerchantsFile = file
		c.NotifyAllow = notify.MustPolicy(notify.DefaultAllow + ",notify.example.test")
	})
	m := send(t, "GET", base+"/sandbox/v1/merchants/1900000042", "", "")
	if m.Status != 200 || m.Body["name"] != "文件商户" || fmt.Sprint(m.Body["notify_hosts"]) != "[127.0.0.1:9000]" {
		t.Fatalf("merchant from the file: %d %s", m.Status, m.Raw)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	body, _ := json.Marshal(map[string]any{"notify_hosts": []string{"notify.example.test"}, "merchant_public_key_pem": pemText})
	if r := send(t, "PATCH", base+"/sandbox/v1/merchants/1900000042", "", string(body)); r.Status != 200 || fmt.Sprint(r.Body["notify_hosts"]) != "[notify.example.test]" {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	creds := send(t, "GET", base+"/sandbox/v1/merchants/1900000042/credentials", "", "")
	if creds.Body["merchant_public_key_pem"] != pemText || creds.Body["name"] != "文件商户" {
		t.Fatalf("the registered key (and only it) must change: %s", creds.Raw)
	}
	if m.Body["platform_key_mode"] != "public_key" {
		t.Errorf("platform_key_mode: got %v, want the default public_key", m.Body["platform_key_mode"])
	}
	if r := send(t, "PATCH", base+"/sandbox/v1/merchants/1900000042", "", `{"platform_key_mode":"switching"}`); r.Status != 200 || r.Body["platform_key_mode"] != "switching" {
		t.Fatalf("patch platform_key_mode: %d %s", r.Status, r.Raw)
	}
	for _, tc := range []struct{ name, body, field string }{
		{"nothing to change", `{}`, ""},
		{"unknown key mode", `{"platform_key_mode":"cert"}`, "/platform_key_mode"},
		{"not a key", `{"merchant_public_key_pem":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}`, "/merchant_public_key_pem"},
		{"bad host", `{"notify_hosts":["http://x/"]}`, "/notify_hosts/0"},
	} {
		r := send(t, "PATCH", base+"/sandbox/v1/merchants/1900000042", "", tc.body)
		if r.Status != 400 || (tc.field != "" && !strings.Contains(r.Raw, `"path":"`+tc.field+`"`)) {
			t.Errorf("%s: got %d %s, want 400 at %q", tc.name, r.Status, r.Raw, tc.field)
		}
	}
	after := send(t, "GET", base+"/sandbox/v1/merchants/1900000042/credentials", "", "")
	if after.Body["merchant_public_key_pem"] != pemText || after.Body["platform_key_mode"] != "switching" {
		t.Fatal("a refused update must lose nothing accepted before")
	}
}
