package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// The fault tests run the real binary, on a real SQLite file, over real
// HTTP. Their long variants (more rounds, more load) run under `make soak`,
// which sets MPSANDBOX_SOAK.

// demoMchID is the merchant every sandbox has out of the box.
const demoMchID = "1230000109"

// soak reports whether the long variants were asked for.
func soak() bool { return os.Getenv("MPSANDBOX_SOAK") != "" }

// faultClient is a merchant's HTTP client of the sandbox.
var faultClient = &http.Client{Timeout: 30 * time.Second}

// call sends a body (a string, []byte or JSON value) and returns the status
// and the raw answer; a transport error is returned, not fatal, because
// these tests kill the server on purpose.
func call(method, url string, header http.Header, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := faultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// mustJSON calls and decodes, failing the test on any status but want.
func mustJSON(t testing.TB, method, url string, body any, want int, out any) {
	t.Helper()
	status, raw, err := call(method, url, nil, body)
	if err != nil || status != want {
		t.Fatalf("%s %s: %d %v %s, want %d", method, url, status, err, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
}

// merchantCreds are the credentials the fault tests use.
type merchantCreds struct {
	MchID          string `json:"mchid"`
	AppID          string `json:"appid"`
	ServiceID      string `json:"service_id"`
	SerialNo       string `json:"merchant_serial_no"`
	PrivateKeyPEM  string `json:"merchant_private_key_pem"`
	PCloudAppID    string `json:"pcloud_app_id"`
	PCloudSecret   string `json:"pcloud_app_secret"`
	PCloudMerchant string `json:"pcloud_merchant"`
}

func credsOf(t testing.TB, base, mchid string) *merchantCreds {
	t.Helper()
	var c merchantCreds
	mustJSON(t, "GET", base+"/sandbox/v1/merchants/"+mchid+"/credentials", nil, 200, &c)
	return &c
}

func newMerchant(t testing.TB, base, mchid string) *merchantCreds {
	t.Helper()
	mustJSON(t, "POST", base+"/sandbox/v1/merchants", map[string]string{"mchid": mchid}, 201, nil)
	return credsOf(t, base, mchid)
}

func advance(t testing.TB, base, mchid string, by time.Duration) {
	t.Helper()
	mustJSON(t, "POST", base+"/sandbox/v1/clock/advance", map[string]string{"mchid": mchid, "by": by.String()}, 200, nil)
}

// pcloudForm posts a signed P云 form and returns its JSON answer.
func pcloudForm(base, path string, c *merchantCreds, params map[string]string) (map[string]any, error) {
	return pcloudFormBy(call, base, path, c, params)
}

// caller is call, or a client of several replicas that retries on another.
type caller func(method, url string, header http.Header, body any) (int, []byte, error)

// pcloudFormBy is pcloudForm sent through do.
func pcloudFormBy(do caller, base, path string, c *merchantCreds, params map[string]string) (map[string]any, error) {
	params["app_id"], params["merchant"] = c.PCloudAppID, c.PCloudMerchant
	params["sign"] = wxsign.PCloudSign(params, c.PCloudSecret)
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	status, raw, err := do("POST", base+path, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form.Encode())
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || status != 200 {
		return nil, fmt.Errorf("POST %s: %d %s", path, status, raw)
	}
	return out, nil
}

// Values of the embedpay catalogue (scenarios/embedpay).
const (
	valuePayNowNotifyLate = "113" // the user pays at once; trade-notify due 60 s later
)

// prepare prepares a trade and returns its pay_id, or an error when the
// sandbox did not acknowledge it (code 1001).
func prepare(base string, c *merchantCreds, payOrder, value, notifyURL string) (string, error) {
	return prepareBy(call, base, c, payOrder, value, notifyURL)
}

// prepareBy is prepare sent through do.
func prepareBy(do caller, base string, c *merchantCreds, payOrder, value, notifyURL string) (string, error) {
	out, err := pcloudFormBy(do, base, "/gate/1.0/payment/trade/prepare", c, map[string]string{
		"pay_order": payOrder, "subject": "停车支付", "value": value, "notify_url": notifyURL, "trade_scene": "GENERIC",
		"expire_time": "2099-01-01T00:00:00.000Z", "sign_type": "MD5",
	})
	if err != nil {
		return "", err
	}
	id, _ := out["pay_id"].(string)
	if out["code"] != "1001" || id == "" {
		return "", fmt.Errorf("prepare %s: %v", payOrder, out)
	}
	return id, nil
}

// jump opens P云's cashier on pay_id and returns the status and answer.
func jump(base string, c *merchantCreds, payID string) (int, []byte, error) {
	return jumpBy(call, base, c, payID)
}

// jumpBy is jump sent through do.
func jumpBy(do caller, base string, c *merchantCreds, payID string) (int, []byte, error) {
	return do("POST", base+"/miniprogram/v1/openEmbeddedMiniProgram", nil, map[string]any{
		"caller": map[string]any{"appId": c.AppID, "platform": "android", "sdkVersion": "3.4.0"},
		"args":   map[string]any{"appId": "wxa204074068ad40ef", "path": "/external/payment/trade/create/index?pay_id=" + payID},
	})
}

// paidOrder prepares a trade whose user pays at once and jumps to it; it
// returns an error unless both were acknowledged, which makes the trade's
// trade-notify an accepted notification.
func paidOrder(base string, c *merchantCreds, payOrder, notifyURL string) (prepared bool, err error) {
	payID, err := prepare(base, c, payOrder, valuePayNowNotifyLate, notifyURL)
	if err != nil {
		return false, err
	}
	status, raw, err := jump(base, c, payID)
	if err == nil && status != 200 {
		err = fmt.Errorf("jump %s: %d %s", payOrder, status, raw)
	}
	return true, err
}

// notifications lists a merchant's notifications about ref.
type notificationRow struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	DueAt     time.Time `json:"due_at"`
	LastError string    `json:"last_error"`
	LastCode  int       `json:"last_status"`
}

func notificationsOf(t testing.TB, base, mchid, ref string) []notificationRow {
	t.Helper()
	var out struct {
		Notifications []notificationRow `json:"notifications"`
	}
	mustJSON(t, "GET", base+"/sandbox/v1/notifications?mchid="+mchid+"&ref="+url.QueryEscape(ref), nil, 200, &out)
	return out.Notifications
}

// clockNow is the merchant's sandbox time.
func clockNow(t testing.TB, base, mchid string) time.Time {
	t.Helper()
	var out struct {
		Now time.Time `json:"now"`
	}
	mustJSON(t, "GET", base+"/sandbox/v1/clock?mchid="+mchid, nil, 200, &out)
	return out.Now
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// v3Call sends a signed v3 request as the merchant's SDK would. It may run
// on another goroutine than the test's, so problems are t.Error.
func v3Call(t testing.TB, base string, c *merchantCreds, method, path string, body any) (int, map[string]any) {
	raw := []byte{}
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Error(err)
			return 0, nil
		}
	}
	key, err := wxsign.ParsePrivateKey(c.PrivateKeyPEM)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), wxsign.NonceStr(32)
	sig, err := wxsign.RSASign(key, wxsign.V3RequestMessage(method, path, ts, nonce, string(raw)))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	h := http.Header{"Accept": {"application/json"}, "Authorization": {wxsign.FormatAuthorization(wxsign.Authorization{
		MchID: c.MchID, NonceStr: nonce, Timestamp: ts, SerialNo: c.SerialNo, Signature: sig})}}
	status, answer, err := call(method, base+path, h, raw)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	var out map[string]any
	_ = json.Unmarshal(answer, &out)
	return status, out
}
