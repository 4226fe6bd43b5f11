package repayment

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The admin side of the parking flow, for the QA page and curl: what a
// merchant's entries and deductions are now, and the user repaying (or
// failing to) outside any jump — as a user who opens the repayment
// mini-program from WeChat itself does.

// Schemas of the parking admin routes (schemas/repayment/).
const (
	schemaRepay = "repayment/vehicle-user-repay.request"
)

// entryView is an entry as the admin API shows it (schemas/repayment/parking-list.response).
type entryView struct {
	MchID     string    `json:"mchid"`
	OpenID    string    `json:"openid,omitempty"`
	Scenario  string    `json:"scenario"`
	CreatedAt time.Time `json:"created_at"`
	Entry     parking   `json:"entry"`
}

// transactionView is a deduction as the admin API shows it: the
// Transaction the v3 query answers at the merchant's clock, the scenario
// that settles it and when.
type transactionView struct {
	MchID       string      `json:"mchid"`
	OpenID      string      `json:"openid"`
	Scenario    string      `json:"scenario"`
	CreatedAt   time.Time   `json:"created_at"`
	SettleAt    time.Time   `json:"settle_at"`
	Transaction transaction `json:"transaction"`
}

// handleListParking handles "GET /sandbox/v1/parking?mchid=…": the
// merchant's entries and deductions, newest first (at most limit of each,
// default 100), optionally of one vehicle user (openid).
func (p *Product) handleListParking(c *gin.Context) error {
	mchid := c.Query("mchid")
	if s := httpapi.ScopeOf(c); !s.All && mchid == "" {
		mchid = s.MchID
	}
	var vs []sandbox.Violation
	if mchid == "" {
		vs = append(vs, sandbox.Violation{Path: "/mchid", Message: "is required: the merchant whose parking flow to show"})
	}
	limit, bad := limitQuery(c)
	if vs = append(vs, bad...); len(vs) > 0 {
		return sandbox.Invalid("bad query", vs...)
	}
	m, err := p.merchant(c, mchid)
	if err != nil {
		return err
	}
	openid := c.Query("openid")
	ctx := c.Request.Context()
	fetch := limit
	if openid != "" {
		fetch = 1000 // filter after reading: the store filters by kind and merchant only
	}
	out := struct {
		Entries      []entryView       `json:"entries"`
		Transactions []transactionView `json:"transactions"`
	}{Entries: []entryView{}, Transactions: []transactionView{}}
	recs, err := p.d.Store.ListRecords(ctx, KindParking, mchid, fetch)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		e, err := sandbox.Decode[entry](rec)
		if err != nil {
			return err
		}
		if (openid == "" || e.OpenID == openid) && len(out.Entries) < limit {
			out.Entries = append(out.Entries, entryView{MchID: mchid, OpenID: e.OpenID, Scenario: e.Scenario, CreatedAt: e.CreatedAt, Entry: e.answer()})
		}
	}
	if recs, err = p.d.Store.ListRecords(ctx, KindTransaction, mchid, fetch); err != nil {
		return err
	}
	now := p.d.Clock.Now(mchid)
	users := map[string]*user{}
	for _, rec := range recs {
		d, err := sandbox.Decode[deduction](rec)
		if err != nil {
			return err
		}
		if (openid != "" && d.OpenID != openid) || len(out.Transactions) == limit {
			continue
		}
		u, ok := users[d.OpenID]
		if !ok {
			if _, u, err = p.getUser(ctx, mchid, d.OpenID); err != nil {
				return err
			}
			users[d.OpenID] = u
		}
		repaid := u != nil && u.repaid(d.Request.OutTradeNo)
		out.Transactions = append(out.Transactions, transactionView{MchID: mchid, OpenID: d.OpenID, Scenario: d.Scenario,
			CreatedAt: d.CreateTime, SettleAt: d.SettleAt, Transaction: d.view(m, now, repaid)})
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// handleRepay handles "POST /sandbox/v1/vehicle-users/{openid}/repay": the
// user repays every advance now on the merchant's clock (action repay,
// the default: user_repaid Y, TRANSACTION.PAY_BACK, blocked entries NORMAL
// again, as at the end of a jump) or tries and fails (action fail: only
// last_attempt changes). A user who owes nothing is answered as it is.
func (p *Product) handleRepay(c *gin.Context) error {
	var req struct {
		MchID  string `json:"mchid"`
		Action string `json:"action"`
	}
	if err := httpapi.DecodeJSON(p.d.Validator, schemaRepay, httpapi.Body(c), &req); err != nil {
		return err
	}
	if req.Action == "" {
		req.Action = ActionRepay
	}
	if _, err := p.merchant(c, req.MchID); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if err := p.ensureFixtures(ctx, req.MchID); err != nil {
		return err
	}
	openid := c.Param("openid")
	for try := 1; ; try++ {
		rec, u, err := p.getUser(ctx, req.MchID, openid)
		if err != nil {
			return err
		}
		if u == nil {
			return sandbox.Errorf(sandbox.CodeNotFound, "%q is not a vehicle user of merchant %s (GET /sandbox/v1/vehicle-users?mchid=%s lists them)", openid, req.MchID, req.MchID)
		}
		b, err := p.pays(ctx, req.MchID, rec, u, "", req.Action, p.d.Clock.Now(req.MchID))
		if err == nil && b != nil {
			err = p.d.Store.Commit(ctx, b)
		}
		if err == nil {
			c.JSON(http.StatusOK, viewOf(req.MchID, u))
			return nil
		}
		if !sandbox.IsCode(err, sandbox.CodeConflict) || try == sandbox.UpdateTries {
			return err
		}
	}
}
