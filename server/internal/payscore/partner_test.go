package payscore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The sub-merchants the partner tests give the demo merchant.
const (
	subMchID   = "1900000109"
	subAppID   = "wx00000000000000a1"
	otherSubID = "1900000110"
)

// makeProvider gives the demo merchant two sub-merchants through the
// admin API, as a service provider's test setup would, and checks that
// the merchant shows them.
func (w *world) makeProvider() {
	w.tb.Helper()
	body := `{"sub_merchants": [{"sub_mchid": "` + subMchID + `", "sub_appid": "` + subAppID + `"}, {"sub_mchid": "` + otherSubID + `"}]}`
	req, _ := http.NewRequest(http.MethodPatch, w.Server.URL+"/sandbox/v1/merchants/"+w.m.MchID, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	out, _ := w.do(req, http.StatusOK)
	subs, _ := out["sub_merchants"].([]any)
	if len(subs) != 2 || subs[0].(map[string]any)["sub_appid"] != subAppID {
		w.tb.Fatalf("PATCH sub_merchants: got %v", out["sub_merchants"])
	}
	m, _ := w.Merchants.Get(w.m.MchID)
	w.m = m
}

// partnerCreateBody is a partner create for sub-merchant sub: the provider's
// appid, no sp_mchid.
func (w *world) partnerCreateBody(no, sub string) map[string]any {
	b := w.createBody(no)
	b["sub_mchid"] = sub
	if sub == subMchID {
		b["sub_appid"] = subAppID
	}
	return b
}

func (w *world) partnerQuery(sub, key, value string) string {
	return "/v3/payscore/partner/serviceorder?service_id=" + w.m.ServiceID + "&sub_mchid=" + sub + "&" + key + "=" + url.QueryEscape(value)
}

// TestPartnerFlow is the partner (服务商) flow with the official SDK's
// core.Client signing as the provider: create for a sub-merchant → jump
// from the sub-merchant's mini-program with the provider's signed extraData → return with query_id →
// PAYSCORE.USER_CONFIRM parsed by notify.NewRSANotifyHandler, carrying
// mchid, sub_mchid, sub_appid, openid, sub_openid → query by query_id and
// sub_mchid → complete → PAYSCORE.USER_PAID → DONE.
func TestPartnerFlow(t *testing.T) {
	w := newWorld(t)
	w.makeProvider()
	const no = "PARTNER0001"

	created := w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody(no, subMchID), schemaPartnerCreateResponse)
	for k, want := range map[string]any{"mchid": w.m.MchID, "sub_mchid": subMchID, "appid": w.m.AppID, "sub_appid": subAppID, "state": "CREATED"} {
		if created[k] != want {
			t.Errorf("create answer %s: got %v, want %v", k, created[k], want)
		}
	}
	pkg, _ := created["package"].(string)
	if pkg == "" {
		t.Fatalf("create answered no package: %v", created)
	}
	// The same out_order_no is free for the provider's own orders and for
	// another sub-merchant: each numbers its own.
	w.create(no)
	w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody(no, otherSubID), schemaPartnerCreateResponse)

	// The jump comes from the sub-merchant's mini-program: the sandbox
	// finds the provider by the sub_appid; extraData is the provider's.
	caller := w.caller()
	caller["appId"] = subAppID
	jumped := w.jump(sandbox.APIOpenBusinessView, caller, businessViewArgs(w.extraData(pkg)), nil, http.StatusOK)
	qid := queryIDOf(w.returned(jumped["session_id"].(string)))
	if qid == "" {
		t.Fatal("return: no query_id")
	}
	o := w.ok(http.MethodGet, w.partnerQuery(subMchID, "query_id", qid), nil, schemaPartnerOrder)
	if got := stateOf(o); got != "DOING/USER_CONFIRM" || o["out_order_no"] != no || o["sub_mchid"] != subMchID {
		t.Fatalf("partner query by query_id: got %s %v %v", got, o["out_order_no"], o["sub_mchid"])
	}
	// The provider's own order of that number was not the one confirmed.
	if got := stateOf(w.query(no)); got != "CREATED" {
		t.Errorf("direct order %s: got %s, want CREATED", no, got)
	}
	// Another sub-merchant's query_id lookup does not find the order.
	w.fail(http.MethodGet, w.partnerQuery(otherSubID, "query_id", qid), nil, http.StatusNotFound, "ORDER_NOT_EXIST")

	w.advance(time.Second)
	confirm := w.next(EventUserConfirm)
	var res map[string]any
	_ = json.Unmarshal(confirm.resource, &res)
	w.valid(schemaPartnerOrder, confirm.resource)
	for k, want := range map[string]any{"mchid": w.m.MchID, "sub_mchid": subMchID, "sub_appid": subAppID, "appid": w.m.AppID} {
		if res[k] != want {
			t.Errorf("USER_CONFIRM %s: got %v, want %v", k, res[k], want)
		}
	}
	if res["openid"] == nil || res["sub_openid"] == nil {
		t.Errorf("USER_CONFIRM: want openid and sub_openid, got %v", res)
	}

	complete := w.completeBody()
	delete(complete, "appid")
	complete["sub_mchid"] = subMchID
	done := w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder/"+no+"/complete", complete, schemaPartnerOrder)
	if got := stateOf(done); got != "DOING/MCH_COMPLETE" {
		t.Errorf("partner complete: got %s", got)
	}
	w.advance(time.Second)
	paid := w.next(EventUserPaid)
	_ = json.Unmarshal(paid.resource, &res)
	w.valid(schemaPartnerOrder, paid.resource)
	if got := stateOf(res); got != "DONE USER_PAID" || res["sub_mchid"] != subMchID || res["mchid"] != w.m.MchID {
		t.Errorf("USER_PAID: got %s sub_mchid %v mchid %v", got, res["sub_mchid"], res["mchid"])
	}
	final := w.ok(http.MethodGet, w.partnerQuery(subMchID, "out_order_no", no), nil, schemaPartnerOrder)
	if got := stateOf(final); got != "DONE USER_PAID" {
		t.Errorf("final partner query: got %s", got)
	}
}

// TestPartnerChanges drives cancel, pay, modify and sync at the partner
// paths, with the partner bodies (sub_mchid, service_id; no appid).
func TestPartnerChanges(t *testing.T) {
	w := newWorld(t)
	w.makeProvider()
	key := map[string]any{"service_id": w.m.ServiceID, "sub_mchid": subMchID}
	body := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range key {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}

	w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody("PCANCEL1", subMchID), schemaPartnerCreateResponse)
	ref := w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder/PCANCEL1/cancel", body(map[string]any{"reason": "用户投诉"}), schemaCancelResponse)
	if ref["sub_mchid"] != subMchID || ref["mchid"] != w.m.MchID {
		t.Errorf("partner cancel answer: got %v", ref)
	}
	if got := stateOf(w.ok(http.MethodGet, w.partnerQuery(subMchID, "out_order_no", "PCANCEL1"), nil, schemaPartnerOrder)); got != "REVOKED" {
		t.Errorf("after partner cancel: got %s, want REVOKED", got)
	}
	// The sub-merchant's order is not the provider's own: the direct path
	// does not find it.
	w.fail(http.MethodPost, "/v3/payscore/serviceorder/PCANCEL1/cancel",
		map[string]any{"appid": w.m.AppID, "service_id": w.m.ServiceID, "reason": "x"}, http.StatusNotFound, "ORDER_NOT_EXIST")

	// A deduction that keeps failing: pay (催收), modify and sync apply.
	w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody("PFAIL001", subMchID), schemaPartnerCreateResponse)
	w.returned(w.open(w.packageOf(subMchID, "PFAIL001"), map[string]string{headerSandboxScenario: "payscore.unpaid"}))
	complete := w.completeBody()
	delete(complete, "appid")
	complete["sub_mchid"] = subMchID
	w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder/PFAIL001/complete", complete, schemaPartnerOrder)
	modify := body(map[string]any{"post_payments": []any{map[string]any{"name": "就餐费用", "amount": 30000, "count": 1}}, "total_amount": 30000, "reason": "打折"})
	if got := w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder/PFAIL001/modify", modify, schemaPartnerOrder); got["total_amount"] != json.Number("30000") {
		t.Errorf("partner modify: got total %v", got["total_amount"])
	}
	synced := w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder/PFAIL001/sync",
		body(map[string]any{"type": "Order_Paid", "detail": map[string]any{"paid_time": "20250301120000"}}), schemaPartnerOrder)
	if got := stateOf(synced); got != "DONE USER_PAID" {
		t.Errorf("partner sync: got %s", got)
	}
	w.fail(http.MethodPost, "/v3/payscore/partner/serviceorder/PFAIL001/pay", body(nil), http.StatusBadRequest, codeInvalidOrderState)
}

// packageOf reads a partner order's package from the store (create
// answered it; the test did not keep it).
func (w *world) packageOf(sub, no string) string {
	w.tb.Helper()
	rec, err := w.Store.GetRecord(context.Background(), kindOrder, w.m.MchID, recordKey(sub, no))
	if err != nil {
		w.tb.Fatal(err)
	}
	var o order
	if err := json.Unmarshal(rec.Data, &o); err != nil {
		w.tb.Fatal(err)
	}
	return o.Sandbox.Package
}

// TestPartnerRefusals: a sub_mchid that is not the provider's, a merchant
// that has no sub-merchants, the partner bodies' schema (sub_mchid
// required, no sp_mchid), a query without sub_mchid, and a sub_appid
// other than the registered one (a warning, not a refusal).
func TestPartnerRefusals(t *testing.T) {
	w := newWorld(t)
	// No sub-merchants yet: every partner call is refused, naming the fix.
	out := w.fail(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody("PBAD0001", subMchID), http.StatusBadRequest, "PARAM_ERROR")
	if d := out["detail"].(map[string]any); d["field"] != "/sub_mchid" || out["message"] != sandbox.MsgNoRelation {
		t.Errorf("no sub-merchants: got %v", out)
	}
	// The admin API checks the sub-merchants it is given, every problem
	// with its path.
	req, _ := http.NewRequest(http.MethodPatch, w.Server.URL+"/sandbox/v1/merchants/"+w.m.MchID,
		bytes.NewReader([]byte(`{"sub_merchants": [{"sub_appid": "wx00000000000000a1"}, {"sub_mchid": "12", "sp_mchid": "1"}]}`)))
	req.Header.Set("Content-Type", "application/json")
	out, _ = w.do(req, http.StatusBadRequest)
	if vs, _ := out["error"].(map[string]any)["fields"].([]any); !contains(vs, "/sub_merchants/0/sub_mchid") || !contains(vs, "/sub_merchants/1/sub_mchid") || !contains(vs, "/sub_merchants/1/sp_mchid") {
		t.Errorf("PATCH with bad sub_merchants: got %v", out)
	}
	w.makeProvider()

	out = w.fail(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody("PBAD0001", "1999999999"), http.StatusBadRequest, "PARAM_ERROR")
	if d := out["detail"].(map[string]any); d["field"] != "/sub_mchid" {
		t.Errorf("foreign sub_mchid: got %v", out)
	}
	w.fail(http.MethodGet, w.partnerQuery("1999999999", "out_order_no", "PBAD0001"), nil, http.StatusBadRequest, "PARAM_ERROR")
	w.fail(http.MethodPost, "/v3/payscore/partner/serviceorder/PBAD0001/cancel",
		map[string]any{"service_id": w.m.ServiceID, "sub_mchid": "1999999999", "reason": "x"}, http.StatusBadRequest, "PARAM_ERROR")

	bad := w.partnerCreateBody("PBAD0002", subMchID)
	delete(bad, "sub_mchid")
	bad["sp_mchid"] = w.m.MchID
	out = w.fail(http.MethodPost, "/v3/payscore/partner/serviceorder", bad, http.StatusBadRequest, "PARAM_ERROR")
	if vs, _ := out["violations"].([]any); !contains(vs, "/sub_mchid") || !contains(vs, "/sp_mchid") {
		t.Errorf("schema: got violations %s, want /sub_mchid and /sp_mchid", paths(vs))
	}
	out = w.fail(http.MethodGet, "/v3/payscore/partner/serviceorder?service_id="+w.m.ServiceID+"&out_order_no=X", nil, http.StatusBadRequest, "PARAM_ERROR")
	if vs, _ := out["violations"].([]any); !contains(vs, "/sub_mchid") {
		t.Errorf("query without sub_mchid: got %s", paths(vs))
	}
	// The direct create refuses sub_mchid: it is not a direct-mode field.
	direct := w.createBody("PBAD0003")
	direct["sub_mchid"] = subMchID
	w.fail(http.MethodPost, "/v3/payscore/serviceorder", direct, http.StatusBadRequest, "PARAM_ERROR")

	// Another sub_appid than the registered one: created, with a warning.
	other := w.partnerCreateBody("PWARN001", subMchID)
	other["sub_appid"] = "wx00000000000000b2"
	res, err := w.sdk.Post(context.Background(), apiHost+"/v3/payscore/partner/serviceorder", other)
	if err != nil {
		t.Fatalf("create with another sub_appid: %v", err)
	}
	raw, _ := io.ReadAll(res.Response.Body)
	w.valid(schemaPartnerCreateResponse, raw)
	if h := res.Response.Header.Get("X-Sandbox-Warning"); h == "" {
		t.Errorf("create with another sub_appid: no X-Sandbox-Warning")
	}
}

// TestPartnerAppIDWarns: the partner tables list no appid in a change
// body, so one that is not the order's is accepted with a
// warning at /appid (header and journal) and refused for a strict
// merchant; in direct mode it stays ORDER_NOT_EXIST. Before the change the
// partner request was ORDER_NOT_EXIST too.
func TestPartnerAppIDWarns(t *testing.T) {
	w := newWorld(t)
	w.makeProvider()
	w.ok(http.MethodPost, "/v3/payscore/partner/serviceorder", w.partnerCreateBody("PAPPID1", subMchID), schemaPartnerCreateResponse)
	cancel := map[string]any{"service_id": w.m.ServiceID, "sub_mchid": subMchID, "appid": "wx0000000000000bad", "reason": "用户投诉"}
	const path = "/v3/payscore/partner/serviceorder/PAPPID1/cancel"

	w.SetStrict(t, w.m.MchID, true)
	if out := w.fail(http.MethodPost, path, cancel, http.StatusBadRequest, "PARAM_ERROR"); !strings.Contains(fmt.Sprint(out), "/appid") {
		t.Errorf("strict: got %v, want PARAM_ERROR at /appid", out)
	}
	if got := stateOf(w.ok(http.MethodGet, w.partnerQuery(subMchID, "out_order_no", "PAPPID1"), nil, schemaPartnerOrder)); got != "CREATED" {
		t.Errorf("after the strict refusal: got %s, want CREATED (nothing changed)", got)
	}
	w.SetStrict(t, w.m.MchID, false)
	res, err := w.send(http.MethodPost, path, cancel)
	if err != nil {
		t.Fatalf("cancel with another appid: %v", err)
	}
	h := res.Response.Header
	if got := h.Get(httpapi.HeaderWarning); !strings.HasPrefix(got, "/appid: ") || !strings.Contains(got, "inferred rule") {
		t.Errorf("X-Sandbox-Warning %q, want /appid: … inferred rule …", got)
	}
	if ws := w.Warnings(t, w.m.MchID, h.Get("X-Request-Id")); len(ws) != 1 || ws[0].Path != "/appid" {
		t.Errorf("journal warnings %+v", ws)
	}
	if got := stateOf(w.ok(http.MethodGet, w.partnerQuery(subMchID, "out_order_no", "PAPPID1"), nil, schemaPartnerOrder)); got != "REVOKED" {
		t.Errorf("after the warned cancel: got %s, want REVOKED", got)
	}
	// Direct mode: the appid is in the tables and the order is found by it.
	w.ok(http.MethodPost, "/v3/payscore/serviceorder", w.createBody("DAPPID1"), schemaCreateResponse)
	w.fail(http.MethodPost, "/v3/payscore/serviceorder/DAPPID1/cancel",
		map[string]any{"appid": "wx0000000000000bad", "service_id": w.m.ServiceID, "reason": "x"}, http.StatusNotFound, "ORDER_NOT_EXIST")
}
