package payscore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

// Real messages of the pay-score errors the sandbox copies.
const (
	// msgInvalidOrderState is "单据状态错误" (SOURCES.md §1, acquiring-bank
	// modify page), code INVALID_ORDER_STATE.
	msgInvalidOrderState  = "单据状态错误"
	codeInvalidOrderState = "INVALID_ORDER_STATE"
	// msgCompleteState is the answer to complete on a CREATED or REVOKED
	// order: INVALID_REQUEST "当前订单状态不合法" (SOURCES.md §1, community thread).
	msgCompleteState = "当前订单状态不合法"
	// msgEndTimeRequired is PARAM_ERROR's message when neither create nor
	// complete gave an end time (SOURCES.md §1, CSDN 103347208).
	msgEndTimeRequired = "创建订单未填写服务结束时间,则结束时间必填"
	msgOrderNotExist   = "订单不存在"
	// msgOrderConflict answers a re-create with other parameters [I]: the
	// real text is not published.
	msgOrderConflict = "商户订单号重复,且请求参数与原订单不一致"
)

var outOrderNoPattern = regexp.MustCompile(`^[0-9A-Za-z_\-|*]{1,32}$`)

// orderKey is what every change names the order by, besides the path:
// appid and service_id in direct mode; sub_mchid and service_id in partner
// mode, where appid is not asked for.
type orderKey struct {
	AppID     string `json:"appid,omitempty"`
	ServiceID string `json:"service_id"`
	SubMchID  string `json:"sub_mchid,omitempty"`
}

type createRequest struct {
	OutOrderNo string `json:"out_order_no"`
	AppID      string `json:"appid"`
	ServiceID  string `json:"service_id"`
	terms
	OpenID          string `json:"openid,omitempty"`
	NeedUserConfirm *bool  `json:"need_user_confirm,omitempty"`
	// Partner mode only (the partner create schema): the sub-merchant the
	// provider acts for, its mini-program, the user under it.
	SubMchID  string  `json:"sub_mchid,omitempty"`
	SubAppID  string  `json:"sub_appid,omitempty"`
	SubOpenID string  `json:"sub_openid,omitempty"`
	Device    *device `json:"device,omitempty"`
}

// handleCreate handles "POST /v3/payscore/serviceorder" and, for a service
// provider, "POST /v3/payscore/partner/serviceorder".
func (p *Product) handleCreate(c *gin.Context) error {
	m := wxpayv3.Merchant(c)
	var req createRequest
	if err := httpapi.DecodeJSON(p.d.Validator, bodySchema(c, schemaCreate), httpapi.Body(c), &req); err != nil {
		return err
	}
	if err := checkSub(c, m, req.SubMchID); err != nil {
		return err
	}
	warnSubAppID(c, m, &req)
	vs, warnings := checkCreate(m, &req)
	vs = append(vs, p.d.NotifyTargets.NotifyURLViolations(m, "/notify_url", req.NotifyURL)...)
	if len(vs) > 0 {
		return sandbox.Invalid("参数错误", vs...)
	}
	if err := httpapi.Advise(c, m, warnings...); err != nil {
		return err
	}
	sc, err := p.d.Scenarios.Pick(sandbox.ProductPayScore, c.GetHeader(headerSandboxScenario), map[string]string{"out_order_no": req.OutOrderNo}, m)
	if err != nil {
		wxpayv3.SetLocation(c, "header")
		return sandbox.Invalid("unknown scenario", sandbox.Violation{Path: "/" + headerSandboxScenario, Message: sandbox.AsError(err).Message})
	}
	noteScenario(c, sc.ID)
	canonical, err := json.Marshal(&req)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	for try := 1; ; try++ {
		now := p.d.Clock.Now(m.MchID)
		rec, err := p.d.Store.GetRecord(ctx, kindOrder, m.MchID, recordKey(req.SubMchID, req.OutOrderNo))
		if err == nil {
			o, err := sandbox.Decode[order](rec)
			if err != nil {
				return err
			}
			if !bytes.Equal(o.Sandbox.Request, canonical) {
				return &sandbox.Error{Code: sandbox.CodeConflict, Upstream: wxpayv3.CodeInvalidRequest, Message: msgOrderConflict,
					Fields: []sandbox.Violation{{Path: "/out_order_no", Message: fmt.Sprintf(
						"order %s exists with other parameters; an identical request returns it again (原参重入), a different one needs a new out_order_no", req.OutOrderNo)}}}
			}
			// 原参重入: the same answer again (SOURCES.md §2).
			o.advance(now)
			return p.v3.JSON(c, http.StatusOK, o.created())
		}
		if !sandbox.IsCode(err, sandbox.CodeNotFound) {
			return err
		}
		o := newOrder(m, &req, canonical, sc.ID, now)
		rec = &sandbox.Record{Kind: kindOrder, MchID: m.MchID, Key: o.key()}
		if o.Sandbox.Package != "" {
			rec.Aliases = append(rec.Aliases, aliasPackage+o.Sandbox.Package)
		}
		rec.Aliases = append(rec.Aliases, aliasQueryID+o.Sandbox.QueryID)
		if rec.Data, err = json.Marshal(o); err != nil {
			return err
		}
		err = p.d.Store.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{rec}})
		if err == nil {
			return p.v3.JSON(c, http.StatusOK, o.created())
		}
		// A concurrent create of the same out_order_no won: answer as a
		// re-create would.
		if !sandbox.IsCode(err, sandbox.CodeConflict) || try == sandbox.UpdateTries {
			return err
		}
	}
}

// checkCreate applies the rules the schema cannot express: the documented
// ones refuse (vs), the inferred ones warn.
func checkCreate(m *sandbox.Merchant, req *createRequest) (vs, warnings []sandbox.Violation) {
	vs = checkKey(m, orderKey{AppID: req.AppID, ServiceID: req.ServiceID})
	var start, end time.Time
	if req.TimeRange.StartTime != "OnAccept" {
		start, vs = parseTime(vs, "/time_range/start_time", req.TimeRange.StartTime)
	}
	if req.TimeRange.EndTime != "" {
		end, vs = parseTime(vs, "/time_range/end_time", req.TimeRange.EndTime)
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		// [I]: the create page states no order between the two times.
		warnings = append(warnings, sandbox.Violation{Path: "/time_range/end_time", Message: fmt.Sprintf(
			"%s is before start_time %s; the create page states no rule on it, but a service cannot end before it starts (inferred rule: a warning, a refusal for a strict merchant)",
			req.TimeRange.EndTime, req.TimeRange.StartTime)})
	}
	if req.NeedUserConfirm != nil && !*req.NeedUserConfirm && req.OpenID == "" && req.SubOpenID == "" {
		vs = append(vs, sandbox.Violation{Path: "/openid", Message: "is required when need_user_confirm is false (免确认模式 names the user; in partner mode openid or sub_openid)"})
	}
	return vs, warnings
}

// checkKey checks that appid and service_id are the merchant's.
func checkKey(m *sandbox.Merchant, k orderKey) []sandbox.Violation {
	var vs []sandbox.Violation
	if k.AppID != m.AppID {
		vs = append(vs, sandbox.Violation{Path: "/appid", Message: fmt.Sprintf(
			"appid %q is not bound to merchant %s, whose mini-program is %q", k.AppID, m.MchID, m.AppID)})
	}
	if k.ServiceID != m.ServiceID {
		vs = append(vs, sandbox.Violation{Path: "/service_id", Message: fmt.Sprintf(
			"service_id %q is not merchant %s's pay-score service, which is %q (service_id in the credentials)", k.ServiceID, m.MchID, m.ServiceID)})
	}
	return vs
}

func parseTime(vs []sandbox.Violation, path, s string) (time.Time, []sandbox.Violation) {
	t, err := time.ParseInLocation(v3Time, s, beijing)
	if err != nil {
		return t, append(vs, sandbox.Violation{Path: path, Message: fmt.Sprintf("%q is not a date and time yyyyMMddHHmmss", s)})
	}
	return t, vs
}

func newOrder(m *sandbox.Merchant, req *createRequest, canonical json.RawMessage, scenario string, now time.Time) *order {
	o := &order{
		shown: shown{AppID: req.AppID, MchID: m.MchID, SubMchID: req.SubMchID, SubAppID: req.SubAppID,
			OutOrderNo: req.OutOrderNo, ServiceID: req.ServiceID, State: stateCreated, terms: req.terms,
			OrderID: newOrderID(now)},
		Sandbox: bookkeeping{QueryID: newQueryID(), Created: now, Request: canonical, Scenario: scenario},
	}
	if req.NeedUserConfirm != nil && !*req.NeedUserConfirm {
		// 免确认模式: no user step, no package (SOURCES.md §2) [I: the
		// permission it needs is not simulated].
		o.State, o.StateDescription, o.OpenID, o.SubOpenID = stateDoing, descUserConfirm, req.OpenID, req.SubOpenID
		if o.OpenID == "" {
			o.OpenID = userOpenID(m.MchID) // partner mode named the user by sub_openid only [I]
		}
		return o
	}
	o.Sandbox.Package, o.Sandbox.PackageExpires = newPackage(), now.Add(packageTTL)
	return o
}

// handleQuery handles "GET /v3/payscore/serviceorder?service_id=&appid=&(out_order_no=|query_id=)"
// and "GET /v3/payscore/partner/serviceorder?service_id=&sub_mchid=&(out_order_no=|query_id=)".
func (p *Product) handleQuery(c *gin.Context) error {
	m := wxpayv3.Merchant(c)
	q := c.Request.URL.Query()
	doc := make(map[string]any, len(q))
	var vs []sandbox.Violation
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if len(q[k]) > 1 {
			vs = append(vs, sandbox.Violation{Path: "/" + k, Message: fmt.Sprintf("is given %d times; give it once", len(q[k]))})
		}
		doc[k] = q[k][0]
	}
	more, err := p.d.Validator.Validate(bodySchema(c, schemaQuery), doc)
	if err != nil {
		return err
	}
	if vs = append(vs, more...); len(vs) > 0 {
		if partner(c) {
			return sandbox.Invalid("查询参数错误: service_id and sub_mchid are required, with exactly one of out_order_no and query_id", vs...)
		}
		return sandbox.Invalid("查询参数错误: service_id and appid are required, with exactly one of out_order_no and query_id", vs...)
	}
	sub := q.Get("sub_mchid")
	if err := checkSub(c, m, sub); err != nil {
		return err
	}
	ctx := c.Request.Context()
	var rec *sandbox.Record
	if id := q.Get("query_id"); id != "" {
		rec, err = p.d.Store.FindRecord(ctx, kindOrder, m.MchID, aliasQueryID+id)
		if err != nil {
			return notFound(err, "/query_id", fmt.Sprintf("no order of merchant %s has query_id %q", m.MchID, id))
		}
	} else {
		no := q.Get("out_order_no")
		rec, err = p.d.Store.GetRecord(ctx, kindOrder, m.MchID, recordKey(sub, no))
		if err != nil {
			return notFound(err, "/out_order_no", fmt.Sprintf("merchant %s has no order %q", m.MchID, no))
		}
	}
	o, err := sandbox.Decode[order](rec)
	if err != nil {
		return err
	}
	warns, err := matchKey(o, orderKey{AppID: q.Get("appid"), ServiceID: q.Get("service_id"), SubMchID: sub}, m, partner(c))
	if err != nil {
		return err
	}
	for _, v := range warns {
		httpapi.Warn(c, v)
	}
	o.advance(p.d.Clock.Now(m.MchID))
	return p.v3.JSON(c, http.StatusOK, o.queried())
}

// notFound is v3's 404 ORDER_NOT_EXIST for a missing order; other store
// errors, and errors already in v3's words, pass through.
func notFound(err error, path, why string) error {
	if !sandbox.IsCode(err, sandbox.CodeNotFound) || sandbox.AsError(err).Upstream != "" {
		return err
	}
	return &sandbox.Error{Code: sandbox.CodeNotFound, Upstream: wxpayv3.CodeOrderNotExist, Message: msgOrderNotExist,
		Fields: []sandbox.Violation{{Path: path, Message: why}}}
}

// matchKey refuses an appid, service_id or sub_mchid other than the
// order's: the real API finds orders by them, so another finds nothing [I].
// Partner mode names no appid (the partner tables list none): one given
// that is not the order's is an inferred rule, returned as a warning — a
// refusal for a strict merchant m.
func matchKey(o *order, k orderKey, m *sandbox.Merchant, partnerMode bool) ([]sandbox.Violation, error) {
	var vs, warns []sandbox.Violation
	if k.SubMchID != o.SubMchID {
		vs = append(vs, sandbox.Violation{Path: "/sub_mchid", Message: fmt.Sprintf("order %s is not an order of sub-merchant %q", o.OutOrderNo, k.SubMchID)})
	}
	if k.AppID != "" && k.AppID != o.AppID {
		v := sandbox.Violation{Path: "/appid", Message: fmt.Sprintf("order %s was created with appid %q, not %q", o.OutOrderNo, o.AppID, k.AppID)}
		if partnerMode {
			v.Message += "; the partner tables list no appid here, so whether the real API checks it is not known " +
				"(inferred rule: a warning, a strict merchant is refused)"
			warns = append(warns, v)
		} else {
			vs = append(vs, v)
		}
	}
	if k.ServiceID != o.ServiceID {
		vs = append(vs, sandbox.Violation{Path: "/service_id", Message: fmt.Sprintf("order %s was created with service_id %q, not %q", o.OutOrderNo, o.ServiceID, k.ServiceID)})
	}
	if len(vs) > 0 {
		return nil, &sandbox.Error{Code: sandbox.CodeNotFound, Upstream: wxpayv3.CodeOrderNotExist, Message: msgOrderNotExist, Fields: vs}
	}
	if err := sandbox.Advice(m, warns); err != nil {
		return nil, err
	}
	return warns, nil
}

// change checks an order's state and changes it, adding to b whatever
// else must change with it (notifications).
type change func(ctx context.Context, o *order, now time.Time, b *sandbox.Batch) error

// mutate applies f to the order named by the path, with compare-and-swap:
// when another change to the order commits first, it re-reads the order
// and decides again, so that of two concurrent changes one wins and the
// other gets the answer the winner's state gives.
func (p *Product) mutate(c *gin.Context, key orderKey, f change) (*order, error) {
	m := wxpayv3.Merchant(c)
	no := c.Param("out_order_no")
	if err := checkSub(c, m, key.SubMchID); err != nil {
		return nil, err
	}
	ctx := c.Request.Context()
	var warns []sandbox.Violation
	o, err := sandbox.Update(ctx, p.d.Store, kindOrder, m.MchID, recordKey(key.SubMchID, no), func(o *order, b *sandbox.Batch) error {
		var err error
		if warns, err = matchKey(o, key, m, partner(c)); err != nil {
			return err
		}
		now := p.d.Clock.Now(m.MchID)
		o.advance(now)
		return f(ctx, o, now, b)
	})
	if err != nil {
		if sandbox.IsCode(err, sandbox.CodeNotFound) && sandbox.AsError(err).Upstream == "" {
			wxpayv3.SetLocation(c, wxpayv3.LocationURI)
		}
		return nil, notFound(err, "/out_order_no", fmt.Sprintf("merchant %s has no order %q", m.MchID, no))
	}
	for _, v := range warns {
		httpapi.Warn(c, v)
	}
	return o, nil
}

// decodeChange validates the body of a change and checks the path's
// out_order_no.
func (p *Product) decodeChange(c *gin.Context, schema string, out any) error {
	if no := c.Param("out_order_no"); !outOrderNoPattern.MatchString(no) {
		wxpayv3.SetLocation(c, wxpayv3.LocationURI)
		return sandbox.Invalid("参数错误", sandbox.Violation{Path: "/out_order_no",
			Message: fmt.Sprintf("%q is not 1 to 32 of [0-9A-Za-z_-|*]", no)})
	}
	return httpapi.DecodeJSON(p.d.Validator, bodySchema(c, schema), httpapi.Body(c), out)
}

// invalidState is INVALID_ORDER_STATE "单据状态错误" (SOURCES.md §1) with
// what the operation needs.
func invalidState(o *order, op, needs string) *sandbox.Error {
	return &sandbox.Error{Code: sandbox.CodeState, Upstream: codeInvalidOrderState, Message: msgInvalidOrderState,
		Fields: []sandbox.Violation{{Path: "", Message: fmt.Sprintf("order %s is %s; %s needs %s", o.OutOrderNo, o.describe(), op, needs)}}}
}

// describe is the order's state as a person reads it: "DOING/MCH_COMPLETE (USER_PAYING)".
func (o *order) describe() string {
	s := o.State
	if o.StateDescription != "" {
		s += "/" + o.StateDescription
	}
	if o.Collection != nil {
		s += " (" + o.Collection.State + ")"
	}
	return s
}

type cancelRequest struct {
	orderKey
	Reason string `json:"reason"`
}

// handleCancel handles "POST /v3/payscore/serviceorder/{out_order_no}/cancel":
// allowed while CREATED, DOING/USER_CONFIRM, or USER_PAYING (SOURCES.md §2).
func (p *Product) handleCancel(c *gin.Context) error {
	var req cancelRequest
	if err := p.decodeChange(c, schemaCancel, &req); err != nil {
		return err
	}
	o, err := p.mutate(c, req.orderKey, func(ctx context.Context, o *order, now time.Time, b *sandbox.Batch) error {
		if !(o.State == stateCreated || o.State == stateDoing && o.StateDescription == descUserConfirm || o.paying()) {
			return invalidState(o, "cancel", "CREATED, DOING/USER_CONFIRM or DOING/MCH_COMPLETE with USER_PAYING")
		}
		o.State, o.StateDescription = stateRevoked, ""
		o.Sandbox.PaidAt, o.Sandbox.PaidTransaction = time.Time{}, ""
		return p.dropPaid(ctx, o, b)
	})
	if err != nil {
		return err
	}
	return p.v3.JSON(c, http.StatusOK, o.ref())
}

type amounts struct {
	PostPayments  []payment  `json:"post_payments"`
	PostDiscounts []discount `json:"post_discounts,omitempty"`
	TotalAmount   int64      `json:"total_amount"`
}

// check applies total_amount = Σ post_payments.amount − Σ
// post_discounts.amount (SOURCES.md §2).
func (a *amounts) check() []sandbox.Violation {
	pay := sum(a.PostPayments, func(p payment) *int64 { return p.Amount })
	off := sum(a.PostDiscounts, func(d discount) *int64 { return d.Amount })
	if want := pay - off; a.TotalAmount != want {
		return []sandbox.Violation{{Path: "/total_amount", Message: fmt.Sprintf(
			"is %d, but Σ post_payments.amount (%d) − Σ post_discounts.amount (%d) = %d", a.TotalAmount, pay, off, want)}}
	}
	return nil
}

type modifyRequest struct {
	orderKey
	amounts
	Reason string `json:"reason"`
}

// handleModify handles "POST /v3/payscore/serviceorder/{out_order_no}/modify":
// only while the user pays, and only downwards (SOURCES.md §2).
func (p *Product) handleModify(c *gin.Context) error {
	var req modifyRequest
	if err := p.decodeChange(c, schemaModify, &req); err != nil {
		return err
	}
	if vs := req.check(); len(vs) > 0 {
		return sandbox.Invalid("参数错误", vs...)
	}
	m := wxpayv3.Merchant(c)
	var warnings []sandbox.Violation
	o, err := p.mutate(c, req.orderKey, func(ctx context.Context, o *order, now time.Time, b *sandbox.Batch) error {
		if !o.paying() {
			return invalidState(o, "modify", "DOING/MCH_COMPLETE with collection USER_PAYING")
		}
		warnings = nil
		switch {
		case req.TotalAmount > o.TotalAmount:
			return sandbox.Invalid("参数错误", sandbox.Violation{Path: "/total_amount", Message: fmt.Sprintf(
				"is %d; while the user pays the amount may only go down, and it is %d now", req.TotalAmount, o.TotalAmount)})
		case req.TotalAmount == o.TotalAmount:
			// [I]: the modify page says the amount goes down, not whether
			// an unchanged one is refused.
			warnings = []sandbox.Violation{{Path: "/total_amount", Message: fmt.Sprintf(
				"is %d, the order's total already: modify lowers the amount, and an unchanged one may be refused (inferred rule: a warning, a refusal for a strict merchant)", req.TotalAmount)}}
			if err := sandbox.Advice(m, warnings); err != nil {
				return err
			}
		}
		o.PostPayments, o.PostDiscounts, o.TotalAmount = req.PostPayments, req.PostDiscounts, req.TotalAmount
		o.Collection.TotalAmount, o.Collection.PayingAmount = req.TotalAmount, req.TotalAmount
		if o.Sandbox.PaidAt.IsZero() {
			return nil
		}
		return p.notifyPaid(ctx, o, b)
	})
	if err != nil {
		return err
	}
	for _, w := range warnings {
		httpapi.Warn(c, w)
	}
	return p.v3.JSON(c, http.StatusOK, o.full())
}

type completeRequest struct {
	orderKey
	amounts
	TimeRange     *timeRange `json:"time_range,omitempty"`
	Location      *location  `json:"location,omitempty"`
	ProfitSharing bool       `json:"profit_sharing,omitempty"`
	GoodsTag      string     `json:"goods_tag,omitempty"`
	CompleteTime  string     `json:"complete_time,omitempty"`
}

// handleComplete handles "POST /v3/payscore/serviceorder/{out_order_no}/complete":
// the user confirmed; the merchant says what is owed; WeChat deducts it
// as the scenario says and sends PAYSCORE.USER_PAID.
func (p *Product) handleComplete(c *gin.Context) error {
	var req completeRequest
	if err := p.decodeChange(c, schemaComplete, &req); err != nil {
		return err
	}
	vs := req.check()
	if req.TimeRange != nil {
		if req.TimeRange.StartTime != "" && req.TimeRange.StartTime != "OnAccept" {
			_, vs = parseTime(vs, "/time_range/start_time", req.TimeRange.StartTime)
		}
		if req.TimeRange.EndTime != "" {
			_, vs = parseTime(vs, "/time_range/end_time", req.TimeRange.EndTime)
		}
	}
	if len(vs) > 0 {
		return sandbox.Invalid("参数错误", vs...)
	}
	var sc *sandbox.Scenario
	o, err := p.mutate(c, req.orderKey, func(ctx context.Context, o *order, now time.Time, b *sandbox.Batch) error {
		switch {
		case o.State == stateCreated || o.State == stateRevoked:
			// The real answer to completing an order the user never
			// confirmed, or one cancelled (SOURCES.md §1, community).
			return &sandbox.Error{Code: sandbox.CodeState, Upstream: wxpayv3.CodeInvalidRequest, Message: msgCompleteState,
				Fields: []sandbox.Violation{{Path: "", Message: fmt.Sprintf("order %s is %s; complete needs DOING/USER_CONFIRM (the user confirmed)", o.OutOrderNo, o.describe())}}}
		case o.State != stateDoing || o.StateDescription != descUserConfirm:
			return invalidState(o, "complete", "DOING/USER_CONFIRM")
		}
		var vs []sandbox.Violation
		if o.RiskFund.deposit() && req.TotalAmount > o.RiskFund.Amount {
			vs = append(vs, sandbox.Violation{Path: "/total_amount", Message: fmt.Sprintf(
				"is %d, over risk_fund.amount %d: with risk_fund %s (先免模式) the total may not exceed it", req.TotalAmount, o.RiskFund.Amount, o.RiskFund.Name)})
		}
		if o.TimeRange.EndTime == "" && (req.TimeRange == nil || req.TimeRange.EndTime == "") {
			vs = append(vs, sandbox.Violation{Path: "/time_range/end_time", Message: "create gave no end_time, so complete must"})
		}
		if len(vs) > 0 {
			msg := "参数错误"
			if vs[len(vs)-1].Path == "/time_range/end_time" {
				msg = msgEndTimeRequired
			}
			return sandbox.Invalid(msg, vs...)
		}
		o.PostPayments, o.PostDiscounts = req.PostPayments, req.PostDiscounts
		if t := req.TimeRange; t != nil {
			o.TimeRange.EndTime, o.TimeRange.EndTimeRemark = pick(t.EndTime, o.TimeRange.EndTime), pick(t.EndTimeRemark, o.TimeRange.EndTimeRemark)
			if t.StartTime != "" {
				o.TimeRange.StartTime, o.TimeRange.StartTimeRemark = t.StartTime, pick(t.StartTimeRemark, o.TimeRange.StartTimeRemark)
			}
		}
		if l := req.Location; l != nil {
			if o.Location == nil {
				o.Location = &location{}
			}
			o.Location.StartLocation, o.Location.EndLocation = pick(l.StartLocation, o.Location.StartLocation), pick(l.EndLocation, o.Location.EndLocation)
		}
		o.complete(req.TotalAmount)
		if !o.paying() {
			return nil
		}
		sc = p.scenario(o.Sandbox.Scenario)
		ps := p.params[sc.ID]
		if ps.deduction == deductFail {
			return nil // until pay (催收) or sync
		}
		o.schedulePayment(now.Add(ps.paidAfter))
		return p.notifyPaid(ctx, o, b)
	})
	if err != nil {
		return err
	}
	if sc != nil {
		noteScenario(c, sc.ID)
	}
	return p.v3.JSON(c, http.StatusOK, o.completed())
}

func pick(s, otherwise string) string {
	if s != "" {
		return s
	}
	return otherwise
}

// handlePay handles "POST /v3/payscore/serviceorder/{out_order_no}/pay"
// (催收): the deduction is tried again now, and succeeds [I].
func (p *Product) handlePay(c *gin.Context) error {
	var req orderKey
	if err := p.decodeChange(c, schemaPay, &req); err != nil {
		return err
	}
	o, err := p.mutate(c, req, func(ctx context.Context, o *order, now time.Time, b *sandbox.Batch) error {
		if !o.paying() {
			return invalidState(o, "pay", "DOING/MCH_COMPLETE with collection USER_PAYING")
		}
		o.schedulePayment(now)
		if err := p.notifyPaid(ctx, o, b); err != nil {
			return err
		}
		o.advance(now)
		return nil
	})
	if err != nil {
		return err
	}
	return p.v3.JSON(c, http.StatusOK, o.ref())
}

type syncRequest struct {
	orderKey
	Type   string `json:"type"`
	Detail struct {
		PaidTime string `json:"paid_time"`
	} `json:"detail"`
}

// handleSync handles "POST /v3/payscore/serviceorder/{out_order_no}/sync":
// Order_Paid while the user pays → DONE, paid_type MCH (SOURCES.md §2). No
// PAYSCORE.USER_PAID follows: the merchant told WeChat, not the reverse [I].
func (p *Product) handleSync(c *gin.Context) error {
	var req syncRequest
	if err := p.decodeChange(c, schemaSync, &req); err != nil {
		return err
	}
	layout := v3Time
	if len(req.Detail.PaidTime) == 8 {
		layout = "20060102"
	}
	if _, err := time.ParseInLocation(layout, req.Detail.PaidTime, beijing); err != nil {
		return sandbox.Invalid("参数错误", sandbox.Violation{Path: "/detail/paid_time", Message: fmt.Sprintf("%q is not a date yyyyMMddHHmmss or yyyyMMdd", req.Detail.PaidTime)})
	}
	o, err := p.mutate(c, req.orderKey, func(ctx context.Context, o *order, now time.Time, b *sandbox.Batch) error {
		if !o.paying() {
			return invalidState(o, "sync", "DOING/MCH_COMPLETE with collection USER_PAYING")
		}
		o.settle(paidTypeMch, req.Detail.PaidTime, "")
		return p.dropPaid(ctx, o, b)
	})
	if err != nil {
		return err
	}
	return p.v3.JSON(c, http.StatusOK, o.full())
}

// noteScenario tells the caller and the journal which scenario decided.
func noteScenario(c *gin.Context, id string) {
	c.Header(headerSandboxScenario, id)
	httpapi.Exchange(c).Scenario = id
}
