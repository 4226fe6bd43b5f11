package embedpay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// openArgs is what the cashier reads of the object the merchant passes to
// wx.openEmbeddedMiniProgram (or my.openEmbeddedMiniProgram); the schema
// lists what else may be there.
type openArgs struct {
	AppID string
	Path  string
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// Launch handles openEmbeddedMiniProgram to P云's cashier. It checks every
// rule at once — the target for the caller's platform, the base library and
// embeddedAppIdList, the cashier page, and the pay_id: it exists, belongs to
// the caller's merchant, is unexpired; one already paid for is a warning —
// and picks the scenario:
// the header or caller.scenario, else the one named at prepare, else a magic
// value, the merchant's active one, the default.
func (p *Product) Launch(ctx context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	vs, err := sandbox.ValidateAt(p.d.Validator, SchemaOpenArgs, call.Doc, "/args")
	if err != nil {
		return nil, err
	}
	// Keys are matched exactly, as JavaScript does: encoding/json would let
	// a stray "appid" stand in for "appId".
	args := openArgs{AppID: asString(call.Doc["appId"]), Path: asString(call.Doc["path"])}
	vs = append(vs, checkCaller(call.Caller, args.AppID)...)
	var t *trade
	payID, pathVs := cashierPayID(args.Path)
	vs = append(vs, pathVs...)
	if payID != "" {
		var tradeVs []sandbox.Violation
		t, tradeVs, err = p.launchable(ctx, call.Merchant, payID, p.d.Clock.Now(call.Merchant.MchID))
		if err != nil {
			return nil, err
		}
		vs = append(vs, tradeVs...)
	}
	if len(vs) > 0 {
		return nil, sandbox.Invalid("the half-screen cashier cannot open", vs...)
	}
	return &sandbox.Launched{Ref: t.PayOrder, Scenario: t.Scenario, Warnings: paidAgain(t, p.d.Clock.Now(call.Merchant.MchID)),
		Magic: map[string]string{"value": strconv.FormatInt(t.Value, 10), "pay_order": t.PayOrder}}, nil
}

// checkCaller checks the target against the caller's platform, and the base
// library rules of SOURCES.md §4 for a WeChat caller.
func checkCaller(c sandbox.Caller, appID string) []sandbox.Violation {
	var vs []sandbox.Violation
	alipay := c.Platform == "alipay"
	switch {
	case alipay && appID == WeChatAppID:
		vs = append(vs, sandbox.Violation{Path: "/args/appId", Message: fmt.Sprintf(
			"%s is P云's WeChat mini-program; an Alipay caller (my.openEmbeddedMiniProgram) opens %s", WeChatAppID, AlipayAppID)})
	case !alipay && appID == AlipayAppID:
		vs = append(vs, sandbox.Violation{Path: "/args/appId", Message: fmt.Sprintf(
			"%s is P云's Alipay mini-program; a WeChat caller opens %s (or says caller.platform: alipay)", AlipayAppID, WeChatAppID)})
	}
	if alipay || c.SDKVersion == "" {
		return vs
	}
	v, ok := parseVersion(c.SDKVersion)
	if !ok {
		return vs // the call schema refuses it
	}
	if less(v, minEmbeddedSDK) {
		return append(vs, sandbox.Violation{Path: "/caller/sdkVersion", Message: fmt.Sprintf(
			"wx.openEmbeddedMiniProgram needs base library 2.20.1 or later; the caller has %s", c.SDKVersion)})
	}
	if less(v, listFreeSDK) && appID == WeChatAppID && !listsEmbedded(c.AppJSON, appID) {
		vs = append(vs, sandbox.Violation{Path: "/caller/appJson/embeddedAppIdList", Message: fmt.Sprintf(
			"must list %q: below base library 2.23.1 (the caller has %s) app.json declares every half-screen target", appID, c.SDKVersion)})
	}
	return vs
}

func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	for i, part := range strings.SplitN(s, ".", 4) {
		n, err := strconv.Atoi(part)
		if err != nil {
			return v, false
		}
		if i < 3 {
			v[i] = n
		}
	}
	return v, true
}

func less(a, b [3]int) bool { return slices.Compare(a[:], b[:]) < 0 }

func listsEmbedded(appJSON json.RawMessage, appID string) bool {
	var aj struct {
		EmbeddedAppIDList []string `json:"embeddedAppIdList"`
	}
	_ = json.Unmarshal(appJSON, &aj)
	return slices.Contains(aj.EmbeddedAppIDList, appID)
}

// cashierPayID reads pay_id from "/external/payment/trade/create/index?pay_id=…"
// (P云's payment-sapp guide); the leading slash is optional, as WeChat resolves both.
func cashierPayID(path string) (string, []sandbox.Violation) {
	if path == "" {
		return "", nil // the args schema reports it
	}
	page, rawQuery, _ := strings.Cut(path, "?")
	if strings.TrimPrefix(page, "/") != CashierPage {
		return "", []sandbox.Violation{{Path: "/args/path", Message: fmt.Sprintf(
			"page %q is not P云's cashier; open /%s?pay_id=<pay_id from trade/prepare>", page, CashierPage)}}
	}
	q, err := url.ParseQuery(rawQuery)
	payID := q.Get("pay_id")
	if err != nil || payID == "" {
		return "", []sandbox.Violation{{Path: "/args/path", Message: "has no pay_id: append ?pay_id=<pay_id from trade/prepare>"}}
	}
	return payID, nil
}

// launchable finds the trade of payID and says why the cashier cannot open
// it: unknown to the caller's merchant, or expired.
func (p *Product) launchable(ctx context.Context, m *sandbox.Merchant, payID string, now time.Time) (*trade, []sandbox.Violation, error) {
	rec, err := p.d.Store.FindRecord(ctx, KindTrade, m.MchID, payID)
	if err != nil && !sandbox.IsCode(err, sandbox.CodeNotFound) {
		return nil, nil, err
	}
	var t *trade
	if err == nil {
		if t, err = sandbox.Decode[trade](rec); err != nil {
			return nil, nil, err
		}
	}
	// A pay_serial alias is not a pay_id.
	if t == nil || t.PayID != payID {
		return nil, []sandbox.Violation{{Path: "/args/path", Message: fmt.Sprintf(
			"pay_id %s was not prepared by merchant %s (P云 app_id %s): prepare the trade with this merchant's app_id",
			payID, m.MchID, m.PCloudAppID)}}, nil
	}
	if !now.Before(t.ExpireAt) {
		return nil, []sandbox.Violation{{Path: "/args/path", Message: fmt.Sprintf(
			"pay_id %s expired at %s; the sandbox clock reads %s: prepare a new trade",
			payID, t.ExpireAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}}, nil
	}
	return t, nil, nil
}

// paidAgain warns about a cashier opened on a pay_id somebody already paid
// for (or tried to) [I: P云's guide does not say the cashier refuses it].
// The cashier then shows the trade as it stands (see Resolve).
func paidAgain(t *trade, now time.Time) []sandbox.Violation {
	if len(t.Points) == 0 {
		return nil
	}
	status, _, _ := t.statusAt(now)
	return []sandbox.Violation{{Path: "/args/path", Message: fmt.Sprintf(
		"pay_id %s was already paid for in session %s (status %d now): the cashier shows that outcome again and sends nothing; "+
			"prepare a new trade for a new payment (inferred rule: P云's guide states none, so the sandbox warns; a strict merchant is refused)",
		t.PayID, t.SessionID, status)}}
}

// extraData is what P云's cashier hands back (P云's payment-sapp guide §2.1.2): value in
// fen as a string, status a number, trade_time in milliseconds.
type extraData struct {
	PayOrder  string `json:"pay_order"`
	Channel   string `json:"channel"`
	PaySerial string `json:"pay_serial"`
	Value     string `json:"value"`
	Status    int    `json:"status"`
	TradeTime int64  `json:"trade_time"`
}

// Resolve applies the user's action in the cashier. pay, fail and paying fix
// the trade's timeline from the scenario, answer the return with extraData
// and queue the notifications; close (and a manual session's timeout)
// returns without extraData and leaves the trade as it was, so it can be
// opened again. An auto session acts at its DueAt, not when the worker got
// to it, so timelines do not drift with scan latency.
func (p *Product) Resolve(ctx context.Context, s *sandbox.Session, action string, at time.Time) (*sandbox.Batch, error) {
	s.State, s.Action = sandbox.SessionReturned, action
	ret := sandbox.BackFrom(s.Target, nil)
	status, ok := actionStatus(action)
	if !ok {
		// A physical back or a half-screen close: extraData is empty
		// (SOURCES.md §4, CSDN 141154426), and the trade is not read.
		return nil, p.setReturn(s, ret)
	}
	rec, t, err := p.loadTrade(ctx, s.MchID, s.Ref)
	if err != nil {
		return nil, err
	}
	var batch sandbox.Batch
	if len(t.Points) == 0 {
		sc, _ := p.d.Scenarios.Get(s.Scenario)
		pl := planFor(sc, action, at)
		t.Points, t.SessionID = pl.points, s.ID
		t.PaySerial, t.PaidChannel = newPaySerial(at), paidChannel(t, s)
		up := *rec
		if err := t.encode(&up); err != nil {
			return nil, err
		}
		batch.Updates = append(batch.Updates, &up)
		ns, err := p.notifications(s.MchID, t, pl)
		if err != nil {
			return nil, err
		}
		batch.Notifications = ns
		status = pl.points[0].Status
	} else {
		// Another session of the same pay_id got there first: the cashier
		// shows the trade as it stands, and nothing more is sent.
		status, _, _ = t.statusAt(at)
	}
	ret.ReferrerInfo.ExtraData = &extraData{
		PayOrder: t.PayOrder, Channel: t.PaidChannel, PaySerial: t.PaySerial,
		Value: strconv.FormatInt(t.Value, 10), Status: status, TradeTime: t.Points[0].At.UnixMilli(),
	}
	return &batch, p.setReturn(s, ret)
}

func (p *Product) setReturn(s *sandbox.Session, ret sandbox.OnShow) error {
	b, err := json.Marshal(ret)
	if err != nil {
		return &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode the return", Err: err}
	}
	s.Return = b
	return nil
}

// paidChannel is the channel the user paid through: the one prepared, else
// WeChat JSAPI in WeChat and Alipay in Alipay (trade-query.md: "微信:200201,
// 支付宝:100102").
func paidChannel(t *trade, s *sandbox.Session) string {
	switch {
	case t.Channel != "":
		return t.Channel
	case s.Target == AlipayAppID:
		return ChannelAlipay
	default:
		return ChannelWeChatJSAPI
	}
}
