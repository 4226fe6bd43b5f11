package report_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/report"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// payScoreFlows drives 支付分 as the shop's code does: a notification with a
// bad signature, a duplicated one, a return without query_id, and a jump
// from a base library below 2.6.0.
func (s *shop) payScoreFlows() {
	s.tb.Helper()
	key := s.m.APIv2Key
	if !s.good {
		// The bad shop signs the extraData with the v3 key first, as the
		// official page's mixed v2/v3 wording invites.
		pkg := s.createOrder("PSBADSIGN" + s.m.MchID)
		if status, out := s.call(sandbox.APIOpenBusinessView, s.caller(), scoreArgs(s.extraData(pkg, s.m.APIv3Key)), nil); status != http.StatusBadRequest {
			s.tb.Fatalf("a sign made with the v3 key: %d %v", status, out)
		}
		s.flowScore(pkg, "PSBADSIGN"+s.m.MchID, key)
		s.staleQuery("PSBADSIGN" + s.m.MchID)
	} else {
		s.flowScore(s.createOrder("PSBADSIGN"+s.m.MchID), "PSBADSIGN"+s.m.MchID, key)
	}
	s.flowScore(s.createOrder("PSDUP"+s.m.MchID), "PSDUP"+s.m.MchID, key)
	s.flowScore(s.createOrder("PSBACK"+s.m.MchID), "PSBACK"+s.m.MchID, key)

	// The stale USER_CONFIRM after USER_PAID: a careful shop queries the
	// order again; both complete it (the careless one without querying
	// after the return first).
	no := "PSOUTOFORDER" + s.m.MchID
	s.flowScore(s.createOrder(no), no, key)
	s.v3(http.MethodPost, "/v3/payscore/serviceorder/"+no+"/complete", map[string]any{
		"appid": s.m.AppID, "service_id": s.m.ServiceID, "total_amount": 3000,
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 3000, "count": 1}},
		"time_range":    map[string]any{"end_time": "20250301120000"},
	})
	s.advance(time.Second)
	s.expect("PAYSCORE.USER_PAID")
	s.expect("PAYSCORE.USER_CONFIRM")
	if s.good {
		s.queryOrder(no)
	}

	// Notifications a minute late: a careful shop queries on the return.
	no = "PSLATE" + s.m.MchID
	id := s.launch(sandbox.APIOpenBusinessView, s.caller(), scoreArgs(s.extraData(s.createOrder(no), key)), nil)
	s.advance(2 * time.Second)
	s.back(id)
	if s.good {
		s.queryOrder(no)
	}
	s.advance(time.Minute)
	s.expect("PAYSCORE.USER_CONFIRM")

	// A create that meets a 500: the careful shop sends it again with the
	// same parameters, the careless one gives up.
	s.apiFault(http.MethodPost, "/v3/payscore/serviceorder", "system_error")
	if _, err := s.create("PSFAULT" + s.m.MchID); err == nil {
		s.tb.Fatal("a create with a system_error fault scripted succeeded")
	}
	if s.good {
		s.createOrder("PSFAULT" + s.m.MchID)
	}

	old := s.caller()
	old["sdkVersion"] = "2.5.0"
	tries := 1
	if !s.good {
		tries = 3 // a retry loop instead of an upgrade prompt
	}
	for range tries {
		if status, out := s.call(sandbox.APIOpenBusinessView, old, scoreArgs(s.extraData("x", key)), nil); status != http.StatusBadRequest {
			s.tb.Fatalf("openBusinessView on 2.5.0: %d %v", status, out)
		}
	}
}

// flowScore jumps to 支付分 with the order's package, lets the user confirm
// (2 s), reads the return and — a good shop — queries the order; then the
// USER_CONFIRM notification comes (1 s later).
func (s *shop) flowScore(pkg, outOrderNo, key string) {
	s.tb.Helper()
	id := s.launch(sandbox.APIOpenBusinessView, s.caller(), scoreArgs(s.extraData(pkg, key)), nil)
	s.advance(2 * time.Second)
	s.back(id)
	if s.good {
		s.queryOrder(outOrderNo)
	}
	s.advance(time.Second)
	s.expect("PAYSCORE.USER_CONFIRM")
}

// embedPayFlows drives the P云 cashier: a bad sign, a duplicate, a stale
// status after the final one, a late notification, a return with status 0,
// and a jump from a base library below 2.20.1.
func (s *shop) embedPayFlows() {
	s.tb.Helper()
	pay := func(order, value string) {
		id := s.launch(sandbox.APIOpenEmbeddedMiniProgram, s.caller(), cashier(s.prepare(order, value)), nil)
		if value == "103" {
			s.advance(2 * time.Second) // the user leaves the cashier after 2 s
		}
		s.back(id)
		if s.good {
			s.queryTrade(order)
		}
	}
	pay("EPBAD"+s.m.MchID, "115")
	s.expect("1")
	if s.good {
		s.advance(15 * time.Second) // the genuine retry of what the good shop refused
		s.expect("1")
	}
	pay("EPDUP"+s.m.MchID, "111")
	s.expect("1")
	s.expect("1")

	pay("EPOOO"+s.m.MchID, "112")
	s.expect("1")
	s.expect("0") // the stale status after the final one
	if s.good {
		s.queryTrade("EPOOO" + s.m.MchID)
	}

	pay("EPLATE"+s.m.MchID, "113")
	s.advance(60 * time.Second)
	s.expect("1")

	pay("EPPAYING"+s.m.MchID, "103") // back with status 0
	s.expect("0")

	old := s.caller()
	old["sdkVersion"] = "2.19.0"
	tries := 1
	if !s.good {
		tries = 3
	}
	for range tries {
		if status, out := s.call(sandbox.APIOpenEmbeddedMiniProgram, old, cashier("123"), nil); status != http.StatusBadRequest {
			s.tb.Fatalf("openEmbeddedMiniProgram on 2.19.0: %d %v", status, out)
		}
	}
}

// repaymentFlow sends the user to repay; a good shop queries the user state
// again once the user is back, a bad one signed its one query with the v3
// key before the jump and never queries after.
func (s *shop) repaymentFlow() {
	s.tb.Helper()
	openid := s.vehicleUser()
	if !s.good {
		s.queryState(openid, s.m.APIv3Key)
	}
	id := s.launch(sandbox.APINavigateToMiniProgram, s.caller(), map[string]any{
		"appId": "wx5e73c65404eee268", "path": "pages/invest_list/invest_list",
		"extraData": map[string]any{"appid": "wx5e73c65404eee268", "mchid": s.m.MchID, "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "openid": openid},
	}, nil)
	s.advance(2 * time.Second)
	s.back(id)
	if s.good {
		s.queryState(openid, s.m.APIv2Key)
	}
}

// parkingFlow drives the parking flow to an advance and its repayment: an
// entry, a deduction WeChat advances (TRANSACTION.SUCCESS, BPA), the jump to
// the repayment mini-program, TRANSACTION.PAY_BACK. A good shop then
// queries the transaction and sees user_repaid Y; a bad one trusts the
// notification. Both acknowledge every notification once.
func (s *shop) parkingFlow() {
	s.tb.Helper()
	body, _ := json.Marshal(map[string]any{"mchid": s.m.MchID, "user_state": "NORMAL"})
	status, raw := s.send(http.MethodPost, "/sandbox/v1/vehicle-users", "application/json", body, nil)
	var u struct {
		OpenID      string `json:"openid"`
		PlateNumber string `json:"plate_number"`
		Plates      []struct {
			PlateColor string `json:"plate_color"`
		} `json:"plates"`
	}
	if err := json.Unmarshal(raw, &u); err != nil || status != http.StatusCreated || len(u.Plates) == 0 {
		s.tb.Fatalf("vehicle user: %d %s", status, raw)
	}
	start := base.Add(-time.Hour).Format(time.RFC3339)
	res, err := s.sdk.Post(context.Background(), apiHost+"/v3/vehicle/parking/parkings", map[string]any{
		"out_parking_no": "IN" + s.m.MchID, "plate_number": u.PlateNumber, "plate_color": u.Plates[0].PlateColor,
		"notify_url": s.recv.url + "/parking", "start_time": start, "parking_name": "沙箱停车场", "free_duration": 900,
	})
	if err != nil {
		s.tb.Fatalf("创建停车入场: %v", err)
	}
	var entry struct {
		ID string `json:"id"`
	}
	raw, _ = io.ReadAll(res.Response.Body)
	_ = json.Unmarshal(raw, &entry)
	no := "PKADVANCE" + s.m.MchID
	s.v3(http.MethodPost, "/v3/vehicle/transactions/parking", map[string]any{
		"appid": s.m.AppID, "description": "停车费", "out_trade_no": no, "trade_scene": "PARKING", "notify_url": s.recv.url + "/parking",
		"amount": map[string]any{"total": 500},
		"parking_info": map[string]any{"parking_id": entry.ID, "plate_number": u.PlateNumber, "plate_color": u.Plates[0].PlateColor,
			"start_time": start, "end_time": base.Format(time.RFC3339), "parking_name": "沙箱停车场", "charging_duration": 2700, "device_id": "GATE-1"},
	})
	s.expect("TRANSACTION.SUCCESS")
	id := s.launch(sandbox.APINavigateToMiniProgram, s.caller(), map[string]any{
		"appId": "wx5e73c65404eee268", "path": "pages/invest_list/invest_list",
		"extraData": map[string]any{"appid": "wx5e73c65404eee268", "mchid": s.m.MchID, "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "openid": u.OpenID},
	}, nil)
	s.advance(2 * time.Second)
	s.back(id)
	s.expect("TRANSACTION.PAY_BACK")
	if s.good {
		s.v3(http.MethodGet, "/v3/vehicle/transactions/out-trade-no/"+no, nil)
	}
}

// issuerFlow opens the plugin's login page; a good shop reads the plugin's
// getter once the user is back.
func (s *shop) issuerFlow() {
	s.tb.Helper()
	c := s.caller()
	c["appJson"] = map[string]any{"plugins": map[string]any{"issuer-plugin": map[string]any{"version": "1.0.0", "provider": "wx06bc6021dc900553"}}, "functionalPages": true}
	id := s.launch(sandbox.APIPluginNavigate, c, map[string]any{
		"url": "plugin://issuer-plugin/login?etcProductId=P001&accountType=1&carType=0&redirectUrl=/pages/login/login&mobile=13912345678",
	}, map[string]string{"X-Sandbox-Scenario": "issuer.instant"})
	s.back(id)
	if s.good {
		if status, raw := s.send(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/plugin/getActiveResult", "", nil, nil); status != http.StatusOK {
			s.tb.Fatalf("getActiveResult: %d %s", status, raw)
		}
	}
}

// getReport fetches the merchant's report over HTTP.
func getReport(tb testing.TB, s *shop, query string) *report.Report {
	tb.Helper()
	status, raw := s.send(http.MethodGet, "/sandbox/v1/merchants/"+s.m.MchID+"/report"+query, "", nil, nil)
	if status != http.StatusOK {
		tb.Fatalf("report: %d %s", status, raw)
	}
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		tb.Fatalf("decode report: %v\n%s", err, raw)
	}
	return &r
}

func verdicts(r *report.Report) map[string]report.Check {
	out := map[string]report.Check{}
	for _, p := range r.Products {
		for _, c := range p.Checks {
			out[p.Product+" "+c.ID] = c
		}
	}
	return out
}

const (
	P = report.Passed
	F = report.Failed
	N = report.NotExercised
)

// TestReportCard drives a careless merchant and a careful one through
// every product and checks each verdict of their report cards, and that
// a merchant that did nothing has nothing but not_exercised.
func TestReportCard(t *testing.T) {
	sb := startSandbox(t, app.Options{})
	bad := newShop(t, sb, "1230000201", false)
	good := newShop(t, sb, "1230000202", true)
	idle := newShop(t, sb, "1230000203", true)
	for _, s := range []*shop{bad, good} {
		s.payScoreFlows()
		s.embedPayFlows()
		s.repaymentFlow()
		s.parkingFlow()
		s.issuerFlow()
		s.settle()
	}

	want := map[string][2]report.Verdict{ // check → {bad shop, good shop}
		"payscore signing.verified":     {F, P},
		"payscore signing.key":          {F, P},
		"payscore signing.timestamp":    {F, P},
		"payscore notify.acknowledged":  {F, P},
		"payscore notify.bad_signature": {F, P},
		"payscore notify.duplicate":     {F, P},
		"payscore notify.out_of_order":  {F, P},
		"payscore notify.late":          {F, P},
		"payscore return.ambiguous":     {F, P},
		"payscore return.queried":       {F, P},
		"payscore client.min_version":   {F, P},
		"payscore api.retried":          {F, P},
		"repayment api.retried":         {N, N},
		"payscore coverage.scenarios":   {F, F},

		"repayment signing.verified":       {F, P},
		"repayment signing.key":            {F, P},
		"repayment signing.timestamp":      {P, P},
		"repayment return.queried":         {F, P},
		"repayment notify.acknowledged":    {P, P},
		"repayment parking.repaid_queried": {F, P},
		"repayment coverage.scenarios":     {F, F},

		"embedpay signing.verified":     {P, P},
		"embedpay notify.acknowledged":  {F, P},
		"embedpay notify.bad_signature": {F, P},
		"embedpay notify.duplicate":     {F, P},
		"embedpay notify.out_of_order":  {F, P},
		"embedpay notify.late":          {F, P},
		"embedpay return.ambiguous":     {F, P},
		"embedpay return.queried":       {F, P},
		"embedpay client.min_version":   {F, P},
		"embedpay coverage.scenarios":   {F, F},

		"issuer signing.verified":   {N, N},
		"issuer signing.key":        {N, N},
		"issuer return.queried":     {F, P},
		"issuer coverage.scenarios": {F, F},
	}
	reports := []*report.Report{getReport(t, bad, ""), getReport(t, good, "")}
	for i, name := range []string{"bad shop", "good shop"} {
		got := verdicts(reports[i])
		if len(got) != len(want) {
			t.Errorf("%s: %d checks, want %d", name, len(got), len(want))
		}
		for id, w := range want {
			c, ok := got[id]
			switch {
			case !ok:
				t.Errorf("%s: no check %s", name, id)
			case c.Verdict != w[i]:
				t.Errorf("%s: %s got %s (%s), want %s; evidence %+v", name, id, c.Verdict, c.Summary, w[i], c.Evidence)
			case c.Verdict != report.NotExercised && len(c.Evidence) == 0:
				t.Errorf("%s: %s is %s with no evidence", name, id, c.Verdict)
			case c.Verdict == report.Failed && c.Fix == "":
				t.Errorf("%s: %s failed with no fix", name, id)
			}
		}
	}
	if n := len(reports[0].Failed()); n != reports[0].Counts.Failed || n == 0 {
		t.Errorf("bad shop: Failed() lists %d, counts say %d", n, reports[0].Counts.Failed)
	}

	t.Run("coverage names what was never exercised", func(t *testing.T) {
		got := verdicts(reports[1])["payscore coverage.scenarios"].Summary
		for _, want := range []string{"never: payscore.cancel", "API faults never exercised: rate_limited, service_unavailable, timeout, bad_signature."} {
			if !strings.Contains(got, want) {
				t.Errorf("payscore coverage says %q, want it to contain %q", got, want)
			}
		}
		if strings.Contains(got, "payscore.notify-bad-signature,") || strings.Contains(got, "notify-duplicate") {
			t.Errorf("payscore coverage lists an exercised scenario as never run: %q", got)
		}
	})

	t.Run("a failed verdict links the entries it failed on", func(t *testing.T) {
		c := verdicts(reports[0])["payscore notify.bad_signature"]
		e := c.Evidence[0]
		if !e.Bad || e.URL != "/sandbox/v1/journal/"+itoa(e.ID) {
			t.Fatalf("first evidence %+v, want a bad entry linked to the journal", e)
		}
		status, raw := bad.send(http.MethodGet, e.URL, "", nil, nil)
		var x sandbox.Exchange
		if err := json.Unmarshal(raw, &x); status != http.StatusOK || err != nil {
			t.Fatalf("GET %s: %d %s", e.URL, status, raw)
		}
		if x.Direction != sandbox.DirectionOut || x.MchID != bad.m.MchID || x.Status != http.StatusNoContent {
			t.Errorf("evidence entry %+v: want the bad shop acknowledging a notification", x)
		}
	})

	t.Run("an idle merchant has nothing exercised", func(t *testing.T) {
		r := getReport(t, idle, "")
		if r.Counts.Passed != 0 || r.Counts.Failed != 0 || r.Counts.NotExercised != len(want) {
			t.Fatalf("idle merchant counts %+v, want %d not exercised", r.Counts, len(want))
		}
		for id, c := range verdicts(r) {
			if c.Fix == "" || len(c.Evidence) != 0 {
				t.Errorf("%s: not exercised should say how to exercise it and list no evidence: %+v", id, c)
			}
		}
	})

	t.Run("the window leaves out what happened before since", func(t *testing.T) {
		r := getReport(t, bad, "?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+"&until="+time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339))
		if r.Entries != 0 || r.Counts.NotExercised != len(want) {
			t.Errorf("a window after everything: %d entries, counts %+v", r.Entries, r.Counts)
		}
	})

	t.Run("exports", func(t *testing.T) {
		status, raw := bad.send(http.MethodGet, "/sandbox/v1/merchants/"+bad.m.MchID+"/report?format=md", "", nil, nil)
		if status != http.StatusOK || !strings.Contains(string(raw), "❌ failed — Notifications with a bad signature refused") {
			t.Errorf("markdown: %d %.300s", status, raw)
		}
		status, raw = bad.send(http.MethodGet, "/sandbox/v1/merchants/"+bad.m.MchID+"/report?format=html", "", nil, nil)
		page := string(raw)
		if status != http.StatusOK || !strings.Contains(page, "<!doctype html>") || !strings.Contains(page, "/#journal/") {
			t.Errorf("html: %d %.300s", status, raw)
		}
		for _, external := range []string{"<script", "<link", "src="} {
			if strings.Contains(page, external) {
				t.Errorf("html export is not self-contained: it has %q", external)
			}
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestReportRequest checks the route's parameters and access: every bad
// parameter named with its path, and a merchant token sees its own report
// only.
func TestReportRequest(t *testing.T) {
	sb := startSandbox(t, app.Options{Access: httpapi.Access{AdminToken: "admin-secret"}})
	a := newShop(t, sb, "1230000301", true)
	b := newShop(t, sb, "1230000302", true)
	get := func(path, token string) (int, string) {
		status, raw := a.send(http.MethodGet, path, "", nil, map[string]string{"Authorization": "Bearer " + token})
		return status, string(raw)
	}
	status, body := get("/sandbox/v1/merchants/"+a.m.MchID+"/report?since=yesterday&until=-1h&format=pdf", "admin-secret")
	if status != http.StatusBadRequest {
		t.Fatalf("bad parameters: %d %s", status, body)
	}
	for _, path := range []string{`"/since"`, `"/until"`, `"/format"`} {
		if !strings.Contains(body, path) {
			t.Errorf("bad parameters: the answer does not name %s: %s", path, body)
		}
	}
	if status, body := get("/sandbox/v1/merchants/"+a.m.MchID+"/report?since=2h&until=1h", "admin-secret"); status != http.StatusOK {
		t.Errorf("durations before now: %d %s", status, body)
	}
	if status, body := get("/sandbox/v1/merchants/"+a.m.MchID+"/report?since=1h&until=2h", "admin-secret"); status != http.StatusBadRequest || !strings.Contains(body, "is after until") {
		t.Errorf("since after until: %d %s", status, body)
	}
	if status, body := get("/sandbox/v1/merchants/"+a.m.MchID+"/report", a.m.Token); status != http.StatusOK {
		t.Errorf("own merchant token: %d %s", status, body)
	}
	if status, body := get("/sandbox/v1/merchants/"+b.m.MchID+"/report", a.m.Token); status != http.StatusNotFound {
		t.Errorf("another merchant's token: %d %s, want 404", status, body)
	}
	if status, body := get("/sandbox/v1/merchants/"+a.m.MchID+"/report", ""); status != http.StatusUnauthorized {
		t.Errorf("no token: %d %s, want 401", status, body)
	}
}
