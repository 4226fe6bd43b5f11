package repayment

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// jumpParams are the four parameters both ways in carry (the repayment page): in
// extraData from a mini-program, in the path's query string from an App.
type jumpParams struct {
	AppID    string // appid
	MchID    string // mchid
	MchIDAlt string // mch_id
	NonceStr string // nonce_str
	OpenID   string // openid
}

// Launch validates a jump into the repayment mini-program — every problem
// at once, each with its path — and picks the scenario: the header or
// caller.scenario, else a magic value (nonce_str, openid, plate_number),
// the merchant's active one, the default.
func (p *Product) Launch(ctx context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	m := call.Merchant
	if err := p.ensureFixtures(ctx, m.MchID); err != nil {
		return nil, err
	}
	var (
		params jumpParams
		vs     []sandbox.Violation
		base   string
		err    error
	)
	if call.API == sandbox.APIAppLaunchMiniProgram {
		base = "/args/path"
		params, vs, err = p.appArgs(call.Doc)
	} else {
		base = "/args/extraData"
		params, vs, err = p.navigateArgs(call.Doc)
	}
	if err != nil {
		return nil, err
	}
	u, more, warnings, err := p.checkParams(ctx, call, params, base)
	if err != nil {
		return nil, err
	}
	if vs = append(vs, more...); len(vs) > 0 {
		return nil, sandbox.Invalid("the repayment mini-program cannot open", vs...)
	}
	fields := map[string]string{"nonce_str": params.NonceStr, "openid": u.OpenID}
	if len(u.Plates) > 0 {
		fields["plate_number"] = u.Plates[0].PlateNumber
	}
	sc, err := p.advancedUnder(ctx, m.MchID, u)
	if err != nil {
		return nil, err
	}
	return &sandbox.Launched{Ref: u.OpenID, Scenario: sc, Magic: fields, Warnings: warnings}, nil
}

// advancedUnder is the scenario of the deduction behind the user's latest
// unrepaid advance, "" when there is none: the scenario that made WeChat
// advance the money also scripts whether the user repays it.
func (p *Product) advancedUnder(ctx context.Context, mchid string, u *user) (string, error) {
	for i := len(u.Advances) - 1; i >= 0; i-- {
		if u.Advances[i].repaid() {
			continue
		}
		d, err := sandbox.Get[deduction](ctx, p.d.Store, KindTransaction, mchid, u.Advances[i].OutTradeNo)
		if sandbox.IsCode(err, sandbox.CodeNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return d.V.Scenario, nil
	}
	return "", nil
}

// UserStep is the scenario's: deny and unsupported are the App SDK's
// answers, so a mini-program caller whose scenario names them sees the
// user come back having done nothing [I].
func (p *Product) UserStep(sc *sandbox.Scenario, s *sandbox.Session) sandbox.UserStep {
	step := sc.User
	if !slices.Contains(p.Actions(s), step.Action) {
		step.Action = ActionCancel
	}
	return step
}

// navigateArgs checks wx.navigateToMiniProgram's object (and
// <navigator target="miniProgram">'s attributes under the same names) and
// returns its extraData.
func (p *Product) navigateArgs(a map[string]any) (jumpParams, []sandbox.Violation, error) {
	var params jumpParams
	// Keys are matched exactly as JavaScript does: encoding/json into a
	// struct would let a stray "extradata" or "openId" stand in for the
	// real one.
	vs, err := sandbox.ValidateAt(p.d.Validator, schemaNavigateArgs, a, "/args")
	if err != nil {
		return params, nil, err
	}
	path := str(a, "path")
	if page := pageOf(path); path != "" && page != Page {
		vs = append(vs, sandbox.Violation{Path: "/args/path", Message: fmt.Sprintf(
			"%q is not the repayment page: the path is fixed, %q (the repayment page)", path, Page)})
	}
	if extra, ok := a["extraData"]; ok {
		more, err := sandbox.ValidateAt(p.d.Validator, schemaExtraData, extra, "/args/extraData")
		if err != nil {
			return params, nil, err
		}
		vs = append(vs, more...)
		e, _ := extra.(map[string]any) // wrong types are reported above
		params = jumpParams{AppID: str(e, "appid"), MchID: str(e, "mchid"), MchIDAlt: str(e, "mch_id"),
			NonceStr: str(e, "nonce_str"), OpenID: str(e, "openid")}
	}
	return params, vs, nil
}

// str is the member's string value, "" when absent or not a string.
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// integer is the member's integer value, if it is one.
func integer(m map[string]any, key string) (int64, bool) {
	n, ok := m[key].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// appArgs checks WXLaunchMiniProgram.Req's fields and reads the four
// parameters from the path's query string.
func (p *Product) appArgs(a map[string]any) (jumpParams, []sandbox.Violation, error) {
	var params jumpParams
	vs, err := sandbox.ValidateAt(p.d.Validator, schemaAppLaunchArgs, a, "/args")
	if err != nil {
		return params, nil, err
	}
	android, okA := integer(a, "miniprogramType")
	ios, okI := integer(a, "miniProgramType")
	if okA && okI && android != ios {
		vs = append(vs, sandbox.Violation{Path: "/args/miniProgramType", Message: fmt.Sprintf(
			"is %d but miniprogramType is %d: send one (Android's miniprogramType or iOS's miniProgramType)", ios, android)})
	}
	path := str(a, "path")
	page, rawQuery, _ := strings.Cut(path, "?")
	if path == "" {
		return params, vs, nil // the schema reports it
	}
	if strings.TrimPrefix(page, "/") != Page {
		vs = append(vs, sandbox.Violation{Path: "/args/path", Message: fmt.Sprintf(
			"page %q is not the repayment page; launch %s?mchid=…&appid=…&nonce_str=…&openid=… (the repayment page)", page, Page)})
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return params, append(vs, sandbox.Violation{Path: "/args/path", Message: "the query string does not parse: " + err.Error()}), nil
	}
	doc := make(map[string]any, len(q))
	for k, vals := range q {
		if len(vals) > 1 {
			vs = append(vs, sandbox.Violation{Path: "/args/path/" + k, Message: fmt.Sprintf("is given %d times in the query string", len(vals))})
		}
		doc[k] = vals[0]
	}
	more, err := sandbox.ValidateAt(p.d.Validator, schemaAppPathQuery, doc, "/args/path")
	if err != nil {
		return params, nil, err
	}
	vs = append(vs, more...)
	params = jumpParams{AppID: q.Get("appid"), MchID: q.Get("mchid"), MchIDAlt: q.Get("mch_id"),
		NonceStr: q.Get("nonce_str"), OpenID: q.Get("openid")}
	return params, vs, nil
}

// checkParams checks what the parameters say against the sandbox: the
// appid, the merchant, and the user. It returns the user when known, the
// refusals, and the warnings of the inferred rules.
func (p *Product) checkParams(ctx context.Context, call *sandbox.Call, params jumpParams, base string) (u *user, vs, warnings []sandbox.Violation, err error) {
	m := call.Merchant
	app := call.API == sandbox.APIAppLaunchMiniProgram
	switch {
	case params.AppID == "":
		// missing: the schema reports it
	case !app && params.AppID == m.AppID:
		// The repayment page's field table fixes appid to the repayment
		// mini-program's own; its sample code passes the merchant's appid
		// instead. Which one the real page checks is not published: the
		// sample's reading is accepted with a warning [I].
		warnings = append(warnings, sandbox.Violation{Path: base + "/appid", Message: fmt.Sprintf(
			"is %q, the merchant's appid, as the repayment page's sample passes it (%q); its field table says the fixed %s, the repayment mini-program's own: send %s (inferred rule: a warning, a refusal for a strict merchant)",
			params.AppID, "wxcbda96de0b165486", AppID, AppID)})
	case !app && params.AppID != AppID:
		vs = append(vs, sandbox.Violation{Path: base + "/appid", Message: fmt.Sprintf(
			"is %q; from a mini-program it is the fixed %s, the repayment mini-program's own appid (the repayment page's table; its sample passes the merchant's appid, %s)",
			params.AppID, AppID, m.AppID)})
	case app && params.AppID != m.AppID:
		vs = append(vs, sandbox.Violation{Path: base + "/appid", Message: fmt.Sprintf(
			"is %q; from an App it is the merchant's appid (公众账号ID), %s for merchant %s", params.AppID, m.AppID, m.MchID)})
	}
	// The real page reads the merchant id under either name: the repayment page's
	// table and Android sample say mchid, its iOS sample says mch_id
	// (SOURCES.md §0: the official page mixes them). Both are accepted;
	// given both, they must agree.
	mchid, at := params.MchID, base+"/mchid"
	if mchid == "" {
		mchid, at = params.MchIDAlt, base+"/mch_id"
	}
	switch {
	case params.MchID != "" && params.MchIDAlt != "" && params.MchID != params.MchIDAlt:
		vs = append(vs, sandbox.Violation{Path: base + "/mch_id", Message: fmt.Sprintf(
			"is %q but mchid is %q: the page reads one merchant id, send one name", params.MchIDAlt, params.MchID)})
	case mchid != "" && mchid != m.MchID:
		vs = append(vs, sandbox.Violation{Path: at, Message: fmt.Sprintf(
			"is %q but the caller (appId %s) is merchant %s", mchid, call.Caller.AppID, m.MchID)})
	}
	if params.OpenID == "" {
		return nil, vs, warnings, nil // the schema reports it
	}
	if _, u, err = p.getUser(ctx, m.MchID, params.OpenID); err != nil {
		return nil, nil, nil, err
	}
	if u == nil {
		msg := fmt.Sprintf("%q is not a vehicle user of merchant %s: GET /sandbox/v1/vehicle-users?mchid=%s lists them, POST creates one",
			params.OpenID, m.MchID, m.MchID)
		if strings.HasSuffix(params.OpenID, "=weixin") {
			msg += `; the repayment page's sample ends the openid with "=weixin", a slip of WeChat's page: send the openid alone`
		}
		vs = append(vs, sandbox.Violation{Path: base + "/openid", Message: msg})
	}
	return u, vs, warnings, nil
}

// pageOf is a mini-program path's page, without a leading slash or query.
func pageOf(path string) string {
	page, _, _ := strings.Cut(path, "?")
	return strings.TrimPrefix(page, "/")
}

// appResp is what the App's onResp receives: WXLaunchMiniProgram.Resp,
// with errCode and no extMsg — the mini-program passes nothing back (seed
// 001: "暂时不返回参数").
type appResp struct {
	ErrCode int `json:"errCode"`
	// Type is the SDK's COMMAND_LAUNCH_WX_MINIPROGRAM, 19 [C OpenSDK].
	Type int `json:"type"`
}

// App SDK error codes (the repayment page's onResp sample, BaseResp.ErrCode).
const (
	errOK          = 0
	errUserCancel  = -2
	errAuthDenied  = -4
	errUnsupported = -5
	typeLaunchMini = 19
)

// appErrCode is what the App sees for an action: the user came back from
// the mini-program (repaid or not: 0), left it (-2), or it never opened.
func appErrCode(action string) int {
	switch action {
	case ActionCancel, sandbox.ActionTimeout:
		return errUserCancel
	case ActionDeny:
		return errAuthDenied
	case ActionUnsupported:
		return errUnsupported
	}
	return errOK
}

// Resolve applies the user's action. repay clears every advance the user
// owes and makes an OVERDUE user NORMAL again, in one CAS update of the
// user; fail records the failed attempt; cancel, deny, unsupported and a
// manual session's timeout change nothing. The return is the same in every
// case for a mini-program caller — no data — and the App SDK's errCode for
// an App. Partial repayment is not offered: see docs/products/repayment.md.
func (p *Product) Resolve(ctx context.Context, s *sandbox.Session, action string, at time.Time) (*sandbox.Batch, error) {
	s.State, s.Action = sandbox.SessionReturned, action
	// The mini-program returns nothing: no extraData (the repayment page: "小程序返回参数 无数据").
	var ret any = sandbox.BackFrom(AppID, nil)
	if s.API == sandbox.APIAppLaunchMiniProgram {
		ret = appResp{ErrCode: appErrCode(action), Type: typeLaunchMini}
	}
	b, err := json.Marshal(ret)
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode the return", Err: err}
	}
	s.Return = b
	if action != ActionRepay && action != ActionFail {
		return nil, nil
	}
	rec, u, err := p.getUser(ctx, s.MchID, s.Ref)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, sandbox.Errorf(sandbox.CodeInternal, "session %s: vehicle user %s is gone", s.ID, s.Ref)
	}
	return p.pays(ctx, s.MchID, rec, u, s.ID, action, at)
}

// pays is the user's repay or fail at `at` (in the session, "" when the
// user repays outside a jump): the batch that updates the user read as rec
// (compare-and-swap) and, for repay, clears every advance, makes an
// OVERDUE user NORMAL and sends what repaying sends; nil when the user owes
// nothing (the page shows an empty list).
func (p *Product) pays(ctx context.Context, mchid string, rec *sandbox.Record, u *user, sessionID, action string, at time.Time) (*sandbox.Batch, error) {
	owed := u.owed()
	if owed == 0 {
		return nil, nil
	}
	u.LastAttempt = &attempt{SessionID: sessionID, Action: action, At: at, Amount: owed}
	batch := &sandbox.Batch{}
	if action == ActionRepay {
		var repaid []string
		for i := range u.Advances {
			if !u.Advances[i].repaid() {
				u.Advances[i].RepaidAt, u.Advances[i].RepaidIn = at, sessionID
				repaid = append(repaid, u.Advances[i].OutTradeNo)
			}
		}
		if u.UserState == StateOverdue {
			u.UserState = StateNormal
		}
		if err := p.repaidNotifications(ctx, mchid, u, repaid, at, batch); err != nil {
			return nil, err
		}
	}
	up := *rec
	if err := u.encode(&up); err != nil {
		return nil, err
	}
	batch.Updates = append(batch.Updates, &up)
	return batch, nil
}
