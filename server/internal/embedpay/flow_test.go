package embedpay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// extraOf returns the return's extraData, nil after a close.
func extraOf(tb testing.TB, ret map[string]any) map[string]any {
	tb.Helper()
	if ret["scene"].(json.Number) != "1038" {
		tb.Fatalf("scene got %v, want 1038", ret["scene"])
	}
	ri := ret["referrerInfo"].(map[string]any)
	e, _ := ri["extraData"].(map[string]any)
	return e
}

// notified takes the next trade-notify, checks it against its schema and
// its sign, and returns its params.
func (w *world) notified(tb testing.TB) map[string]string {
	tb.Helper()
	got := w.recv.next(tb)
	raw, _ := json.Marshal(got.params)
	w.valid(SchemaNotifyRequest, raw)
	if !got.signedOK {
		tb.Fatalf("trade-notify sign does not verify: %s", got.raw)
	}
	return got.params
}

// waitFor waits for the worker or the session service, which run on their
// own goroutines, to reach a state; it never stands in for the clock.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settled waits until no notification of the trade is in flight: each is
// delivered, dropped, failed, or pending and not yet due.
func (w *world) settled(payOrder string) []*sandbox.Notification {
	w.tb.Helper()
	var ns []*sandbox.Notification
	waitFor(w.tb, "notifications of "+payOrder+" to settle", func() bool {
		ns = w.notifications(payOrder)
		for _, n := range ns {
			if n.State == sandbox.NotifyPending && !n.DueAt.After(w.now()) {
				return false
			}
		}
		return true
	})
	return ns
}

func TestStatusTimelines(t *testing.T) {
	type check struct {
		advance time.Duration
		status  string // what trade/query says after the advance
		notify  string // the status of the trade-notify that arrives then, "" for none
	}
	tests := []struct {
		name     string
		value    string // the magic value that picks the scenario
		scenario string
		ret      string // extraData.status, "" for no extraData
		checks   []check
	}{
		{"paid", "100", "embedpay.paid", "1", []check{{1 * time.Second, "1", "1"}, {time.Hour, "1", ""}}},
		{"failed", "102", "embedpay.failed", "-1", []check{{1 * time.Second, "-1", "-1"}}},
		{"paying then paid", "103", "embedpay.paying-then-paid", "0", []check{
			{0, "0", "0"}, {29 * time.Second, "0", ""}, {time.Second, "1", "1"},
		}},
		{"paying then failed", "104", "embedpay.paying-then-failed", "0", []check{
			{0, "0", "0"}, {30 * time.Second, "-1", "-1"},
		}},
		{"paying for ever", "105", "embedpay.paying", "0", []check{{0, "0", "0"}, {time.Hour, "0", ""}}},
		{"closed", "106", "embedpay.closed", "", []check{{0, "0", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			payOrder := "TL-" + tt.value
			payID := w.prepare(payOrder, tt.value)
			out := w.jump(w.caller(), cashierArgs(WeChatAppID, payID), nil, http.StatusOK)
			if out["scenario"] != tt.scenario {
				t.Fatalf("scenario got %v, want %s (picked by value %s)", out["scenario"], tt.scenario, tt.value)
			}
			sid := out["session_id"].(string)
			w.pending(sid)
			if got := w.status(payOrder); got != "0" {
				t.Fatalf("before the user acts: status %s, want 0", got)
			}
			w.advance(2 * time.Second) // every scenario's user acts after 2s
			extra := extraOf(t, w.returned(sid))
			switch {
			case tt.ret == "" && extra != nil:
				t.Fatalf("extraData got %v, want none after a close", extra)
			case tt.ret != "":
				if extra == nil || extra["status"].(json.Number).String() != tt.ret {
					t.Fatalf("extraData got %v, want status %s", extra, tt.ret)
				}
				want := map[string]any{"pay_order": payOrder, "channel": ChannelWeChatJSAPI, "value": tt.value,
					"trade_time": json.Number(strconv.FormatInt(base.Add(2*time.Second).UnixMilli(), 10))}
				for k, v := range want {
					if extra[k] != v {
						t.Errorf("extraData.%s got %v, want %v", k, extra[k], v)
					}
				}
			}
			for i, c := range tt.checks {
				w.advance(c.advance)
				if got := w.status(payOrder); got != c.status {
					t.Errorf("check %d (+%v): trade/query status %s, want %s", i, c.advance, got, c.status)
				}
				if c.notify == "" {
					w.settled(payOrder)
					w.recv.none(t)
					continue
				}
				n := w.notified(t)
				if n["status"] != c.notify || n["pay_order"] != payOrder || n["value"] != tt.value ||
					n["pay_serial"] != extra["pay_serial"] || n["app_id"] != w.m.PCloudAppID || n["merchant"] != w.m.PCloudMerchant {
					t.Errorf("check %d: trade-notify %v, want status %s of %s", i, n, c.notify, payOrder)
				}
				// The notify and the query agree: the status took effect at trade_time.
				ms, _ := strconv.ParseInt(n["trade_time"], 10, 64)
				if at := time.UnixMilli(ms); at.After(w.now()) {
					t.Errorf("check %d: trade_time %v is after the clock %v", i, at, w.now())
				}
			}
			for _, n := range w.settled(payOrder) {
				if n.State != sandbox.NotifyDelivered {
					t.Errorf("notification %s is %s, want delivered", n.ID, n.State)
				}
			}
		})
	}
}

func TestClosedTradeOpensAgain(t *testing.T) {
	w := newWorld(t)
	payID := w.prepare("AGAIN-1", "100")
	sid := w.open(payID, map[string]string{"X-Sandbox-Scenario": "embedpay.closed"})
	w.advance(2 * time.Second)
	if extra := extraOf(t, w.returned(sid)); extra != nil {
		t.Fatalf("extraData after close: %v", extra)
	}
	sid = w.open(payID, nil)
	w.advance(2 * time.Second)
	if extra := extraOf(t, w.returned(sid)); extra["status"].(json.Number) != "1" {
		t.Fatalf("second attempt: extraData %v, want status 1", extra)
	}
}

func TestScenarioFromPrepareHeader(t *testing.T) {
	w := newWorld(t)
	p := w.prepareParams("HDR-1", "100")
	out, _ := w.post("/gate/1.0/payment/trade/prepare", formType, form(p, w.m.PCloudAppSecret),
		map[string]string{"X-Sandbox-Scenario": "embedpay.failed"})
	res := w.jump(w.caller(), cashierArgs(WeChatAppID, out["pay_id"].(string)), nil, http.StatusOK)
	if res["scenario"] != "embedpay.failed" {
		t.Errorf("scenario got %v, want the one named at prepare", res["scenario"])
	}
	// The jump's own choice wins over prepare's.
	w.prepare("HDR-2", "102")
	p = w.prepareParams("HDR-3", "102")
	out, _ = w.post("/gate/1.0/payment/trade/prepare", formType, form(p, w.m.PCloudAppSecret), nil)
	res = w.jump(w.caller(), cashierArgs(WeChatAppID, out["pay_id"].(string)), map[string]string{"X-Sandbox-Scenario": "embedpay.paid"}, http.StatusOK)
	if res["scenario"] != "embedpay.paid" {
		t.Errorf("scenario got %v, want the jump's header over the magic value", res["scenario"])
	}
}

func TestNotifyFaults(t *testing.T) {
	t.Run("duplicate arrives twice", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("F-DUP", "111"), nil)
		if extraOf(t, w.returned(sid))["status"].(json.Number) != "1" {
			t.Fatal("want status 1 at once")
		}
		first, second := w.recv.next(t), w.recv.next(t)
		if string(first.raw) != string(second.raw) || !first.signedOK {
			t.Errorf("got\n%s\n%s\nwant the same genuine notification twice", first.raw, second.raw)
		}
		ns := w.settled("F-DUP")
		if len(ns) != 1 || ns[0].State != sandbox.NotifyDelivered || ns[0].Attempts != 2 {
			t.Errorf("rows: %+v, want one delivered after 2 attempts", ns)
		}
	})
	t.Run("out of order: a stale 0 after the 1", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("F-OOO", "112"), nil)
		w.returned(sid)
		paid, stale := w.notified(t), w.notified(t)
		if paid["status"] != "1" || stale["status"] != "0" {
			t.Fatalf("got status %s then %s, want 1 then 0", paid["status"], stale["status"])
		}
		if paid["pay_serial"] != stale["pay_serial"] || stale["trade_time"] >= paid["trade_time"] {
			t.Errorf("stale %v should be the same trade at an earlier trade_time than %v", stale, paid)
		}
		if got := w.status("F-OOO"); got != "1" {
			t.Errorf("trade/query got %s, want 1: the stale notification changes nothing", got)
		}
	})
	t.Run("late: after the return", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("F-LATE", "113"), nil)
		if extraOf(t, w.returned(sid))["status"].(json.Number) != "1" {
			t.Fatal("want the user back with status 1 at once")
		}
		ns := w.settled("F-LATE")
		if len(ns) != 1 || ns[0].Attempts != 0 || !ns[0].DueAt.Equal(base.Add(time.Minute)) {
			t.Fatalf("rows %+v, want one unsent, due a minute after the return", ns)
		}
		w.advance(59 * time.Second)
		w.settled("F-LATE")
		w.recv.none(t)
		w.advance(time.Second)
		if n := w.notified(t); n["status"] != "1" {
			t.Errorf("got %v", n)
		}
	})
	t.Run("never", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("F-NEVER", "114"), nil)
		w.returned(sid)
		w.advance(24 * time.Hour)
		ns := w.settled("F-NEVER")
		if len(ns) != 1 || ns[0].State != sandbox.NotifyDropped || ns[0].Attempts != 0 {
			t.Fatalf("rows %+v, want one dropped, never attempted", ns)
		}
		w.recv.none(t)
		if got := w.status("F-NEVER"); got != "1" {
			t.Errorf("trade/query got %s, want 1: only the notification is lost", got)
		}
	})
	t.Run("bad signature, then the genuine one", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("F-SIGN", "115"), nil)
		w.returned(sid)
		forged := w.recv.next(t)
		if forged.signedOK || forged.params["status"] != "1" {
			t.Fatalf("first attempt %s: want status 1 with a sign that fails verification", forged.raw)
		}
		ns := w.settled("F-SIGN")
		if ns[0].State != sandbox.NotifyPending || ns[0].Attempts != 1 {
			t.Fatalf("after the refusal: %+v, want pending for a retry", ns[0])
		}
		w.advance(15 * time.Second)
		if n := w.notified(t); n["status"] != "1" {
			t.Errorf("retry: %v", n)
		}
		if ns := w.settled("F-SIGN"); ns[0].State != sandbox.NotifyDelivered {
			t.Errorf("after the genuine one: %s, want delivered", ns[0].State)
		}
	})
	t.Run("retry after two failed attempts", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("F-RETRY", "116"), nil)
		w.returned(sid)
		for attempts := 1; attempts <= 2; attempts++ {
			waitFor(t, fmt.Sprintf("attempt %d", attempts), func() bool { return w.notifications("F-RETRY")[0].Attempts == attempts })
			w.recv.none(t)
			w.advance(15 * time.Second)
		}
		if n := w.notified(t); n["status"] != "1" {
			t.Errorf("third attempt: %v", n)
		}
	})
}

func TestJumpRules(t *testing.T) {
	w := newWorld(t)
	payID := w.prepare("J-1", "100")
	otherParams := map[string]string{
		"app_id": w.other.PCloudAppID, "merchant": w.other.PCloudMerchant, "pay_order": "J-OTHER",
		"subject": "x", "value": "100", "notify_url": w.recv.url, "trade_scene": "GENERIC",
	}
	out, _ := w.post("/gate/1.0/payment/trade/prepare", formType, form(otherParams, w.other.PCloudAppSecret), nil)
	otherPayID := out["pay_id"].(string)
	wxWith := func(sdk string, appJSON any) map[string]any {
		c := w.caller()
		c["sdkVersion"] = sdk
		if appJSON != nil {
			c["appJson"] = appJSON
		}
		return c
	}
	tests := []struct {
		name   string
		caller map[string]any
		args   map[string]any
		want   []sandbox.Violation // nil: the jump succeeds
	}{
		{name: "current WeChat", caller: w.caller(), args: cashierArgs(WeChatAppID, payID)},
		{name: "2.23.1 needs no list", caller: wxWith("2.23.1", nil), args: cashierArgs(WeChatAppID, payID)},
		{name: "2.22.0 with the list", caller: wxWith("2.22.0", map[string]any{"embeddedAppIdList": []string{WeChatAppID}}), args: cashierArgs(WeChatAppID, payID)},
		{name: "path without a leading slash", caller: w.caller(), args: map[string]any{"appId": WeChatAppID, "path": CashierPage + "?pay_id=" + payID}},
		{
			name: "2.22.0 without the list", caller: wxWith("2.22.0", map[string]any{"embeddedAppIdList": []string{"wx0000000000000000"}}),
			args: cashierArgs(WeChatAppID, payID),
			want: []sandbox.Violation{v("/caller/appJson/embeddedAppIdList", `must list "wxa204074068ad40ef": below base library 2.23.1 (the caller has 2.22.0) app.json declares every half-screen target`)},
		},
		{
			name: "base library too old", caller: wxWith("2.19.9", nil), args: cashierArgs(WeChatAppID, payID),
			want: []sandbox.Violation{v("/caller/sdkVersion", "wx.openEmbeddedMiniProgram needs base library 2.20.1 or later; the caller has 2.19.9")},
		},
		{
			name: "Alipay's cashier from WeChat", caller: w.caller(), args: cashierArgs(AlipayAppID, payID),
			want: []sandbox.Violation{v("/args/appId", "2021004130621008 is P云's Alipay mini-program; a WeChat caller opens wxa204074068ad40ef (or says caller.platform: alipay)")},
		},
		{
			name: "WeChat's cashier from Alipay", caller: map[string]any{"appId": w.m.AppID, "platform": "alipay"}, args: cashierArgs(WeChatAppID, payID),
			want: []sandbox.Violation{v("/args/appId", "wxa204074068ad40ef is P云's WeChat mini-program; an Alipay caller (my.openEmbeddedMiniProgram) opens 2021004130621008")},
		},
		{
			name: "another page", caller: w.caller(), args: map[string]any{"appId": WeChatAppID, "path": "/pages/index/index?pay_id=" + payID},
			want: []sandbox.Violation{v("/args/path", `page "/pages/index/index" is not P云's cashier; open /external/payment/trade/create/index?pay_id=<pay_id from trade/prepare>`)},
		},
		{
			name: "no pay_id", caller: w.caller(), args: map[string]any{"appId": WeChatAppID, "path": "/" + CashierPage},
			want: []sandbox.Violation{v("/args/path", "has no pay_id: append ?pay_id=<pay_id from trade/prepare>")},
		},
		{
			name: "unknown pay_id", caller: w.caller(), args: cashierArgs(WeChatAppID, "620000000000000000000000"),
			want: []sandbox.Violation{v("/args/path", "pay_id 620000000000000000000000 was not prepared by merchant 1230000109 (P云 app_id op0096196358123123): prepare the trade with this merchant's app_id")},
		},
		{
			name: "another merchant's pay_id", caller: w.caller(), args: cashierArgs(WeChatAppID, otherPayID),
			want: []sandbox.Violation{v("/args/path", "pay_id "+otherPayID+" was not prepared by merchant 1230000109 (P云 app_id op0096196358123123): prepare the trade with this merchant's app_id")},
		},
		{
			name: "every problem at once", caller: wxWith("2.21.0", nil),
			args: map[string]any{"appId": AlipayAppID, "path": "/pages/pay", "appid": "typo", "envVersion": "beta"},
			want: []sandbox.Violation{
				v("/args/appid", `additional property "appid" is not allowed`),
				v("/args/envVersion", `value must be one of "develop", "trial", "release"`),
				v("/args/appId", "2021004130621008 is P云's Alipay mini-program; a WeChat caller opens wxa204074068ad40ef (or says caller.platform: alipay)"),
				v("/args/path", `page "/pages/pay" is not P云's cashier; open /external/payment/trade/create/index?pay_id=<pay_id from trade/prepare>`),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := http.StatusOK
			if tt.want != nil {
				status = http.StatusBadRequest
			}
			out := w.jump(tt.caller, tt.args, map[string]string{"X-Sandbox-Scenario": "embedpay.manual"}, status)
			if tt.want == nil {
				if out["errMsg"] != "openEmbeddedMiniProgram:ok" {
					t.Fatalf("got %v", out)
				}
				return
			}
			raw, _ := json.Marshal(out["violations"])
			var got []sandbox.Violation
			_ = json.Unmarshal(raw, &got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations\ngot  %+v\nwant %+v", got, tt.want)
			}
			if msg := out["errMsg"].(string); !strings.HasPrefix(msg, "openEmbeddedMiniProgram:fail ") || !strings.Contains(msg, tt.want[0].Message) {
				t.Errorf("errMsg got %q", msg)
			}
		})
	}
}

func TestAlipayCashier(t *testing.T) {
	w := newWorld(t)
	payID := w.prepare("ALI-1", "100")
	out := w.jump(map[string]any{"appId": w.m.AppID, "platform": "alipay"}, cashierArgs(AlipayAppID, payID), nil, http.StatusOK)
	w.advance(2 * time.Second)
	ret := w.returned(out["session_id"].(string))
	if ret["referrerInfo"].(map[string]any)["appId"] != AlipayAppID {
		t.Errorf("referrerInfo got %v, want Alipay's cashier", ret["referrerInfo"])
	}
	if extra := extraOf(t, ret); extra["channel"] != ChannelAlipay {
		t.Errorf("channel got %v, want %s", extra["channel"], ChannelAlipay)
	}
	w.advance(time.Second)
	if n := w.notified(t); n["channel"] != ChannelAlipay || n["pay_mode_desc"] != "支付宝" {
		t.Errorf("trade-notify %v", n)
	}
}

func TestManualSessions(t *testing.T) {
	ctx := context.Background()
	for _, action := range []string{ActionPay, ActionFail, ActionPaying, ActionClose} {
		t.Run(action, func(t *testing.T) {
			w := newWorld(t)
			sid := w.open(w.prepare("M-1", "199"), nil)
			w.advance(10 * time.Minute) // a person takes their time; the pay_id expired meanwhile, the cashier was open
			w.pending(sid)
			if _, err := w.Sessions.Resolve(ctx, sid, action); err != nil {
				t.Fatalf("resolve %s: %v", action, err)
			}
			extra := extraOf(t, w.returned(sid))
			want, ok := actionStatus(action)
			switch {
			case !ok && extra != nil:
				t.Errorf("extraData %v after close", extra)
			case ok && (extra == nil || extra["status"].(json.Number).String() != strconv.Itoa(want)):
				t.Errorf("extraData %v, want status %d", extra, want)
			case ok && extra["trade_time"].(json.Number).String() != strconv.FormatInt(base.Add(10*time.Minute).UnixMilli(), 10):
				t.Errorf("trade_time %v, want the moment the person chose", extra["trade_time"])
			}
		})
	}
	t.Run("unknown action", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("M-2", "199"), nil)
		_, err := w.Sessions.Resolve(ctx, sid, "refund")
		if !sandbox.IsCode(err, sandbox.CodeInvalid) || !strings.Contains(err.Error(), "pay, fail, paying, close") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("timeout is a close", func(t *testing.T) {
		w := newWorld(t)
		sid := w.open(w.prepare("M-3", "199"), nil)
		w.advance(30 * time.Minute)
		if extra := extraOf(t, w.returned(sid)); extra != nil {
			t.Errorf("extraData %v after a timeout", extra)
		}
	})
}

// TestTwoSessionsOnePayID: two cashiers open on one pay_id; whichever pays
// first fixes the trade, the other comes back with the same trade, and
// only one set of notifications goes out — also when both act at once.
func TestTwoSessionsOnePayID(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	payID := w.prepare("TWO-1", "199")
	a, b := w.open(payID, nil), w.open(payID, nil)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, sid := range []string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.Sessions.Resolve(ctx, sid, []string{ActionPay, ActionFail}[i])
		}()
	}
	wg.Wait()
	for i, sid := range []string{a, b} {
		if sandbox.IsCode(errs[i], sandbox.CodeConflict) {
			// Lost the race on the trade: the person tries again and sees
			// the winner's trade.
			if _, errs[i] = w.Sessions.Resolve(ctx, sid, ActionPay); errs[i] != nil {
				t.Fatalf("retry %s: %v", sid, errs[i])
			}
		} else if errs[i] != nil {
			t.Fatalf("resolve %s: %v", sid, errs[i])
		}
	}
	ea, eb := extraOf(t, w.returned(a)), extraOf(t, w.returned(b))
	if ea["pay_serial"] != eb["pay_serial"] || ea["status"] != eb["status"] {
		t.Errorf("the two returns disagree: %v vs %v", ea, eb)
	}
	if ns := w.notifications("TWO-1"); len(ns) != 1 {
		t.Errorf("got %d notifications, want 1", len(ns))
	}
	if got, want := w.status("TWO-1"), eb["status"].(json.Number).String(); got != want {
		t.Errorf("trade/query %s, returns %s", got, want)
	}
}

func TestAcknowledged(t *testing.T) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p := &Product{d: sandbox.Deps{Validator: set}}
	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"P云's own example", 200, `{"code":"1001","message":"通知成功","hint":""}`, true},
		{"code only", 200, `{"code":"1001"}`, true},
		{"code as a number", 200, `{"code":1001}`, false},
		{"an array", 200, `[{"code":"1001"}]`, false},
		{"trailing data", 200, `{"code":"1001"} ok`, false},
		{"another code", 200, `{"code":"1000"}`, false},
		{"WeChat's SUCCESS", 200, `{"code":"SUCCESS"}`, false},
		{"plain text", 200, `success`, false},
		{"empty", 200, ``, false},
		{"1001 with a 500", 500, `{"code":"1001"}`, false},
		{"204", 204, ``, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Acknowledged(tt.status, []byte(tt.body)); got != tt.want {
				t.Errorf("Acknowledged(%d, %s) = %v, want %v", tt.status, tt.body, got, tt.want)
			}
		})
	}
}

func TestCheckScenario(t *testing.T) {
	d := func(s string) sandbox.Duration { v, _ := time.ParseDuration(s); return sandbox.Duration(v) }
	for _, tt := range []struct {
		name string
		sc   sandbox.Scenario
		want string
	}{
		{"unknown action", sandbox.Scenario{User: sandbox.UserStep{Action: "refund"}}, `user.action "refund" is not one of pay, fail, paying, close`},
		{"timeline after a close", sandbox.Scenario{User: sandbox.UserStep{Action: ActionClose},
			Timeline: []sandbox.Step{{After: d("1s"), Set: map[string]any{"status": 1}}}}, "a timeline needs a user who pays"},
		{"another field", sandbox.Scenario{User: sandbox.UserStep{Action: ActionPaying},
			Timeline: []sandbox.Step{{After: d("1s"), Set: map[string]any{"state": 1}}}}, "timeline[0].set.state: embedpay timelines set only status"},
		{"status 2", sandbox.Scenario{User: sandbox.UserStep{Action: ActionPaying},
			Timeline: []sandbox.Step{{After: d("1s"), Set: map[string]any{"status": 2.0}}}}, "timeline[0].set.status 2 is not 1, -1 or 0"},
		{"back in time", sandbox.Scenario{User: sandbox.UserStep{Action: ActionPaying},
			Timeline: []sandbox.Step{{After: d("2s"), Set: map[string]any{"status": 0}}, {After: d("1s"), Set: map[string]any{"status": 1}}}},
			"timeline[1].after 1s is before the step above it"},
		{"a final status moves", sandbox.Scenario{User: sandbox.UserStep{Action: ActionPay},
			Timeline: []sandbox.Step{{After: d("5s"), Set: map[string]any{"status": -1}}}}, "timeline[0] moves the final status 1 to -1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.sc.ID, tt.sc.File = "embedpay.x", "scenarios/embedpay/x.yaml"
			err := CheckScenario(&tt.sc)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "embedpay.x (scenarios/embedpay/x.yaml)") {
				t.Errorf("got %v, want %q naming the file", err, tt.want)
			}
		})
	}
}

func TestPlanFor(t *testing.T) {
	at := base
	sc := &sandbox.Scenario{
		Timeline: []sandbox.Step{
			{After: 0, Set: map[string]any{"status": json.Number("0")}},
			{After: sandbox.Duration(30 * time.Second), Set: map[string]any{"status": 1}},
		},
	}
	pl := planFor(sc, ActionPaying, at)
	want := []point{{at, 0}, {at.Add(30 * time.Second), 1}}
	if !slices.Equal(pl.points, want) {
		t.Errorf("got %v, want %v", pl.points, want)
	}
	tr := &trade{Points: pl.points, ExpireAt: at.Add(time.Minute)}
	for _, c := range []struct {
		at   time.Duration
		want int
	}{{-time.Second, 0}, {0, 0}, {29 * time.Second, 0}, {30 * time.Second, 1}, {time.Hour, 1}} {
		if got, _, _ := tr.statusAt(at.Add(c.at)); got != c.want {
			t.Errorf("statusAt(+%v) = %d, want %d", c.at, got, c.want)
		}
	}
	unpaid := &trade{ExpireAt: at.Add(time.Minute)}
	if got, _, _ := unpaid.statusAt(at.Add(time.Minute)); got != StatusFailed {
		t.Errorf("an expired unpaid trade: %d, want -1", got)
	}
}

// TestScenarioCatalogue: every embedpay scenario of the embedded catalogue
// is one this product plays, and the docs list each one with its magic
// value, like test card numbers.
func TestScenarioCatalogue(t *testing.T) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := scenario.Load(scenarios.FS, set)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../../docs/products/embedpay.md")
	if err != nil {
		t.Fatal(err)
	}
	list := cat.List(sandbox.ProductEmbedPay)
	if len(list) < 12 {
		t.Fatalf("got %d embedpay scenarios, want the catalogue of docs/products/embedpay.md", len(list))
	}
	faults := map[string]bool{}
	for _, sc := range list {
		if err := CheckScenario(sc); err != nil {
			t.Error(err)
		}
		if len(sc.Magic) != 1 || sc.Magic[0].Field != "value" || sc.Magic[0].Equals == "" {
			t.Errorf("%s: want one magic value", sc.ID)
			continue
		}
		row := "| `" + sc.Magic[0].Equals + "`"
		i := strings.Index(string(doc), row)
		if i < 0 || !strings.Contains(strings.SplitN(string(doc)[i:], "\n", 2)[0], "`"+sc.ID+"`") {
			t.Errorf("docs/products/embedpay.md has no row %s… naming %s", row, sc.ID)
		}
		for _, f := range sc.Notify.Faults {
			faults[f] = true
		}
	}
	for _, f := range []string{FaultDuplicate, FaultOutOfOrder, FaultLate, FaultDrop, FaultBadSignature} {
		if !faults[f] {
			t.Errorf("no scenario exercises the %s fault", f)
		}
	}
}

// BenchmarkPrepareJumpReturn measures the merchant's whole round trip over
// loopback HTTP: trade/prepare, the jump (resolved at once), the return.
// Its notifications are dropped (value 114), so that only this path counts.
func BenchmarkPrepareJumpReturn(b *testing.B) {
	w := newWorld(b)
	b.ResetTimer()
	for i := range b.N {
		payOrder := "B-" + strconv.Itoa(i)
		sid := w.open(w.prepare(payOrder, "114"), nil)
		w.returned(sid)
	}
}

// BenchmarkJump is the bench's jump path in process: an
// openEmbeddedMiniProgram over loopback HTTP to one of 100 prepared trades
// whose user closes the half screen (value 106, embedpay.closed), so that
// a pay_id opens again and again.
func BenchmarkJump(b *testing.B) {
	w := newWorld(b)
	bodies := make([][]byte, 100)
	for i := range bodies {
		payID := w.prepare("J-"+strconv.Itoa(i), "106")
		bodies[i], _ = json.Marshal(map[string]any{"caller": w.caller(), "args": cashierArgs(WeChatAppID, payID)})
	}
	url := w.Server.URL + "/miniprogram/v1/openEmbeddedMiniProgram"
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		resp, err := http.Post(url, "application/json", bytes.NewReader(bodies[i%len(bodies)]))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("jump: %d", resp.StatusCode)
		}
		i++
	}
}
