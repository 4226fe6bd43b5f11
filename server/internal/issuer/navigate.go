package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Launch handles a call to one of the product's targets: a navigation to a
// plugin page, or the payment functional page.
func (p *Product) Launch(ctx context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	if call.API == sandbox.APIRequestPayment {
		return p.launchPayment(ctx, call)
	}
	return p.launchVisit(ctx, call)
}

// launchVisit checks a wx.navigateTo to plugin://issuer-plugin/<page>?… all
// at once — the args, the host's app.json, the page, each parameter of its
// query against the page's schema, and what the parameters refer to (the
// order, the plate's device) — and picks the scenario: the header or
// caller.scenario, else the one the order was made under, else a magic
// value, the merchant's active one, the default.
func (p *Product) launchVisit(ctx context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	vs, err := sandbox.ValidateAt(p.d.Validator, SchemaNavigateArgs, call.Doc, "/args")
	if err != nil {
		return nil, err
	}
	host, warnings, err := p.checkHost(call.Caller, false)
	if err != nil {
		return nil, err
	}
	vs = append(vs, host...)
	var v visit
	wellFormed := false
	if raw, _ := call.Doc["url"].(string); raw != "" { // the args schema reports a missing url
		var urlVs, queryVs []sandbox.Violation
		v, urlVs = parseURL(raw)
		if v.page != "" && (v.page != PageLogin || v.variant != "") {
			if queryVs, err = p.checkQuery(v); err != nil {
				return nil, err
			}
		}
		vs = append(append(vs, urlVs...), queryVs...)
		wellFormed = v.page != "" && len(urlVs) == 0 && len(queryVs) == 0
		if wellFormed && v.page == PageLogin {
			advice, err := p.loginAdvice(v)
			if err != nil {
				return nil, err
			}
			warnings = append(warnings, advice...)
		}
	}
	var st state
	if wellFormed {
		var stateVs, stateWarnings []sandbox.Violation
		if st, stateVs, stateWarnings, err = p.lookup(ctx, call.Merchant.MchID, v); err != nil {
			return nil, err
		}
		vs = append(vs, stateVs...)
		warnings = append(warnings, stateWarnings...)
	}
	if len(vs) > 0 {
		sortViolations(vs)
		return nil, sandbox.Invalid("issuer-plugin cannot open the page", vs...)
	}
	l := &sandbox.Launched{Ref: st.ref(v), Magic: make(map[string]string, len(v.query)+1), Warnings: warnings}
	if st.order != nil {
		l.Scenario = st.order.V.Scenario
	}
	for k, val := range v.query {
		l.Magic[k] = val
	}
	l.Magic["page"] = v.page
	return l, nil
}

// loginAdvice checks a login the plugin guide's rules accept against the
// rules the sandbox only inferred (issuer/login.advice): redirectUrl and
// mobile present, as in every example of the plugin guide, and the forms of
// redirectUrl, mobile, etcProductId and wechatSignNo. What it returns are
// warnings (refusals for a strict merchant).
func (p *Product) loginAdvice(v visit) ([]sandbox.Violation, error) {
	vs, err := p.checkQueryAgainst(SchemaLoginAdvice, v)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		name := strings.TrimPrefix(vs[i].Path, paramPath(""))
		vs[i].Message += "; " + loginAdviceReason[name] + " (inferred rule: the plugin guide states none, so the sandbox warns; a strict merchant is refused)"
	}
	sortViolations(vs)
	return vs, nil
}

// loginAdviceReason says, per parameter, what the sandbox inferred and what
// follows from breaking it.
var loginAdviceReason = map[string]string{
	"redirectUrl":  "every login example of the plugin guide gives redirectUrl, a page path of the host; without one the sandbox's plugin goes back (navigateBack) and the host gets no openId or accessToken",
	"mobile":       "every login example of the plugin guide gives mobile, a mainland mobile number of 11 digits",
	"etcProductId": "the sandbox takes an etcProductId of 1 to 32 letters, digits, _ and -",
	"wechatSignNo": "the sandbox takes a wechatSignNo of 1 to 64 letters, digits, _ and -",
}

// pageOrderInferred ends a warning about the order of pages.
const pageOrderInferred = " (inferred rule: the plugin guide does not say what each page needs, so the sandbox warns; a strict merchant is refused)"

// state is what a visit's parameters refer to.
type state struct {
	order  *stored[order]
	device *stored[device]
}

// ref is the record key a session acts on: the order, else the plate.
func (st state) ref(v visit) string {
	switch {
	case st.order != nil:
		return st.order.V.OrderNo
	case v.get("plateNum") != "":
		return v.get("plateNum")
	}
	return ""
}

// lookup loads the order and the device a visit refers to, and says why the
// page cannot act on them — an order or a device that does not exist, an
// order whose openId or plate differs — and, as warnings, what breaks the
// order of pages the sandbox only inferred [I: the plugin guide lists the
// pages, not what needs what]: an activation without a signed protocol or
// of a device activated before, a reactivation of a device not active, a
// continuation of a device past its application.
func (p *Product) lookup(ctx context.Context, mchid string, v visit) (state, []sandbox.Violation, []sandbox.Violation, error) {
	var st state
	var vs, warnings []sandbox.Violation
	bad := func(param, format string, args ...any) {
		vs = append(vs, sandbox.Violation{Path: paramPath(param), Message: fmt.Sprintf(format, args...)})
	}
	warn := func(param, format string, args ...any) {
		warnings = append(warnings, sandbox.Violation{Path: paramPath(param), Message: fmt.Sprintf(format, args...) + pageOrderInferred})
	}
	var err error
	loadOrder := func(no string) bool {
		if st.order, err = load[order](ctx, p.d.Store, KindOrder, mchid, no); err != nil || st.order != nil {
			return st.order != nil
		}
		bad("orderNo", "order %s does not exist for merchant %s: use the orderNo the login of a new application "+
			"(plugin://%s/login?etcProductId=…&accountType=…&carType=…) returned to its redirectUrl", no, mchid, Alias)
		return false
	}
	loadDevice := func(plate string) {
		if st.device, err = load[device](ctx, p.d.Store, KindDevice, mchid, plate); err == nil && st.device != nil {
			st.order, err = load[order](ctx, p.d.Store, KindOrder, mchid, st.device.V.OrderNo)
		}
	}
	active := func(plate string) {
		switch {
		case st.device == nil:
			bad("plateNum", "plate %s has no ETC device at merchant %s: apply (login?etcProductId=…), sign the protocol and activate it (activeDes) first", plate, mchid)
		case st.device.V.State != deviceActive:
			warn("plateNum", "plate %s's ETC device (order %s) is %s, not activated: the sandbox activates it now; the flow is activeDes?orderNo=%s", plate, st.device.V.OrderNo, st.device.V.State, st.device.V.OrderNo)
		}
	}
	plate := v.get("plateNum")
	switch {
	case v.page == PageLogin && v.variant == loginApp:
		st.order, err = find[order](ctx, p.d.Store, KindOrder, mchid, signNoAlias(v.get("wechatSignNo")))
	case v.page == PageLogin && v.variant == loginContinuation:
		if loadDevice(plate); err == nil && st.device != nil && st.device.V.State != deviceIssued {
			warn("plateNum", "plate %s's ETC device (order %s) is already %s: there is no application to continue "+
				"(handleType=reactivate or activeAgain act on it); the sandbox answers with the order", plate, st.device.V.OrderNo, st.device.V.State)
		}
	case v.page == PageLogin && v.variant == loginReactivate, v.page == PageActiveAgain:
		if loadDevice(plate); err == nil {
			active(plate)
		}
	case v.page == PageLogin && v.variant == loginResumeSigning:
		if loadDevice(plate); err == nil && st.device == nil {
			bad("plateNum", "plate %s has no ETC application at merchant %s: there is no signing to resume", plate, mchid)
		}
	case v.page == PageLogin && v.variant == loginAftersale:
		if loadOrder(v.get("orderNo")) && st.order.V.PlateNum != plate {
			bad("plateNum", "order %s is for plate %s, not %s", st.order.V.OrderNo, st.order.V.PlateNum, plate)
		}
		if err == nil && st.order != nil {
			st.device, err = load[device](ctx, p.d.Store, KindDevice, mchid, st.order.V.PlateNum)
		}
	case v.page == PageSignProtocol:
		loadOrder(v.get("orderNo"))
	case v.page == PageSignGetAuth:
		if loadOrder(v.get("orderNo")) && st.order.V.OpenID != v.get("openId") {
			bad("openId", "is not the openId of order %s's user: pass the openId the plugin's login returned to the redirectUrl", st.order.V.OrderNo)
		}
	case v.page == PageActiveDes:
		if !loadOrder(v.get("orderNo")) {
			break
		}
		o := st.order.V
		if o.ProtocolSignedAt == nil {
			warn("orderNo", "order %s has no signed protocol: the user presumably signs it first (signProtocol?orderNo=%s); the sandbox activates anyway", o.OrderNo, o.OrderNo)
		}
		st.device, err = load[device](ctx, p.d.Store, KindDevice, mchid, o.PlateNum)
		if err == nil && st.device != nil && st.device.V.State != deviceIssued {
			warn("orderNo", "order %s's device (plate %s) is already %s: a second activation is presumably activeAgain?plateNum=%s; the sandbox activates it again", o.OrderNo, o.PlateNum, st.device.V.State, o.PlateNum)
		}
	}
	if err != nil {
		return state{}, nil, nil, err
	}
	return st, vs, warnings, nil
}

// visitReturn is how the user leaves a plugin page
// (schemas/issuer/return): to redirectUrl with the plugin's parameters, or
// back to the host's page [I].
type visitReturn struct {
	Page     string            `json:"page"`
	OpenType string            `json:"openType"`
	URL      string            `json:"url,omitempty"`
	Path     string            `json:"path,omitempty"`
	Query    map[string]string `json:"query,omitempty"`
}

// How the user leaves a page [I]: the plugin guide names redirectUrl "小程序重定向地址",
// so a completed login redirects there; every other page goes back.
const (
	openRedirect = "redirectTo"
	openBack     = "navigateBack"
)

// redirect returns the way to redirectUrl with the parameters appended in
// their order, after any query redirectUrl has of its own.
func redirect(page, redirectURL string, pairs ...string) visitReturn {
	path, own, _ := strings.Cut(redirectURL, "?")
	q := map[string]string{}
	if vals, err := url.ParseQuery(own); err == nil {
		for k := range vals {
			q[k] = vals.Get(k)
		}
	}
	var b strings.Builder
	b.WriteString(redirectURL)
	sep := "?"
	if strings.Contains(redirectURL, "?") {
		sep = "&"
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		q[pairs[i]] = pairs[i+1]
		b.WriteString(sep + url.QueryEscape(pairs[i]) + "=" + url.QueryEscape(pairs[i+1]))
		sep = "&"
	}
	return visitReturn{Page: page, OpenType: openRedirect, URL: b.String(), Path: path, Query: q}
}

// resolution is one user action on a plugin page being applied.
type resolution struct {
	p       *Product
	s       *sandbox.Session
	v       visit
	st      state
	act     string // success, failure or cancel
	now     time.Time
	batch   sandbox.Batch
	ret     visitReturn
	results map[string]any
}

// resolveVisit applies the user's action on a plugin page: it updates the
// order and the device, sets the getters' results and the way back. A page
// whose parameters no longer fit the records (another session changed them
// since the launch) cannot succeed: the user sees the plugin fail.
func (p *Product) resolveVisit(ctx context.Context, s *sandbox.Session, act string, now time.Time) (*sandbox.Batch, error) {
	v, vs := parseURL(navigateURL(s.Args))
	if len(vs) > 0 {
		return nil, sandbox.Invalid("the session's URL does not parse", vs...)
	}
	st, stale, _, err := p.lookup(ctx, s.MchID, v)
	if err != nil {
		return nil, err
	}
	if len(stale) > 0 && act == ActionSuccess {
		act = ActionFailure
	}
	r := &resolution{p: p, s: s, v: v, st: st, act: act, now: now,
		ret: visitReturn{Page: v.page, OpenType: openBack}, results: map[string]any{}}
	switch v.page {
	case PageLogin:
		err = r.login()
	case PageSignProtocol:
		err = r.sign(GetterSignPro, func(o *order) **time.Time { return &o.ProtocolSignedAt })
	case PageSignGetAuth:
		err = r.sign(GetterSignCarService, func(o *order) **time.Time { return &o.CarServiceSignedAt })
	case PageActiveDes:
		err = r.activate()
	case PageActiveAgain:
		err = r.activateAgain()
	case PageDeviceUpgrade:
		r.upgrade()
	}
	if err != nil {
		return nil, err
	}
	if s.Ref == "" && r.st.order != nil {
		s.Ref = r.st.order.V.OrderNo
	}
	if s.Return, err = marshal("the way back", r.ret); err != nil {
		return nil, err
	}
	s.Results = make(map[string]json.RawMessage, len(r.results))
	for name, res := range r.results {
		if s.Results[name], err = marshal(name, res); err != nil {
			return nil, err
		}
	}
	return &r.batch, nil
}
