package repayment

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestParkingAdmin: GET /sandbox/v1/parking shows the entries and
// deductions as the v3 query answers them at the merchant's clock (an
// advance BPA/N, a retried one ACCEPTED until its hour is up), and POST
// /sandbox/v1/vehicle-users/{openid}/repay repays outside any jump — fail
// changes only last_attempt; repay makes the deduction Y, sends
// TRANSACTION.PAY_BACK and the blocked entry's VEHICLE.ENTRANCE_STATE_CHANGE,
// and the user NORMAL.
func TestParkingAdmin(t *testing.T) {
	w := newParkingWorld(t)
	u := w.normalUser()
	in := w.enter(u, "QAIN1")
	w.deduct(u, "PKRETRYQA1", *in.Id)
	w.deduct(u, "PKADVANCEQA1", *in.Id)
	w.next(EventTransactionSuccess)
	w.enter(u, "QAIN2") // BLOCKED: the user owes
	list := func(query string) parkingList {
		t.Helper()
		var out parkingList
		_, raw := w.call(http.MethodGet, "/sandbox/v1/parking?"+query, adminToken, nil, http.StatusOK)
		w.valid("repayment/parking-list.response", raw)
		decodeInto(t, raw, &out)
		return out
	}
	got := list("mchid=" + w.m.MchID + "&openid=" + u.OpenID)
	if len(got.Entries) != 2 || len(got.Transactions) != 2 {
		t.Fatalf("got %d entries, %d transactions; want 2 and 2", len(got.Entries), len(got.Transactions))
	}
	tx := got.byTradeNo()
	if a := tx["PKADVANCEQA1"]; a.Transaction.TradeState != "SUCCESS" || a.Transaction.BankType != bankTypeAdvanced ||
		a.Transaction.UserRepaid != "N" || a.Scenario != "repayment.parking-advanced" {
		t.Fatalf("advanced deduction: got %+v, want SUCCESS BPA N under repayment.parking-advanced", a)
	}
	if r := tx["PKRETRYQA1"]; r.Transaction.TradeState != tradeStateAccepted || !r.SettleAt.After(r.CreatedAt) {
		t.Fatalf("retried deduction: got %+v, want ACCEPTED until settle_at", r)
	}
	if e := got.Entries[0]; e.Entry.OutParkingNo != "QAIN2" || e.Entry.State != entryBlocked || e.Entry.BlockReason != blockOverdue || e.OpenID != u.OpenID {
		t.Fatalf("newest entry: got %+v, want QAIN2 BLOCKED OVERDUE", e)
	}
	if other := list("mchid=" + w.m.MchID + "&openid=nobody"); len(other.Entries)+len(other.Transactions) != 0 {
		t.Fatalf("another user's: got %+v, want nothing", other)
	}
	_, raw := w.call(http.MethodGet, "/sandbox/v1/parking?limit=0", adminToken, nil, http.StatusBadRequest)
	if !contains(string(raw), "/mchid", "/limit") {
		t.Fatalf("a bad query: got %s, want /mchid and /limit named", raw)
	}

	// Another merchant's token does not see this merchant's.
	w.call(http.MethodGet, "/sandbox/v1/parking?mchid="+w.m.MchID, w.other.Token, nil, http.StatusNotFound)
	w.call(http.MethodPost, "/sandbox/v1/vehicle-users/"+u.OpenID+"/repay", w.other.Token, map[string]any{"mchid": w.m.MchID}, http.StatusNotFound)

	repay := func(action string, want int) userView {
		t.Helper()
		var v userView
		_, raw := w.call(http.MethodPost, "/sandbox/v1/vehicle-users/"+u.OpenID+"/repay", adminToken, map[string]any{"mchid": w.m.MchID, "action": action}, want)
		if want == http.StatusOK {
			w.valid("repayment/vehicle-user", raw)
			decodeInto(t, raw, &v)
		}
		return v
	}
	if v := repay(ActionFail, http.StatusOK); v.UserState != StateOverdue || v.Owed != 500 || v.LastAttempt == nil || v.LastAttempt.Action != ActionFail {
		t.Fatalf("a failed repayment: got %+v, want OVERDUE owing 500 with the attempt", v)
	}
	w.none()
	v := repay(ActionRepay, http.StatusOK)
	if v.UserState != StateNormal || v.Owed != 0 || v.Advances[0].UserRepaid != "Y" || v.LastAttempt.SessionID != "" {
		t.Fatalf("repaid: got %+v, want NORMAL, nothing owed, Y, no session", v)
	}
	events := w.repaidEvents()
	if events[EventTransactionPayBack]["out_trade_no"] != "PKADVANCEQA1" || events[EventTransactionPayBack]["user_repaid"] != "Y" ||
		events[EventEntranceStateChange]["out_parking_no"] != "QAIN2" {
		t.Fatalf("after repaying: got %v", events)
	}
	if tx := list("mchid=" + w.m.MchID).byTradeNo()["PKADVANCEQA1"]; tx.Transaction.UserRepaid != "Y" {
		t.Fatalf("listed after repaying: got %+v, want Y", tx)
	}
	if again := repay(ActionRepay, http.StatusOK); again.Owed != 0 || again.LastAttempt.Action != ActionRepay {
		t.Fatalf("nothing owed: got %+v, want the user as it was", again)
	}
	w.none()
	_, raw = w.call(http.MethodPost, "/sandbox/v1/vehicle-users/"+u.OpenID+"/repay", adminToken, map[string]any{"mchid": "x", "action": "pay"}, http.StatusBadRequest)
	if !contains(string(raw), "/mchid", "/action") {
		t.Fatalf("a bad body: got %s, want /mchid and /action named", raw)
	}
	w.call(http.MethodPost, "/sandbox/v1/vehicle-users/nobody/repay", adminToken, map[string]any{"mchid": w.m.MchID}, http.StatusNotFound)
}

// parkingList is the answer of GET /sandbox/v1/parking.
type parkingList struct {
	Entries      []entryView       `json:"entries"`
	Transactions []transactionView `json:"transactions"`
}

func (l parkingList) byTradeNo() map[string]transactionView {
	out := map[string]transactionView{}
	for _, tx := range l.Transactions {
		out[tx.Transaction.OutTradeNo] = tx
	}
	return out
}

func decodeInto(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}
