package repayment

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestPartnerQueryState: the partner (服务商) path of the v2 user state
// query asks for one of the provider's sub-merchants, signed with the
// provider's key; the answer is the direct one plus sub_mch_id and
// sub_appid; a sub_mch_id that is not the provider's is a signed
// result_code FAIL; sub_openid names the user when openid is absent.
func TestPartnerQueryState(t *testing.T) {
	w := newWorld(t)
	const path = "/vehicle/partnerpay/querystate"
	subs := []sandbox.SubMerchant{{SubMchID: "1900000109", SubAppID: "wx00000000000000a1"}}
	m, err := w.Merchants.Change(context.Background(), w.m.MchID, merchant.UpdateRequest{SubMerchants: &subs})
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	var overdue userView
	for _, u := range w.users(w.m.MchID, "") {
		if u.UserState == StateOverdue {
			overdue = u
		}
	}
	params := func(change map[string]string) map[string]string {
		p := w.stateParams(overdue.OpenID)
		p["sub_mch_id"], p["sub_appid"] = "1900000109", "wx00000000000000a1"
		for k, v := range change {
			if v == "" {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return p
	}

	out := w.querystateAt(path, params(nil))
	w.validSuccess(out)
	if out["user_state"] != StateOverdue || out["path"] == "" || out["sub_mch_id"] != "1900000109" || out["sub_appid"] != "wx00000000000000a1" || out["mch_id"] != w.m.MchID {
		t.Fatalf("partner query: got %v", out)
	}
	out = w.querystateAt(path, params(map[string]string{"openid": "", "sub_openid": overdue.OpenID}))
	w.validSuccess(out)
	if out["user_state"] != StateOverdue {
		t.Errorf("by sub_openid: got %v", out)
	}

	out = w.querystateAt(path, params(map[string]string{"sub_mch_id": "1999999999"}))
	if out["return_code"] != "SUCCESS" || out["result_code"] != "FAIL" || out["err_code"] != errNoRelation {
		t.Errorf("foreign sub_mch_id: got %v, want result_code FAIL %s", out, errNoRelation)
	}
	// The schema: sub_mch_id required, no BRIDGE.
	out = w.querystateAt(path, params(map[string]string{"sub_mch_id": "", "trade_scene": "BRIDGE", "version": "2.0"}))
	if out["return_code"] != "FAIL" {
		t.Errorf("no sub_mch_id, BRIDGE: got %v, want return_code FAIL", out)
	}
	// The direct path refuses the partner fields.
	out = w.querystate(params(nil))
	if out["return_code"] != "FAIL" {
		t.Errorf("direct path with sub_mch_id: got %v, want return_code FAIL", out)
	}
}

// TestParkingPartner drives the parking APIs as a service provider (服务商)
// with wechatpay-go's parking client: sub_mchid in the body or the query,
// the direct machine underneath, answers and notifications (verified with
// the SDK's notify handler) carrying sub_mchid, sub_appid and
// payer.sub_openid; a sub_mchid that is not the provider's is PARAM_ERROR,
// a transaction asked for without its sub_mchid is ORDER_NOT_EXIST. Before
// the partner layer every sub_mchid was refused.
func TestParkingPartner(t *testing.T) {
	w := newParkingWorld(t)
	const subMchID, subAppID = "1900000109", "wx00000000000000a1"
	subs := []sandbox.SubMerchant{{SubMchID: subMchID, SubAppID: subAppID}}
	m, err := w.Merchants.Change(context.Background(), w.m.MchID, merchant.UpdateRequest{SubMerchants: &subs})
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	ctx := context.Background()
	u := w.normalUser()
	color := wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr()

	svc, _, err := w.services.QueryPlateService(ctx, wexinpayscoreparking.QueryPlateServiceRequest{Appid: core.String(w.m.AppID),
		SubMchid: core.String(subMchID), PlateNumber: core.String(u.PlateNumber), PlateColor: color, Openid: core.String(u.OpenID)})
	if err != nil || *svc.ServiceState != serviceNormal {
		t.Fatalf("services/find with sub_mchid: %v, %v", svc, err)
	}
	if !strings.Contains(w.rt.lastURL(), "sub_mchid="+subMchID) {
		t.Fatalf("the SDK did not send sub_mchid in the query: %s", w.rt.lastURL())
	}

	enter := func(outParkingNo string) *wexinpayscoreparking.Parking {
		t.Helper()
		p, _, err := w.sdk.CreateParking(ctx, wexinpayscoreparking.CreateParkingRequest{SubMchid: core.String(subMchID),
			OutParkingNo: core.String(outParkingNo), PlateNumber: core.String(u.PlateNumber), PlateColor: color,
			NotifyUrl: core.String(w.url), StartTime: core.Time(base.Add(-time.Hour)), ParkingName: core.String("沙箱停车场"), FreeDuration: core.Int64(900)})
		if err != nil {
			t.Fatalf("CreateParking with sub_mchid: %v", err)
		}
		w.valid("repayment/parking", w.rt.lastBody())
		return p
	}
	first, second := enter("IN-SP-1"), enter("IN-SP-2")
	if *first.State != entryNormal || *second.State != entryNormal {
		t.Fatalf("entries: %s, %s", first, second)
	}

	req := w.deductRequest(u, "PKADVANCE-SP-1", *first.Id)
	req.SubMchid, req.SubAppid = core.String(subMchID), core.String(subAppID)
	tx, _, err := w.tx.CreateTransaction(ctx, req)
	if err != nil {
		t.Fatalf("CreateTransaction with sub_mchid: %v", err)
	}
	w.valid("repayment/transaction", w.rt.lastBody())
	if *tx.TradeState != tradeStateAccepted || *tx.SpMchid != w.m.MchID || tx.SubMchid == nil || *tx.SubMchid != subMchID ||
		tx.SubAppid == nil || *tx.SubAppid != subAppID || tx.Payer.SubOpenid == nil || *tx.Payer.SubOpenid == "" {
		t.Fatalf("扣费受理: got %s, want ACCEPTED with sp_mchid the provider, sub_mchid, sub_appid, payer.sub_openid", tx)
	}
	got := w.collect(2)
	if n := got[EventTransactionSuccess]; n["sub_mchid"] != subMchID || n["sub_appid"] != subAppID || n["bank_type"] != "BPA" ||
		n["payer"].(map[string]any)["sub_openid"] != *tx.Payer.SubOpenid {
		t.Fatalf("TRANSACTION.SUCCESS: got %v, want the sub-merchant's fields", n)
	}
	raw, _ := json.Marshal(got[EventTransactionSuccess])
	w.valid("repayment/transaction", raw)
	if es := got[EventEntranceStateChange]; es["sub_mchid"] != subMchID || es["out_parking_no"] != "IN-SP-2" || es["parking_state"] != entryBlocked {
		t.Fatalf("VEHICLE.ENTRANCE_STATE_CHANGE: got %v, want IN-SP-2 BLOCKED for the sub-merchant", es)
	}

	q, _, err := w.tx.QueryTransaction(ctx, wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String("PKADVANCE-SP-1"), SubMchid: core.String(subMchID)})
	if err != nil || *q.SubMchid != subMchID || *q.BankType != "BPA" || *q.UserRepaid != "N" {
		t.Fatalf("QueryTransaction with sub_mchid: %v, %v", q, err)
	}
	w.valid("repayment/transaction", w.rt.lastBody())

	apiErr := w.apiErr
	_, _, err = w.tx.QueryTransaction(ctx, wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String("PKADVANCE-SP-1")})
	apiErr(err, http.StatusNotFound, "ORDER_NOT_EXIST")
	_, _, err = w.tx.QueryTransaction(ctx, wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String("PKADVANCE-SP-1"), SubMchid: core.String("1999999999")})
	apiErr(err, http.StatusBadRequest, "PARAM_ERROR")
	foreign := w.deductRequest(u, "PK-SP-FOREIGN", *second.Id)
	foreign.SubMchid = core.String("1999999999")
	_, _, err = w.tx.CreateTransaction(ctx, foreign)
	apiErr(err, http.StatusBadRequest, "PARAM_ERROR")
	lone := w.deductRequest(u, "PK-SP-LONE", *second.Id)
	lone.SubAppid = core.String(subAppID)
	_, _, err = w.tx.CreateTransaction(ctx, lone)
	apiErr(err, http.StatusBadRequest, "PARAM_ERROR")
	w.none()
}
