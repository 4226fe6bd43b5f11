package repayment

import (
	"context"
	"testing"

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
