package testkit_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// TestReport: a merchant whose receiver acknowledges a P云 trade-notify
// with a wrong sign fails notify.bad_signature on its report card, with
// the entry it failed on; a merchant that did nothing fails nothing and
// has nothing exercised.
func TestReport(t *testing.T) {
	ctx := context.Background()
	sb := testkit.Start(t)
	start := time.Now()
	careless, err := sb.CreateMerchant(ctx, testkit.NewMerchant{MchID: "1900000701"})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := sb.CreateMerchant(ctx, testkit.NewMerchant{MchID: "1900000702"})
	if err != nil {
		t.Fatal(err)
	}
	// A receiver that acknowledges whatever comes, checking nothing.
	acks := make(chan struct{}, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"code":"1001","message":"通知成功","hint":""}`)
		acks <- struct{}{}
	}))
	t.Cleanup(recv.Close)

	// Value 115: the user pays at once; the first trade-notify carries a
	// wrong sign.
	prep, err := pcloudForm(ctx, sb, careless, "/gate/1.0/payment/trade/prepare", map[string]string{
		"pay_order": "TK-REPORT-1", "subject": "停车支付", "value": "115", "trade_scene": "GENERIC",
		"notify_url": recv.URL + "/notify", "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
	})
	if err != nil {
		t.Fatal(err)
	}
	launch, err := careless.Jump(ctx, testkit.OpenEmbeddedMiniProgram{
		AppID: "wxa204074068ad40ef", Path: "/external/payment/trade/create/index?pay_id=" + prep["pay_id"].(string)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Return(ctx, launch.SessionID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-acks:
	case <-time.After(10 * time.Second):
		t.Fatal("no trade-notify within 10 s")
	}
	// The attempt is journalled once answered.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		xs, err := sb.Journal(ctx, testkit.JournalFilter{MchID: careless.MchID, Direction: "out"})
		if err != nil {
			t.Fatal(err)
		}
		if len(xs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no notify attempt in the journal within 10 s")
		}
	}

	r, err := careless.Report(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.Check("embedpay", "notify.bad_signature")
	if !ok || c.Verdict != testkit.Failed || len(c.Evidence) == 0 || !c.Evidence[0].Bad {
		t.Fatalf("embedpay notify.bad_signature: %+v, want failed on the acknowledged attempt", c)
	}
	found := false
	for _, f := range r.Failed() {
		found = found || f.Product == "embedpay" && f.ID == "notify.bad_signature"
	}
	if !found || len(r.Failed()) != r.Counts.Failed {
		t.Errorf("Failed() lists %d checks (bad signature among them: %v), counts say %d", len(r.Failed()), found, r.Counts.Failed)
	}

	r, err = idle.Report(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Failed()) != 0 || r.Counts.Passed != 0 || r.Counts.NotExercised == 0 {
		t.Errorf("a merchant that did nothing: counts %+v, failed %v", r.Counts, r.Failed())
	}
}
