package payscore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
)

// admin calls the admin API as curl would and returns the answer.
func (w *world) admin(method, path string, body any, want int) map[string]any {
	w.tb.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, w.Server.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	raw := apptest.Send(w.tb, req, want)
	if len(raw) == 0 {
		return nil
	}
	return decode(w.tb, raw)
}

// fault scripts an API fault for the merchant through the admin API.
func (w *world) fault(body map[string]any) {
	w.tb.Helper()
	w.admin(http.MethodPost, "/sandbox/v1/merchants/"+w.m.MchID+"/api-faults", body, http.StatusCreated)
}

// TestAPIFaultsWithTheSDK: each fault scripted through the admin API is
// what wechatpay-go sees from the real API under stress — the APIError's
// status and code, a response whose signature fails its validation, or no
// answer within its deadline — for the chosen endpoint only, as many
// times as asked.
func TestAPIFaultsWithTheSDK(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	t.Run("rate limited twice, unprocessed", func(t *testing.T) {
		w := w.with(t)
		w.fault(map[string]any{"method": "POST", "path": "/v3/payscore/serviceorder", "kind": "rate_limited", "times": 2})
		for range 2 {
			out := w.fail(http.MethodPost, "/v3/payscore/serviceorder", w.createBody("FAULT429"), http.StatusTooManyRequests, "RATELIMIT_EXCEEDED")
			if out["message"] != "请求未受理,请降低频率后重试" {
				t.Errorf("message: got %v", out["message"])
			}
			// The query on the same path is another method: untouched.
			w.fail(http.MethodGet, w.queryPath("out_order_no", "FAULT429"), nil, http.StatusNotFound, "ORDER_NOT_EXIST")
		}
		w.create("FAULT429")
		if got := stateOf(w.query("FAULT429")); got != "CREATED" {
			t.Errorf("after the faults: %s", got)
		}
	})
	for _, tc := range []struct {
		kind   string
		status int
		code   string
		msg    string
	}{
		{"system_error", http.StatusInternalServerError, "SYSTEM_ERROR", "系统异常,请稍后重试"},
		{"service_unavailable", http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "服务不可用,请稍后重试"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			w := w.with(t)
			w.fault(map[string]any{"path": "/v3/payscore/serviceorder/*/cancel", "kind": tc.kind})
			body := map[string]any{"appid": w.m.AppID, "service_id": w.m.ServiceID, "reason": "用户取消"}
			w.create("FAULTCANCEL" + tc.code[:3])
			out := w.fail(http.MethodPost, "/v3/payscore/serviceorder/FAULTCANCEL"+tc.code[:3]+"/cancel", body, tc.status, tc.code)
			if out["message"] != tc.msg {
				t.Errorf("message: got %v, want %s", out["message"], tc.msg)
			}
			if got := stateOf(w.query("FAULTCANCEL" + tc.code[:3])); got != "CREATED" {
				t.Errorf("after the %s: %s, want the order untouched", tc.kind, got)
			}
			w.ok(http.MethodPost, "/v3/payscore/serviceorder/FAULTCANCEL"+tc.code[:3]+"/cancel", body, schemaCancelResponse)
		})
	}
	t.Run("bad signature: processed, refused by the SDK's validation", func(t *testing.T) {
		w := w.with(t)
		w.fault(map[string]any{"method": "POST", "path": "/v3/payscore/serviceorder", "kind": "bad_signature"})
		_, err := w.sdk.Post(ctx, apiHost+"/v3/payscore/serviceorder", w.createBody("FAULTSIG"))
		var apiErr *core.APIError
		if err == nil || errors.As(err, &apiErr) || !strings.Contains(err.Error(), "verif") {
			t.Fatalf("SDK: got %v, want its signature validation to fail", err)
		}
		if got := stateOf(w.query("FAULTSIG")); got != "CREATED" {
			t.Errorf("the order: %s, want it created all the same", got)
		}
	})
	t.Run("timeout: no answer within the client's deadline", func(t *testing.T) {
		w := w.with(t)
		w.fault(map[string]any{"method": "GET", "path": "/v3/payscore/serviceorder", "kind": "timeout", "hold": "2s"})
		key, _ := utils.LoadPrivateKey(w.m.MerchantPrivateKeyPEM)
		pub, _ := utils.LoadPublicKey(w.m.PlatformPublicKeyPEM)
		u, _ := url.Parse(w.Server.URL)
		impatient, err := core.NewClient(ctx,
			option.WithWechatPayPublicKeyAuthCipher(w.m.MchID, w.m.MerchantSerialNo, key, w.m.PlatformPublicKeyID, pub),
			option.WithHTTPClient(&http.Client{Transport: hostRewrite{u}, Timeout: 300 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = impatient.Get(ctx, apiHost+w.queryPath("out_order_no", "FAULT429"))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("SDK: got %v, want its client's timeout", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the client waited %s: its own deadline must end it", d)
		}
		// The fault is used up: the next call is answered.
		w.query("FAULT429")
	})
	t.Run("the merchant's view lists what remains; delete clears", func(t *testing.T) {
		w := w.with(t)
		w.fault(map[string]any{"path": "/v3/payscore/serviceorder/*/complete", "kind": "system_error", "times": 3})
		list := w.admin(http.MethodGet, "/sandbox/v1/merchants/"+w.m.MchID+"/api-faults", nil, http.StatusOK)["api_faults"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["remaining"] != json.Number("3") {
			t.Fatalf("api_faults: %v, want the one scripted", list)
		}
		w.admin(http.MethodPost, "/sandbox/v1/merchants/"+w.m.MchID+"/api-faults", map[string]any{"path": "x", "kind": "slow", "hold": "1s"}, http.StatusBadRequest)
		w.admin(http.MethodDelete, "/sandbox/v1/merchants/"+w.m.MchID+"/api-faults", nil, http.StatusNoContent)
		if m := w.admin(http.MethodGet, "/sandbox/v1/merchants/"+w.m.MchID, nil, http.StatusOK); len(m["api_faults"].([]any)) != 0 {
			t.Errorf("after delete: %v", m["api_faults"])
		}
	})
}
