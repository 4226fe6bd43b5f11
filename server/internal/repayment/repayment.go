// Package repayment simulates WeChat's 垫资还款 (the repayment page, SOURCES.md §3 and
// §4): when WeChat has advanced (垫资) a vehicle owner's parking or toll
// payment, the merchant sends the user to the repayment mini-program —
// wx.navigateToMiniProgram (or <navigator target="miniProgram">) to
// wx5e73c65404eee268 pages/invest_list/invest_list, or from an App with
// WXLaunchMiniProgram.Req to gh_5e259b7a73b1 — which returns no data; the
// merchant then asks the vehicle-owner service for the user's state: the v2
// XML POST /vehicle/pay/querystate, or the v3 GET
// /v3/vehicle/parking/services/find, and GET
// /v3/vehicle/transactions/out-trade-no/{out_trade_no} for an advanced
// payment (bank_type BPA, user_repaid Y/N).
//
// Behind all of it is one record per vehicle owner (kind repayment.user):
// openid, plates, user_state, deduct_mode, and the advances owed, each an
// advanced parking transaction with its own out_trade_no. Repaying clears
// every advance at once and brings the user back to NORMAL.
//
// The v3 parking flow that makes a user owe (parking.go) is simulated too:
// 创建停车入场 (entries, kind repayment.parking), 扣费受理 (deductions, kind
// repayment.transaction) answered ACCEPTED and settled by the scenario —
// paid, failed, or advanced by WeChat (bank_type BPA), which adds an advance
// to the user — and the TRANSACTION.* and VEHICLE.ENTRANCE_STATE_CHANGE
// notifications, PAY_BACK once the user repays.
package repayment

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

// The repayment mini-program (the repayment page §1 and §2, fixed values).
const (
	// AppID is the repayment mini-program's appId.
	AppID = "wx5e73c65404eee268"
	// UserName is its original id, which an App launches it by.
	UserName = "gh_5e259b7a73b1"
	// Page is its repayment page.
	Page = "pages/invest_list/invest_list"
)

// KindUser is the record kind of a vehicle owner: key openid; aliases
// "plate/<plate_number>" for each plate and "trade/<out_trade_no>" for each
// advance, so that both lookups are one read (aliases are per merchant).
const KindUser = sandbox.ProductRepayment + ".user"

// User states of the v2 query (SOURCES.md §3: NORMAL/PAUSED/OVERDUE/UNAUTHORIZED).
const (
	StateNormal       = "NORMAL"
	StatePaused       = "PAUSED"
	StateOverdue      = "OVERDUE"
	StateUnauthorized = "UNAUTHORIZED"
)

// UserStates lists every user_state, in the order fixtures create them.
var userStates = [...]string{StateNormal, StatePaused, StateOverdue, StateUnauthorized}

// Deduct modes (SOURCES.md §3: PROACTIVE 免密, AUTOPAY 无感).
const (
	DeductProactive = "PROACTIVE"
	DeductAutopay   = "AUTOPAY"
)

// The simulated user's actions (scenario.schema.json's repayment enum).
const (
	// ActionRepay: the user repays every advance; the user is NORMAL again.
	ActionRepay = "repay"
	// ActionCancel: the user leaves without repaying (an App sees -2).
	ActionCancel = "cancel"
	// ActionFail: the user tries to repay and the payment fails.
	ActionFail = "fail"
	// ActionDeny: WeChat refuses the App's launch (ERR_AUTH_DENIED, -4).
	ActionDeny = "deny"
	// ActionUnsupported: the WeChat app cannot launch mini-programs
	// (ERR_UNSUPPORT, -5).
	ActionUnsupported = "unsupported"
)

// Schema names of every body in and out (schemas/repayment/).
const (
	schemaCreateUser        = "repayment/vehicle-user-create.request"
	schemaNavigateArgs      = "repayment/navigate.args"
	schemaAppLaunchArgs     = "repayment/app-launch.args"
	schemaExtraData         = "repayment/extra-data"
	schemaAppPathQuery      = "repayment/app-path.query"
	schemaQueryState        = "repayment/querystate.request"
	schemaPartnerQueryState = "repayment/partner-querystate.request"
	schemaServicesFind      = "repayment/services-find.query"
	schemaTransactionURI    = "repayment/transaction.query"
	schemaParkingCreate     = "repayment/parking-create.request"
	schemaDeduct            = "repayment/deduct.request"
)

// Product is the repayment simulation: sandbox.Product, the v2 and v3
// vehicle endpoints (sandbox.Routes), the vehicle-user admin routes
// (sandbox.AdminRoutes) and the parking flow's v3 notifications
// (sandbox.NotifyBuilder). The repayment mini-program itself returns
// nothing and the merchant polls the user state (the repayment page); the
// v2 还款结果通知 (SOURCES.md §3) is not simulated.
type Product struct {
	d   sandbox.Deps
	v3  *wxpayv3.API
	log *slog.Logger
	// faults plays the merchants' API faults on the v2 endpoints (the v3
	// layer plays them on the v3 ones).
	faults *httpapi.FaultPlayer

	// seeded records the merchants whose fixture users exist, so that the
	// check costs a map read after the first request. Bounded by the number
	// of merchants.
	mu     sync.Mutex
	seeded map[string]bool
}

var (
	_ sandbox.Product       = (*Product)(nil)
	_ sandbox.Routes        = (*Product)(nil)
	_ sandbox.AdminRoutes   = (*Product)(nil)
	_ sandbox.NotifyBuilder = (*Product)(nil)
)

// New builds the product. Every repayment scenario must script an action
// this product plays; a bad one stops start-up with its file.
func New(d sandbox.Deps) (*Product, error) {
	if d.Scenarios.Default(sandbox.ProductRepayment) == nil {
		return nil, fmt.Errorf("repayment: the scenario catalogue has no default repayment scenario")
	}
	for _, sc := range d.Scenarios.List(sandbox.ProductRepayment) {
		if sc.User.Action != "" && !isAction(sc.User.Action) {
			return nil, fmt.Errorf("scenario %s (%s): user.action %q is not one of repay, cancel, fail, deny, unsupported",
				sc.ID, sc.File, sc.User.Action)
		}
		if _, err := parkingParamsOf(sc); err != nil {
			return nil, err
		}
	}
	return &Product{
		d:      d,
		v3:     wxpayv3.New(wxpayv3.Options{Merchants: d.Merchants, Clock: d.Clock}),
		log:    d.Logger.With("product", sandbox.ProductRepayment),
		faults: httpapi.NewFaultPlayer(d.Merchants),
		seeded: map[string]bool{},
	}, nil
}

func isAction(a string) bool {
	switch a {
	case ActionRepay, ActionCancel, ActionFail, ActionDeny, ActionUnsupported:
		return true
	}
	return false
}

// Name is "repayment".
func (p *Product) Name() string { return sandbox.ProductRepayment }

// Targets are the two ways into the repayment mini-program (the repayment page).
func (p *Product) Targets() []sandbox.Target {
	return []sandbox.Target{
		{API: sandbox.APINavigateToMiniProgram, Key: AppID},
		{API: sandbox.APIAppLaunchMiniProgram, Key: UserName},
	}
}

// Actions are what a person may make the user do. deny and unsupported are
// answers of the App SDK only: a mini-program caller has no such outcome.
func (p *Product) Actions(s *sandbox.Session) []string {
	if s == nil || s.API == sandbox.APIAppLaunchMiniProgram {
		return []string{ActionRepay, ActionCancel, ActionFail, ActionDeny, ActionUnsupported}
	}
	return []string{ActionRepay, ActionCancel, ActionFail}
}

// Register mounts the vehicle-owner service at its real paths: the v2 user
// state query (XML, HMAC-SHA256 both ways) and the v3 parking endpoints —
// services/find, entries, deductions, the transaction query —
// (authenticated and signed by wxpayv3).
func (p *Product) Register(r gin.IRouter) {
	h := httpapi.Handle
	v2 := r.Group("/vehicle", httpapi.UseRenderer(wxpayv2.Render), httpapi.Journaled(p.d.Journal, sandbox.ProductRepayment))
	v2.POST("/pay/querystate", h(p.handleQueryState))
	v2.POST("/partnerpay/querystate", h(p.handleQueryState)) // pathPartnerQueryState
	g := r.Group("/v3/vehicle", p.v3.Middleware(p.d.Journal, sandbox.ProductRepayment)...)
	g.GET("/parking/services/find", h(p.handleServicesFind))
	g.POST("/parking/parkings", h(p.handleCreateParking))
	g.POST("/transactions/parking", h(p.handleDeduct))
	g.GET("/transactions/out-trade-no/:out_trade_no", h(p.handleTransaction))
}

// RegisterAdmin mounts the vehicle-user and parking admin routes on /sandbox/v1, which
// has already checked access and renders the house envelope.
func (p *Product) RegisterAdmin(g gin.IRouter) {
	g.POST("/vehicle-users", httpapi.Handle(p.handleCreateUser))
	g.GET("/vehicle-users", httpapi.Handle(p.handleListUsers))
	g.POST("/vehicle-users/:openid/repay", httpapi.Handle(p.handleRepay))
	g.GET("/parking", httpapi.Handle(p.handleListParking))
}
