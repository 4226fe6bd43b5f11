package sandbox

import (
	"context"
	"encoding/json"
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
	API       string
	Caller    Caller
	Args      json.RawMessage
	Merchant  *Merchant
	RequestID string
	// Scenario is the explicit scenario id (X-Sandbox-Scenario header or
	// caller.scenario), "" when none was given.
	Scenario string
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

// Product is one simulated product's side of the mini-program contract.
type Product interface {
	Name() string
	Targets() []Target
	// Launch validates a call to one of the product's targets and fills in
	// the session (Product, Scenario, Mode, Ref, DueAt, …). It returns what
	// to commit with the session. Bad input is a CodeInvalid *Error whose
	// Fields name every problem.
	Launch(ctx context.Context, call *Call, s *Session) (*Batch, error)
	// Resolve applies the user's action to a pending session: it sets
	// s.State, s.Action, s.Return and s.Results and returns what to commit
	// with the session. An action the product does not know is CodeInvalid.
	Resolve(ctx context.Context, s *Session, action string) (*Batch, error)
	// Actions lists the user actions a manual session of the product offers,
	// for the QA page and the admin API.
	Actions(s *Session) []string
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
