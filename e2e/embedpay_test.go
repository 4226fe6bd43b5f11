package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// pcloud is a merchant's view of the P云 half-screen payment on a sandbox.
type pcloud struct {
	s    *Sandbox
	m    *testkit.Merchant
	recv *testkit.Receiver
}

// notice is one trade-notify the merchant's notify_url received.
type notice struct {
	params   map[string]string
	signedOK bool
	at       time.Time
}

// newPCloud starts a sandbox; the merchant's notify_url is the testkit's
// Receiver, which checks the MD5 sign and answers 1001 only to a genuine
// notification, as trade-notify.md asks.
func newPCloud(t *testing.T) *pcloud {
	t.Helper()
	s := startSandbox(t)
	m := s.merchant(t, demoMchID)
	return &pcloud{s: s, m: m, recv: m.Receiver(t)}
}

// form posts a signed form to a P云 path and decodes the answer, which P云
// always gives with HTTP 200.
func (p *pcloud) form(tb testing.TB, path string, params map[string]string) map[string]any {
	tb.Helper()
	params["sign"] = testkit.PCloudSign(params, p.m.PCloudAppSecret)
	v := url.Values{}
	for k, s := range params {
		v.Set(k, s)
	}
	req, err := http.NewRequest(http.MethodPost, p.s.URL()+path, strings.NewReader(v.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp := p.s.Do(tb, req)
	if resp.Status != http.StatusOK {
		tb.Fatalf("POST %s: status %d, body %s", path, resp.Status, resp.Body)
	}
	var out map[string]any
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		tb.Fatalf("POST %s: %s: %v", path, resp.Body, err)
	}
	return out
}

func (p *pcloud) prepare(tb testing.TB, payOrder, value string) string {
	tb.Helper()
	out := p.form(tb, "/gate/1.0/payment/trade/prepare", map[string]string{
		"app_id": p.m.PCloudAppID, "merchant": p.m.PCloudMerchant, "pay_order": payOrder, "subject": "停车支付", "value": value,
		"notify_url": p.recv.URL + "/pcloud/notify", "trade_scene": "GENERIC", "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"sign_type": "MD5",
	})
	id, _ := out["pay_id"].(string)
	if out["code"] != "1001" || len(id) != 24 || out["pay_url"] != "https://app.4pyun.com/payment/trade/create?pay_id="+id {
		tb.Fatalf("prepare %s: %v", payOrder, out)
	}
	return id
}

func (p *pcloud) query(tb testing.TB, payOrder string) map[string]any {
	tb.Helper()
	out := p.form(tb, "/gate/1.0/payment/trade/query", map[string]string{"app_id": p.m.PCloudAppID, "merchant": p.m.PCloudMerchant, "pay_order": payOrder})
	if out["code"] != "1001" || out["pay_order"] != payOrder {
		tb.Fatalf("query %s: %v", payOrder, out)
	}
	return out
}

func (p *pcloud) status(tb testing.TB, payOrder string) float64 {
	tb.Helper()
	return p.query(tb, payOrder)["status"].(float64)
}

// jump opens the half-screen cashier as the merchant's mini-program would,
// on a base library old enough to need embeddedAppIdList.
func (p *pcloud) jump(tb testing.TB, payID string) string {
	tb.Helper()
	out, err := p.m.Jump(context.Background(),
		testkit.OpenEmbeddedMiniProgram{AppID: "wxa204074068ad40ef", Path: "/external/payment/trade/create/index?pay_id=" + payID},
		testkit.Caller{AppID: p.m.AppID, Platform: "android", SDKVersion: "2.22.0",
			AppJSON: map[string]any{"embeddedAppIdList": []string{"wxa204074068ad40ef"}}})
	if err != nil || out.ErrMsg != "openEmbeddedMiniProgram:ok" || out.SessionID == "" {
		tb.Fatalf("jump: %+v, %v", out, err)
	}
	return out.SessionID
}

// back is what App.onShow receives when the user comes back.
func (p *pcloud) back(tb testing.TB, sessionID string) *testkit.Return {
	tb.Helper()
	out, err := p.s.Return(context.Background(), sessionID, 15*time.Second)
	if err != nil || out.Scene != 1038 || out.ReferrerInfo == nil || out.ReferrerInfo.AppID != "wxa204074068ad40ef" {
		tb.Fatalf("return: %+v, %v", out, err)
	}
	return out
}

func (p *pcloud) advance(tb testing.TB, by time.Duration) {
	tb.Helper()
	if err := p.m.AdvanceClock(context.Background(), by); err != nil {
		tb.Fatal(err)
	}
}

// next is the next trade-notify, whether its sign verifies or not; it must
// be about payOrder.
func (p *pcloud) next(tb testing.TB, payOrder string) notice {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := p.recv.Next(ctx)
	var verr *testkit.VerifyError
	if errors.As(err, &verr) {
		got = verr.Notification
	} else if err != nil {
		tb.Fatal(err)
	}
	if got.Kind != testkit.KindPCloud {
		tb.Fatalf("a %s notification, want a P云 trade-notify", got.Kind)
	}
	n := notice{params: got.Params, signedOK: err == nil, at: time.Now()}
	if n.params["pay_order"] != payOrder {
		tb.Fatalf("trade-notify for %q, want %q: %v", n.params["pay_order"], payOrder, n.params)
	}
	return n
}

// genuine is the next trade-notify, which must verify.
func (p *pcloud) genuine(tb testing.TB, payOrder string) map[string]string {
	tb.Helper()
	n := p.next(tb, payOrder)
	if !n.signedOK {
		tb.Fatalf("trade-notify sign does not verify: %v", n.params)
	}
	return n.params
}

type notificationRow struct {
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	DueAt    time.Time `json:"due_at"`
}

func (p *pcloud) rows(tb testing.TB, payOrder string) []notificationRow {
	tb.Helper()
	var out struct {
		Notifications []notificationRow `json:"notifications"`
	}
	p.s.JSON(tb, http.MethodGet, "/sandbox/v1/notifications?mchid="+demoMchID+"&ref="+payOrder, nil, http.StatusOK, &out)
	return out.Notifications
}

// TestEmbedPay drives prepare → jump → return → notify → query against the
// container for success, failure and paying → success, then the notify
// faults, each observed at the merchant's notify_url.
func TestEmbedPay(t *testing.T) {
	t.Parallel()
	p := newPCloud(t)

	t.Run("success", func(t *testing.T) {
		payID := p.prepare(t, "E2E-PAID", "100")
		if got := p.status(t, "E2E-PAID"); got != 0 {
			t.Errorf("before the jump: status %v, want 0", got)
		}
		ret := p.back(t, p.jump(t, payID)) // the user pays after 2 s
		e := ret.ReferrerInfo.ExtraData
		if e["status"] != float64(1) || e["value"] != "100" || e["pay_order"] != "E2E-PAID" || e["channel"] != "200201" {
			t.Fatalf("extraData %v, want status 1 for 100 fen", e)
		}
		n := p.genuine(t, "E2E-PAID")
		if n["status"] != "1" || n["pay_serial"] != e["pay_serial"] || n["value"] != "100" || n["app_id"] != p.m.PCloudAppID {
			t.Errorf("trade-notify %v does not match the return %v", n, e)
		}
		q := p.query(t, "E2E-PAID")
		if q["status"] != float64(1) || q["pay_serial"] != e["pay_serial"] || q["value"] != float64(100) {
			t.Errorf("query %v", q)
		}
	})

	t.Run("failure", func(t *testing.T) {
		ret := p.back(t, p.jump(t, p.prepare(t, "E2E-FAIL", "102")))
		if got := ret.ReferrerInfo.ExtraData["status"]; got != float64(-1) {
			t.Fatalf("extraData status %v, want -1", got)
		}
		if n := p.genuine(t, "E2E-FAIL"); n["status"] != "-1" {
			t.Errorf("trade-notify %v", n)
		}
		if got := p.status(t, "E2E-FAIL"); got != -1 {
			t.Errorf("query status %v, want -1", got)
		}
	})

	t.Run("paying then success", func(t *testing.T) {
		ret := p.back(t, p.jump(t, p.prepare(t, "E2E-PAYING", "103")))
		if got := ret.ReferrerInfo.ExtraData["status"]; got != float64(0) {
			t.Fatalf("extraData status %v, want 0", got)
		}
		if n := p.genuine(t, "E2E-PAYING"); n["status"] != "0" {
			t.Errorf("first trade-notify %v, want status 0", n)
		}
		if got := p.status(t, "E2E-PAYING"); got != 0 {
			t.Errorf("query status %v, want 0 while paying", got)
		}
		p.advance(t, 30*time.Second)
		if got := p.status(t, "E2E-PAYING"); got != 1 {
			t.Errorf("query status %v, want 1 thirty seconds on", got)
		}
		if n := p.genuine(t, "E2E-PAYING"); n["status"] != "1" {
			t.Errorf("second trade-notify %v, want status 1", n)
		}
	})

	t.Run("duplicate arrives twice", func(t *testing.T) {
		p.back(t, p.jump(t, p.prepare(t, "E2E-DUP", "111")))
		a, b := p.genuine(t, "E2E-DUP"), p.genuine(t, "E2E-DUP")
		if a["sign"] != b["sign"] || a["status"] != "1" {
			t.Errorf("got %v and %v, want the same status-1 notification twice", a, b)
		}
	})

	t.Run("out of order: a stale 0 after the 1", func(t *testing.T) {
		p.back(t, p.jump(t, p.prepare(t, "E2E-OOO", "112")))
		paid, stale := p.genuine(t, "E2E-OOO"), p.genuine(t, "E2E-OOO")
		if paid["status"] != "1" || stale["status"] != "0" || stale["trade_time"] >= paid["trade_time"] {
			t.Errorf("got %v then %v, want 1 then an older 0", paid, stale)
		}
		if got := p.status(t, "E2E-OOO"); got != 1 {
			t.Errorf("query status %v, want 1", got)
		}
	})

	t.Run("late: after the return", func(t *testing.T) {
		ret := p.back(t, p.jump(t, p.prepare(t, "E2E-LATE", "113")))
		returned := time.Now()
		if ret.ReferrerInfo.ExtraData["status"] != float64(1) {
			t.Fatalf("extraData %v", ret.ReferrerInfo.ExtraData)
		}
		rows := p.rows(t, "E2E-LATE")
		if len(rows) != 1 || rows[0].State != "pending" || rows[0].Attempts != 0 {
			t.Fatalf("rows %+v, want one notification not yet sent", rows)
		}
		p.advance(t, time.Minute)
		n := p.next(t, "E2E-LATE")
		if !n.signedOK || n.params["status"] != "1" || !n.at.After(returned) {
			t.Errorf("late trade-notify %v at %v, return at %v", n.params, n.at, returned)
		}
	})

	t.Run("never", func(t *testing.T) {
		p.back(t, p.jump(t, p.prepare(t, "E2E-NEVER", "114")))
		rows := p.rows(t, "E2E-NEVER")
		if len(rows) != 1 || rows[0].State != "dropped" || rows[0].Attempts != 0 {
			t.Errorf("rows %+v, want one dropped", rows)
		}
		if got := p.status(t, "E2E-NEVER"); got != 1 {
			t.Errorf("query status %v, want 1", got)
		}
	})

	t.Run("bad signature fails verification", func(t *testing.T) {
		p.back(t, p.jump(t, p.prepare(t, "E2E-SIGN", "115")))
		forged := p.next(t, "E2E-SIGN")
		if forged.signedOK {
			t.Fatalf("first trade-notify verifies, want a bad sign: %v", forged.params)
		}
		p.advance(t, 15*time.Second) // the receiver refused it: P云 retries
		if n := p.genuine(t, "E2E-SIGN"); n["status"] != "1" {
			t.Errorf("retry %v", n)
		}
	})
}
