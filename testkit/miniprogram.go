package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Call is one wx.* call of the mini-program contract (POST
// /miniprogram/v1/{api}): the object the merchant's mini-program passes.
// Each type below is one API.
type Call interface {
	// API is the path under /miniprogram/v1.
	API() string
}

// OpenBusinessView is wx.openBusinessView: the 支付分 confirm page
// (BusinessType "wxpayScoreUse", ExtraData mch_id, package, timestamp,
// nonce_str, sign_type, sign).
type OpenBusinessView struct {
	BusinessType string            `json:"businessType"`
	ExtraData    map[string]string `json:"extraData"`
	EnvVersion   string            `json:"envVersion,omitempty"`
}

// NavigateToMiniProgram is wx.navigateToMiniProgram (the 支付分 and
// repayment mini-programs).
type NavigateToMiniProgram struct {
	AppID      string `json:"appId"`
	Path       string `json:"path"`
	ExtraData  any    `json:"extraData,omitempty"`
	EnvVersion string `json:"envVersion,omitempty"`
}

// OpenEmbeddedMiniProgram is wx.openEmbeddedMiniProgram: P云's half-screen
// cashier (AppID wxa204074068ad40ef, Path
// /external/payment/trade/create/index?pay_id=<pay_id>).
type OpenEmbeddedMiniProgram struct {
	AppID      string `json:"appId"`
	Path       string `json:"path"`
	ExtraData  any    `json:"extraData,omitempty"`
	EnvVersion string `json:"envVersion,omitempty"`
	Verify     string `json:"verify,omitempty"`
}

// PluginNavigate is wx.navigateTo to a plugin page (URL plugin://…): the
// ETC issuer plugin.
type PluginNavigate struct {
	URL string `json:"url"`
}

// AppLaunchMiniProgram is the App SDK's WXLaunchMiniProgram (the repayment
// mini-program, UserName gh_5e259b7a73b1).
type AppLaunchMiniProgram struct {
	UserName string `json:"userName"`
	Path     string `json:"path"`
	ExtData  string `json:"extData,omitempty"`
}

// RequestPayment is wx.requestPayment.
type RequestPayment struct {
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// API implements Call.
func (OpenBusinessView) API() string { return "openBusinessView" }

// API implements Call.
func (NavigateToMiniProgram) API() string { return "navigateToMiniProgram" }

// API implements Call.
func (OpenEmbeddedMiniProgram) API() string { return "openEmbeddedMiniProgram" }

// API implements Call.
func (PluginNavigate) API() string { return "plugin/navigate" }

// API implements Call.
func (AppLaunchMiniProgram) API() string { return "app/launchMiniProgram" }

// API implements Call.
func (RequestPayment) API() string { return "requestPayment" }

// Caller is who makes a call: what wx.getAccountInfoSync and
// wx.getSystemInfoSync would say in the merchant's mini-program.
type Caller struct {
	AppID         string `json:"appId"`
	Platform      string `json:"platform,omitempty"`
	WechatVersion string `json:"wechatVersion,omitempty"`
	SDKVersion    string `json:"sdkVersion,omitempty"`
	EnvVersion    string `json:"envVersion,omitempty"`
	// AppJSON is what the merchant's app.json declares
	// (embeddedAppIdList, plugins, …), for rules that depend on it.
	AppJSON map[string]any `json:"appJson,omitempty"`
	// Scenario picks the scenario of this call alone.
	Scenario string `json:"scenario,omitempty"`
}

// Launch is the answer to a call the sandbox accepted: the session the
// simulated user is now in.
type Launch struct {
	ErrMsg    string `json:"errMsg"` // "<api>:ok"
	SessionID string `json:"session_id"`
	Scenario  string `json:"scenario"`
	Mode      string `json:"mode"`  // auto or manual
	State     string `json:"state"` // pending, returned, …
	ReturnURL string `json:"return_url"`
	// Warnings are the rules the sandbox inferred (the real documentation
	// does not state them) that the call broke: accepted all the same, each
	// "<path>: <reason>" from an X-Sandbox-Warning header. A merchant set to
	// strict is refused instead.
	Warnings []string `json:"-"`
}

// Violation is one problem with a call, at a JSON pointer.
type Violation struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// CallError is a call the sandbox refused, in the mini-program's own
// dialect: errMsg "<api>:fail …" and every violation.
type CallError struct {
	Status      int
	ErrMsg      string      `json:"errMsg"`
	Violations  []Violation `json:"violations"`
	Diagnostics string      `json:"diagnostics"`
	Body        []byte      `json:"-"`
}

func (e *CallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, e.ErrMsg)
	for _, v := range e.Violations {
		fmt.Fprintf(&b, "; %s: %s", v.Path, v.Message)
	}
	return b.String()
}

// Jump makes call from the merchant's mini-program (Caller: the merchant's
// appid on Android; from, when given, replaces it). A refusal is a
// *CallError.
func (m *Merchant) Jump(ctx context.Context, call Call, from ...Caller) (*Launch, error) {
	caller := Caller{AppID: m.AppID, Platform: "android", WechatVersion: "8.0.50", SDKVersion: "3.4.0"}
	if len(from) > 0 {
		caller = from[0]
	}
	path := "/miniprogram/v1/" + call.API()
	status, header, raw, err := m.sb.exchange(ctx, http.MethodPost, path, map[string]any{"caller": caller, "args": call})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, callError(http.MethodPost, path, status, raw)
	}
	var l Launch
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("POST %s: decode %.200s: %w", path, raw, err)
	}
	var dec mime.WordDecoder
	for _, w := range header.Values("X-Sandbox-Warning") {
		if d, err := dec.DecodeHeader(w); err == nil {
			w = d
		}
		l.Warnings = append(l.Warnings, w)
	}
	return &l, nil
}

// Return is what the merchant's mini-program sees when the user comes back
// from a session: App.onShow's options for a jump, the App SDK's response
// for an App launch, the outcome of a payment.
type Return struct {
	// Pending is true while the user is still away (202).
	Pending bool `json:"-"`
	// Body is the answer as received; Decode reads it into a type of one's own.
	Body json.RawMessage `json:"-"`

	// App.onShow's options (zero for other returns).
	Scene        int           `json:"scene"`
	Path         string        `json:"path"`
	ReferrerInfo *ReferrerInfo `json:"referrerInfo"`
}

// ReferrerInfo is App.onShow's referrerInfo: the mini-program the user came
// back from and what it sent.
type ReferrerInfo struct {
	AppID     string         `json:"appId"`
	ExtraData map[string]any `json:"extraData"`
}

// Decode unmarshals the return's body into v.
func (r *Return) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Return waits up to wait (at most 60 s, the sandbox's bound) for the user
// to come back from session id.
func (s *Sandbox) Return(ctx context.Context, sessionID string, wait time.Duration) (*Return, error) {
	path := "/miniprogram/v1/sessions/" + url.PathEscape(sessionID) + "/return?wait=" + wait.String()
	status, raw, err := s.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	r := &Return{Body: raw}
	switch status {
	case http.StatusAccepted:
		r.Pending = true
		return r, nil
	case http.StatusOK:
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("GET %s: decode %.200s: %w", path, raw, err)
		}
		return r, nil
	}
	return nil, callError(http.MethodGet, path, status, raw)
}

// callError is a refusal on /miniprogram/v1: a *CallError in the errMsg
// dialect, or an *APIError for an answer that is not one.
func callError(method, path string, status int, raw []byte) error {
	e := &CallError{Status: status, Body: raw}
	if json.Unmarshal(raw, e) != nil || e.ErrMsg == "" {
		return apiError(method, path, status, raw)
	}
	return e
}

// PluginResult reads what requirePlugin('issuer-plugin').<getter>() gives
// the host after session id (getActiveResult, getSignProResult,
// getSignCarServiceResule — the plugin's own spelling) into out.
func (s *Sandbox) PluginResult(ctx context.Context, sessionID, getter string, out any) error {
	path := "/miniprogram/v1/sessions/" + url.PathEscape(sessionID) + "/plugin/" + url.PathEscape(getter)
	status, raw, err := s.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return callError(http.MethodGet, path, status, raw)
	}
	return json.Unmarshal(raw, out)
}
