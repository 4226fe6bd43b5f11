package testkit_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

func TestSignGoldenVectors(t *testing.T) {
	// The documents' own examples: the testkit's signers must agree with
	// them before a test trusts them to judge the sandbox.
	v2 := map[string]string{"appid": "wxd930ea5d5a258f4f", "body": "test", "device_info": "1000", "mch_id": "10000100", "nonce_str": "ibuaiVcKdpRxkhJA"}
	if got, want := testkit.V2HMACSign(v2, "192006250b4c09247ec02edce69f6a2d"), "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"; got != want {
		t.Errorf("V2HMACSign: got %s, want the v2 doc's %s", got, want)
	}
	// 4pyun-doc openapi/api/trade-prepare.md's example.
	p := map[string]string{
		"app_id": "op0096196358123123", "merchant": "62626601", "pay_order": "11111111118",
		"subject": "停车支付3.00元(川A12345)", "body": "【川A12345】在【XXXXX-停车场】于【2021-07-01 00:00:00】支付费1.00元",
		"value": "10", "channel": "200201", "callback_url": "https://a.b.c/backurl", "notify_url": "https://a.b.c/notify",
		"extra": `{"plate_color":"-1","parking_serial":"01009970545516206225805859659","plate":"川AA37K2","enter_time":"1620621689000","park_name":"P云支付体验-停车场","parking_time":"175"}`,
	}
	if got, want := testkit.PCloudSign(p, "6409292d66625a2a12342134"), "96FD052F81BBB3C25B5BD628E189A154"; got != want {
		t.Errorf("PCloudSign: got %s, want the doc's %s", got, want)
	}
}

func TestMerchantCredentials(t *testing.T) {
	sb := testkit.Start(t)
	ctx := context.Background()
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		t.Fatal(err)
	}
	if m.MerchantPrivateKey == nil || m.PlatformPublicKey == nil || m.PlatformCertificate == nil || m.MerchantCertificate == nil {
		t.Fatalf("keys not parsed: %+v", m.Credentials)
	}
	if len(m.APIv3Key) != 32 || m.PCloudAppSecret == "" || m.Token == "" {
		t.Errorf("credentials: got v3 key %q, P云 secret %q, token %q", m.APIv3Key, m.PCloudAppSecret, m.Token)
	}
	other, err := sb.CreateMerchant(ctx, testkit.NewMerchant{Name: "another shop"})
	if err != nil {
		t.Fatal(err)
	}
	if other.MchID == m.MchID || other.Name != "another shop" || other.MerchantPrivateKey == nil {
		t.Errorf("created: got %s %q", other.MchID, other.Name)
	}

	_, err = sb.Merchant(ctx, "1999999999")
	var apiErr *testkit.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code == "" {
		t.Errorf("unknown merchant: got %v, want a 404 APIError with its code", err)
	}
	err = m.UseScenario(ctx, "payscore", "payscore.nope", false)
	if !errors.As(err, &apiErr) || apiErr.Status/100 != 4 {
		t.Errorf("unknown scenario: got %v, want a 4xx APIError", err)
	}
}

func TestPayScoreFlowInProcess(t *testing.T) {
	sb := testkit.Start(t)
	ctx := context.Background()
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := payScoreFlow(ctx, sb, m, m.Receiver(t), "TK0001")
	if err != nil {
		t.Fatal(err)
	}
	if got := seen[len(seen)-1]; got != "queried: DONE collection USER_PAID 1500" {
		t.Errorf("final: got %q", got)
	}
	ex, err := sb.Journal(ctx, testkit.JournalFilter{MchID: m.MchID, Direction: "out", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 || ex[0].Status != http.StatusNoContent || !strings.HasSuffix(ex[0].URL, "/payscore/notify") {
		t.Errorf("journal: got %+v, want the two notifications, answered 204", ex)
	}
}

// A notification that does not verify comes out of Next as a
// *VerifyError; the receiver refused it, so the sandbox retries.
func TestReceiverReportsBadSignature(t *testing.T) {
	ctx, sb, m, recv := demo(t)
	client, err := payScoreClient(ctx, sb, m)
	if err != nil {
		t.Fatal(err)
	}
	// PSBADSIGN: every notification is signed wrongly (a magic value).
	created, err := createOrder(ctx, client, m, "PSBADSIGN-TK1", recv.URL+"/notify")
	if err != nil {
		t.Fatal(err)
	}
	launch, err := m.Jump(ctx, confirmPage(m, created.Package))
	if err != nil {
		t.Fatal(err)
	}
	userActs(ctx, t, sb, m, launch)
	for attempt := 1; attempt <= 2; attempt++ {
		_, err = recv.Next(ctx)
		var verr *testkit.VerifyError
		if !errors.As(err, &verr) || verr.Notification.Kind != testkit.KindWeChatPayV3 || !strings.Contains(err.Error(), "Wechatpay-Signature does not verify") {
			t.Fatalf("attempt %d: got %v, want a VerifyError for the signature", attempt, err)
		}
		// Refused with 401: WeChat's first retry comes 15 s later. Advance
		// once the sandbox has recorded the failed attempt (the retry is
		// scheduled from it).
		waitJournal(t, sb, m.MchID, attempt)
		if err := m.AdvanceClock(ctx, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// demo starts a sandbox with a receiver for its demo merchant; ctx ends
// after 30 s.
func demo(t *testing.T) (context.Context, *testkit.Sandbox, *testkit.Merchant, *testkit.Receiver) {
	t.Helper()
	sb := testkit.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, sb, m, m.Receiver(t)
}

// userActs lets the simulated user act (within 3 s on the merchant's
// clock) and waits for the return.
func userActs(ctx context.Context, t *testing.T, sb *testkit.Sandbox, m *testkit.Merchant, launch *testkit.Launch) {
	t.Helper()
	if err := m.AdvanceClock(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Return(ctx, launch.SessionID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// waitJournal waits until the merchant's journal holds want outbound
// attempts.
func waitJournal(t *testing.T, sb *testkit.Sandbox, mchid string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ex, err := sb.Journal(context.Background(), testkit.JournalFilter{MchID: mchid, Direction: "out"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ex) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal: %d outbound attempts after 10 s, want %d", len(ex), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReceiverRejectsUnknownShape(t *testing.T) {
	ctx, _, _, recv := demo(t)
	resp, err := http.Post(recv.URL+"/x", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status: got %d, want 401 (refused)", resp.StatusCode)
	}
	_, err = recv.Next(ctx)
	var verr *testkit.VerifyError
	if !errors.As(err, &verr) || string(verr.Notification.Body) != "hello" {
		t.Errorf("got %v, want a VerifyError holding the request", err)
	}
}

func TestReceiverAllowsItself(t *testing.T) {
	sb := testkit.Start(t)
	ctx := context.Background()
	m, err := sb.CreateMerchant(ctx, testkit.NewMerchant{NotifyHosts: []string{"localhost:9000"}})
	if err != nil {
		t.Fatal(err)
	}
	recv := m.Receiver(t)
	again, err := sb.Merchant(ctx, m.MchID)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(recv.URL, "http://")
	if got := strings.Join(again.NotifyHosts, ","); got != "localhost:9000,"+host {
		t.Errorf("notify_hosts: got %s, want localhost:9000,%s", got, host)
	}
}

func TestTransport(t *testing.T) {
	sb := testkit.Start(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("other")) }))
	defer other.Close()
	client := &http.Client{Transport: sb.Transport()}
	for _, tt := range []struct{ url, want string }{
		{"https://api.mch.weixin.qq.com/healthz", `{"status":"ok"}`},
		{"https://API.4pyun.com/healthz", `{"status":"ok"}`},
		{"https://papi.4pyun.com/healthz", `{"status":"ok"}`},
		{other.URL + "/anything", "other"},
	} {
		resp, err := client.Get(tt.url)
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.url, body, tt.want)
		}
	}
}

// BenchmarkStartReady measures testkit.Run until the sandbox answers its
// first request (GET /readyz 200); closing is not timed. The first start in
// a process also loads what every sandbox of the process shares (the
// schemas, the scenario catalogue, the demo merchant's certificates): it is
// reported apart, as first-ms, and ns/op is every later start. make bench
// measures first starts in fresh processes (bench/cmd/testkitstart).
func BenchmarkStartReady(b *testing.B) {
	startReady := func() time.Duration {
		began := time.Now()
		sb, err := testkit.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		resp, err := http.Get(sb.URL() + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("readyz: %v %v", resp, err)
		}
		resp.Body.Close()
		took := time.Since(began)
		b.StopTimer()
		if err := sb.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return took
	}
	first := startReady()
	for b.Loop() {
		startReady()
	}
	b.ReportMetric(float64(first)/float64(time.Millisecond), "first-ms")
}
