package repayment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

// The parking flow behind 垫资 (微信支付分停车服务, v3): 创建停车入场, then
// 扣费受理 once the car leaves, answered ACCEPTED and settled later as
// TRANSACTION.SUCCESS or TRANSACTION.FAIL — or advanced by WeChat (bank_type
// BPA) when the user's payment fails, which makes the user OVERDUE until the
// repayment mini-program clears it (TRANSACTION.PAY_BACK). Sources: the
// official pages https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter8_8_2.shtml
// to chapter8_8_6.shtml and wechatpay-go services/wexinpayscoreparking.

// Record kinds of the parking flow: an entry (key out_parking_no) and a
// deduction (key out_trade_no).
const (
	KindParking     = sandbox.ProductRepayment + ".parking"
	KindTransaction = sandbox.ProductRepayment + ".transaction"
)

// Entry states and block reasons of the create answer (wechatpay-go Parking).
const (
	entryNormal              = "NORMAL"
	entryBlocked             = "BLOCKED"
	blockPause               = "PAUSE"
	blockOverdue             = "OVERDUE"
	blockOutService          = "OUT_SERVICE"
	blockEvaluationFailed    = "EVALUATION_FAILED"
	tradeStateAccepted       = "ACCEPTED"
	tradeStatePayFail        = "PAY_FAIL"
	bankTypeOthers           = "OTHERS"   // a paid deduction's bank [I: any bank code is real]
	msgPayFail               = "扣款失败"     // [I]
	msgPlateNotFound         = "车牌不存在"    // the real NOT_FOUND message (wechatpay.im, community threads)
	msgDuplicateOutTradeNo   = "商户订单号重复"  // [I]
	msgDuplicateOutParkingNo = "商户入场标识重复" // [I]
	codeNotFound             = "NOT_FOUND"
)

// Notification events of the parking flow (chapter8_8_4, chapter8_8_6).
const (
	EventEntranceStateChange = "VEHICLE.ENTRANCE_STATE_CHANGE"
	EventTransactionSuccess  = "TRANSACTION.SUCCESS"
	EventTransactionFail     = "TRANSACTION.FAIL"
	EventTransactionPayBack  = "TRANSACTION.PAY_BACK"
)

// Scenario params of the parking flow (scenarios/repayment/parking-*.yaml):
// deduction is what happens to a 扣费受理, paid_after when (on the merchant's
// clock), block_reason blocks an entry that would be NORMAL.
const (
	deductSuccess  = "success"           // paid after paid_after (default 0)
	deductRetried  = "fail_then_success" // the first tries fail; paid after paid_after (default 1h)
	deductFail     = "fail"              // PAY_FAIL after paid_after; WeChat does not advance it
	deductAdvance  = "advance"           // the user's payment fails and WeChat advances (垫资) it at once
	retriedDefault = time.Hour
)

// maxBlockedEntries bounds the blocked entries a user record remembers, to
// notify them when the user repays, and the open entries, to block them
// when the user comes to owe.
const maxBlockedEntries = 32

// remember appends out_parking_no to a bounded list of entries, keeping the
// latest maxBlockedEntries.
func remember(list []string, outParkingNo string) []string {
	list = append(slices.DeleteFunc(list, func(s string) bool { return s == outParkingNo }), outParkingNo)
	if n := len(list); n > maxBlockedEntries {
		list = list[n-maxBlockedEntries:]
	}
	return list
}

// forget removes out_parking_no from a list of entries.
func forget(list []string, outParkingNo string) []string {
	return slices.DeleteFunc(list, func(s string) bool { return s == outParkingNo })
}

// parkingParams are a scenario's parking params.
type parkingParams struct {
	deduction   string
	paidAfter   time.Duration
	blockReason string
}

// parkingParamsOf reads a scenario's parking params; a scenario without
// them pays at once and blocks nothing.
func parkingParamsOf(sc *sandbox.Scenario) (parkingParams, error) {
	ps := parkingParams{deduction: deductSuccess}
	if s, ok := sc.Params["deduction"].(string); ok {
		ps.deduction = s
	}
	switch ps.deduction {
	case deductSuccess, deductFail, deductAdvance:
	case deductRetried:
		ps.paidAfter = retriedDefault
	default:
		return ps, fmt.Errorf("scenario %s (%s): params/deduction %q is not one of success, fail_then_success, fail, advance", sc.ID, sc.File, ps.deduction)
	}
	if raw, ok := sc.Params["paid_after"]; ok {
		b, _ := json.Marshal(raw)
		var d sandbox.Duration
		if err := d.UnmarshalJSON(b); err != nil {
			return ps, fmt.Errorf("scenario %s (%s): params/paid_after: %v", sc.ID, sc.File, err)
		}
		ps.paidAfter = d.D()
	}
	if s, ok := sc.Params["block_reason"].(string); ok {
		if s != blockEvaluationFailed && s != blockPause && s != blockOutService && s != blockOverdue {
			return ps, fmt.Errorf("scenario %s (%s): params/block_reason %q is not a block_reason", sc.ID, sc.File, s)
		}
		ps.blockReason = s
	}
	return ps, nil
}

// parkingRequest is the body of 创建停车入场.
type parkingRequest struct {
	SubMchID     string `json:"sub_mchid,omitempty"`
	OutParkingNo string `json:"out_parking_no"`
	PlateNumber  string `json:"plate_number"`
	PlateColor   string `json:"plate_color"`
	NotifyURL    string `json:"notify_url"`
	StartTime    string `json:"start_time"`
	ParkingName  string `json:"parking_name"`
	FreeDuration int64  `json:"free_duration"`
}

// entry is a parking entry, stored as a KindParking record.
type entry struct {
	ID          string         `json:"id"`
	Request     parkingRequest `json:"request"`
	State       string         `json:"state"`
	BlockReason string         `json:"block_reason,omitempty"`
	OpenID      string         `json:"openid,omitempty"`
	Scenario    string         `json:"scenario"`
	CreatedAt   time.Time      `json:"created_at"`
}

// parking is the create answer (wechatpay-go Parking).
type parking struct {
	ID           string `json:"id"`
	OutParkingNo string `json:"out_parking_no"`
	PlateNumber  string `json:"plate_number"`
	PlateColor   string `json:"plate_color"`
	StartTime    string `json:"start_time"`
	ParkingName  string `json:"parking_name"`
	FreeDuration int64  `json:"free_duration"`
	State        string `json:"state"`
	BlockReason  string `json:"block_reason,omitempty"`
}

func (e *entry) answer() parking {
	r := e.Request
	return parking{ID: e.ID, OutParkingNo: r.OutParkingNo, PlateNumber: r.PlateNumber, PlateColor: r.PlateColor,
		StartTime: r.StartTime, ParkingName: r.ParkingName, FreeDuration: r.FreeDuration, State: e.State, BlockReason: e.BlockReason}
}

// entranceState is the VEHICLE.ENTRANCE_STATE_CHANGE resource: the entry
// under the notification's own names (id → parking_id, state →
// parking_state, block_reason → blocked_state_description; Senparc
// TenPayV3 VehicleParking, wechatpay.im) and its own enum (PAUSE, OVERDUE,
// REMOVE).
type entranceState struct {
	SpMchID                 string `json:"sp_mchid"`
	SubMchID                string `json:"sub_mchid,omitempty"`
	ParkingID               string `json:"parking_id"`
	OutParkingNo            string `json:"out_parking_no"`
	PlateNumber             string `json:"plate_number"`
	PlateColor              string `json:"plate_color"`
	StartTime               string `json:"start_time"`
	ParkingName             string `json:"parking_name"`
	FreeDuration            int64  `json:"free_duration"`
	ParkingState            string `json:"parking_state"`
	BlockedStateDescription string `json:"blocked_state_description,omitempty"`
	StateUpdateTime         string `json:"state_update_time"` // milliseconds, as the sources show
}

// entryState is what an entry of the plate gets: NORMAL for an authorised
// user with the plate in that colour, else BLOCKED with the reason — PAUSE
// for a PAUSED user, OVERDUE for one who owes, OUT_SERVICE for a plate the
// service does not have (wechatpay-go Parking.BlockReason). A scenario's
// block_reason blocks a NORMAL entry (EVALUATION_FAILED: 综合评估未通过).
func entryState(u *user, number, color string, ps parkingParams) (string, string) {
	if u == nil || !u.authorized() {
		return entryBlocked, blockOutService
	}
	if pl, ok := u.hasPlate(number); !ok || pl.PlateColor != color {
		return entryBlocked, blockOutService
	}
	switch u.UserState {
	case StatePaused:
		return entryBlocked, blockPause
	case StateOverdue:
		return entryBlocked, blockOverdue
	}
	if ps.blockReason != "" {
		return entryBlocked, ps.blockReason
	}
	return entryNormal, ""
}

// pick chooses the scenario of a parking request by the header or the
// magic field given, the merchant's active one, the default; an unknown
// header is a PARAM_ERROR in the header.
func (p *Product) pick(c *gin.Context, m *sandbox.Merchant, field, value string) (*sandbox.Scenario, parkingParams, error) {
	sc, err := p.d.Scenarios.Pick(sandbox.ProductRepayment, c.GetHeader(headerScenario), map[string]string{field: value}, m)
	if err != nil {
		wxpayv3.SetLocation(c, "header")
		return nil, parkingParams{}, sandbox.Invalid("unknown scenario", sandbox.Violation{Path: "/" + headerScenario, Message: sandbox.AsError(err).Message})
	}
	ps, err := parkingParamsOf(sc)
	return sc, ps, err
}

// headerScenario names the scenario of an upstream request.
const headerScenario = "X-Sandbox-Scenario"

// warnHTTP warns about an http notify_url: the real system takes https only.
func warnHTTP(c *gin.Context, url string) {
	if strings.HasPrefix(url, "http://") {
		httpapi.Warn(c, sandbox.Violation{Path: "/notify_url", Message: "is http: WeChat Pay calls back https URLs only (回调url只接受https); the sandbox sends it anyway"})
	}
}

// admit is what a create (entry or deduction) checks after its body:
// the violations found so far (one 参数错误 naming them all), the partner
// fields, an http notify_url (a warning), the scenario picked by field =
// value; and it makes sure the merchant's vehicle users exist.
func (p *Product) admit(c *gin.Context, m *sandbox.Merchant, vs []sandbox.Violation, subMchID, subAppID, notifyURL, field, value string) (*sandbox.Scenario, parkingParams, error) {
	if len(vs) > 0 {
		return nil, parkingParams{}, sandbox.Invalid("参数错误", vs...)
	}
	if err := partnerOf(c, m, subMchID, subAppID); err != nil {
		return nil, parkingParams{}, err
	}
	warnHTTP(c, notifyURL)
	sc, ps, err := p.pick(c, m, field, value)
	if err != nil {
		return nil, parkingParams{}, err
	}
	return sc, ps, p.ensureFixtures(c.Request.Context(), m.MchID)
}

// handleCreateParking handles "POST /v3/vehicle/parking/parkings" (创建停车入场).
// The entry is NORMAL or BLOCKED by the plate's user (see entryState); an
// entry blocked because the user owes is remembered on the user, so that
// its VEHICLE.ENTRANCE_STATE_CHANGE (back to NORMAL) goes out when the user
// repays. An out_parking_no given again answers the entry again when the
// body is the same [I] and is INVALID_REQUEST otherwise [I].
func (p *Product) handleCreateParking(c *gin.Context) error {
	m := wxpayv3.Merchant(c)
	var req parkingRequest
	if err := httpapi.DecodeJSON(p.d.Validator, schemaParkingCreate, httpapi.Body(c), &req); err != nil {
		return err
	}
	vs := p.d.NotifyTargets.NotifyURLViolations(m, "/notify_url", req.NotifyURL)
	sc, ps, err := p.admit(c, m, vs, req.SubMchID, "", req.NotifyURL, "out_parking_no", req.OutParkingNo)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	for try := 1; ; try++ {
		if old, err := sandbox.Get[entry](ctx, p.d.Store, KindParking, m.MchID, req.OutParkingNo); err == nil {
			if old.V.Request != req {
				return duplicate("/out_parking_no", msgDuplicateOutParkingNo, req.OutParkingNo)
			}
			return p.v3.JSON(c, http.StatusOK, old.V.answer())
		} else if !sandbox.IsCode(err, sandbox.CodeNotFound) {
			return err
		}
		urec, u, err := p.findUser(ctx, m.MchID, plateAlias(req.PlateNumber))
		if err != nil {
			return err
		}
		e := &entry{ID: p.newID("PK"), Request: req, Scenario: sc.ID, CreatedAt: p.d.Clock.Now(m.MchID)}
		if u != nil {
			e.OpenID = u.OpenID
		}
		e.State, e.BlockReason = entryState(u, req.PlateNumber, req.PlateColor, ps)
		rec, err := sandbox.NewRecord(KindParking, m.MchID, req.OutParkingNo, e, parkingIDAlias(e.ID))
		if err != nil {
			return err
		}
		b := &sandbox.Batch{Creates: []*sandbox.Record{rec}}
		if e.BlockReason == blockOverdue || e.State == entryNormal {
			if e.State == entryNormal {
				u.OpenEntries = remember(u.OpenEntries, req.OutParkingNo)
			} else {
				u.BlockedEntries = remember(u.BlockedEntries, req.OutParkingNo)
			}
			up := *urec
			if err := u.encode(&up); err != nil {
				return err
			}
			b.Updates = append(b.Updates, &up)
		}
		err = p.d.Store.Commit(ctx, b)
		if err == nil {
			return p.v3.JSON(c, http.StatusOK, e.answer())
		}
		if !sandbox.IsCode(err, sandbox.CodeConflict) || try == sandbox.UpdateTries {
			return err
		}
	}
}

// plateOf returns the number of the user's first plate in the colour, or
// "" — entries and deductions name a plate, which the user may have in one
// colour only.
func (u *user) plateOf(color string) string {
	for _, pl := range u.Plates {
		if pl.PlateColor == color {
			return pl.PlateNumber
		}
	}
	return ""
}

// duplicate is the INVALID_REQUEST of a merchant number given again with
// another body [I: the code exists for 创建停车入场 (2022 changelog); the
// message is inferred].
func duplicate(path, message, value string) error {
	return &sandbox.Error{Code: sandbox.CodeInvalid, Upstream: wxpayv3.CodeInvalidRequest, Message: message,
		Fields: []sandbox.Violation{{Path: path, Message: fmt.Sprintf(
			"%q exists with another body; the same body answers it again, another one needs a new number", value)}}}
}

// newID returns a service-side id: prefix and 20 random digits.
func (p *Product) newID(prefix string) string {
	return fixtures.New(time.Now().UnixNano()).OrderNo(prefix)
}

// deductRequest is the body of 扣费受理.
type deductRequest struct {
	SubMchID      string       `json:"sub_mchid,omitempty"`
	SubAppID      string       `json:"sub_appid,omitempty"`
	AppID         string       `json:"appid"`
	Description   string       `json:"description"`
	Attach        string       `json:"attach,omitempty"`
	OutTradeNo    string       `json:"out_trade_no"`
	TradeScene    string       `json:"trade_scene"`
	GoodsTag      string       `json:"goods_tag,omitempty"`
	NotifyURL     string       `json:"notify_url"`
	ProfitSharing string       `json:"profit_sharing,omitempty"`
	Amount        deductAmount `json:"amount"`
	ParkingInfo   parkingTrade `json:"parking_info"`
}

type deductAmount struct {
	Total    int64  `json:"total"`
	Currency string `json:"currency,omitempty"`
}

// parkingTrade is parking_info as the request gives it (times as sent).
type parkingTrade struct {
	ParkingID        string `json:"parking_id"`
	PlateNumber      string `json:"plate_number"`
	PlateColor       string `json:"plate_color"`
	StartTime        string `json:"start_time"`
	EndTime          string `json:"end_time"`
	ParkingName      string `json:"parking_name"`
	ChargingDuration int64  `json:"charging_duration"`
	DeviceID         string `json:"device_id"`
}

// deduction is a 扣费受理, stored as a KindTransaction record: ACCEPTED
// until SettleAt on the merchant's clock, then Outcome (SUCCESS or
// PAY_FAIL). An advanced one (BankType BPA) is also one of the user's
// advances, whose repayment its user_repaid follows.
type deduction struct {
	Request       deductRequest `json:"request"`
	OpenID        string        `json:"openid"`
	TransactionID string        `json:"transaction_id"`
	CreateTime    time.Time     `json:"create_time"`
	SettleAt      time.Time     `json:"settle_at"`
	Outcome       string        `json:"outcome"`
	BankType      string        `json:"bank_type,omitempty"`
	Scenario      string        `json:"scenario"`
}

// view is the Transaction as it stands at `at`; repaid says whether the
// user repaid an advanced one.
func (d *deduction) view(m *sandbox.Merchant, at time.Time, repaid bool) transaction {
	r := d.Request
	t := transaction{AppID: r.AppID, SpMchID: m.MchID, SubMchID: r.SubMchID, SubAppID: r.SubAppID, Description: r.Description, CreateTime: wxpayv3.FormatTime(d.CreateTime),
		OutTradeNo: r.OutTradeNo, TradeState: tradeStateAccepted, Attach: r.Attach, TradeScene: r.TradeScene,
		ParkingInfo: &parkingInfo{ParkingID: r.ParkingInfo.ParkingID, PlateNumber: r.ParkingInfo.PlateNumber,
			PlateColor: r.ParkingInfo.PlateColor, StartTime: r.ParkingInfo.StartTime, EndTime: r.ParkingInfo.EndTime,
			ParkingName: r.ParkingInfo.ParkingName, ChargingDuration: r.ParkingInfo.ChargingDuration, DeviceID: r.ParkingInfo.DeviceID},
		Payer:  payer{OpenID: d.OpenID, SubOpenID: subOpenID(r.SubAppID, d.OpenID)},
		Amount: amount{Total: r.Amount.Total, Currency: currencyCNY}}
	if at.Before(d.SettleAt) {
		return t
	}
	t.TradeState, t.TransactionID = d.Outcome, d.TransactionID
	if d.Outcome == tradeStatePayFail {
		t.TradeStateDescription = msgPayFail
		return t
	}
	t.SuccessTime, t.BankType, t.Amount.PayerTotal = wxpayv3.FormatTime(d.SettleAt), d.BankType, r.Amount.Total
	if d.BankType == bankTypeAdvanced {
		t.UserRepaid = yesNo(repaid)
	}
	return t
}

// handleDeduct handles "POST /v3/vehicle/transactions/parking" (扣费受理).
// It answers the Transaction ACCEPTED — the official text releases the car
// only on ACCEPTED — and the scenario's deduction settles it: paid at once
// or after paid_after (TRANSACTION.SUCCESS), failed (TRANSACTION.FAIL), or
// advanced by WeChat at once (垫资: SUCCESS with bank_type BPA, user_repaid
// N; the user becomes OVERDUE and owes it). The plate names the user: a
// plate the service does not have is 404 NOT_FOUND 车牌不存在 [I: status].
func (p *Product) handleDeduct(c *gin.Context) error {
	m := wxpayv3.Merchant(c)
	var req deductRequest
	if err := httpapi.DecodeJSON(p.d.Validator, schemaDeduct, httpapi.Body(c), &req); err != nil {
		return err
	}
	vs := p.d.NotifyTargets.NotifyURLViolations(m, "/notify_url", req.NotifyURL)
	if req.AppID != m.AppID {
		vs = append(vs, sandbox.Violation{Path: "/appid", Message: fmt.Sprintf("%q is not merchant %s's appid %s", req.AppID, m.MchID, m.AppID)})
	}
	sc, ps, err := p.admit(c, m, vs, req.SubMchID, req.SubAppID, req.NotifyURL, "out_trade_no", req.OutTradeNo)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	if !p.knownParkingID(ctx, m.MchID, req.ParkingInfo.ParkingID) {
		// [I]: parking_id is the id 创建停车入场 answered; whether the real
		// service refuses another is not documented, so it is a warning.
		httpapi.Warn(c, sandbox.Violation{Path: "/parking_info/parking_id", Message: "is not the id of an entry made with POST /v3/vehicle/parking/parkings"})
	}
	for try := 1; ; try++ {
		now := p.d.Clock.Now(m.MchID)
		if old, err := sandbox.Get[deduction](ctx, p.d.Store, KindTransaction, m.MchID, req.OutTradeNo); err == nil {
			if !sameRequest(&old.V.Request, &req) {
				return duplicate("/out_trade_no", msgDuplicateOutTradeNo, req.OutTradeNo)
			}
			// The same body again: the same synchronous answer [I].
			return p.v3.JSON(c, http.StatusOK, old.V.view(m, old.V.CreateTime, false).accepted())
		} else if !sandbox.IsCode(err, sandbox.CodeNotFound) {
			return err
		}
		if _, taken, err := p.findUser(ctx, m.MchID, tradeAlias(req.OutTradeNo)); err != nil || taken != nil {
			if err != nil {
				return err
			}
			return duplicate("/out_trade_no", msgDuplicateOutTradeNo, req.OutTradeNo)
		}
		urec, u, err := p.findUser(ctx, m.MchID, plateAlias(req.ParkingInfo.PlateNumber))
		if err != nil {
			return err
		}
		if u == nil || !u.authorized() || u.plateOf(req.ParkingInfo.PlateColor) != req.ParkingInfo.PlateNumber {
			return &sandbox.Error{Code: sandbox.CodeNotFound, Upstream: codeNotFound, Message: msgPlateNotFound,
				Fields: []sandbox.Violation{{Path: "/parking_info/plate_number", Message: fmt.Sprintf(
					"%s (%s) is not the plate of a user of merchant %s's parking service", req.ParkingInfo.PlateNumber, req.ParkingInfo.PlateColor, m.MchID)}}}
		}
		d := &deduction{Request: req, OpenID: u.OpenID, TransactionID: p.newID("42000001"), CreateTime: now,
			SettleAt: now.Add(ps.paidAfter), Outcome: tradeStateSuccess, BankType: bankTypeOthers, Scenario: sc.ID}
		switch ps.deduction {
		case deductFail:
			d.Outcome, d.BankType = tradeStatePayFail, ""
		case deductAdvance:
			d.SettleAt, d.BankType = now, bankTypeAdvanced
		}
		rec, err := sandbox.NewRecord(KindTransaction, m.MchID, req.OutTradeNo, d)
		if err != nil {
			return err
		}
		b := &sandbox.Batch{Creates: []*sandbox.Record{rec}}
		event := EventTransactionSuccess
		if d.Outcome == tradeStatePayFail {
			event = EventTransactionFail
		}
		n, err := p.transactionNotification(m, d, event, d.SettleAt, false, sc)
		if err != nil {
			return err
		}
		b.Notifications = append(b.Notifications, n)
		if err := p.leave(ctx, m.MchID, u, d, urec, b); err != nil {
			return err
		}
		err = p.d.Store.Commit(ctx, b)
		if err == nil {
			return p.v3.JSON(c, http.StatusOK, d.view(m, now, false).accepted())
		}
		if !sandbox.IsCode(err, sandbox.CodeConflict) || try == sandbox.UpdateTries {
			return err
		}
	}
}

// accepted is the synchronous answer of 扣费受理: ACCEPTED, whatever comes
// next (the official text: release the car on ACCEPTED).
func (t transaction) accepted() transaction {
	t.TradeState, t.TransactionID, t.SuccessTime, t.BankType, t.UserRepaid, t.TradeStateDescription = tradeStateAccepted, "", "", "", "", ""
	t.Amount.PayerTotal = 0
	return t
}

// sameRequest reports whether two deduction bodies are the same.
func sameRequest(a, b *deductRequest) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// knownParkingID reports whether an entry has the service id (entries are
// keyed by out_parking_no; the id is an alias).
func (p *Product) knownParkingID(ctx context.Context, mchid, id string) bool {
	_, err := p.d.Store.FindRecord(ctx, KindParking, mchid, parkingIDAlias(id))
	return err == nil
}

func parkingIDAlias(id string) string { return "id/" + id }

// leave applies a deduction to its user, in b as a compare-and-swap update
// of the user read: the entry it charges (by parking_info.parking_id) is no
// longer open — the car left —; an advanced one (垫资) becomes one of the
// user's advances and makes the user OVERDUE (a PAUSED one stays PAUSED: its
// service is paused either way [I]), which blocks the user's open entries.
func (p *Product) leave(ctx context.Context, mchid string, u *user, d *deduction, urec *sandbox.Record, b *sandbox.Batch) error {
	pi := d.Request.ParkingInfo
	changed := false
	if rec, err := p.d.Store.FindRecord(ctx, KindParking, mchid, parkingIDAlias(pi.ParkingID)); err == nil {
		n, m := len(u.OpenEntries), len(u.BlockedEntries)
		u.OpenEntries, u.BlockedEntries = forget(u.OpenEntries, rec.Key), forget(u.BlockedEntries, rec.Key)
		changed = n != len(u.OpenEntries) || m != len(u.BlockedEntries)
	} else if !sandbox.IsCode(err, sandbox.CodeNotFound) {
		return err
	}
	if d.BankType == bankTypeAdvanced {
		start, _ := time.Parse(time.RFC3339, pi.StartTime)
		u.Advances = append(u.Advances, advance{OutTradeNo: d.Request.OutTradeNo, TransactionID: d.TransactionID,
			Amount: d.Request.Amount.Total, Time: d.SettleAt, Description: d.Request.Description, PlateNumber: pi.PlateNumber,
			PlateColor: pi.PlateColor, ParkingID: pi.ParkingID, ParkingName: pi.ParkingName, StartTime: start})
		if u.UserState == StateNormal {
			u.UserState = StateOverdue
		}
		if u.UserState == StateOverdue {
			if err := p.blockOpenEntries(ctx, mchid, u, d.SettleAt, b); err != nil {
				return err
			}
		}
		changed = true
	}
	if !changed {
		return nil
	}
	up := *urec
	if err := u.encode(&up); err != nil {
		return err
	}
	b.Updates = append(b.Updates, &up)
	return nil
}

// blockOpenEntries adds to b, for a user who came to owe at `at`, each open
// entry turned BLOCKED with block_reason OVERDUE and its
// VEHICLE.ENTRANCE_STATE_CHANGE (parking_state BLOCKED,
// blocked_state_description OVERDUE), and moves the entries to the blocked
// ones, which repaying unblocks. The notification and its fields are
// documented (停车入场状态变更通知, chapter8_8_4); that an advance sends it for
// the entries of a vehicle still in a lot is inferred [I].
func (p *Product) blockOpenEntries(ctx context.Context, mchid string, u *user, at time.Time, b *sandbox.Batch) error {
	for _, no := range u.OpenEntries {
		s, err := sandbox.Get[entry](ctx, p.d.Store, KindParking, mchid, no)
		if sandbox.IsCode(err, sandbox.CodeNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := p.changeEntry(s, entryBlocked, blockOverdue, at, b); err != nil {
			return err
		}
		u.BlockedEntries = remember(u.BlockedEntries, no)
	}
	u.OpenEntries = nil
	return nil
}

// changeEntry adds to b the entry in its new state and the
// VEHICLE.ENTRANCE_STATE_CHANGE that says so, at `at`.
func (p *Product) changeEntry(s *sandbox.Stored[entry], state, reason string, at time.Time, b *sandbox.Batch) error {
	s.V.State, s.V.BlockReason = state, reason
	up, err := s.Record()
	if err != nil {
		return err
	}
	r := s.V.Request
	n, err := p.notification(up.MchID, r.OutParkingNo, r.NotifyURL, EventEntranceStateChange, originalParking, entranceState{
		SpMchID: up.MchID, SubMchID: r.SubMchID, ParkingID: s.V.ID, OutParkingNo: r.OutParkingNo, PlateNumber: r.PlateNumber, PlateColor: r.PlateColor,
		StartTime: r.StartTime, ParkingName: r.ParkingName, FreeDuration: r.FreeDuration, ParkingState: state,
		BlockedStateDescription: reason, StateUpdateTime: wxpayv3.FormatTimeMillis(at),
	}, at, p.scenario(s.V.Scenario))
	if err != nil {
		return err
	}
	b.Updates = append(b.Updates, up)
	b.Notifications = append(b.Notifications, n)
	return nil
}

// The notifications' envelope values [I: the sources show neither
// original_type nor associated_data for these events, nor summaries but
// the entrance one's 停车入场状态通知].
const (
	originalTransaction = "transaction"
	originalParking     = "parking"
)

func summaryOf(event string) string {
	switch event {
	case EventEntranceStateChange:
		return "停车入场状态通知"
	case EventTransactionFail:
		return "支付失败"
	case EventTransactionPayBack:
		return "用户还款成功"
	}
	return "支付成功"
}

// transactionNotification is the TRANSACTION.* notification of the
// deduction as it stands at `at`, to its notify_url.
func (p *Product) transactionNotification(m *sandbox.Merchant, d *deduction, event string, at time.Time, repaid bool, sc *sandbox.Scenario) (*sandbox.Notification, error) {
	return p.notification(m.MchID, d.Request.OutTradeNo, d.Request.NotifyURL, event, originalTransaction, d.view(m, at, repaid), at, sc)
}

// notification builds a v3 notification of the repayment product, shaped
// by the scenario's notify settings.
func (p *Product) notification(mchid, ref, url, event, original string, resource any, at time.Time, sc *sandbox.Scenario) (*sandbox.Notification, error) {
	res, err := json.Marshal(resource)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(wxpayv3.NewEvent(at, event, summaryOf(event), original, original, res))
	if err != nil {
		return nil, err
	}
	n := &sandbox.Notification{
		ID: httpapi.NewID("ntf_"), MchID: mchid, Product: sandbox.ProductRepayment, Event: event, Ref: ref,
		URL: url, Payload: payload, State: sandbox.NotifyPending, DueAt: at.Add(sc.Notify.Delay.D()),
		FailNext: sc.Notify.FailNext,
		Faults: sandbox.Faults{
			BadSignature: sc.Notify.HasFault(faultBadSignature),
			Duplicate:    sc.Notify.HasFault(faultDuplicate),
		},
	}
	if sc.Notify.HasFault(faultDrop) {
		n.State = sandbox.NotifyDropped
	}
	return n, nil
}

// repaidNotifications adds to b, for a user who repaid at `at`, the
// TRANSACTION.PAY_BACK of each repaid deduction and the
// VEHICLE.ENTRANCE_STATE_CHANGE (back to NORMAL) of each entry blocked
// because the user owed, and clears the blocked entries.
func (p *Product) repaidNotifications(ctx context.Context, mchid string, u *user, repaid []string, at time.Time, b *sandbox.Batch) error {
	m, ok := p.d.Merchants.Get(mchid)
	if !ok {
		return sandbox.Errorf(sandbox.CodeInternal, "merchant %s is gone", mchid)
	}
	for _, no := range repaid {
		s, err := sandbox.Get[deduction](ctx, p.d.Store, KindTransaction, mchid, no)
		if sandbox.IsCode(err, sandbox.CodeNotFound) {
			continue // an advance made by the admin API or the fixtures: no notify_url
		}
		if err != nil {
			return err
		}
		n, err := p.transactionNotification(m, s.V, EventTransactionPayBack, at, true, p.scenario(s.V.Scenario))
		if err != nil {
			return err
		}
		b.Notifications = append(b.Notifications, n)
	}
	for _, no := range u.BlockedEntries {
		s, err := sandbox.Get[entry](ctx, p.d.Store, KindParking, mchid, no)
		if sandbox.IsCode(err, sandbox.CodeNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := p.changeEntry(s, entryNormal, "", at, b); err != nil {
			return err
		}
		u.OpenEntries = remember(u.OpenEntries, no)
	}
	u.BlockedEntries = nil
	return nil
}

// scenario returns the repayment scenario by id, or the default.
func (p *Product) scenario(id string) *sandbox.Scenario {
	if sc, ok := p.d.Scenarios.Get(id); ok && sc.Product == sandbox.ProductRepayment {
		return sc
	}
	return p.d.Scenarios.Default(sandbox.ProductRepayment)
}
