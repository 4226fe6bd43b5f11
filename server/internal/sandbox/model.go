package sandbox

import (
	"encoding/json"
	"fmt"
	"path"
	"time"
)

// Products, by package name. A product's name prefixes its record kinds,
// scenario ids and schema names.
const (
	ProductPayScore  = "payscore"
	ProductRepayment = "repayment"
	ProductEmbedPay  = "embedpay"
	ProductIssuer    = "issuer"
)

// Merchant is a sandbox merchant and its test credentials. The JSON names of
// the credential fields are public: clients configure themselves from them.
type Merchant struct {
	MchID     string `json:"mchid"`
	Name      string `json:"name"`
	AppID     string `json:"appid"`      // the merchant's mini-program appId
	ServiceID string `json:"service_id"` // pay-score service id (32 digits)

	MerchantSerialNo       string `json:"merchant_serial_no"`
	MerchantPrivateKeyPEM  string `json:"merchant_private_key_pem"`
	MerchantCertificatePEM string `json:"merchant_certificate_pem"`
	// MerchantPublicKeyPEM is the key request signatures are verified
	// against: the generated key's, or one the merchant registered.
	MerchantPublicKeyPEM string `json:"merchant_public_key_pem"`

	APIv2Key string `json:"api_v2_key"`
	APIv3Key string `json:"api_v3_key"`

	PlatformPublicKeyID    string `json:"platform_public_key_id"`
	PlatformPublicKeyPEM   string `json:"platform_public_key_pem"`
	PlatformSerialNo       string `json:"platform_serial_no"`
	PlatformCertificatePEM string `json:"platform_certificate_pem"`
	// PlatformPrivateKeyPEM signs responses and notifications; it is WeChat's
	// secret, so it is never rendered. It holds the private key of the
	// platform public key (PlatformPublicKeyID) and, after it, that of the
	// platform certificate, which is another key as it is at WeChat Pay:
	// two PEM blocks in one field, so that a store keeps one secret. A
	// single block (merchants generated before the two keys) is both.
	PlatformPrivateKeyPEM string `json:"-"`
	// PlatformKeyMode is how WeChat Pay signs for the merchant: one of the
	// PlatformKeyMode* values; empty is PlatformKeyModePublicKey.
	PlatformKeyMode string `json:"platform_key_mode,omitempty"`
	// SubMerchants makes the merchant a service provider (服务商): the
	// sub-merchants it may act for in partner mode (/v3/payscore/partner/…).
	SubMerchants []SubMerchant `json:"sub_merchants,omitempty"`

	PCloudAppID     string `json:"pcloud_app_id"`
	PCloudAppSecret string `json:"pcloud_app_secret"`
	PCloudMerchant  string `json:"pcloud_merchant"`

	// NotifyHosts allow-lists notification targets: host or host:port.
	// Empty means loopback only.
	NotifyHosts []string `json:"notify_hosts"`
	// Token is the merchant-scoped admin token: it sees only this merchant.
	Token string `json:"-"`

	// Active is the merchant's active scenario per product.
	Active map[string]ActiveScenario `json:"active_scenarios"`
	// ClockOffset is the merchant's total manual clock advance.
	ClockOffset time.Duration `json:"clock_offset_ns"`
	// APIFaults are the faults the upstream APIs play on the merchant's
	// next calls, first match first.
	APIFaults []APIFault `json:"api_faults,omitempty"`
	// Strict turns the warnings of rules the sandbox only inferred into
	// refusals, in the caller's own error format.
	Strict bool `json:"strict,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	// Version counts the merchant's commits; a change committed with it is
	// compare-and-swap on it, so that concurrent changes are never lost.
	Version int64 `json:"-"`
}

// SubMerchant is a service provider's sub-merchant (子商户): just its id
// and, when it has one, its mini-program's appid; it need not be a sandbox
// merchant itself.
type SubMerchant struct {
	SubMchID string `json:"sub_mchid"`
	SubAppID string `json:"sub_appid,omitempty"`
}

// SubMerchant returns the provider's sub-merchant subMchID, or nil.
func (m *Merchant) SubMerchant(subMchID string) *SubMerchant {
	for i := range m.SubMerchants {
		if m.SubMerchants[i].SubMchID == subMchID {
			return &m.SubMerchants[i]
		}
	}
	return nil
}

// MsgNoRelation is the refusal of a sub_mchid a service provider has no
// relation (受理关系) with [I: the real code and text are not published;
// the sandbox answers PARAM_ERROR "受理关系不存在"].
const MsgNoRelation = "受理关系不存在"

// RequireSub returns the provider's sub-merchant subMchID, or the refusal
// at /sub_mchid saying why: a provider acts only for its sub-merchants.
func (m *Merchant) RequireSub(subMchID string) (*SubMerchant, error) {
	if sub := m.SubMerchant(subMchID); sub != nil {
		return sub, nil
	}
	why := fmt.Sprintf("%q is not a sub-merchant of service provider %s", subMchID, m.MchID)
	if len(m.SubMerchants) == 0 {
		why += ", which has none: give it sub_merchants with PATCH /sandbox/v1/merchants/" + m.MchID
	}
	return nil, Invalid(MsgNoRelation, Violation{Path: "/sub_mchid", Message: why})
}

// ForeignSubAppID reports a sub_appid other than the one the sub-merchant
// was registered with: a warning, since the sandbox may not know all of a
// sub-merchant's mini-programs, while the real API refuses a sub_appid not
// bound to the sub_mchid [I].
func (m *Merchant) ForeignSubAppID(subMchID, subAppID string) (Violation, bool) {
	sub := m.SubMerchant(subMchID)
	if sub == nil || sub.SubAppID == "" || subAppID == "" || subAppID == sub.SubAppID {
		return Violation{}, false
	}
	return Violation{Path: "/sub_appid", Message: fmt.Sprintf(
		"%q is not sub-merchant %s's mini-program as registered in the sandbox (%q); the real API refuses a sub_appid not bound to the sub_mchid [I]",
		subAppID, subMchID, sub.SubAppID)}, true
}

// Platform key modes: which key WeChat Pay signs answers and notifications
// with for a merchant (https://pay.weixin.qq.com/doc/v3/merchant/4012154180).
const (
	// PlatformKeyModeCertificate: the platform certificate signs
	// everything; Wechatpay-Serial is its serial.
	PlatformKeyModeCertificate = "certificate"
	// PlatformKeyModePublicKey: the WeChat Pay public key signs the
	// notifications and the answers to requests that name its PUB_KEY_ID.
	PlatformKeyModePublicKey = "public_key"
	// PlatformKeyModeSwitching is the switch from the certificate to the
	// public key (灰度): each notification is signed by one key or the
	// other at random, and answers follow the request's Wechatpay-Serial.
	PlatformKeyModeSwitching = "switching"
)

// PlatformKeyModes lists the modes, in the order of the switch.
var PlatformKeyModes = []string{PlatformKeyModeCertificate, PlatformKeyModeSwitching, PlatformKeyModePublicKey}

// KeyMode returns the merchant's platform key mode, the default when unset.
func (m *Merchant) KeyMode() string {
	if m.PlatformKeyMode == "" {
		return PlatformKeyModePublicKey
	}
	return m.PlatformKeyMode
}

// API fault kinds: what an upstream API does instead of answering a call.
const (
	// FaultRateLimited refuses the call unprocessed: v3 429
	// RATELIMIT_EXCEEDED, v2 FREQUENCY_LIMITED.
	FaultRateLimited = "rate_limited"
	// FaultSystemError: v3 500 SYSTEM_ERROR, v2 return_code FAIL.
	FaultSystemError = "system_error"
	// FaultServiceUnavailable: v3 503 SERVICE_UNAVAILABLE, v2 as
	// system_error.
	FaultServiceUnavailable = "service_unavailable"
	// FaultTimeout answers nothing: the connection is held, then closed.
	FaultTimeout = "timeout"
	// FaultBadSignature processes the call and answers with a signature
	// that does not verify.
	FaultBadSignature = "bad_signature"
)

// APIFaultKinds lists the kinds.
var APIFaultKinds = []string{FaultRateLimited, FaultSystemError, FaultServiceUnavailable, FaultTimeout, FaultBadSignature}

// APIFault makes an upstream API misbehave on a merchant's next calls to an
// endpoint.
type APIFault struct {
	ID string `json:"id"`
	// Method is the HTTP method it applies to; empty is any.
	Method string `json:"method,omitempty"`
	// Path is a path.Match pattern of the request path:
	// "/v3/payscore/serviceorder/*/complete".
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Remaining is how many more calls it applies to; at 0 it is gone.
	Remaining int `json:"remaining"`
	// Hold is how long a timeout keeps the connection before closing it.
	Hold      Duration  `json:"hold,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Matches reports whether the fault applies to a call.
func (f *APIFault) Matches(method, urlPath string) bool {
	if f.Method != "" && f.Method != method {
		return false
	}
	ok, err := path.Match(f.Path, urlPath)
	return ok && err == nil
}

// APIFault returns the index of the merchant's first fault that applies
// to a call.
func (m *Merchant) APIFault(method, urlPath string) (int, bool) {
	for i := range m.APIFaults {
		if m.APIFaults[i].Matches(method, urlPath) {
			return i, true
		}
	}
	return -1, false
}

// ActiveScenario is a merchant's chosen scenario for a product. Once means it
// applies to the next launch only and is then cleared.
type ActiveScenario struct {
	ID   string `json:"id"`
	Once bool   `json:"once,omitempty"`
}

// Record is a product's persistent object — a pay-score order, a P云 trade,
// a vehicle user, an issuer order — stored as JSON. Kind is
// "<product>.<type>"; Key and each of Aliases (pay_id, query_id, package, a
// plate) are unique per kind and merchant.
type Record struct {
	Kind    string          `json:"kind"`
	MchID   string          `json:"mchid"`
	Key     string          `json:"key"`
	Aliases []string        `json:"aliases,omitempty"`
	Version int64           `json:"version"`
	Data    json.RawMessage `json:"data"`
	// CreatedAt and UpdatedAt are real time, set by the store.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SessionState is where a mini-program session stands.
type SessionState string

// Session states.
const (
	SessionPending  SessionState = "pending"  // the user has not acted yet (manual) or the action is scheduled
	SessionReturned SessionState = "returned" // the user came back; Return holds what the caller sees
	SessionExpired  SessionState = "expired"  // a manual session nobody resolved in time
)

// Session is one jump out of the merchant's mini-program (or App) into a
// simulated one, until the user comes back.
type Session struct {
	ID       string       `json:"id"`
	MchID    string       `json:"mchid"`
	Product  string       `json:"product"`
	API      string       `json:"api"` // openBusinessView, navigateToMiniProgram, …
	Target   string       `json:"target"`
	Scenario string       `json:"scenario"`
	Mode     string       `json:"mode"` // auto | manual
	State    SessionState `json:"state"`
	// Action is the user's action (confirm, pay, cancel, …) once chosen.
	Action string `json:"action,omitempty"`
	// Ref is the product record key the session acts on.
	Ref  string          `json:"ref,omitempty"`
	Args json.RawMessage `json:"args,omitempty"`
	// Return is what the caller sees when the user comes back: App.onShow
	// options, or the App SDK's response.
	Return json.RawMessage `json:"return,omitempty"`
	// Results holds plugin getter results by getter name.
	Results map[string]json.RawMessage `json:"results,omitempty"`
	// DueAt is when an auto session's action happens, on the merchant clock.
	DueAt     time.Time `json:"due_at"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
}

// NotifyState is where a notification stands.
type NotifyState string

// Notification states.
const (
	NotifyPending   NotifyState = "pending"   // waiting for DueAt
	NotifyHeld      NotifyState = "held"      // paused by an admin
	NotifyDelivered NotifyState = "delivered" // acknowledged by the merchant
	NotifyFailed    NotifyState = "failed"    // every attempt of the schedule failed
	NotifyDropped   NotifyState = "dropped"   // a scenario asked for it never to be sent
	NotifyRefused   NotifyState = "refused"   // the target is outside the merchant's allow-list
)

// Faults a scenario can put on a notification.
type Faults struct {
	BadSignature bool `json:"bad_signature,omitempty"`
	// Duplicate sends the notification once more after it is acknowledged.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Notification is one outbound asynchronous notification, durable in the
// store until acknowledged or out of attempts.
type Notification struct {
	ID      string `json:"id"`
	MchID   string `json:"mchid"`
	Product string `json:"product"`
	Event   string `json:"event"` // PAYSCORE.USER_CONFIRM, trade-notify, …
	Ref     string `json:"ref"`   // the record key it is about
	URL     string `json:"url"`
	// Payload is the product's own description of what to send; the product
	// builds and signs the request from it at each attempt.
	Payload  json.RawMessage `json:"payload"`
	State    NotifyState     `json:"state"`
	Attempts int             `json:"attempts"`
	// DueAt is the next attempt's time on the merchant clock.
	DueAt      time.Time `json:"due_at"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// FailNext makes the next N attempts fail without contacting the target.
	FailNext  int       `json:"fail_next,omitempty"`
	Faults    Faults    `json:"faults"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
}

// Exchange directions.
const (
	DirectionIn  = "in"  // a request to the sandbox
	DirectionOut = "out" // a request the sandbox made (a notification attempt)
)

// Exchange is one journalled request and its response.
type Exchange struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"`
	Direction   string    `json:"direction"`
	Product     string    `json:"product,omitempty"`
	MchID       string    `json:"mchid,omitempty"`
	SessionID   string    `json:"session_id,omitempty"`
	NotifyID    string    `json:"notify_id,omitempty"`
	Attempt     int       `json:"attempt,omitempty"`
	Scenario    string    `json:"scenario,omitempty"`
	RequestID   string    `json:"request_id,omitempty"`
	Method      string    `json:"method"`
	URL         string    `json:"url"`
	Status      int       `json:"status"`
	LatencyMS   float64   `json:"latency_ms"`
	RequestBody string    `json:"request_body,omitempty"`
	// ResponseBody is the head of the response body (bounded).
	ResponseBody string      `json:"response_body,omitempty"`
	Violations   []Violation `json:"violations,omitempty"`
	// Warnings are what the sandbox noticed and let through: a rule it
	// only inferred, a deviation the real system tolerates.
	Warnings    []Violation `json:"warnings,omitempty"`
	Diagnostics string      `json:"diagnostics,omitempty"`
	Error       string      `json:"error,omitempty"`
	// Source is the address the request came from (incoming exchanges).
	Source string `json:"source,omitempty"`
	// Unverified marks an exchange that did not prove it belongs to its
	// merchant (a bad or missing signature, an unknown key): it is kept
	// with a small budget and is rate-limited per source.
	Unverified bool `json:"unverified,omitempty"`
	// Summary marks a listing's entry whose fields were cut to a preview;
	// GET /sandbox/v1/journal/{id} has the whole entry.
	Summary bool `json:"summary,omitempty"`
}

// JournalFilter selects exchanges, newest first (oldest first with Oldest).
type JournalFilter struct {
	Product string
	MchID   string
	// SessionID and NotifyID select the exchanges that name the session
	// (notification) journalled since it was stored, or all that name it
	// when it is not stored: an exchange names a session only once the
	// session exists, so that is every one; a store may look for them
	// from the session's storing on (SQLite does).
	SessionID string
	NotifyID  string
	Direction string
	// BeforeID pages backwards; AfterID returns only newer entries.
	BeforeID int64
	AfterID  int64
	Limit    int
	// MaxBytes, when above 0, ends the page early once the stored entries
	// read pass that many bytes (the first entry is always returned), so
	// that a page's memory is bounded whatever its entries hold.
	MaxBytes int
	// Oldest returns the oldest entries first: with AfterID, it pages
	// forward (an event stream's replay).
	Oldest bool
}

// NotificationFilter selects notifications, newest first.
type NotificationFilter struct {
	MchID   string
	Product string
	Ref     string
	State   NotifyState
	Limit   int
}

// SessionFilter selects sessions, newest first.
type SessionFilter struct {
	MchID   string
	Product string
	State   SessionState
	Limit   int
}
