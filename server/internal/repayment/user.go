package repayment

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"time"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// plate is one of a user's plates.
type plate struct {
	PlateNumber string `json:"plate_number"`
	PlateColor  string `json:"plate_color"`
}

// advance is a parking payment WeChat advanced (垫资) for the user: an
// advanced transaction of the merchant's, which the v3 transaction query
// answers with bank_type BPA (SOURCES.md §3). RepaidAt is set once the user
// repaid it.
type advance struct {
	OutTradeNo    string    `json:"out_trade_no"`
	TransactionID string    `json:"transaction_id"`
	Amount        int64     `json:"amount"` // fen
	Time          time.Time `json:"time"`   // when WeChat advanced it: the deduction's success_time
	Description   string    `json:"description"`
	PlateNumber   string    `json:"plate_number"`
	PlateColor    string    `json:"plate_color"`
	ParkingID     string    `json:"parking_id"`
	ParkingName   string    `json:"parking_name"`
	StartTime     time.Time `json:"start_time"` // the parking's entry; it ended at Time [I]
	RepaidAt      time.Time `json:"repaid_at,omitzero"`
	// RepaidIn is the session in which the user repaid it.
	RepaidIn string `json:"repaid_in,omitempty"`
}

func (a *advance) repaid() bool { return !a.RepaidAt.IsZero() }

// attempt is the user's last visit to the repayment page that paid or
// tried to: what an admin looks at after a failed repayment.
type attempt struct {
	SessionID string    `json:"session_id"`
	Action    string    `json:"action"`
	At        time.Time `json:"at"`
	Amount    int64     `json:"amount"`
}

// user is a vehicle owner of one merchant, stored as a KindUser record.
type user struct {
	OpenID     string  `json:"openid"`
	UserState  string  `json:"user_state"`
	DeductMode string  `json:"deduct_mode,omitempty"`
	Plates     []plate `json:"plates"`
	// ServiceOpenTime is when the user authorised the service; zero for
	// an UNAUTHORIZED user.
	ServiceOpenTime time.Time `json:"service_open_time,omitzero"`
	Advances        []advance `json:"advances"`
	LastAttempt     *attempt  `json:"last_attempt,omitempty"`
	// BlockedEntries are the out_parking_no of the entries blocked because
	// the user owed (at most maxBlockedEntries, the latest): repaying turns
	// them NORMAL with a VEHICLE.ENTRANCE_STATE_CHANGE each.
	BlockedEntries []string `json:"blocked_entries,omitempty"`
	// OpenEntries are the out_parking_no of the user's NORMAL entries with
	// no deduction yet — vehicles still in a lot — (at most
	// maxBlockedEntries, the latest): an advance that makes the user owe
	// blocks them (BLOCKED, OVERDUE) with a VEHICLE.ENTRANCE_STATE_CHANGE
	// each.
	OpenEntries []string `json:"open_entries,omitempty"`
	// Fixture marks the users every merchant has from the start.
	Fixture   bool      `json:"fixture,omitempty"`
	CreatedAt time.Time `json:"created_at"` // merchant clock
}

// owed is what the user still owes, in fen.
func (u *user) owed() int64 {
	var n int64
	for i := range u.Advances {
		if !u.Advances[i].repaid() {
			n += u.Advances[i].Amount
		}
	}
	return n
}

// repaid reports whether the user repaid the advance with the out_trade_no.
func (u *user) repaid(outTradeNo string) bool {
	for i := range u.Advances {
		if u.Advances[i].OutTradeNo == outTradeNo {
			return u.Advances[i].repaid()
		}
	}
	return false
}

// authorized reports whether the user has the vehicle-owner service.
func (u *user) authorized() bool { return u.UserState != StateUnauthorized }

// hasPlate returns the user's plate with the number.
func (u *user) hasPlate(number string) (plate, bool) {
	for _, pl := range u.Plates {
		if pl.PlateNumber == number {
			return pl, true
		}
	}
	return plate{}, false
}

func plateAlias(number string) string     { return "plate/" + number }
func tradeAlias(outTradeNo string) string { return "trade/" + outTradeNo }

// record returns the user as a new record of the merchant.
func (u *user) record(mchid string) (*sandbox.Record, error) {
	rec := &sandbox.Record{Kind: KindUser, MchID: mchid, Key: u.OpenID}
	return rec, u.encode(rec)
}

// encode stores u in rec, with its aliases.
func (u *user) encode(rec *sandbox.Record) error {
	data, err := json.Marshal(u)
	if err != nil {
		return &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode vehicle user", Err: err}
	}
	rec.Data = data
	rec.Aliases = make([]string, 0, len(u.Plates)+len(u.Advances))
	for _, pl := range u.Plates {
		rec.Aliases = append(rec.Aliases, plateAlias(pl.PlateNumber))
	}
	for _, a := range u.Advances {
		rec.Aliases = append(rec.Aliases, tradeAlias(a.OutTradeNo))
	}
	return nil
}

// getUser reads the merchant's user by openid; a missing one is nil, nil.
func (p *Product) getUser(ctx context.Context, mchid, openid string) (*sandbox.Record, *user, error) {
	rec, err := p.d.Store.GetRecord(ctx, KindUser, mchid, openid)
	return p.decoded(rec, err)
}

// findUser reads the merchant's user by alias (a plate or an advance); a
// missing one is nil, nil.
func (p *Product) findUser(ctx context.Context, mchid, alias string) (*sandbox.Record, *user, error) {
	rec, err := p.d.Store.FindRecord(ctx, KindUser, mchid, alias)
	return p.decoded(rec, err)
}

func (p *Product) decoded(rec *sandbox.Record, err error) (*sandbox.Record, *user, error) {
	if sandbox.IsCode(err, sandbox.CodeNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := sandbox.Decode[user](rec)
	if err != nil {
		return nil, nil, err
	}
	return rec, u, nil
}

// etcToPlateColor maps the fixtures' ETC colour codes to WeChat's
// plate_color: blue, yellow, black, white, gradient green (small
// new-energy) GREEN, yellow-green (large new-energy) LIMEGREEN, blue-white
// BLUE [I: the pairing of codes and WeChat colours is inferred].
var etcToPlateColor = [...]string{"BLUE", "YELLOW", "BLACK", "WHITE", "GREEN", "LIMEGREEN", "BLUE"}

// generator builds users and advances from a Faker.
type generator struct {
	f   *fixtures.Faker
	now time.Time
}

func (g generator) plate() plate {
	n, c := g.f.Plate()
	return plate{PlateNumber: n, PlateColor: etcToPlateColor[c]}
}

// parkingNames are the car parks advances happen in [I].
var parkingNames = [...]string{"沙箱广场停车场", "沙箱大厦地下停车场", "沙箱机场P2停车楼", "沙箱路路侧停车位"}

// advance returns an advance of amount fen, advanced at `at`, for pl.
func (g generator) advance(amount int64, at time.Time, pl plate) advance {
	entry := at.Add(-2 * time.Hour)
	return advance{
		OutTradeNo: g.f.OrderNo("BPA"), TransactionID: g.f.OrderNo("42000001"),
		Amount: amount, Time: at, Description: "停车费", PlateNumber: pl.PlateNumber, PlateColor: pl.PlateColor,
		ParkingID: g.f.OrderNo("PK"), ParkingName: parkingNames[int(amount)%len(parkingNames)], StartTime: entry,
	}
}

// user returns a user in state with one plate: authorised 30 days ago
// unless UNAUTHORIZED, PROACTIVE (免密) unless PAUSED, which is AUTOPAY [I:
// any mix is real; fixtures show both].
func (g generator) user(state string) *user {
	u := &user{OpenID: g.f.OpenID(), UserState: state, Plates: []plate{g.plate()}, Advances: []advance{}, CreatedAt: g.now}
	if state != StateUnauthorized {
		u.ServiceOpenTime = g.now.Add(-30 * 24 * time.Hour).Truncate(time.Second)
		u.DeductMode = DeductProactive
		if state == StatePaused {
			u.DeductMode = DeductAutopay
		}
	}
	return u
}

// fixtureUsers are the users every merchant has from the start, one in
// each state, drawn from a Faker seeded with the mchid so that they are the
// same on every run: a NORMAL one who repaid an advance last week, a PAUSED
// one, an OVERDUE one owing two advances, an UNAUTHORIZED one.
func fixtureUsers(mchid string, now time.Time) []*user {
	h := fnv.New64a()
	h.Write([]byte(mchid))
	g := generator{f: fixtures.New(int64(h.Sum64())), now: now}
	out := make([]*user, 0, len(userStates))
	for _, state := range userStates {
		u := g.user(state)
		u.Fixture = true
		switch state {
		case StateNormal:
			a := g.advance(1500, now.Add(-7*24*time.Hour).Truncate(time.Second), u.Plates[0])
			a.RepaidAt = now.Add(-6 * 24 * time.Hour).Truncate(time.Second)
			u.Advances = append(u.Advances, a)
		case StateOverdue:
			u.Advances = append(u.Advances,
				g.advance(1200, now.Add(-72*time.Hour).Truncate(time.Second), u.Plates[0]),
				g.advance(850, now.Add(-24*time.Hour).Truncate(time.Second), u.Plates[0]))
		}
		out = append(out, u)
	}
	return out
}

// ensureFixtures creates the merchant's fixture users the first time the
// product meets the merchant. A conflict means they exist (another request,
// or an earlier run) and is success.
func (p *Product) ensureFixtures(ctx context.Context, mchid string) error {
	p.mu.Lock()
	done := p.seeded[mchid]
	p.mu.Unlock()
	if done {
		return nil
	}
	var b sandbox.Batch
	for _, u := range fixtureUsers(mchid, p.d.Clock.Now(mchid)) {
		rec, err := u.record(mchid)
		if err != nil {
			return err
		}
		b.Creates = append(b.Creates, rec)
	}
	if err := p.d.Store.Commit(ctx, &b); err != nil && !sandbox.IsCode(err, sandbox.CodeConflict) {
		return err
	}
	p.mu.Lock()
	p.seeded[mchid] = true
	p.mu.Unlock()
	return nil
}
