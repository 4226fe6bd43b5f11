package repayment

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestFixtureUsersInEveryState(t *testing.T) {
	w := newWorld(t)
	users := w.users(w.m.MchID, "")
	var states []string
	for _, u := range users {
		if !u.Fixture {
			t.Errorf("user %s: got fixture false, want every user of a fresh merchant to be a fixture", u.OpenID)
		}
		states = append(states, u.UserState)
	}
	slices.Sort(states)
	if want := []string{StateNormal, StateOverdue, StatePaused, StateUnauthorized}; !slices.Equal(states, want) {
		t.Fatalf("states: got %v, want %v", states, want)
	}
	overdue := w.users(w.m.MchID, StateOverdue)
	if len(overdue) != 1 || overdue[0].Owed != 1200+850 || len(overdue[0].Advances) != 2 {
		t.Fatalf("OVERDUE fixture: got %+v, want one user owing two advances of 2050 fen", overdue)
	}

	// Fixtures are a function of the mchid: another sandbox has the same
	// users, another merchant different ones.
	again := newWorld(t).users(w.m.MchID, "")
	if len(again) != len(users) || again[0].OpenID != users[0].OpenID {
		t.Errorf("fixtures differ between two sandboxes: %v vs %v", again, users)
	}
	if other := w.users(w.other.MchID, StateOverdue); other[0].OpenID == overdue[0].OpenID {
		t.Errorf("two merchants share fixture openid %s", other[0].OpenID)
	}
}

func TestFixtureUsersMatchTheSchemaForManyMerchants(t *testing.T) {
	set, err := schemaSet()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mchid := fmt.Sprintf("1%09d", i*7919)
		for _, u := range fixtureUsers(mchid, base) {
			raw, _ := json.Marshal(viewOf(mchid, u))
			vs, err := set.ValidateJSON("repayment/vehicle-user", raw)
			if err != nil || len(vs) > 0 {
				t.Fatalf("mchid %s: %s does not match: %v %v", mchid, raw, vs, err)
			}
		}
	}
}

func TestCreateUser(t *testing.T) {
	w := newWorld(t)
	t.Run("OVERDUE owes a default advance", func(t *testing.T) {
		u := w.createUser(map[string]any{"user_state": StateOverdue})
		if u.Owed != defaultAdvanceAmount || len(u.Advances) != 1 || u.Advances[0].UserRepaid != "N" {
			t.Fatalf("got %+v, want one unrepaid advance of %d fen", u, defaultAdvanceAmount)
		}
	})
	t.Run("chosen plate, openid and advances", func(t *testing.T) {
		at := base.Add(-48 * time.Hour).Format(time.RFC3339)
		u := w.createUser(map[string]any{
			"user_state": StateOverdue, "openid": "oChosenOpenid0000000000000001", "plate_number": "粤B12345", "plate_color": "GREEN",
			"deduct_mode": DeductAutopay,
			"advances": []map[string]any{
				{"amount": 300, "time": at, "out_trade_no": "ADV-CHOSEN-0001", "description": "停车费 2h"},
				{"amount": 700, "repaid": true},
			},
		})
		if u.OpenID != "oChosenOpenid0000000000000001" || u.PlateNumber != "粤B12345" || u.Plates[0].PlateColor != "GREEN" ||
			u.DeductMode != DeductAutopay || u.Owed != 300 || u.Advances[0].OutTradeNo != "ADV-CHOSEN-0001" ||
			!u.Advances[0].Time.Equal(base.Add(-48*time.Hour)) || u.Advances[1].UserRepaid != "Y" {
			t.Fatalf("got %+v", u)
		}
	})
	t.Run("every state", func(t *testing.T) {
		for _, state := range userStates {
			u := w.createUser(map[string]any{"user_state": state})
			if u.UserState != state || (state == StateUnauthorized) != (u.DeductMode == "") {
				t.Errorf("%s: got %+v", state, u)
			}
		}
	})
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		paths  []string
	}{
		{"unrepaid advance of a NORMAL user", map[string]any{"user_state": StateNormal, "advances": []map[string]any{{"amount": 5}}},
			400, []string{"/advances/0/repaid"}},
		{"deduct_mode of an UNAUTHORIZED user", map[string]any{"user_state": StateUnauthorized, "deduct_mode": DeductProactive},
			400, []string{"/deduct_mode"}},
		{"advance in the future", map[string]any{"user_state": StateOverdue, "advances": []map[string]any{
			{"amount": 5, "time": base.Add(time.Hour).Format(time.RFC3339)}}}, 400, []string{"/advances/0/time"}},
		{"out_trade_no twice", map[string]any{"user_state": StateOverdue, "advances": []map[string]any{
			{"amount": 5, "out_trade_no": "SAME-000001"}, {"amount": 6, "out_trade_no": "SAME-000001"}}}, 400, []string{"/advances/1/out_trade_no"}},
		{"schema: every problem", map[string]any{"user_state": "LATE", "plate_number": "B12345", "advances": []map[string]any{{"amount": 0}}, "x": 1},
			400, []string{"/advances/0/amount", "/plate_number", "/user_state", "/x"}},
		{"unknown merchant", map[string]any{"mchid": "1999999999", "user_state": StateNormal}, 404, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.body["mchid"]; !ok {
				tc.body["mchid"] = w.m.MchID
			}
			out, raw := w.call(http.MethodPost, "/sandbox/v1/vehicle-users", adminToken, tc.body, tc.status)
			w.valid("common/admin-error", raw)
			var got []string
			e := out["error"].(map[string]any)
			fields, _ := e["fields"].([]any)
			for _, f := range fields {
				got = append(got, f.(map[string]any)["path"].(string))
			}
			if !slices.Equal(got, tc.paths) {
				t.Fatalf("paths: got %v, want %v (%s)", got, tc.paths, raw)
			}
		})
	}
	t.Run("plate and out_trade_no already taken", func(t *testing.T) {
		first := w.createUser(map[string]any{"user_state": StateOverdue, "plate_number": "沪C54321",
			"advances": []map[string]any{{"amount": 9, "out_trade_no": "TAKEN-00001"}}})
		out, _ := w.call(http.MethodPost, "/sandbox/v1/vehicle-users", adminToken, map[string]any{"mchid": w.m.MchID,
			"user_state": StateOverdue, "plate_number": "沪C54321", "openid": first.OpenID,
			"advances": []map[string]any{{"amount": 9, "out_trade_no": "TAKEN-00001"}}}, http.StatusBadRequest)
		fields := out["error"].(map[string]any)["fields"].([]any)
		if len(fields) != 3 {
			t.Fatalf("got %v, want openid, plate_number and the out_trade_no named", fields)
		}
		// Another merchant may use the same plate and out_trade_no.
		w.createUser(map[string]any{"mchid": w.other.MchID, "user_state": StateOverdue, "plate_number": "沪C54321",
			"advances": []map[string]any{{"amount": 9, "out_trade_no": "TAKEN-00001"}}})
	})
}

func TestMerchantTokenSeesOnlyItsUsers(t *testing.T) {
	w := newWorld(t)
	tok := w.m.Token
	out, raw := w.call(http.MethodGet, "/sandbox/v1/vehicle-users", tok, nil, http.StatusOK)
	w.valid("repayment/vehicle-users.response", raw)
	for _, u := range out["users"].([]any) {
		if got := u.(map[string]any)["mchid"]; got != w.m.MchID {
			t.Fatalf("merchant token listed a user of %v", got)
		}
	}
	if n := len(out["users"].([]any)); n != 4 {
		t.Fatalf("got %d users, want the 4 fixtures", n)
	}
	w.call(http.MethodGet, "/sandbox/v1/vehicle-users?mchid="+w.other.MchID, tok, nil, http.StatusNotFound)
	w.call(http.MethodPost, "/sandbox/v1/vehicle-users", tok, map[string]any{"mchid": w.other.MchID, "user_state": StateNormal}, http.StatusNotFound)
	w.call(http.MethodPost, "/sandbox/v1/vehicle-users", tok, map[string]any{"mchid": w.m.MchID, "user_state": StateNormal}, http.StatusCreated)
	w.call(http.MethodGet, "/sandbox/v1/vehicle-users", "", nil, http.StatusUnauthorized)

	// The admin token without mchid sees both merchants.
	all, _ := w.call(http.MethodGet, "/sandbox/v1/vehicle-users", adminToken, nil, http.StatusOK)
	if n := len(all["users"].([]any)); n != 9 {
		t.Fatalf("admin: got %d users, want 4 + 4 fixtures + 1 created", n)
	}
	w.call(http.MethodGet, "/sandbox/v1/vehicle-users?user_state=LATE&limit=0", adminToken, nil, http.StatusBadRequest)
}
