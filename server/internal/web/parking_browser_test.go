package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"
)

// events is a v3 notify_url on loopback that keeps the event_type of each
// notification it acknowledges.
type events struct {
	*httptest.Server
	mu  sync.Mutex
	got []string
}

func newEvents(t *testing.T) *events {
	t.Helper()
	e := &events{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n struct {
			EventType string `json:"event_type"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &n)
		e.mu.Lock()
		e.got = append(e.got, n.EventType)
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// press clicks the element in the page's own turn: the parking and
// sessions views redraw on live journal events, so a node found by one
// protocol call may be gone by the next (chromedp's click).
func press(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(visible(sel), chromedp.Evaluate[chromedp.Void](`document.querySelector(`+strconv.Quote(sel)+`).click()`))
}

// TestQAPageDrivesTheParkingFlow: in a real browser against the real
// binary, QA chooses the outcome of the merchant's next deductions on the
// parking tab (WeChat advances it), the merchant's backend enters and
// deducts with wechatpay-go, the page shows the entry, the advanced
// deduction (BPA, user_repaid N) and the notification sent; QA makes the
// user's repayment fail, then succeed: the page shows user_repaid Y,
// TRANSACTION.PAY_BACK and the blocked entry NORMAL again, and the SDK's
// query and the notify_url agree. Then the entry-blocked outcome and back
// to the default.
func TestQAPageDrivesTheParkingFlow(t *testing.T) {
	b := newBrowser(t)
	s := startSandbox(t, "127.0.0.1:0")
	qa := b.ctx
	ps := newPayScore(t, s)
	recv := newEvents(t)
	parkings := wexinpayscoreparking.ParkingsApiService{Client: ps.client}
	txs := wexinpayscoreparking.TransactionsApiService{Client: ps.client}
	var u struct {
		OpenID      string `json:"openid"`
		PlateNumber string `json:"plate_number"`
		Plates      []struct {
			PlateColor string `json:"plate_color"`
		} `json:"plates"`
	}
	s.json(t, http.MethodPost, "/sandbox/v1/vehicle-users", map[string]any{"mchid": demoMchID, "user_state": "NORMAL"}, http.StatusCreated, &u)
	color := wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr()
	ctx := context.Background()
	enter := func(no string) *wexinpayscoreparking.Parking {
		t.Helper()
		p, _, err := parkings.CreateParking(ctx, wexinpayscoreparking.CreateParkingRequest{
			OutParkingNo: core.String(no), PlateNumber: core.String(u.PlateNumber), PlateColor: color,
			NotifyUrl: core.String(recv.URL + "/parking"), StartTime: core.Time(time.Now()),
			ParkingName: core.String("QA 停车场"), FreeDuration: core.Int64(600)})
		if err != nil {
			t.Fatalf("CreateParking %s: %v", no, err)
		}
		return p
	}
	activeRepayment := func() string {
		t.Helper()
		var out struct {
			Products map[string]struct {
				Active *struct {
					ID string `json:"id"`
				} `json:"active"`
			} `json:"products"`
		}
		s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/scenarios", nil, http.StatusOK, &out)
		if a := out.Products["repayment"].Active; a != nil {
			return a.ID
		}
		return ""
	}
	user := `.vehicle-user[data-openid="` + u.OpenID + `"]`

	do(t, qa, "choose the advance",
		chromedp.Navigate(s.URL+"/#parking"),
		visible(`#parking-outcome [data-outcome=""].on`),
		visible(user+`[data-state="NORMAL"]`),
		press(`#parking-outcome [data-outcome="repayment.parking-advanced"]`),
		visible(`#parking-outcome [data-outcome="repayment.parking-advanced"].on`),
	)
	if got := activeRepayment(); got != "repayment.parking-advanced" {
		t.Fatalf("active repayment scenario after the click: %q", got)
	}

	// The merchant's backend: an entry, then a deduction with no magic
	// prefix, so the outcome QA chose decides it.
	in := enter("QAIN1")
	tx, _, err := txs.CreateTransaction(ctx, wexinpayscoreparking.CreateTransactionRequest{
		Appid: core.String(ps.c["appid"]), Description: core.String("停车费"), OutTradeNo: core.String("QAPARK1"),
		TradeScene: core.String("PARKING"), NotifyUrl: core.String(recv.URL + "/parking"),
		Amount: &wexinpayscoreparking.OrderAmount{Total: core.Int64(800)},
		ParkingInfo: &wexinpayscoreparking.ParkingTradeScene{ParkingId: in.Id, PlateNumber: core.String(u.PlateNumber),
			PlateColor: color, StartTime: core.Time(time.Now().Add(-time.Hour)), EndTime: core.Time(time.Now()),
			ParkingName: core.String("QA 停车场"), ChargingDuration: core.Int64(3000), DeviceId: core.String("QA-GATE")}})
	if err != nil || *tx.TradeState != "ACCEPTED" {
		t.Fatalf("CreateTransaction: %v, %v", tx, err)
	}
	deduction := user + ` tr[data-out-trade-no="QAPARK1"]`
	do(t, qa, "see the advance, live",
		visible(user+`[data-state="OVERDUE"]`),
		visible(user+` tr[data-out-parking-no="QAIN1"][data-state="NORMAL"]`),
		visible(deduction+`[data-trade-state="SUCCESS"][data-bank-type="BPA"][data-user-repaid="N"]`),
		visible(deduction+` [data-event="TRANSACTION.SUCCESS"][data-state="delivered"]`),
	)
	if p := enter("QAIN2"); *p.State != "BLOCKED" || *p.BlockReason != "OVERDUE" {
		t.Fatalf("entry of a user who owes: %v", p)
	}
	screenshot(t, qa, "parking")

	do(t, qa, "the repayment fails",
		press(`#tabs [data-view="parking"]`),
		visible(user+` tr[data-out-parking-no="QAIN2"][data-state="BLOCKED"]`),
		press(user+` [data-op="repay-fail"]`),
		visible(user+`[data-state="OVERDUE"][data-last-attempt="fail"]`),
	)
	var after struct {
		Users []struct {
			OpenID      string `json:"openid"`
			UserState   string `json:"user_state"`
			LastAttempt *struct {
				Action string `json:"action"`
			} `json:"last_attempt"`
		} `json:"users"`
	}
	s.json(t, http.MethodGet, "/sandbox/v1/vehicle-users?mchid="+demoMchID+"&user_state=OVERDUE", nil, http.StatusOK, &after)
	found := false
	for _, x := range after.Users {
		found = found || x.OpenID == u.OpenID && x.LastAttempt != nil && x.LastAttempt.Action == "fail"
	}
	if !found {
		t.Fatalf("after the failed repayment: %+v, want the user OVERDUE with the failed attempt", after.Users)
	}

	do(t, qa, "the user repays",
		press(user+` [data-op="repay"]`),
		visible(user+`[data-state="NORMAL"][data-owed="0"][data-last-attempt="repay"]`),
		visible(deduction+`[data-user-repaid="Y"]`),
		visible(deduction+` [data-event="TRANSACTION.PAY_BACK"][data-state="delivered"]`),
		visible(user+` tr[data-out-parking-no="QAIN2"][data-state="NORMAL"] [data-event="VEHICLE.ENTRANCE_STATE_CHANGE"][data-state="delivered"]`),
	)
	q, _, err := txs.QueryTransaction(ctx, wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String("QAPARK1")})
	if err != nil || *q.UserRepaid != "Y" || *q.BankType != "BPA" {
		t.Fatalf("QueryTransaction after the repayment: %v, %v", q, err)
	}
	if got := recv.list(); !slices.Contains(got, "TRANSACTION.PAY_BACK") || !slices.Contains(got, "VEHICLE.ENTRANCE_STATE_CHANGE") {
		t.Fatalf("the notify_url got %v, want PAY_BACK and ENTRANCE_STATE_CHANGE", got)
	}

	do(t, qa, "choose the blocked entry",
		press(`#parking-outcome [data-outcome="repayment.parking-entry-blocked"]`),
		visible(`#parking-outcome [data-outcome="repayment.parking-entry-blocked"].on`),
	)
	if p := enter("QAIN3"); *p.State != "BLOCKED" || *p.BlockReason != "EVALUATION_FAILED" {
		t.Fatalf("entry under the blocked outcome: %v", p)
	}
	do(t, qa, "see it, then back to the default",
		visible(user+` tr[data-out-parking-no="QAIN3"][data-state="BLOCKED"]`),
		press(`#parking-outcome [data-outcome=""]`),
		visible(`#parking-outcome [data-outcome=""].on`),
	)
	if got := activeRepayment(); got != "" {
		t.Fatalf("active repayment scenario after the default: %q", got)
	}
}

// TestQAPageShowsPartnerMode: QA adds a sub-merchant on the overview,
// which makes the merchant a service provider; a partner-mode 支付分 order
// for it shows its sub_mchid on the session and on its notifications;
// removing the sub-merchant leaves a direct merchant.
func TestQAPageShowsPartnerMode(t *testing.T) {
	const sub, subApp = "1900000109", "wx00000000000000a1"
	b := newBrowser(t)
	s := startSandbox(t, "127.0.0.1:0")
	qa := b.ctx
	subs := func() []map[string]any {
		t.Helper()
		var m struct {
			Subs []map[string]any `json:"sub_merchants"`
		}
		s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID, nil, http.StatusOK, &m)
		return m.Subs
	}
	do(t, qa, "add a sub-merchant",
		chromedp.Navigate(s.URL+"/"),
		visible(`#sub-merchant-form`),
		chromedp.SetValue(chromedp.CSS(`#sub-merchant-form [name="sub_mchid"]`), sub),
		chromedp.SetValue(chromedp.CSS(`#sub-merchant-form [name="sub_appid"]`), subApp),
		press(`#sub-merchant-form button[type="submit"]`),
		visible(`#sub-merchants [data-sub-mchid="`+sub+`"]`),
	)
	if got := subs(); len(got) != 1 || got[0]["sub_mchid"] != sub || got[0]["sub_appid"] != subApp {
		t.Fatalf("sub_merchants after the form: %v", got)
	}

	ps := newPayScore(t, s)
	sid := ps.openFor(t, sub, subApp, "PSMANUALQA1")
	do(t, qa, "the session is marked",
		press(`#tabs [data-view="sessions"]`),
		visible(`[data-session="`+sid+`"][data-sub-mchid="`+sub+`"]`),
	)
	s.json(t, http.MethodPost, "/sandbox/v1/sessions/"+sid+"/resolve", map[string]any{"action": "confirm"}, http.StatusOK, nil)
	s.json(t, http.MethodPost, "/sandbox/v1/clock/advance", map[string]any{"mchid": demoMchID, "by": "2s"}, http.StatusOK, nil)
	do(t, qa, "its notifications are marked",
		press(`#tabs [data-view="notifications"]`),
		visible(`.order[data-sub-mchid="`+sub+`"] [data-notify]`),
	)
	got := get(t, qa, "the order's notification", text(`.order[data-sub-mchid="`+sub+`"] .n-head strong`))
	if got != "PAYSCORE.USER_CONFIRM" {
		t.Fatalf("the partner order's notification: %q, want PAYSCORE.USER_CONFIRM", got)
	}

	do(t, qa, "remove it",
		press(`#tabs [data-view="overview"]`),
		press(`#sub-merchants [data-sub-mchid="`+sub+`"] [data-op="remove"]`),
		chromedp.WaitNotPresent(chromedp.CSS(`#sub-merchants [data-sub-mchid]`)),
	)
	if got := subs(); len(got) != 0 {
		t.Fatalf("sub_merchants after remove: %v", got)
	}
}
