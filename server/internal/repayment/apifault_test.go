package repayment

import (
	"context"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// TestAPIFaultsOnTheV2Query: the v2 user-state query meets the merchant's
// API faults in v2's shapes — FREQUENCY_LIMITED as a signed business
// failure, a system error as return_code FAIL, a sign that does not verify.
func TestAPIFaultsOnTheV2Query(t *testing.T) {
	w := newWorld(t)
	openid := w.users(w.m.MchID, StateNormal)[0].OpenID
	add := func(kind string) {
		t.Helper()
		if _, err := w.Merchants.AddAPIFault(context.Background(), w.m.MchID,
			merchant.APIFaultRequest{Method: "POST", Path: "/vehicle/pay/querystate", Kind: kind}); err != nil {
			t.Fatal(err)
		}
	}

	add(sandbox.FaultRateLimited)
	out := w.querystate(w.stateParams(openid))
	if out["return_code"] != "SUCCESS" || out["result_code"] != "FAIL" || out["err_code"] != "FREQUENCY_LIMITED" || out["err_code_des"] != "频率限制" {
		t.Errorf("rate limited: got %v, want result_code FAIL err_code FREQUENCY_LIMITED", out)
	}
	if err := wxsign.V2Verify(out, w.m.APIv2Key, wxsign.SignTypeHMACSHA256, out["sign"]); err != nil {
		t.Errorf("rate limited: a business failure is signed: %v", err)
	}

	add(sandbox.FaultSystemError)
	if out := w.querystate(w.stateParams(openid)); out["return_code"] != "FAIL" || out["return_msg"] != wxpayv2.MsgSystemError {
		t.Errorf("system error: got %v, want return_code FAIL %s", out, wxpayv2.MsgSystemError)
	}

	add(sandbox.FaultBadSignature)
	out = w.querystate(w.stateParams(openid))
	if out["result_code"] != "SUCCESS" || out["user_state"] != StateNormal {
		t.Fatalf("bad signature: got %v, want the answer", out)
	}
	if wxsign.V2Verify(out, w.m.APIv2Key, wxsign.SignTypeHMACSHA256, out["sign"]) == nil {
		t.Error("bad signature: the answer's sign verifies")
	}

	w.state(openid) // every fault used up: a good, signed answer
}
