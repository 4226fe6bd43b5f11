package wxsign

import (
	"os"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The P云 trade-prepare signing example, from the public docs repository
// zuichun/4pyun-doc, openapi/api/trade-prepare.md ("请求示例", commit
// 08d3b5cab421f12b63960bba730a11d905836422; the same example is on
// https://doc.4pyun.com/openapi/api/trade-prepare.html). The `extra` value
// is the JSON string exactly as printed there (fastjson's HashMap order).
// SOURCES.md §8 calls this the golden vector.
const (
	pcloudPrepareSecret = "6409292d66625a2a12342134"
	pcloudPrepareString = `app_id=op0096196358123123&body=【川A12345】在【XXXXX-停车场】于【2021-07-01 00:00:00】支付费1.00元&callback_url=https://a.b.c/backurl&channel=200201&extra={"plate_color":"-1","parking_serial":"01009970545516206225805859659","plate":"川AA37K2","enter_time":"1620621689000","park_name":"P云支付体验-停车场","parking_time":"175"}&merchant=62626601&notify_url=https://a.b.c/notify&pay_order=11111111118&subject=停车支付3.00元(川A12345)&value=10&app_secret=6409292d66625a2a12342134`
	pcloudPrepareSign   = "96FD052F81BBB3C25B5BD628E189A154"
)

func pcloudPrepareParams() map[string]string {
	return map[string]string{
		"app_id":       "op0096196358123123",
		"merchant":     "62626601",
		"pay_order":    "11111111118",
		"subject":      "停车支付3.00元(川A12345)",
		"body":         "【川A12345】在【XXXXX-停车场】于【2021-07-01 00:00:00】支付费1.00元",
		"value":        "10",
		"channel":      "200201",
		"callback_url": "https://a.b.c/backurl",
		"notify_url":   "https://a.b.c/notify",
		"extra":        `{"plate_color":"-1","parking_serial":"01009970545516206225805859659","plate":"川AA37K2","enter_time":"1620621689000","park_name":"P云支付体验-停车场","parking_time":"175"}`,
	}
}

func TestPCloudGolden(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		secret string
		str    string
		sign   string
	}{
		{"trade-prepare", pcloudPrepareParams(), pcloudPrepareSecret, pcloudPrepareString, pcloudPrepareSign},
		{
			// zuichun/4pyun-doc openapi/api/trade-query.md, "请求示例".
			"trade-query",
			map[string]string{"app_id": "op009619634544", "merchant": "62626666666", "pay_order": "00202101010000060755912770312323"},
			"6409292d66625a2a0912ac345345",
			"app_id=op009619634544&merchant=62626666666&pay_order=00202101010000060755912770312323&app_secret=6409292d66625a2a0912ac345345",
			"8FFDCC0A8C51BB92F183CAE2DD0C70D6",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PCloudStringToSign(tt.params, tt.secret); got != tt.str {
				t.Errorf("string-to-sign\ngot  %q\nwant %q", got, tt.str)
			}
			if got := PCloudSign(tt.params, tt.secret); got != tt.sign {
				t.Errorf("got sign %s, want %s", got, tt.sign)
			}
			for _, sign := range []string{tt.sign, strings.ToLower(tt.sign)} {
				if err := PCloudVerify(tt.params, tt.secret, sign); err != nil {
					t.Errorf("PCloudVerify(%s): %v", sign, err)
				}
			}
		})
	}
}

func TestPCloudSignsSignTypeButNotSign(t *testing.T) {
	// openapi/README.md's example string signs sign_type=MD5 like any
	// parameter; only sign itself is left out.
	p := map[string]string{"app_id": "op1", "sign_type": "MD5", "sign": "X", "timestamp": "1563242932357", "plate": ""}
	want := "app_id=op1&sign_type=MD5&timestamp=1563242932357&app_secret=S"
	if got := PCloudStringToSign(p, "S"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPCloudVerifyFailures(t *testing.T) {
	tests := []struct {
		name   string
		sign   string
		mutate func(map[string]string)
		want   string
	}{
		{"missing", "", nil, "sign is missing"},
		{"altered value", pcloudPrepareSign, func(p map[string]string) { p["value"] = "1000" }, "does not match"},
		{"truncated", pcloudPrepareSign[:31], nil, "does not match"},
		{"v2 style key suffix", PCloudSign(nil, "x"), nil, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pcloudPrepareParams()
			if tt.mutate != nil {
				tt.mutate(p)
			}
			e := wantSandboxError(t, PCloudVerify(p, pcloudPrepareSecret, tt.sign), sandbox.CodeUnauthorized, tt.want)
			wantDiag := strings.TrimSuffix(PCloudStringToSign(p, pcloudPrepareSecret), pcloudPrepareSecret) + "***"
			if e.Diagnostics != wantDiag {
				t.Errorf("got diagnostics %q, want %q", e.Diagnostics, wantDiag)
			}
			if strings.Contains(e.Error()+e.Diagnostics, pcloudPrepareSecret) {
				t.Errorf("the app secret leaks into the error")
			}
		})
	}
}

// The P云 JSON-body example: zuichun/4pyun-doc openapi/api/trade-refund.md,
// "请求示例" — the body's exact bytes, then &app_secret=.
const (
	pcloudRefundBody   = `{"reason":"接口测试退款","pay_serial":"20220721102644066066610031","app_id":"op00961963581daa7","value":"1"}`
	pcloudRefundSecret = "6409292d66625a2a0912acfc61ed956c"
	pcloudRefundSign   = "55D9BC675B3B042A015895FA9F9D037B"
)

func TestPCloudSignJSON(t *testing.T) {
	if got := PCloudSignJSON([]byte(pcloudRefundBody), pcloudRefundSecret); got != pcloudRefundSign {
		t.Errorf("got %s, want %s", got, pcloudRefundSign)
	}
	if err := PCloudVerifyJSON([]byte(pcloudRefundBody), pcloudRefundSecret, strings.ToLower(pcloudRefundSign)); err != nil {
		t.Errorf("PCloudVerifyJSON of the doc's sign: %v", err)
	}
	t.Run("reformatted body fails", func(t *testing.T) {
		body := []byte(strings.ReplaceAll(pcloudRefundBody, ",", ", "))
		e := wantSandboxError(t, PCloudVerifyJSON(body, pcloudRefundSecret, pcloudRefundSign), sandbox.CodeUnauthorized, "exact request body")
		if want := string(body) + "&app_secret=***"; e.Diagnostics != want {
			t.Errorf("got diagnostics %q, want %q", e.Diagnostics, want)
		}
	})
}

// TestPCloudGoldenInDocs keeps the P云 page's copy of the golden vector
// the one this package signs.
func TestPCloudGoldenInDocs(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/products/embedpay.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"```text\n" + pcloudPrepareString + "\n```", pcloudPrepareSign} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/products/embedpay.md lacks the golden vector's %q", want)
		}
	}
}
