package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// activeResult is what getActiveResult() returns (the plugin guide 回调通知 1).
type activeResult struct {
	State int    `json:"state"`
	OBU   string `json:"obu"`
	Card  string `json:"card"`
}

// signResult is what getSignProResult() and getSignCarServiceResule()
// return (the plugin guide 回调通知 2 and 3).
type signResult struct {
	State int `json:"state"`
}

// getterDefault is what a getter returns when the session's page did not
// set it: the values the plugin guide prints in its examples, read as the plugin's
// initial state [I] — no activation ({state: 2}), nothing signed
// ({state: 1}).
func getterDefault(name string) (json.RawMessage, bool) {
	switch name {
	case GetterActive:
		return json.RawMessage(`{"state":2,"obu":"","card":""}`), true
	case GetterSignPro, GetterSignCarService:
		return json.RawMessage(`{"state":1}`), true
	}
	return nil, false
}

// Getter answers requirePlugin('issuer-plugin').<name>() for a session:
// what the session's page left, else the plugin's initial value. The host
// reads the getters once the user is back (App.onShow), so a session still
// in the plugin is a conflict.
func (p *Product) Getter(_ context.Context, s *sandbox.Session, name string) (json.RawMessage, error) {
	def, ok := getterDefault(name)
	if !ok {
		msg := fmt.Sprintf("%q is not a getter of %s; it exports %s, %s and %s", name, Alias, GetterActive, GetterSignPro, GetterSignCarService)
		if strings.EqualFold(name, "getSignCarServiceResult") {
			msg = fmt.Sprintf("%q is not a getter of %s: the plugin spells it %s (sic, the plugin guide)", name, Alias, GetterSignCarService)
		}
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "%s", msg)
	}
	if s.API == sandbox.APIRequestPayment {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "session %s is a payment through the functional page: it has no plugin getters", s.ID)
	}
	if s.State == sandbox.SessionPending {
		return nil, sandbox.Errorf(sandbox.CodeConflict, "session %s: the user is still in the plugin; read the getters once GET /miniprogram/v1/sessions/%s/return answers 200", s.ID, s.ID)
	}
	if res, ok := s.Results[name]; ok {
		return res, nil
	}
	return def, nil
}

// activationState is getActiveResult's state for an outcome.
func activationState(act string) int {
	switch act {
	case ActionSuccess:
		return ActiveSuccess
	case ActionFailure:
		return ActiveFailure
	}
	return ActiveCancelled
}

func signedState(at *time.Time) int {
	if at != nil {
		return Signed
	}
	return NotSigned
}

// login completes (or abandons) a login. A completed one redirects with the
// credential and, when the login concerns an order, its orderNo and plate;
// a new application (and an App-launched or continued one that has no order
// yet) creates the order and its device; a reactivation, a resumed signing
// or an after-sale acts on the plate's order and device [I: the plugin guide lists
// the URLs only].
func (r *resolution) login() error {
	switch {
	case r.act != ActionSuccess && r.v.variant == loginReactivate:
		r.results[GetterActive] = activeResult{State: activationState(r.act)}
		return nil
	case r.act != ActionSuccess && r.v.variant == loginResumeSigning:
		r.results[GetterSignCarService] = signResult{State: NotSigned}
		if r.st.order != nil {
			r.results[GetterSignCarService] = signResult{State: signedState(r.st.order.V.CarServiceSignedAt)}
		}
		return nil
	case r.act != ActionSuccess:
		return nil // the user leaves the plugin without logging in
	}
	var err error
	switch r.v.variant {
	case loginNew:
		err = r.apply("")
	case loginApp:
		if r.st.order == nil {
			err = r.apply("")
		}
	case loginContinuation:
		if r.st.order == nil {
			err = r.apply(r.v.get("plateNum"))
		}
	case loginReactivate:
		err = r.activateAgain()
	case loginResumeSigning:
		if o := r.st.order; o != nil && o.V.CarServiceSignedAt == nil {
			o.V.CarServiceSignedAt = &r.now
			err = r.update(o)
		}
		r.results[GetterSignCarService] = signResult{State: Signed}
	case loginAftersale:
		err = r.afterSale()
	}
	if err != nil {
		return err
	}
	if r.v.get("redirectUrl") == "" {
		// A login without redirectUrl (accepted with a warning): the plugin
		// has no page to hand the credential to, so the user goes back [I].
		r.ret = visitReturn{Page: PageLogin, OpenType: openBack}
		return nil
	}
	pairs := []string{"openId", r.openID(), "accessToken", newAccessToken()}
	if o := r.st.order; o != nil {
		pairs = append(pairs, "orderNo", o.V.OrderNo, "plateNum", o.V.PlateNum)
	}
	r.ret = redirect(PageLogin, r.v.get("redirectUrl"), pairs...)
	return nil
}

// openID is the openId of the login's user: by mobile, or, for a login
// without one (accepted with a warning), by the session [I].
func (r *resolution) openID() string {
	if m := r.v.get("mobile"); m != "" {
		return openID(r.s.MchID, m)
	}
	return openID(r.s.MchID, "session "+r.s.ID)
}

// apply creates the order of an application and its plate's device. The
// plate is the URL's (continuation) or, as the user types it in the plugin,
// one fixtures draws for the order.
func (r *resolution) apply(plate string) error {
	mchid := r.s.MchID
	no := newOrderNo(r.now)
	if drawn := faker(mchid, no).PlateNum(); plate == "" {
		plate = drawn
	}
	o := &order{
		OrderNo: no, Handle: r.v.variant, EtcProductID: r.v.get("etcProductId"),
		AccountType: r.v.get("accountType"), CarType: r.v.get("carType"), WechatSignNo: r.v.get("wechatSignNo"),
		PlateNum: plate, Mobile: r.v.get("mobile"), OpenID: r.openID(), CreatedAt: r.now,
	}
	if r.p.remember(r.s) {
		o.Scenario = r.s.Scenario
	}
	var aliases []string
	if o.WechatSignNo != "" {
		aliases = append(aliases, signNoAlias(o.WechatSignNo))
	}
	orec, err := sandbox.NewRecord(KindOrder, mchid, no, o, aliases...)
	if err != nil {
		return err
	}
	drec, err := sandbox.NewRecord(KindDevice, mchid, plate, &device{PlateNum: plate, OrderNo: no, State: deviceIssued})
	if err != nil {
		return err
	}
	r.batch.Creates = append(r.batch.Creates, orec, drec)
	r.st.order = &stored[order]{Rec: orec, V: o}
	return nil
}

// remember reports whether an application keeps the session's scenario for
// its later pages: one a header or a magic value chose, not the default or
// the merchant's active one, which apply anyway.
func (p *Product) remember(s *sandbox.Session) bool {
	if def := p.d.Scenarios.Default(sandbox.ProductIssuer); def != nil && def.ID == s.Scenario {
		return false
	}
	if m, ok := p.d.Merchants.Get(s.MchID); ok {
		if a, ok := m.Active[sandbox.ProductIssuer]; ok && a.ID == s.Scenario {
			return false
		}
	}
	return s.Scenario != ""
}

// afterSale records an after-sale request on the order. Cancelling the
// device (6 注销) and returning it (8 退货) deactivate it; the other types
// are recorded only [I].
func (r *resolution) afterSale() error {
	o := r.st.order
	typ := r.v.get("afterType")
	o.V.AfterSales = append(o.V.AfterSales, afterSale{AfterType: typ, At: r.now, Session: r.s.ID})
	if err := r.update(o); err != nil {
		return err
	}
	if d := r.st.device; d != nil && (typ == "6" || typ == "8") && d.V.State != deviceDeactivated {
		d.V.State = deviceDeactivated
		return r.update(d)
	}
	return nil
}

// sign applies signProtocol or signGetAuth: a success signs the order (once;
// a signed order stays signed), and the getter reports whether it is
// signed now.
func (r *resolution) sign(getter string, field func(*order) **time.Time) error {
	o := r.st.order
	if o == nil {
		r.results[getter] = signResult{State: NotSigned}
		return nil
	}
	at := field(o.V)
	if r.act == ActionSuccess && *at == nil {
		*at = &r.now
		if err := r.update(o); err != nil {
			return err
		}
	}
	r.results[getter] = signResult{State: signedState(*at)}
	return nil
}

// activate applies activeDes: a success activates the order's device with
// the scenario's OBU and card numbers or the order's own.
func (r *resolution) activate() error {
	d := r.st.device
	if r.act != ActionSuccess || d == nil || r.st.order == nil {
		r.results[GetterActive] = activeResult{State: activationState(r.act)}
		return nil
	}
	obu, card := deviceNumbers(r.p.params[r.s.Scenario], r.s.MchID, r.st.order.V.OrderNo)
	d.V.State, d.V.OBU, d.V.Card, d.V.ActivatedAt = deviceActive, obu, card, &r.now
	d.V.Activations++
	r.results[GetterActive] = activeResult{State: ActiveSuccess, OBU: obu, Card: card}
	return r.update(d)
}

// activateAgain applies activeAgain (and a reactivation's login): the
// activated device is activated once more and reports its numbers; one not
// active (a warning at the call) is activated as activeDes does.
func (r *resolution) activateAgain() error {
	d := r.st.device
	if r.act != ActionSuccess || d == nil {
		r.results[GetterActive] = activeResult{State: activationState(r.act)}
		return nil
	}
	if d.V.State != deviceActive {
		return r.activate()
	}
	d.V.Activations++
	r.results[GetterActive] = activeResult{State: ActiveSuccess, OBU: d.V.OBU, Card: d.V.Card}
	return r.update(d)
}

// upgrade applies deviceUpgrade. Its URL names no device, so no record
// changes; a success reports the upgraded device's numbers through
// getActiveResult, drawn for the session [I].
func (r *resolution) upgrade() {
	if r.act != ActionSuccess {
		r.results[GetterActive] = activeResult{State: activationState(r.act)}
		return
	}
	obu, card := deviceNumbers(r.p.params[r.s.Scenario], r.s.MchID, r.s.ID)
	r.results[GetterActive] = activeResult{State: ActiveSuccess, OBU: obu, Card: card}
}

// update queues the changed record.
func (r *resolution) update(s interface {
	Record() (*sandbox.Record, error)
}) error {
	rec, err := s.Record()
	if err != nil {
		return err
	}
	// A record created in this batch is still a Create: replace it there.
	for i, c := range r.batch.Creates {
		if c.Kind == rec.Kind && c.Key == rec.Key {
			r.batch.Creates[i] = rec
			return nil
		}
	}
	r.batch.Updates = append(r.batch.Updates, rec)
	return nil
}
