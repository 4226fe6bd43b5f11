package payscore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// Client requirements of the 支付分 jump page (§1.1) and of wx.navigateToMiniProgram
// (SOURCES.md §4).
var (
	minOpenBusinessViewSDK = version{2, 6, 0}
	minNavigateSDK         = version{1, 3, 0}
	minWechat              = version{7, 0, 3}
)

// maxNavigateTargets is the old limit on navigateToMiniProgramAppIdList
// that the 支付分 jump page §1.2 still quotes.
const maxNavigateTargets = 10

// extraData is what the merchant passes to the 支付分 mini-program.
type extraData struct {
	MchID     string `json:"mch_id"`
	Package   string `json:"package"`
	Timestamp string `json:"timestamp"`
	NonceStr  string `json:"nonce_str"`
	SignType  string `json:"sign_type"`
	Sign      string `json:"sign"`
}

// Launch validates a jump to the 支付分 mini-program and prepares the
// session: the client can make the call, the args and extraData match their
// schema, mch_id is the caller's merchant, sign verifies under its API v2
// key, and the package is one this merchant's create returned, still CREATED
// and less than an hour old. Every problem found is listed.
func (p *Product) Launch(ctx context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	m := call.Merchant
	vs := clientViolations(call)
	name := schemaOpenBusiness
	if call.API == sandbox.APINavigateToMiniProgram {
		name = schemaNavigate
	}
	more, err := sandbox.ValidateAt(p.d.Validator, name, call.Doc, "/args")
	if err != nil {
		return nil, err
	}
	vs = append(vs, more...)
	var o *order
	var diagnostics string
	// Signature and package are checked whenever extraData is an object,
	// so that a merchant sees all that is wrong at once.
	if ed, ok := readExtraData(call.Doc["extraData"]); ok {
		if ed.MchID != "" && ed.MchID != m.MchID {
			vs = append(vs, sandbox.Violation{Path: "/args/extraData/mch_id", Message: fmt.Sprintf(
				"%q is not the calling mini-program's merchant %s", ed.MchID, m.MchID)})
		}
		if ed.SignType == wxsign.SignTypeHMACSHA256 {
			if v, diag := checkSign(&ed, m.APIv2Key); v != nil {
				vs, diagnostics = append(vs, *v), diag
			}
		}
		var v *sandbox.Violation
		if o, v = p.packageOrder(ctx, m, ed.Package); v != nil {
			vs = append(vs, *v)
		}
	}
	if len(vs) == 0 && o == nil {
		vs = append(vs, sandbox.Violation{Path: "/args/extraData", Message: "must be an object with the signed package"})
	}
	if len(vs) > 0 {
		return nil, &sandbox.Error{Code: sandbox.CodeInvalid, Message: "invalid call", Fields: vs, Diagnostics: diagnostics}
	}
	// The scenario was picked at create (header, magic out_order_no,
	// active, default); the jump may name another.
	return &sandbox.Launched{Ref: o.OutOrderNo, Scenario: o.Sandbox.Scenario}, nil
}

// readExtraData reads extraData's six strings by their exact names, as
// JavaScript does; ok is false when it is not an object of strings (the
// schema says what is wrong).
func readExtraData(v any) (extraData, bool) {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		return extraData{}, false
	}
	var ed extraData
	for name, dst := range map[string]*string{"mch_id": &ed.MchID, "package": &ed.Package, "timestamp": &ed.Timestamp,
		"nonce_str": &ed.NonceStr, "sign_type": &ed.SignType, "sign": &ed.Sign} {
		x, present := obj[name]
		if !present {
			continue
		}
		if *dst, ok = x.(string); !ok {
			return extraData{}, false
		}
	}
	return ed, true
}

// checkSign verifies sign: upper-case hex HMAC-SHA256 under the API v2 key
// of the five other fields sorted, with "&key=" (SOURCES.md §2).
func checkSign(ed *extraData, key string) (*sandbox.Violation, string) {
	params := map[string]string{
		"mch_id": ed.MchID, "package": ed.Package, "timestamp": ed.Timestamp,
		"nonce_str": ed.NonceStr, "sign_type": ed.SignType,
	}
	err := wxsign.V2Verify(params, key, wxsign.SignTypeHMACSHA256, ed.Sign)
	if err == nil {
		return nil, ""
	}
	e := sandbox.AsError(err)
	return &sandbox.Violation{Path: "/args/extraData/sign", Message: e.Message +
		" (HMAC-SHA256 under the API v2 key, not the v3 one); expected string-to-sign: " + e.Diagnostics}, e.Diagnostics
}

// packageOrder finds the order a package was minted for.
func (p *Product) packageOrder(ctx context.Context, m *sandbox.Merchant, pkg string) (*order, *sandbox.Violation) {
	bad := func(format string, args ...any) (*order, *sandbox.Violation) {
		return nil, &sandbox.Violation{Path: "/args/extraData/package", Message: fmt.Sprintf(format, args...)}
	}
	if pkg == "" {
		return nil, nil // the schema said so
	}
	rec, err := p.d.Store.FindRecord(ctx, kindOrder, m.MchID, aliasPackage+pkg)
	if sandbox.IsCode(err, sandbox.CodeNotFound) {
		return bad("is not a package that merchant %s's create (POST /v3/payscore/serviceorder) returned", m.MchID)
	}
	if err != nil {
		return bad("cannot be looked up: %v", err)
	}
	o, err := sandbox.Decode[order](rec)
	if err != nil {
		return bad("belongs to an order that cannot be read: %v", err)
	}
	now := p.d.Clock.Now(m.MchID)
	o.advance(now)
	switch {
	case !now.Before(o.Sandbox.PackageExpires):
		return bad("has expired: order %s's package was valid for 1 h, until %s, and it is %s on the merchant's clock",
			o.OutOrderNo, o.Sandbox.PackageExpires.In(beijing).Format(time.DateTime), now.In(beijing).Format(time.DateTime))
	case o.State != stateCreated:
		return bad("belongs to order %s, which is %s: only a CREATED order waits for the user to confirm [I]", o.OutOrderNo, o.describe())
	}
	return o, nil
}

// clientViolations applies the 支付分 jump page's client rules: openBusinessView exists
// from base library 2.6.0, and reaches 支付分 from WeChat 7.0.3, failing below
// it as each platform does; navigateToMiniProgram exists from 1.3.0 and,
// when app.json lists navigateToMiniProgramAppIdList, needs the target in it.
func clientViolations(call *sandbox.Call) []sandbox.Violation {
	var vs []sandbox.Violation
	c := call.Caller
	sdk, sdkOK := parseVersion(c.SDKVersion)
	if call.API == sandbox.APIOpenBusinessView {
		if sdkOK && sdk.less(minOpenBusinessViewSDK) {
			vs = append(vs, sandbox.Violation{Path: "/caller/sdkVersion", Message: fmt.Sprintf(
				"wx.openBusinessView is not a function below base library %s (this caller runs %s): check `if (wx.openBusinessView)` and ask the user to upgrade WeChat, as the 支付分 jump page says",
				minOpenBusinessViewSDK, c.SDKVersion)})
		}
		if wx, ok := parseVersion(c.WechatVersion); ok && wx.less(minWechat) {
			msg := fmt.Sprintf("WeChat %s is below %s: ", c.WechatVersion, minWechat)
			switch c.Platform {
			case "ios":
				msg += "on iOS WeChat opens but cannot open 支付分, and tells the user 可能由于应用的请求非法或者微信版本过低"
			case "android":
				msg += "on Android the call cannot even reach WeChat; tell the user to update WeChat"
			default:
				msg += "支付分 cannot be opened; tell the user to update WeChat"
			}
			vs = append(vs, sandbox.Violation{Path: "/caller/wechatVersion", Message: msg})
		}
		return vs
	}
	if sdkOK && sdk.less(minNavigateSDK) {
		vs = append(vs, sandbox.Violation{Path: "/caller/sdkVersion", Message: fmt.Sprintf(
			"wx.navigateToMiniProgram is not a function below base library %s (this caller runs %s)", minNavigateSDK, c.SDKVersion)})
	}
	var appJSON struct {
		List *[]string `json:"navigateToMiniProgramAppIdList"`
	}
	if len(c.AppJSON) > 0 && json.Unmarshal(c.AppJSON, &appJSON) == nil && appJSON.List != nil {
		list := *appJSON.List
		switch {
		case !slices.Contains(list, AppID):
			vs = append(vs, sandbox.Violation{Path: "/caller/appJson/navigateToMiniProgramAppIdList", Message: fmt.Sprintf(
				"appId \"%s\" is not in navigateToMiniProgramAppIdList", AppID)})
		case len(list) > maxNavigateTargets:
			vs = append(vs, sandbox.Violation{Path: "/caller/appJson/navigateToMiniProgramAppIdList", Message: fmt.Sprintf(
				"lists %d mini-programs; the 支付分 jump page allows at most %d (wx.openBusinessView does not count against it)", len(list), maxNavigateTargets)})
		}
	}
	return vs
}

// version is a dotted version: 2.6.0, 8.0.50.
type version [3]int

func parseVersion(s string) (version, bool) {
	var v version
	if s == "" {
		return v, false
	}
	for i, part := range strings.SplitN(s, ".", 4) {
		if i == len(v) {
			break
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func (v version) less(w version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// Resolve applies the user's action. Confirming moves the order to
// DOING/USER_CONFIRM and queues PAYSCORE.USER_CONFIRM; the in-page back
// button returns query_id, the back icon returns nothing (the 支付分 jump page §1.3).
// A user who acts after the package expired, or on an order no longer
// CREATED, meets the expired page instead.
func (p *Product) Resolve(ctx context.Context, s *sandbox.Session, action string, now time.Time) (*sandbox.Batch, error) {
	rec, o, err := p.loadOrder(ctx, s)
	if err != nil {
		return nil, err
	}
	o.advance(now)
	confirm := action == ActionConfirm || action == ActionConfirmBackIcon
	if confirm && (o.State != stateCreated || !now.Before(o.Sandbox.PackageExpires)) {
		action = ActionExpired
		confirm = false
	}
	ret := sandbox.BackFrom(AppID, nil)
	if action == ActionConfirm || action == ActionCancel {
		// The in-page back button: the query id, whatever the user chose
		// (the 支付分 jump page's sample queries it to learn the outcome) [I for cancel].
		ret.ReferrerInfo.ExtraData = map[string]any{"query_id": o.Sandbox.QueryID}
	}
	if s.Return, err = json.Marshal(ret); err != nil {
		return nil, err
	}
	s.State, s.Action = sandbox.SessionReturned, action
	if !confirm {
		return nil, nil
	}
	o.State, o.StateDescription = stateDoing, descUserConfirm
	o.Sandbox.Scenario = s.Scenario
	if o.OpenID == "" {
		o.OpenID = userOpenID(s.MchID)
	}
	if o.TimeRange.StartTime == "OnAccept" {
		// The service starts as the user accepts [I: the real order shows a time].
		o.TimeRange.StartTime = now.In(beijing).Format(v3Time)
	}
	n, err := p.notification(o, o.full(), EventUserConfirm, now, p.scenario(s.Scenario))
	if err != nil {
		return nil, err
	}
	if rec.Data, err = json.Marshal(o); err != nil {
		return nil, err
	}
	return &sandbox.Batch{Updates: []*sandbox.Record{rec}, Notifications: []*sandbox.Notification{n}}, nil
}

// userOpenID is the simulated user's openid under the merchant's appid:
// the same user for every order of a merchant [I].
func userOpenID(mchid string) string {
	var seed int64
	for _, c := range mchid {
		seed = seed*31 + int64(c)
	}
	return fixtures.New(seed).OpenID()
}

// Subject describes the service order the confirm page shows: the service
// and its risk fund.
func (p *Product) Subject(ctx context.Context, s *sandbox.Session) (*sandbox.Subject, error) {
	_, o, err := p.loadOrder(ctx, s)
	if err != nil {
		return nil, err
	}
	return &sandbox.Subject{Kind: kindOrder, Key: o.OutOrderNo, Title: o.ServiceIntroduction,
		Amount: o.RiskFund.Amount, AmountLabel: "risk_fund.amount"}, nil
}

// loadOrder reads the service order the session acts on.
func (p *Product) loadOrder(ctx context.Context, s *sandbox.Session) (*sandbox.Record, *order, error) {
	rec, err := p.d.Store.GetRecord(ctx, kindOrder, s.MchID, s.Ref)
	if err != nil {
		return nil, nil, err
	}
	o, err := sandbox.Decode[order](rec)
	return rec, o, err
}
