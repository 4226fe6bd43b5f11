package embedpay

import (
	"context"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(tb testing.TB, name string, got []byte) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		tb.Errorf("%s\ngot  %s\nwant %s", name, got, want)
	}
}

// TestBuildNotifyGolden pins the trade-notify form byte for byte: a fixed
// trade signed with the doc's app secret, and each fault's variant.
func TestBuildNotifyGolden(t *testing.T) {
	p := &Product{}
	m := testMerchant("1230000109", "wx1234567890abcdef", docAppID, docSecret, docMerchant)
	paidAt := time.Date(2025, 3, 1, 10, 0, 2, 0, time.UTC)
	payload := notifyPayload{
		AppID: docAppID, Merchant: docMerchant, PayOrder: "11111111118", Channel: ChannelWeChatJSAPI,
		PaySerial: "20250301180002123456789012", Value: 1000, Status: StatusPaid, TradeTime: paidAt.UnixMilli(),
		Stale: &stalePayload{Status: StatusPaying, TradeTime: paidAt.Add(-time.Second).UnixMilli()},
	}
	raw, _ := json.Marshal(payload)
	tests := []struct {
		name     string
		n        sandbox.Notification
		signedOK bool
		status   string
	}{
		{"paid.form", sandbox.Notification{Faults: sandbox.Faults{Duplicate: true}}, true, "1"},
		{"stale-after-ack.form", sandbox.Notification{}, true, "0"},
		{"bad-signature-first.form", sandbox.Notification{Faults: sandbox.Faults{BadSignature: true, Duplicate: true}}, false, "1"},
		{"bad-signature-retry.form", sandbox.Notification{Attempts: 1, Faults: sandbox.Faults{BadSignature: true, Duplicate: true}}, true, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n
			n.URL, n.Payload = "http://127.0.0.1:9/notify", raw
			req, err := p.BuildNotify(context.Background(), m, &n)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != "POST" || req.URL != n.URL || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded; charset=UTF-8" {
				t.Errorf("request %s %s %v", req.Method, req.URL, req.Header)
			}
			golden(t, tt.name, req.Body)
			v, err := url.ParseQuery(string(req.Body))
			if err != nil {
				t.Fatal(err)
			}
			params := map[string]string{}
			for k := range v {
				params[k] = v.Get(k)
			}
			if ok := wxsign.PCloudVerify(params, docSecret, params["sign"]) == nil; ok != tt.signedOK {
				t.Errorf("sign verifies: %v, want %v", ok, tt.signedOK)
			}
			if params["status"] != tt.status {
				t.Errorf("status %s, want %s", params["status"], tt.status)
			}
		})
	}
}
