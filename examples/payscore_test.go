package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/mpsandbox/mpsandbox/testkit"
)

func TestPayScoreInProcess(t *testing.T) {
	payScore(t, testkit.Start(t))
}

func TestPayScoreContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a container")
	}
	if err := testkit.DockerReachable(context.Background()); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs the container half, and %v", err)
		}
		t.Skip(err)
	}
	image := os.Getenv("MPSANDBOX_IMAGE")
	if image == "" {
		image = testkit.DefaultImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := testkit.RunContainer(ctx, testkit.WithImage(image), testkit.WithTestLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	payScore(t, sb)
}

// payScore is the merchant's 支付分 integration: its backend creates the
// order with wechatpay-go, its mini-program opens the confirm page, its
// notify_url gets USER_CONFIRM, the backend completes the order, the
// notify_url gets USER_PAID.
func payScore(t *testing.T, sb *testkit.Sandbox) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		t.Fatal(err)
	}
	recv := m.Receiver(t)

	// The merchant's own client, unchanged but for its transport.
	client, err := core.NewClient(ctx,
		option.WithWechatPayPublicKeyAuthCipher(m.MchID, m.MerchantSerialNo, m.MerchantPrivateKey, m.PlatformPublicKeyID, m.PlatformPublicKey),
		option.WithHTTPClient(&http.Client{Transport: sb.Transport(), Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	// The SDK's notify handler judges what the Receiver hands over too.
	handler, err := notify.NewRSANotifyHandler(m.APIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(m.PlatformPublicKeyID, *m.PlatformPublicKey))
	if err != nil {
		t.Fatal(err)
	}

	const outOrderNo = "EXAMPLES0001"
	created := call(ctx, t, client, http.MethodPost, "/v3/payscore/serviceorder", map[string]any{
		"out_order_no": outOrderNo, "appid": m.AppID, "service_id": m.ServiceID, "service_introduction": "停车服务",
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
		"time_range":    map[string]any{"start_time": "OnAccept"},
		"risk_fund":     map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
		"notify_url":    recv.URL + "/wxpay/notify",
	})
	if created["state"] != "CREATED" {
		t.Fatalf("create: %v", created)
	}

	// The mini-program: wx.openBusinessView with the extraData the backend signed.
	extra := map[string]string{"mch_id": m.MchID, "package": created["package"].(string),
		"timestamp": strconv.FormatInt(time.Now().Unix(), 10), "nonce_str": "EXAMPLESNONCE0001", "sign_type": "HMAC-SHA256"}
	extra["sign"] = testkit.V2HMACSign(extra, m.APIv2Key)
	launch, err := m.Jump(ctx, testkit.OpenBusinessView{BusinessType: "wxpayScoreUse", ExtraData: extra})
	if err != nil {
		t.Fatal(err)
	}
	// The simulated user confirms within 2 s on the merchant's clock.
	if err := m.AdvanceClock(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	ret, err := sb.Return(ctx, launch.SessionID, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ret.Scene != 1038 || ret.ReferrerInfo == nil || ret.ReferrerInfo.ExtraData["query_id"] == nil {
		t.Fatalf("App.onShow: got %s, want scene 1038 with a query_id", ret.Body)
	}

	confirmed := next(ctx, t, recv, handler, "PAYSCORE.USER_CONFIRM")
	if confirmed["state"] != "DOING" || confirmed["state_description"] != "USER_CONFIRM" {
		t.Errorf("USER_CONFIRM: %v", confirmed)
	}
	call(ctx, t, client, http.MethodPost, "/v3/payscore/serviceorder/"+outOrderNo+"/complete", map[string]any{
		"appid": m.AppID, "service_id": m.ServiceID, "total_amount": 1500,
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
		"time_range":    map[string]any{"end_time": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405")},
	})
	if err := m.AdvanceClock(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	paid := next(ctx, t, recv, handler, "PAYSCORE.USER_PAID")
	if paid["state"] != "DONE" {
		t.Errorf("USER_PAID: %v", paid)
	}
	final := call(ctx, t, client, http.MethodGet, "/v3/payscore/serviceorder?service_id="+m.ServiceID+"&appid="+m.AppID+"&out_order_no="+outOrderNo, nil)
	if final["state"] != "DONE" {
		t.Errorf("query: %v", final)
	}
}

// call sends a v3 request through the SDK, which signs it and verifies the
// answer's signature.
func call(ctx context.Context, t *testing.T, c *core.Client, method, path string, body any) map[string]any {
	t.Helper()
	var res *core.APIResult
	var err error
	if method == http.MethodGet {
		res, err = c.Get(ctx, "https://api.mch.weixin.qq.com"+path)
	} else {
		res, err = c.Post(ctx, "https://api.mch.weixin.qq.com"+path, body)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Response.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Response.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return out
}

// next takes the next notification from the Receiver (verified and
// decrypted) and has wechatpay-go's handler parse the same request: both
// must agree on the event and the resource.
func next(ctx context.Context, t *testing.T, recv *testkit.Receiver, h *notify.Handler, event string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n, err := recv.Next(ctx)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	var mine map[string]any
	if err := n.Decode(&mine); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(n.Method, "http://merchant.example"+n.Path, bytes.NewReader(n.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = n.Header
	var theirs map[string]any
	parsed, err := h.ParseNotifyRequest(ctx, req, &theirs)
	if err != nil {
		t.Fatalf("wechatpay-go refuses what the Receiver verified: %v", err)
	}
	if n.EventType != event || parsed.EventType != event || mine["out_order_no"] != theirs["out_order_no"] {
		t.Fatalf("got %s / %s (%v vs %v), want %s", n.EventType, parsed.EventType, mine, theirs, event)
	}
	return mine
}
