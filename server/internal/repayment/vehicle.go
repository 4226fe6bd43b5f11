package repayment

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

// v3 parking service states (SOURCES.md §3: NORMAL|PAUSE|OUT_SERVICE).
const (
	serviceNormal     = "NORMAL"
	servicePause      = "PAUSE"
	serviceOutService = "OUT_SERVICE"
)

// Values of an advanced transaction (SOURCES.md §3, the SDK's Transaction).
const (
	tradeStateSuccess = "SUCCESS"
	bankTypeAdvanced  = "BPA" // WeChat advanced (垫付) the money
	tradeSceneParking = "PARKING"
	currencyCNY       = "CNY"
	// deviceID is the car park gate of every advance [I].
	deviceID = "SANDBOX-GATE-01"
	// deductDelay is how long after the exit the merchant asked for the
	// deduction that WeChat then advanced [I]: create_time and the
	// parking's end_time come this much before success_time.
	deductDelay = time.Minute
	// msgOrderNotExist is the message of the real 404 ORDER_NOT_EXIST [I:
	// the code is in SOURCES.md §1's table, the wording is not].
	msgOrderNotExist = "订单不存在"
)

// serviceState maps a user_state to the v3 service_state: an OVERDUE user
// still has the service, blocked only at entry with block_reason OVERDUE
// (SOURCES.md §3), so it is NORMAL here [I].
func serviceState(u *user) string {
	switch u.UserState {
	case StateNormal, StateOverdue:
		return serviceNormal
	case StatePaused:
		return servicePause
	}
	return serviceOutService
}

// plateService is the answer of services/find (the SDK's PlateService).
type plateService struct {
	PlateNumber     string `json:"plate_number"`
	PlateColor      string `json:"plate_color"`
	ServiceOpenTime string `json:"service_open_time,omitempty"`
	OpenID          string `json:"openid"`
	ServiceState    string `json:"service_state"`
}

// handleServicesFind handles "GET /v3/vehicle/parking/services/find": the
// parking service state of one of the user's plates. A plate the user does
// not have (or has in another colour), an unknown openid and an
// UNAUTHORIZED user are OUT_SERVICE with no service_open_time ("OUT_SERVICE
// 未开通", the SDK's PlateService).
func (p *Product) handleServicesFind(c *gin.Context) error {
	m := wxpayv3.Merchant(c)
	q, err := p.query(c, schemaServicesFind, nil)
	if err != nil {
		return err
	}
	if err := partnerOf(c, m, q["sub_mchid"], ""); err != nil {
		return err
	}
	if q["appid"] != m.AppID {
		return sandbox.Invalid("appid does not belong to the merchant", sandbox.Violation{Path: "/appid", Message: fmt.Sprintf(
			"%q is not merchant %s's appid %s", q["appid"], m.MchID, m.AppID)})
	}
	ctx := c.Request.Context()
	if err := p.ensureFixtures(ctx, m.MchID); err != nil {
		return err
	}
	_, u, err := p.getUser(ctx, m.MchID, q["openid"])
	if err != nil {
		return err
	}
	out := plateService{PlateNumber: q["plate_number"], PlateColor: q["plate_color"], OpenID: q["openid"], ServiceState: serviceOutService}
	if u != nil && u.authorized() {
		if pl, ok := u.hasPlate(q["plate_number"]); ok && pl.PlateColor == q["plate_color"] {
			out.ServiceState = serviceState(u)
			out.ServiceOpenTime = wxpayv3.FormatTime(u.ServiceOpenTime)
		}
	}
	return p.v3.JSON(c, http.StatusOK, out)
}

// transaction is the answer of the transaction query (the SDK's
// Transaction); sp_mchid is the merchant's mchid, as the SDK names it.
type transaction struct {
	AppID                 string       `json:"appid"`
	SubAppID              string       `json:"sub_appid,omitempty"`
	SpMchID               string       `json:"sp_mchid"`
	SubMchID              string       `json:"sub_mchid,omitempty"`
	Description           string       `json:"description"`
	CreateTime            string       `json:"create_time"`
	OutTradeNo            string       `json:"out_trade_no"`
	TransactionID         string       `json:"transaction_id,omitempty"`
	TradeState            string       `json:"trade_state"`
	TradeStateDescription string       `json:"trade_state_description,omitempty"`
	SuccessTime           string       `json:"success_time,omitempty"`
	BankType              string       `json:"bank_type,omitempty"`
	UserRepaid            string       `json:"user_repaid,omitempty"`
	Attach                string       `json:"attach,omitempty"`
	TradeScene            string       `json:"trade_scene"`
	ParkingInfo           *parkingInfo `json:"parking_info,omitempty"`
	Payer                 payer        `json:"payer"`
	Amount                amount       `json:"amount"`
}

type parkingInfo struct {
	ParkingID        string `json:"parking_id"`
	PlateNumber      string `json:"plate_number"`
	PlateColor       string `json:"plate_color"`
	StartTime        string `json:"start_time"`
	EndTime          string `json:"end_time"`
	ParkingName      string `json:"parking_name"`
	ChargingDuration int64  `json:"charging_duration"`
	DeviceID         string `json:"device_id"`
}

type payer struct {
	OpenID    string `json:"openid"`
	SubOpenID string `json:"sub_openid,omitempty"`
}

type amount struct {
	Total         int64  `json:"total"`
	Currency      string `json:"currency"`
	PayerTotal    int64  `json:"payer_total"`
	DiscountTotal int64  `json:"discount_total"`
}

// handleTransaction handles "GET /v3/vehicle/transactions/out-trade-no/{out_trade_no}".
// The transactions that exist are the users' advances: each is a
// successful parking deduction WeChat paid (bank_type BPA), with
// user_repaid N until the user repays it and Y after. Any other
// out_trade_no is the real 404 ORDER_NOT_EXIST.
func (p *Product) handleTransaction(c *gin.Context) error {
	m := wxpayv3.Merchant(c)
	outTradeNo := c.Param("out_trade_no")
	q, err := p.query(c, schemaTransactionURI, map[string]string{"out_trade_no": outTradeNo})
	if err != nil {
		return err
	}
	if err := partnerOf(c, m, q["sub_mchid"], ""); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if err := p.ensureFixtures(ctx, m.MchID); err != nil {
		return err
	}
	_, u, err := p.findUser(ctx, m.MchID, tradeAlias(outTradeNo))
	if err != nil {
		return err
	}
	if d, err := sandbox.Get[deduction](ctx, p.d.Store, KindTransaction, m.MchID, outTradeNo); err == nil {
		if d.V.Request.SubMchID != q["sub_mchid"] {
			// The real API finds a deduction by its sub_mchid too, so
			// another (or none) finds nothing [I].
			return orderNotExist(c, fmt.Sprintf("transaction %q was made for sub_mchid %q, not %q", outTradeNo, d.V.Request.SubMchID, q["sub_mchid"]))
		}
		return p.v3.JSON(c, http.StatusOK, d.V.view(m, p.d.Clock.Now(m.MchID), u != nil && u.repaid(outTradeNo)))
	} else if !sandbox.IsCode(err, sandbox.CodeNotFound) {
		return err
	}
	var a *advance
	if u != nil {
		for i := range u.Advances {
			if u.Advances[i].OutTradeNo == outTradeNo {
				a = &u.Advances[i]
			}
		}
	}
	if a == nil || q["sub_mchid"] != "" {
		return orderNotExist(c, fmt.Sprintf(
			"merchant %s has no transaction %q: the transactions are the deductions and the vehicle users' advances (GET /sandbox/v1/vehicle-users lists them)",
			m.MchID, outTradeNo))
	}
	end := a.Time.Add(-deductDelay)
	return p.v3.JSON(c, http.StatusOK, transaction{
		AppID: m.AppID, SpMchID: m.MchID, Description: a.Description,
		CreateTime: wxpayv3.FormatTime(end), OutTradeNo: a.OutTradeNo, TransactionID: a.TransactionID,
		TradeState: tradeStateSuccess, SuccessTime: wxpayv3.FormatTime(a.Time),
		BankType: bankTypeAdvanced, UserRepaid: yesNo(a.repaid()), TradeScene: tradeSceneParking,
		ParkingInfo: &parkingInfo{ParkingID: a.ParkingID, PlateNumber: a.PlateNumber, PlateColor: a.PlateColor,
			StartTime: wxpayv3.FormatTime(a.StartTime), EndTime: wxpayv3.FormatTime(end), ParkingName: a.ParkingName,
			ChargingDuration: int64(end.Sub(a.StartTime) / time.Second), DeviceID: deviceID},
		Payer:  payer{OpenID: u.OpenID},
		Amount: amount{Total: a.Amount, Currency: currencyCNY, PayerTotal: a.Amount},
	})
}

// orderNotExist is the real 404 ORDER_NOT_EXIST of the transaction query.
func orderNotExist(c *gin.Context, why string) error {
	wxpayv3.SetLocation(c, wxpayv3.LocationURI)
	return &sandbox.Error{Code: sandbox.CodeNotFound, Upstream: wxpayv3.CodeOrderNotExist, Message: msgOrderNotExist,
		Fields: []sandbox.Violation{{Path: "/out_trade_no", Message: why}}}
}

// query validates the request's query string, plus the path parameters in
// extra, against a schema; every violation is a PARAM_ERROR, located in the
// uri when it names a path parameter and in the query otherwise.
func (p *Product) query(c *gin.Context, name string, extra map[string]string) (map[string]string, error) {
	raw := c.Request.URL.Query()
	out := make(map[string]string, len(raw)+len(extra))
	doc := make(map[string]any, len(raw)+len(extra))
	var vs []sandbox.Violation
	for k, vals := range raw {
		if len(vals) > 1 {
			vs = append(vs, sandbox.Violation{Path: "/" + k, Message: fmt.Sprintf("is given %d times", len(vals))})
		}
		out[k], doc[k] = vals[0], vals[0]
	}
	for k, v := range extra {
		out[k], doc[k] = v, v
	}
	more, err := p.d.Validator.Validate(name, doc)
	if err != nil {
		return nil, err
	}
	if vs = append(vs, more...); len(vs) == 0 {
		return out, nil
	}
	loc := wxpayv3.LocationQuery
	for _, v := range vs {
		if _, ok := extra[pathName(v.Path)]; ok {
			loc = wxpayv3.LocationURI
			break
		}
	}
	wxpayv3.SetLocation(c, loc)
	return nil, sandbox.Invalid("the request does not match "+name, vs...)
}

// pathName is the parameter a violation's path names ("/plate_color" →
// "plate_color").
func pathName(path string) string { return strings.TrimPrefix(path, "/") }
