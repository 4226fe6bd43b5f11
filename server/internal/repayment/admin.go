package repayment

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// createRequest is the body of POST /sandbox/v1/vehicle-users
// (schemas/repayment/vehicle-user-create.request).
type createRequest struct {
	MchID       string           `json:"mchid"`
	UserState   string           `json:"user_state"`
	OpenID      string           `json:"openid"`
	PlateNumber string           `json:"plate_number"`
	PlateColor  string           `json:"plate_color"`
	DeductMode  string           `json:"deduct_mode"`
	Advances    []advanceRequest `json:"advances"`
}

// advanceRequest is one advance the new user owes (or repaid).
type advanceRequest struct {
	Amount      int64      `json:"amount"`
	Time        *time.Time `json:"time"`
	OutTradeNo  string     `json:"out_trade_no"`
	Description string     `json:"description"`
	Repaid      bool       `json:"repaid"`
}

// defaultAdvance is what an OVERDUE user created without an unrepaid
// advance owes: 10.00 yuan advanced a day earlier [I].
const (
	defaultAdvanceAmount = 1000
	defaultAdvanceAge    = 24 * time.Hour
)

// handleCreateUser handles "POST /sandbox/v1/vehicle-users": a vehicle owner
// of the merchant in the chosen state, answered with its openid. A merchant
// token creates users of its own merchant only.
func (p *Product) handleCreateUser(c *gin.Context) error {
	var req createRequest
	if err := httpapi.DecodeJSON(p.d.Validator, schemaCreateUser, httpapi.Body(c), &req); err != nil {
		return err
	}
	if _, err := p.merchant(c, req.MchID); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if err := p.ensureFixtures(ctx, req.MchID); err != nil {
		return err
	}
	u, vs := p.newUser(req)
	more, err := p.taken(ctx, req.MchID, u)
	if err != nil {
		return err
	}
	if vs = append(vs, more...); len(vs) > 0 {
		return sandbox.Invalid("the vehicle user cannot be created", vs...)
	}
	rec, err := u.record(req.MchID)
	if err != nil {
		return err
	}
	if err := p.d.Store.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{rec}}); err != nil {
		return err
	}
	c.JSON(http.StatusCreated, viewOf(req.MchID, u))
	return nil
}

// merchant returns the merchant if the caller's scope sees it: another
// merchant's id reads as unknown, as the admin API does.
func (p *Product) merchant(c *gin.Context, mchid string) (*sandbox.Merchant, error) {
	m, ok := p.d.Merchants.Get(mchid)
	if !ok || !httpapi.ScopeOf(c).Sees(mchid) {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "merchant %q does not exist in this sandbox", mchid)
	}
	return m, nil
}

// newUser builds the user a create request asks for; the violations say
// what in it contradicts the state.
func (p *Product) newUser(req createRequest) (*user, []sandbox.Violation) {
	now := p.d.Clock.Now(req.MchID)
	g := generator{f: fixtures.New(time.Now().UnixNano()), now: now}
	u := g.user(req.UserState)
	if req.OpenID != "" {
		u.OpenID = req.OpenID
	}
	if req.PlateNumber != "" {
		u.Plates[0] = plate{PlateNumber: req.PlateNumber, PlateColor: "BLUE"} // [I] the common colour
	}
	if req.PlateColor != "" {
		u.Plates[0].PlateColor = req.PlateColor
	}
	var vs []sandbox.Violation
	if req.DeductMode != "" {
		if !u.authorized() {
			vs = append(vs, sandbox.Violation{Path: "/deduct_mode", Message: "an UNAUTHORIZED user has no deduct_mode: it never authorised the service"})
		}
		u.DeductMode = req.DeductMode
	}
	seen := map[string]bool{}
	for i, a := range req.Advances {
		at := now.Add(-defaultAdvanceAge).Truncate(time.Second)
		if a.Time != nil {
			at = *a.Time
		}
		adv := g.advance(a.Amount, at, u.Plates[0])
		if a.OutTradeNo != "" {
			adv.OutTradeNo = a.OutTradeNo
		}
		if a.Description != "" {
			adv.Description = a.Description
		}
		path := "/advances/" + strconv.Itoa(i)
		if at.After(now) {
			vs = append(vs, sandbox.Violation{Path: path + "/time", Message: fmt.Sprintf(
				"%s is after the merchant's sandbox time %s: an advance happens in the past", at.Format(time.RFC3339), now.Format(time.RFC3339))})
		}
		if seen[adv.OutTradeNo] {
			vs = append(vs, sandbox.Violation{Path: path + "/out_trade_no", Message: "is given twice: out_trade_no is unique per merchant"})
		}
		seen[adv.OutTradeNo] = true
		if a.Repaid {
			adv.RepaidAt = now
		} else if req.UserState != StateOverdue {
			vs = append(vs, sandbox.Violation{Path: path + "/repaid", Message: fmt.Sprintf(
				"an advance not repaid makes the user OVERDUE: set user_state OVERDUE, or repaid true for a %s user", req.UserState)})
		}
		u.Advances = append(u.Advances, adv)
	}
	if req.UserState == StateOverdue && u.owed() == 0 {
		u.Advances = append(u.Advances, g.advance(defaultAdvanceAmount, now.Add(-defaultAdvanceAge).Truncate(time.Second), u.Plates[0]))
	}
	return u, vs
}

// taken names what of u another user of the merchant already has: its
// openid, its plate, an out_trade_no.
func (p *Product) taken(ctx context.Context, mchid string, u *user) ([]sandbox.Violation, error) {
	var vs []sandbox.Violation
	rec, _, err := p.getUser(ctx, mchid, u.OpenID)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		vs = append(vs, sandbox.Violation{Path: "/openid", Message: fmt.Sprintf("merchant %s already has a vehicle user %s", mchid, u.OpenID)})
	}
	check := func(path, alias, what string) error {
		rec, _, err := p.findUser(ctx, mchid, alias)
		if err == nil && rec != nil {
			vs = append(vs, sandbox.Violation{Path: path, Message: fmt.Sprintf("%s already belongs to vehicle user %s", what, rec.Key)})
		}
		return err
	}
	if err := check("/plate_number", plateAlias(u.Plates[0].PlateNumber), "plate "+u.Plates[0].PlateNumber); err != nil {
		return nil, err
	}
	for i, a := range u.Advances {
		if err := check("/advances/"+strconv.Itoa(i)+"/out_trade_no", tradeAlias(a.OutTradeNo), "out_trade_no "+a.OutTradeNo); err != nil {
			return nil, err
		}
	}
	return vs, nil
}

// handleListUsers handles "GET /sandbox/v1/vehicle-users?mchid=…": the
// vehicle users of the merchant (of every merchant the caller sees when
// mchid is absent), newest first, optionally of one user_state.
func (p *Product) handleListUsers(c *gin.Context) error {
	scope := httpapi.ScopeOf(c)
	mchid := c.Query("mchid")
	if mchid == "" && !scope.All {
		mchid = scope.MchID
	}
	var vs []sandbox.Violation
	state := c.Query("user_state")
	if state != "" && !slices.Contains(userStates[:], state) {
		vs = append(vs, sandbox.Violation{Path: "/user_state", Message: fmt.Sprintf("%q is not NORMAL, PAUSED, OVERDUE or UNAUTHORIZED", state)})
	}
	limit, bad := limitQuery(c)
	if vs = append(vs, bad...); len(vs) > 0 {
		return sandbox.Invalid("bad query", vs...)
	}
	ctx := c.Request.Context()
	merchants := p.d.Merchants.List()
	if mchid != "" {
		m, err := p.merchant(c, mchid)
		if err != nil {
			return err
		}
		merchants = []*sandbox.Merchant{m}
	}
	for _, m := range merchants {
		if err := p.ensureFixtures(ctx, m.MchID); err != nil {
			return err
		}
	}
	fetch := limit
	if state != "" {
		fetch = 1000 // filter after reading: the store filters by kind and merchant only
	}
	recs, err := p.d.Store.ListRecords(ctx, KindUser, mchid, fetch)
	if err != nil {
		return err
	}
	out := make([]userView, 0, len(recs))
	for _, rec := range recs {
		u, err := sandbox.Decode[user](rec)
		if err != nil {
			return err
		}
		if state != "" && u.UserState != state {
			continue
		}
		out = append(out, viewOf(rec.MchID, u))
		if len(out) == limit {
			break
		}
	}
	c.JSON(http.StatusOK, gin.H{"users": out})
	return nil
}

// limitQuery reads ?limit= of a list: 1 to 1000, 100 when absent.
func limitQuery(c *gin.Context) (int, []sandbox.Violation) {
	l := c.Query("limit")
	if l == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 1000 {
		return 0, []sandbox.Violation{{Path: "/limit", Message: "must be a whole number from 1 to 1000"}}
	}
	return n, nil
}

// userView is a vehicle user as the admin API shows it
// (schemas/repayment/vehicle-user).
type userView struct {
	MchID           string        `json:"mchid"`
	OpenID          string        `json:"openid"`
	UserState       string        `json:"user_state"`
	DeductMode      string        `json:"deduct_mode,omitempty"`
	PlateNumber     string        `json:"plate_number"`
	Plates          []plate       `json:"plates"`
	ServiceOpenTime time.Time     `json:"service_open_time,omitzero"`
	Owed            int64         `json:"owed"`
	Advances        []advanceView `json:"advances"`
	LastAttempt     *attempt      `json:"last_attempt,omitempty"`
	Fixture         bool          `json:"fixture"`
	CreatedAt       time.Time     `json:"created_at"`
}

// advanceView is one advance: the out_trade_no to query with GET
// /v3/vehicle/transactions/out-trade-no/{out_trade_no}, and user_repaid as
// that query answers it.
type advanceView struct {
	OutTradeNo    string    `json:"out_trade_no"`
	TransactionID string    `json:"transaction_id"`
	Amount        int64     `json:"amount"`
	Time          time.Time `json:"time"`
	Description   string    `json:"description"`
	PlateNumber   string    `json:"plate_number"`
	UserRepaid    string    `json:"user_repaid"`
	RepaidAt      time.Time `json:"repaid_at,omitzero"`
}

func viewOf(mchid string, u *user) userView {
	v := userView{MchID: mchid, OpenID: u.OpenID, UserState: u.UserState, DeductMode: u.DeductMode,
		Plates: u.Plates, ServiceOpenTime: u.ServiceOpenTime, Owed: u.owed(), Advances: make([]advanceView, 0, len(u.Advances)),
		LastAttempt: u.LastAttempt, Fixture: u.Fixture, CreatedAt: u.CreatedAt}
	if len(u.Plates) > 0 {
		v.PlateNumber = u.Plates[0].PlateNumber
	}
	for _, a := range u.Advances {
		v.Advances = append(v.Advances, advanceView{OutTradeNo: a.OutTradeNo, TransactionID: a.TransactionID,
			Amount: a.Amount, Time: a.Time, Description: a.Description, PlateNumber: a.PlateNumber,
			UserRepaid: yesNo(a.repaid()), RepaidAt: a.RepaidAt})
	}
	return v
}

func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}
