// Package payscore simulates WeChat Pay Score (微信支付分, the 支付分 jump page) for a
// merchant in 需确认 mode: the v3 service-order API at its real paths, the
// jump to the 支付分 mini-program (wx.openBusinessView with businessType
// wxpayScoreUse, or wx.navigateToMiniProgram to wxd8f3793ea3b935b8
// pages/use/use), the user's confirmation and return, and the
// PAYSCORE.USER_CONFIRM and PAYSCORE.USER_PAID notifications.
//
// The order follows SOURCES.md §2: CREATED → DOING/USER_CONFIRM (the user
// confirms) → DOING/MCH_COMPLETE with collection USER_PAYING (the merchant
// completes) → DONE with USER_PAID (the deduction succeeds); REVOKED when
// cancelled; EXPIRED when left CREATED for 30 days. Time-driven changes (the
// expiry, a scheduled deduction) are applied when the order is next read
// or changed, on the merchant's clock; the notification of a deduction is
// queued when it is scheduled.
package payscore

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

// The 支付分 mini-program the merchant jumps to (the 支付分 jump page §1).
const (
	// AppID is the 支付分 mini-program's appId, fixed by the 支付分 jump page.
	AppID = "wxd8f3793ea3b935b8"
	// Path is its confirm page, fixed by the 支付分 jump page.
	Path = "pages/use/use"
	// BusinessType is openBusinessView's businessType for it.
	BusinessType = "wxpayScoreUse"
)

// Notification event types (SOURCES.md §1).
const (
	EventUserConfirm = "PAYSCORE.USER_CONFIRM"
	EventUserPaid    = "PAYSCORE.USER_PAID"
)

// The simulated user's actions in the 支付分 mini-program.
const (
	// ActionConfirm: confirm, then leave by the in-page back button —
	// the caller gets referrerInfo.extraData.query_id (the default).
	ActionConfirm = "confirm"
	// ActionConfirmBackIcon: confirm, then leave by the top-left back
	// icon — no extraData (the 支付分 jump page §1.3).
	ActionConfirmBackIcon = "confirm_back_icon"
	// ActionCancel: decline, then leave by the in-page back button.
	ActionCancel = "cancel"
	// ActionExpired: the page says the order has expired; the user leaves.
	ActionExpired = "expired"
)

// Schema names of every body in and out.
const (
	schemaCreate          = "payscore/create.request"
	schemaCreateResponse  = "payscore/create.response"
	schemaQuery           = "payscore/query.request"
	schemaOrder           = "payscore/order"
	schemaCancel          = "payscore/cancel.request"
	schemaCancelResponse  = "payscore/cancel.response"
	schemaModify          = "payscore/modify.request"
	schemaComplete        = "payscore/complete.request"
	schemaPay             = "payscore/pay.request"
	schemaPayResponse     = "payscore/pay.response"
	schemaSync            = "payscore/sync.request"
	schemaOpenBusiness    = "payscore/open-business-view.args"
	schemaNavigate        = "payscore/navigate-to-mini-program.args"
	schemaReturn          = "payscore/return"
	schemaResource        = "payscore/notification.resource"
	schemaScenarioParams  = "payscore/scenario-params"
	headerSandboxScenario = "X-Sandbox-Scenario"
)

// Product is the pay-score simulation. It implements sandbox.Product and
// sandbox.NotifyBuilder.
type Product struct {
	d      sandbox.Deps
	v3     *wxpayv3.API
	log    *slog.Logger
	params map[string]params // by scenario id
}

var (
	_ sandbox.Product          = (*Product)(nil)
	_ sandbox.Routes           = (*Product)(nil)
	_ sandbox.NotifyBuilder    = (*Product)(nil)
	_ sandbox.SubjectDescriber = (*Product)(nil)
)

// deduction outcomes a scenario may script (scenario-params schema).
const (
	deductSuccess         = "success"
	deductFailThenSuccess = "fail_then_success"
	deductFail            = "fail"
	// retryAfter is when a deduction that failed once succeeds, unless
	// the scenario says otherwise [I]: WeChat retries for days, on its own
	// schedule.
	retryAfter = time.Hour
)

// params is what a scenario's params say, checked at start-up.
type params struct {
	deduction string
	paidAfter time.Duration
}

// New builds the product from the shared dependencies. Every payscore
// scenario's params are checked here, so that a bad one stops start-up.
func New(d sandbox.Deps) (*Product, error) {
	p := &Product{
		d:      d,
		v3:     wxpayv3.New(wxpayv3.Options{Merchants: d.Merchants, Clock: d.Clock}),
		log:    d.Logger,
		params: map[string]params{},
	}
	if d.Scenarios.Default(sandbox.ProductPayScore) == nil {
		return nil, fmt.Errorf("payscore: the scenario catalogue has no default payscore scenario")
	}
	for _, sc := range d.Scenarios.List(sandbox.ProductPayScore) {
		ps, err := parseParams(d.Validator, sc)
		if err != nil {
			return nil, err
		}
		p.params[sc.ID] = ps
	}
	return p, nil
}

func parseParams(v sandbox.Validator, sc *sandbox.Scenario) (params, error) {
	raw := sc.Params
	if raw == nil {
		raw = map[string]any{}
	}
	vs, err := v.Validate(schemaScenarioParams, raw)
	if err != nil {
		return params{}, err
	}
	if len(vs) > 0 {
		return params{}, fmt.Errorf("%s: params: %s", sc.File, sandbox.Invalid("invalid", vs...).Error())
	}
	ps := params{deduction: deductSuccess}
	if s, ok := raw["deduction"].(string); ok {
		ps.deduction = s
	}
	if ps.deduction == deductFailThenSuccess {
		ps.paidAfter = retryAfter
	}
	switch a := raw["paid_after"].(type) {
	case string: // the schema allows a Go duration or a number of seconds
		d, err := time.ParseDuration(a)
		if err != nil {
			return params{}, fmt.Errorf("%s: params/paid_after: %v", sc.File, err)
		}
		ps.paidAfter = d
	case int:
		ps.paidAfter = time.Duration(a) * time.Second
	case float64:
		ps.paidAfter = time.Duration(a * float64(time.Second))
	}
	return ps, nil
}

// Name is "payscore".
func (p *Product) Name() string { return sandbox.ProductPayScore }

// Targets are the two ways into the 支付分 mini-program (the 支付分 jump page §1).
func (p *Product) Targets() []sandbox.Target {
	return []sandbox.Target{
		{API: sandbox.APIOpenBusinessView, Key: BusinessType},
		{API: sandbox.APINavigateToMiniProgram, Key: AppID},
	}
}

// Actions are what a person may make the simulated user do.
func (p *Product) Actions(*sandbox.Session) []string {
	return []string{ActionConfirm, ActionConfirmBackIcon, ActionCancel, ActionExpired}
}

// Register mounts the v3 service-order API at its real paths, and
// GET /v3/certificates, which every v3 merchant's SDK may fetch. Both are
// authenticated, signed, journalled and answer errors in v3's shape.
func (p *Product) Register(r gin.IRouter) {
	h := httpapi.Handle
	g := r.Group("/v3/payscore/serviceorder", p.v3.Middleware(p.d.Journal, sandbox.ProductPayScore)...)
	g.POST("", h(p.handleCreate))
	g.GET("", h(p.handleQuery))
	g.POST("/:out_order_no/cancel", h(p.handleCancel))
	g.POST("/:out_order_no/modify", h(p.handleModify))
	g.POST("/:out_order_no/complete", h(p.handleComplete))
	g.POST("/:out_order_no/pay", h(p.handlePay))
	g.POST("/:out_order_no/sync", h(p.handleSync))
	// Not a pay-score path, but the SDKs' certificate mode needs it and
	// pay score is the first v3 product: it is mounted here, once.
	r.Group("/v3", p.v3.Middleware(p.d.Journal, "")...).GET("/certificates", h(p.v3.HandleCertificates))
}

// scenario returns the scenario by id, or the product's default when it is
// gone (a --scenarios-dir changed between runs).
func (p *Product) scenario(id string) *sandbox.Scenario {
	if sc, ok := p.d.Scenarios.Get(id); ok && sc.Product == sandbox.ProductPayScore {
		return sc
	}
	return p.d.Scenarios.Default(sandbox.ProductPayScore)
}
