package testkit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// The merchant's side of a P云 half-screen payment: its own form client to
// https://api.4pyun.com through the sandbox's Transport.

const pcloudAPI = "https://api.4pyun.com"

// pcloudForm posts a signed form to a P云 path and decodes the answer
// (P云 answers with HTTP 200 whatever happened; code says).
func pcloudForm(ctx context.Context, sb *testkit.Sandbox, m *testkit.Merchant, path string, params map[string]string) (map[string]any, error) {
	params["app_id"], params["merchant"] = m.PCloudAppID, m.PCloudMerchant
	params["sign"] = testkit.PCloudSign(params, m.PCloudAppSecret)
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pcloudAPI+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Transport: sb.Transport(), Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out["code"] != "1001" {
		return out, fmt.Errorf("%s: %v", path, out)
	}
	return out, nil
}

// pcloudFlow pays payOrder (value in fen: a magic value picks the
// scenario) in the half-screen cashier and returns what the merchant saw.
func pcloudFlow(ctx context.Context, sb *testkit.Sandbox, m *testkit.Merchant, recv *testkit.Receiver, payOrder, value string) ([]string, error) {
	var seen []string
	prep, err := pcloudForm(ctx, sb, m, "/gate/1.0/payment/trade/prepare", map[string]string{
		"pay_order": payOrder, "subject": "停车支付", "value": value, "trade_scene": "GENERIC",
		"notify_url": recv.URL + "/pcloud/notify", "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "sign_type": "MD5",
	})
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	payID, _ := prep["pay_id"].(string)
	seen = append(seen, fmt.Sprintf("prepared: a pay_id of %d digits", len(payID)))

	launch, err := m.Jump(ctx, testkit.OpenEmbeddedMiniProgram{
		AppID: "wxa204074068ad40ef", Path: "/external/payment/trade/create/index?pay_id=" + payID})
	if err != nil {
		return nil, fmt.Errorf("jump: %w", err)
	}
	seen = append(seen, "jump: "+launch.ErrMsg+" ("+launch.Scenario+")")
	ret, err := sb.Return(ctx, launch.SessionID, 15*time.Second)
	if err != nil {
		return nil, fmt.Errorf("return: %w", err)
	}
	seen = append(seen, fmt.Sprintf("back on scene %d, status %v", ret.Scene, ret.ReferrerInfo.ExtraData["status"]))

	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := recv.Next(waitCtx)
	if err != nil {
		return nil, err
	}
	seen = append(seen, fmt.Sprintf("notified: pay_order %s status %s value %s", n.Params["pay_order"], n.Params["status"], n.Params["value"]))

	q, err := pcloudForm(ctx, sb, m, "/gate/1.0/payment/trade/query", map[string]string{"pay_order": payOrder})
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return append(seen, fmt.Sprintf("queried: status %v", q["status"])), nil
}
