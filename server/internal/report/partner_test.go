package report_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/report"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestPartnerOrderQueried: a service provider (服务商) that queries its
// sub-merchant's order by out_order_no at the partner path after the
// user's return passes return.queried — the session's order is keyed by
// sub-merchant, the query is at /v3/payscore/partner/serviceorder.
func TestPartnerOrderQueried(t *testing.T) {
	sb := startSandbox(t, app.Options{})
	s := newShop(t, sb, "1230000301", true)
	subs := []sandbox.SubMerchant{{SubMchID: "1900000109"}}
	m, err := sb.Merchants.Change(context.Background(), s.m.MchID, merchant.UpdateRequest{SubMerchants: &subs})
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
	const no = "PARTNERQ0001"
	res, err := s.sdk.Post(context.Background(), apiHost+"/v3/payscore/partner/serviceorder", map[string]any{
		"out_order_no": no, "appid": s.m.AppID, "sub_mchid": "1900000109", "service_id": s.m.ServiceID,
		"service_introduction": "停车服务", "time_range": map[string]any{"start_time": "OnAccept"},
		"risk_fund": map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000}, "notify_url": s.recv.url + "/payscore",
	})
	if err != nil {
		t.Fatalf("partner create: %v", err)
	}
	var created struct {
		Package string `json:"package"`
	}
	raw, _ := io.ReadAll(res.Response.Body)
	_ = json.Unmarshal(raw, &created)
	id := s.launch(sandbox.APIOpenBusinessView, s.caller(), scoreArgs(s.extraData(created.Package, s.m.APIv2Key)), nil)
	s.advance(2 * time.Second) // the user's step
	s.back(id)
	s.v3(http.MethodGet, "/v3/payscore/partner/serviceorder?service_id="+s.m.ServiceID+"&sub_mchid=1900000109&out_order_no="+no, nil)
	s.settle()

	c, ok := verdicts(getReport(t, s, ""))["payscore return.queried"]
	if !ok || c.Verdict != report.Passed {
		t.Errorf("payscore return.queried: got %+v, want %s", c, report.Passed)
	}
}
