// Package issuer simulates the ETC issuer's mini-program plugin of the plugin guide
// (SOURCES.md §5 and §9): a host mini-program declares the plugin
// (provider wx06bc6021dc900553) under the alias issuer-plugin, opens its
// pages with wx.navigateTo("plugin://issuer-plugin/<page>?<query>") to apply
// for, continue, reactivate, re-sign and service an ETC device, reads the
// outcome with the plugin's getters (getActiveResult, getSignProResult,
// getSignCarServiceResule — the plugin's own spelling), and lends the plugin
// its payment functional page (functional-pages/request-payment.js,
// beforeRequestPayment) so that WeChat can take the payment.
//
// Nothing public adds to the plugin guide, so everything beyond its text — what each
// page does to the order and the device, the shape of the way back, the
// order number format — is inferred and marked [I] where it is decided.
//
// Orders (issuer.order, by orderNo) and devices (issuer.device, by plateNum)
// are records, so a later page sees what an earlier one did: a new
// application creates the order whose orderNo the login's redirect carries;
// signProtocol, signGetAuth and activeDes take that orderNo; activation needs
// a signed protocol; activeAgain needs an activated plate.
package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The plugin as the host's app.json declares it (the plugin guide 插件接入).
const (
	// Alias is the name the plugin guide gives the plugin in app.json and in
	// plugin:// URLs.
	Alias = "issuer-plugin"
	// Provider is the plugin's appid.
	Provider = "wx06bc6021dc900553"
)

// The plugin's pages (the plugin guide APP跳转方式 and 小程序跳转方式).
const (
	PageLogin         = "login"
	PageSignGetAuth   = "signGetAuth"   // 车主服务签约
	PageActiveDes     = "activeDes"     // 设备激活
	PageSignProtocol  = "signProtocol"  // 签署合同
	PageDeviceUpgrade = "deviceUpgrade" // 设备升级
	PageActiveAgain   = "activeAgain"   // 卡签二次激活
	// PagePayment names the payment functional page in scenario params.
	PagePayment = "requestPayment"
)

// The plugin's getters (the plugin guide 回调通知).
const (
	GetterActive  = "getActiveResult"
	GetterSignPro = "getSignProResult"
	// GetterSignCarService keeps the plugin's typo ("Resule"): hosts call it
	// by that name (the plugin guide 回调通知 3, SOURCES.md §0).
	GetterSignCarService = "getSignCarServiceResule"
)

// The simulated user's actions, as scenarios and the admin API name them
// (schemas/scenario.schema.json). sign and no_sign are the signing pages'
// words for success and failure; they mean the same on every page.
const (
	ActionSuccess = "success"
	ActionFailure = "failure"
	ActionCancel  = "cancel"
	ActionSign    = "sign"
	ActionNoSign  = "no_sign"
)

// Record kinds.
const (
	// KindOrder is an application: key orderNo; alias the App's
	// wechatSignNo (scoped by merchant) when it came from the App.
	KindOrder = sandbox.ProductIssuer + ".order"
	// KindDevice is the ETC device (OBU and card) of a plate: key plateNum.
	KindDevice = sandbox.ProductIssuer + ".device"
	// KindPayment is a prepay_id the functional page paid: key prepay_id.
	KindPayment = sandbox.ProductIssuer + ".payment"
)

// getActiveResult states (the plugin guide: "0 成功 1 失败 2取消").
const (
	ActiveSuccess   = 0
	ActiveFailure   = 1
	ActiveCancelled = 2
)

// getSignProResult and getSignCarServiceResule states (the plugin guide: "0 已签约
// 1未签约").
const (
	Signed    = 0
	NotSigned = 1
)

// Schema names.
const (
	SchemaNavigateArgs      = "issuer/navigate.args"
	SchemaLoginAdvice       = "issuer/login.advice"
	SchemaAppJSON           = "issuer/app-json"
	SchemaReturn            = "issuer/return"
	SchemaActiveResult      = "issuer/active-result"
	SchemaSignProResult     = "issuer/sign-pro-result"
	SchemaSignCarService    = "issuer/sign-car-service-result"
	SchemaPaymentArgs       = "issuer/request-payment.args"
	SchemaPaymentReturn     = "issuer/request-payment.return"
	SchemaScenarioParams    = "issuer/scenario-params"
	schemaQueryPrefix       = "issuer/"
	schemaQuerySuffix       = ".query"
	defaultPaymentFailure   = "系统繁忙,请稍后再试" // [I]: WeChat passes the backend's reason through; none is documented
	paymentSignatureFailure = "支付验证签名失败"   // [I]: the payment sheet's wording for a bad paySign, as merchants report it
)

// Product is the issuer plugin: sandbox.Product, sandbox.PluginGetter and
// sandbox.CallResult. It has no upstream routes and sends no notifications:
// the plugin guide gives it no server-side API, only the mini-program side
// served under /miniprogram/v1.
type Product struct {
	d   sandbox.Deps
	log *slog.Logger
	// params holds each issuer scenario's decoded params, by id; the
	// catalogue is immutable, so this map is only read after New.
	params map[string]params
}

var (
	_ sandbox.Product      = (*Product)(nil)
	_ sandbox.PluginGetter = (*Product)(nil)
	_ sandbox.CallResult   = (*Product)(nil)
)

// New builds the product. Every issuer scenario in the catalogue is checked
// here, so that one this product cannot play stops start-up with its file's
// name rather than failing a session later.
func New(d sandbox.Deps) (*Product, error) {
	p := &Product{d: d, log: d.Logger.With("product", sandbox.ProductIssuer), params: map[string]params{}}
	for _, sc := range d.Scenarios.List(sandbox.ProductIssuer) {
		pr, err := checkScenario(d.Validator, sc)
		if err != nil {
			return nil, err
		}
		p.params[sc.ID] = pr
	}
	return p, nil
}

// Name returns "issuer".
func (p *Product) Name() string { return sandbox.ProductIssuer }

// Targets are the plugin's pages (wx.navigateTo to plugin://issuer-plugin/…)
// and the payment functional page: requestPayment has no target key, so the
// issuer, the one product whose flow pays through a functional page, serves
// it.
func (p *Product) Targets() []sandbox.Target {
	return []sandbox.Target{
		{API: sandbox.APIPluginNavigate, Key: Alias},
		{API: sandbox.APIRequestPayment, Key: ""},
	}
}

// Actions are what a person can make the user do on the session's page:
// sign or not on the signing pages, succeed, fail or cancel elsewhere.
func (p *Product) Actions(s *sandbox.Session) []string {
	switch {
	case s == nil:
		return []string{ActionSuccess, ActionFailure, ActionCancel, ActionSign, ActionNoSign}
	case s.API == sandbox.APIPluginNavigate && signingPage(s):
		return []string{ActionSign, ActionNoSign, ActionCancel}
	}
	return []string{ActionSuccess, ActionFailure, ActionCancel}
}

// Resolve applies the user's action on the plugin page or the payment sheet.
func (p *Product) Resolve(ctx context.Context, s *sandbox.Session, action string, at time.Time) (*sandbox.Batch, error) {
	act, ok := normalize(action)
	if !ok {
		return nil, sandbox.Invalid("unknown action", sandbox.Violation{Path: "/action", Message: fmt.Sprintf(
			"%q is not an issuer action; choose one of: success, failure, cancel, sign, no_sign", action)})
	}
	s.State, s.Action = sandbox.SessionReturned, action
	if s.API == sandbox.APIRequestPayment {
		return p.resolvePayment(ctx, s, act, at)
	}
	return p.resolveVisit(ctx, s, act, at)
}

// normalize maps an action (or a manual session's timeout, the user leaving)
// to success, failure or cancel.
func normalize(action string) (string, bool) {
	switch action {
	case ActionSuccess, ActionSign:
		return ActionSuccess, true
	case ActionFailure, ActionNoSign:
		return ActionFailure, true
	case ActionCancel, sandbox.ActionTimeout:
		return ActionCancel, true
	}
	return "", false
}

func marshal(what string, v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode " + what, Err: err}
	}
	return b, nil
}
