// Package embedpay simulates P云 (4pyun.com) half-screen payment, P云's payment-sapp guide
// and SOURCES.md §8: the merchant's backend prepares a trade
// (POST /gate/1.0/payment/trade/prepare) and gets a pay_id; its mini-program
// opens P云's cashier with wx.openEmbeddedMiniProgram (or Alipay's
// my.openEmbeddedMiniProgram); the simulated user pays, fails, leaves the
// payment in progress or closes the half screen; the caller's App.onShow
// sees the trade's fields; P云 posts trade-notify to the merchant's
// notify_url; trade/query answers the status the trade has at that moment on
// the merchant's clock.
//
// A trade's status is a timeline fixed when the user acts: points (time,
// status) computed from the scenario. The return, every notification and
// every query read that one timeline, so they agree at every moment.
package embedpay

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The simulated mini-programs (P云's payment-sapp guide, SOURCES.md §0 and §8).
const (
	// WeChatAppID is P云's WeChat mini-program ("PP停车"), opened in a half
	// screen with wx.openEmbeddedMiniProgram.
	WeChatAppID = "wxa204074068ad40ef"
	// AlipayAppID is P云's Alipay mini-program, opened with
	// my.openEmbeddedMiniProgram.
	AlipayAppID = "2021004130621008"
	// CashierPage is the page both open; the query carries pay_id.
	CashierPage = "external/payment/trade/create/index"
)

// Record kinds.
const (
	// KindTrade is a prepared trade: key pay_order, aliases pay_id and,
	// once the user paid, pay_serial.
	KindTrade = sandbox.ProductEmbedPay + ".trade"
)

// EventTradeNotify is the Event of every notification this product sends.
const EventTradeNotify = "trade-notify"

// The user's actions in the cashier, as scenarios and the admin API name them.
const (
	ActionPay    = "pay"    // paid: status 1
	ActionFail   = "fail"   // the payment failed: status -1
	ActionPaying = "paying" // the user left while the payment is in progress: status 0
	ActionClose  = "close"  // closed the half screen: no extraData, the trade is untouched
)

// Trade statuses (trade-notify.md, P云's payment-sapp guide: "1支付成功、-1失败、0支付中").
const (
	StatusPaid   = 1
	StatusFailed = -1
	StatusPaying = 0
)

// Channels (appendix.md III and trade-query.md).
const (
	ChannelWeChatJSAPI = "200201"
	ChannelWeChatApp   = "200001"
	ChannelAlipayApp   = "100002"
	ChannelAlipay      = "100102"
)

// Base library thresholds of wx.openEmbeddedMiniProgram (SOURCES.md §4).
var (
	minEmbeddedSDK = [3]int{2, 20, 1} // the API exists from here
	listFreeSDK    = [3]int{2, 23, 1} // below this, app.json must list the target in embeddedAppIdList
)

// defaultExpiry is how long a pay_id is valid when expire_time is not given:
// "未设置默认3分钟失效" (trade-prepare.md, SOURCES.md §8).
const defaultExpiry = 3 * time.Minute

// Product is the P云 simulation. It implements sandbox.Product and
// sandbox.NotifyBuilder and mounts the P云 gateway routes.
type Product struct {
	d        sandbox.Deps
	log      *slog.Logger
	schedule []time.Duration
}

var (
	_ sandbox.Product          = (*Product)(nil)
	_ sandbox.Routes           = (*Product)(nil)
	_ sandbox.NotifyBuilder    = (*Product)(nil)
	_ sandbox.SubjectDescriber = (*Product)(nil)
)

// New builds the product. Every embedpay scenario in the catalogue is checked
// here, so that a timeline this product cannot play stops start-up with the
// file's name rather than failing a session later.
func New(d sandbox.Deps) (*Product, error) {
	for _, sc := range d.Scenarios.List(sandbox.ProductEmbedPay) {
		if err := CheckScenario(sc); err != nil {
			return nil, err
		}
	}
	return &Product{d: d, log: d.Logger.With("product", sandbox.ProductEmbedPay), schedule: retrySchedule()}, nil
}

// Name returns "embedpay".
func (p *Product) Name() string { return sandbox.ProductEmbedPay }

// Targets are P云's WeChat and Alipay mini-programs.
func (p *Product) Targets() []sandbox.Target {
	return []sandbox.Target{
		{API: sandbox.APIOpenEmbeddedMiniProgram, Key: WeChatAppID},
		{API: sandbox.APIOpenEmbeddedMiniProgram, Key: AlipayAppID},
	}
}

// Actions are what a person can make the user do in the cashier.
func (p *Product) Actions(*sandbox.Session) []string {
	return []string{ActionPay, ActionFail, ActionPaying, ActionClose}
}

// point is one status of a trade from a moment on.
type point struct {
	At     time.Time `json:"at"`
	Status int       `json:"status"`
}

// trade is a prepared P云 trade, stored as a KindTrade record.
type trade struct {
	PayID       string          `json:"pay_id"`
	AppID       string          `json:"app_id"`
	Merchant    string          `json:"merchant"`
	PayOrder    string          `json:"pay_order"`
	Subject     string          `json:"subject"`
	Body        string          `json:"body,omitempty"`
	Value       int64           `json:"value"`
	Payer       string          `json:"payer,omitempty"`
	DeductMode  string          `json:"deduct_mode,omitempty"`
	CallbackURL string          `json:"callback_url,omitempty"`
	NotifyURL   string          `json:"notify_url"`
	TradeScene  string          `json:"trade_scene"`
	Extra       json.RawMessage `json:"extra,omitempty"`
	Channel     string          `json:"channel,omitempty"` // as prepared; the paid channel is PaidChannel
	// Scenario is the X-Sandbox-Scenario given at prepare, used by the jump
	// when it names none itself.
	Scenario  string    `json:"scenario,omitempty"`
	CreatedAt time.Time `json:"created_at"` // merchant clock
	ExpireAt  time.Time `json:"expire_at"`  // merchant clock

	// Set when the user acts in the cashier.
	SessionID   string  `json:"session_id,omitempty"`
	PaySerial   string  `json:"pay_serial,omitempty"`
	PaidChannel string  `json:"paid_channel,omitempty"`
	Points      []point `json:"points,omitempty"`
}

// statusAt is the trade's status at now: the last point at or before now.
// A trade nobody tried to pay is 0 until it expires and -1 after [I]: P云
// documents no "unpaid" status, and a closed trade is not a success.
func (t *trade) statusAt(now time.Time) (status int, since time.Time, started bool) {
	for i := len(t.Points) - 1; i >= 0; i-- {
		if !t.Points[i].At.After(now) {
			return t.Points[i].Status, t.Points[i].At, true
		}
	}
	if len(t.Points) == 0 && !now.Before(t.ExpireAt) {
		return StatusFailed, t.ExpireAt, false
	}
	return StatusPaying, time.Time{}, false
}

// loadTrade reads a trade record of the merchant by pay_order.
func (p *Product) loadTrade(ctx context.Context, mchid, payOrder string) (*sandbox.Record, *trade, error) {
	rec, err := p.d.Store.GetRecord(ctx, KindTrade, mchid, payOrder)
	if err != nil {
		return nil, nil, err
	}
	t, err := sandbox.Decode[trade](rec)
	return rec, t, err
}

// encode stores t in rec (a copy the caller commits).
func (t *trade) encode(rec *sandbox.Record) error {
	data, err := json.Marshal(t)
	if err != nil {
		return &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode trade", Err: err}
	}
	rec.Data = data
	rec.Aliases = []string{t.PayID}
	if t.PaySerial != "" {
		rec.Aliases = append(rec.Aliases, t.PaySerial)
	}
	return nil
}

// Subject describes the trade the cashier session pays: its subject and
// value, as P云's cashier shows them.
func (p *Product) Subject(ctx context.Context, s *sandbox.Session) (*sandbox.Subject, error) {
	_, t, err := p.loadTrade(ctx, s.MchID, s.Ref)
	if err != nil {
		return nil, err
	}
	return &sandbox.Subject{Kind: KindTrade, Key: t.PayOrder, Title: t.Subject, Amount: t.Value, AmountLabel: "value"}, nil
}
