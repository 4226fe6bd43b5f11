package sandbox

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gin-gonic/gin"
)

// Mini-program APIs, as they appear in POST /miniprogram/v1/{api}.
const (
	APINavigateToMiniProgram   = "navigateToMiniProgram"
	APIOpenBusinessView        = "openBusinessView"
	APIOpenEmbeddedMiniProgram = "openEmbeddedMiniProgram"
	APIPluginNavigate          = "plugin/navigate"
	APIAppLaunchMiniProgram    = "app/launchMiniProgram"
	APIRequestPayment          = "requestPayment"
)

// APIs lists every mini-program API of the contract.
var APIs = []string{APINavigateToMiniProgram, APIOpenBusinessView, APIOpenEmbeddedMiniProgram,
	APIPluginNavigate, APIAppLaunchMiniProgram, APIRequestPayment}

// ActionTimeout is the action a manual session receives when nobody
// resolved it in time; products treat it as the user leaving without data.
const ActionTimeout = "timeout"

// Caller is what the sandbox knows of the mini-program (or App) that makes a
// call: what wx.getAccountInfoSync, wx.getSystemInfoSync and app.json say.
type Caller struct {
	AppID         string          `json:"appId"`
	Platform      string          `json:"platform,omitempty"`      // ios, android, devtools, windows, mac, alipay
	WechatVersion string          `json:"wechatVersion,omitempty"` // "8.0.50"
	SDKVersion    string          `json:"sdkVersion,omitempty"`    // base library, "3.4.0"
	AppJSON       json.RawMessage `json:"appJson,omitempty"`
	EnvVersion    string          `json:"envVersion,omitempty"` // develop, trial, release
	Scenario      string          `json:"scenario,omitempty"`
}

// Call is one wx.* (or App SDK) call from a merchant's mini-program.
type Call struct {
	API    string
	Caller Caller
	// Args is the call's object as sent; Doc is the same object decoded
	// once (numbers as json.Number), as the call's schema checked it:
	// products validate and read Doc, never Args again.
	Args      json.RawMessage
	Doc       map[string]any
	Merchant  *Merchant
	RequestID string
	// Scenario is the explicit scenario id (X-Sandbox-Scenario header or
	// caller.scenario), "" when none was given.
	Scenario string
}

// ValidateAt validates doc, a part of a request checked on its own (a
// call's args, its extraData), against the named schema, and puts each
// violation's path under at ("/args").
func ValidateAt(v Validator, name string, doc any, at string) ([]Violation, error) {
	vs, err := v.Validate(name, doc)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		vs[i].Path = at + vs[i].Path
	}
	return vs, nil
}

// Target is one jump destination a product serves: the API and the value
// that identifies it in the call's args — appId for navigateToMiniProgram
// and openEmbeddedMiniProgram, businessType for openBusinessView, the plugin
// alias for plugin/navigate, userName for app/launchMiniProgram, "" for
// requestPayment.
type Target struct {
	API string
	Key string
}

// Product is the one contract between the engine and a simulated product:
// a small required core, and optional capabilities (below) a product
// implements only when it has them — the engine finds them by type
// assertion. app.New builds a product from a complete Deps, so a product
// never checks for a missing dependency.
type Product interface {
	// Name is the product's package name; it prefixes its record kinds,
	// scenario ids and schema names.
	Name() string
	// Targets are the jump destinations the product serves.
	Targets() []Target
	// Actions lists the user actions session s offers a person, for the QA
	// page and the admin API; Actions(nil) lists every action of the
	// product, which scenarios may name.
	Actions(s *Session) []string
	// Launch validates a call to one of the product's targets — bad input
	// is a CodeInvalid *Error whose Fields name every problem — and says
	// what the session acts on. The engine then picks the scenario and
	// schedules the user (see Launched).
	Launch(ctx context.Context, call *Call) (*Launched, error)
	// Resolve applies the user's action to a pending session at the instant
	// at, which the engine decides: the session's DueAt for a scheduled
	// action (an auto scenario's user, a manual session's timeout), the
	// merchant's clock for a person's choice. It sets s.State, s.Action,
	// s.Return and s.Results and returns what to commit with the session.
	// The engine passes only an action of Actions(s), of the session's
	// scenario, or ActionTimeout.
	Resolve(ctx context.Context, s *Session, action string, at time.Time) (*Batch, error)
}

// Launched is what a product's Launch found in a valid call. The engine
// picks the session's scenario from it — the call's explicit one (header or
// caller.scenario), else Scenario when the catalogue still has it, else a
// magic value among Magic, the merchant's active scenario, the product's
// default — and schedules the scenario's user step (UserPlanner may adapt
// it): an auto session's action is due user.after from the launch, a
// manual one waits for a person until the manual timeout.
type Launched struct {
	// Ref is the record key the session acts on.
	Ref string
	// Scenario is the scenario the call's records were made under (a
	// create's X-Sandbox-Scenario, a magic value then), "" when none.
	Scenario string
	// Magic holds the call's fields a scenario's magic values may match.
	Magic map[string]string
	// Batch is what to commit with the session (nil: nothing).
	Batch *Batch
}

// UserPlanner is implemented by a product whose simulated user does not
// take the scenario's user step as written on every target: a page's own
// action, an App-only outcome a mini-program caller cannot have.
type UserPlanner interface {
	// UserStep is what the scenario's user does in session s.
	UserStep(sc *Scenario, s *Session) UserStep
}

// SceneBackFromMiniProgram is App.onShow's scene when the user comes back
// from another mini-program
// (https://developers.weixin.qq.com/miniprogram/dev/reference/scene-list.html).
const SceneBackFromMiniProgram = 1038

// OnShow is what the caller's App.onShow receives when the user comes back
// from a simulated mini-program.
type OnShow struct {
	Scene        int      `json:"scene"`
	ReferrerInfo Referrer `json:"referrerInfo"`
}

// Referrer is OnShow's referrerInfo: the mini-program the user comes back
// from and what it passes back (nil: no extraData at all).
type Referrer struct {
	AppID     string `json:"appId"`
	ExtraData any    `json:"extraData,omitempty"`
}

// BackFrom is the OnShow of a return from the mini-program appID: scene
// 1038, with extraData when it is not nil.
func BackFrom(appID string, extraData any) OnShow {
	return OnShow{Scene: SceneBackFromMiniProgram, ReferrerInfo: Referrer{AppID: appID, ExtraData: extraData}}
}

// Routes is implemented by a product with an upstream API: Register mounts
// it at the real paths, with its own error dialect and journalling.
type Routes interface {
	Register(r gin.IRouter)
}

// AdminRoutes is implemented by a product with admin routes of its own,
// mounted under /sandbox/v1 after the admin access check (use
// httpapi.ScopeOf there).
type AdminRoutes interface {
	RegisterAdmin(g gin.IRouter)
}

// NotifyBuilder is implemented by a product that sends asynchronous
// notifications; the notification worker builds each attempt with it.
type NotifyBuilder interface {
	// BuildNotify builds and signs the request for one attempt, applying
	// n.Faults.BadSignature.
	BuildNotify(ctx context.Context, m *Merchant, n *Notification) (*OutboundRequest, error)
	// Acknowledged says whether the merchant's answer acknowledges it.
	Acknowledged(status int, body []byte) bool
	// Schedule is the delays before the 2nd, 3rd, … attempts on the sandbox
	// clock; its length + 1 is the number of attempts.
	Schedule() []time.Duration
	// Faults are the notify faults (scenario notify.faults) its
	// notifications play.
	Faults() []string
}

// CallResult is implemented by a product whose call answers with the
// user's outcome once the session has resolved: wx.requestPayment calls
// back only after the user paid or cancelled, so its answer is
// "requestPayment:ok" or "requestPayment:fail cancel", not an
// acknowledgement. ok is false while the outcome is unknown.
type CallResult interface {
	CallErrMsg(s *Session) (errMsg string, ok bool)
}

// PluginGetter is implemented by products whose plugin exposes result
// getters (issuer: getActiveResult, …).
type PluginGetter interface {
	Getter(ctx context.Context, s *Session, name string) (json.RawMessage, error)
}

// Subject is what a session is about, as the simulated mini-program shows
// it to the person acting as the user: the record it acts on and the sum at
// stake.
type Subject struct {
	Kind  string `json:"kind"`
	Key   string `json:"key"`
	Title string `json:"title,omitempty"`
	// Amount is in fen: what the user pays (a P云 trade's value) or vouches
	// for (a pay-score order's risk fund).
	Amount int64 `json:"amount"`
	// AmountLabel names what Amount is, in the upstream's words
	// ("value", "risk_fund.amount").
	AmountLabel string `json:"amount_label"`
}

// SubjectDescriber is implemented by products whose sessions act on one
// record the user is shown (a trade to pay, an order to confirm), so that
// the admin API and the QA page can show it beside the session.
type SubjectDescriber interface {
	// Subject describes the record s.Ref names; CodeNotFound when it is
	// gone.
	Subject(ctx context.Context, s *Session) (*Subject, error)
}
