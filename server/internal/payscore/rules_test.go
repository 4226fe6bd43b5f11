package payscore

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

func op(no, name string) string { return "/v3/payscore/serviceorder/" + no + "/" + name }

func TestCreateRules(t *testing.T) {
	w := newWorld(t)
	other := w.other()
	t.Run("identical re-create is idempotent", func(t *testing.T) {
		w := w.with(t)
		first := w.ok(http.MethodPost, "/v3/payscore/serviceorder", w.createBody("IDEM0001"), schemaCreateResponse)
		again := w.ok(http.MethodPost, "/v3/payscore/serviceorder", w.createBody("IDEM0001"), schemaCreateResponse)
		if first["order_id"] != again["order_id"] || first["package"] != again["package"] {
			t.Errorf("re-create: got order_id %v package %v, want the first answer's %v %v", again["order_id"], again["package"], first["order_id"], first["package"])
		}
	})
	t.Run("conflicting re-create is refused", func(t *testing.T) {
		w := w.with(t)
		body := w.createBody("IDEM0001")
		body["service_introduction"] = "别的服务"
		e := w.fail(http.MethodPost, "/v3/payscore/serviceorder", body, 400, "INVALID_REQUEST")
		if e["detail"].(map[string]any)["field"] != "/out_order_no" {
			t.Errorf("got %v, want the detail at /out_order_no", e)
		}
	})
	t.Run("every schema violation is listed", func(t *testing.T) {
		w := w.with(t)
		body := w.createBody("BAD0001")
		delete(body, "notify_url")
		body["service_introduction"] = strings.Repeat("长", 21)
		body["risk_fund"] = map[string]any{"name": "NOPE", "amount": 0}
		body["time_range"] = map[string]any{"start_time": "tomorrow"}
		e := w.fail(http.MethodPost, "/v3/payscore/serviceorder", body, 400, "PARAM_ERROR")
		vs := e["violations"].([]any)
		for _, p := range []string{"/notify_url", "/service_introduction", "/risk_fund/name", "/risk_fund/amount", "/time_range/start_time"} {
			if !contains(vs, p) {
				t.Errorf("violations: got %s, want %s", paths(vs), p)
			}
		}
		if d := e["detail"].(map[string]any); d["location"] != "body" || d["field"] == "" {
			t.Errorf("detail: got %v, want the first violation in the body", d)
		}
	})
	t.Run("appid and service_id must be the merchant's", func(t *testing.T) {
		w := w.with(t)
		body := w.createBody("BAD0002")
		body["appid"], body["service_id"] = other.AppID, other.ServiceID
		e := w.fail(http.MethodPost, "/v3/payscore/serviceorder", body, 400, "PARAM_ERROR")
		if vs := e["violations"].([]any); !contains(vs, "/appid") || !contains(vs, "/service_id") {
			t.Errorf("got %s, want /appid and /service_id", paths(vs))
		}
	})
	t.Run("unknown scenario header", func(t *testing.T) {
		w := w.with(t)
		raw, _ := json.Marshal(w.createBody("BAD0004"))
		req, _ := http.NewRequest(http.MethodPost, apiHost+"/v3/payscore/serviceorder", strings.NewReader(string(raw)))
		req.Header.Set("X-Sandbox-Scenario", "payscore.nope")
		req.Header.Set("Content-Type", "application/json")
		_, err := w.sdk.Request(t.Context(), http.MethodPost, apiHost+"/v3/payscore/serviceorder", req.Header, nil, raw, "application/json")
		if err == nil || !strings.Contains(err.Error(), "payscore.confirm") {
			t.Errorf("got %v, want PARAM_ERROR listing the known scenarios", err)
		}
	})
}

func TestQueryRules(t *testing.T) {
	w := newWorld(t)
	other := w.other()
	w.create("QRY0001")
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
		paths       []string
	}{
		{"nothing", "", 400, "PARAM_ERROR", []string{"/service_id", "/appid"}},
		{"both keys", "?service_id=" + w.m.ServiceID + "&appid=" + w.m.AppID + "&out_order_no=QRY0001&query_id=x", 400, "PARAM_ERROR", nil},
		{"neither key", "?service_id=" + w.m.ServiceID + "&appid=" + w.m.AppID, 400, "PARAM_ERROR", nil},
		{"twice", "?service_id=" + w.m.ServiceID + "&appid=" + w.m.AppID + "&out_order_no=QRY0001&out_order_no=QRY0001", 400, "PARAM_ERROR", []string{"/out_order_no"}},
		{"unknown order", "?service_id=" + w.m.ServiceID + "&appid=" + w.m.AppID + "&out_order_no=NOPE", 404, "ORDER_NOT_EXIST", []string{"/out_order_no"}},
		{"unknown query_id", "?service_id=" + w.m.ServiceID + "&appid=" + w.m.AppID + "&query_id=NOPE", 404, "ORDER_NOT_EXIST", []string{"/query_id"}},
		{"other service_id", "?service_id=" + other.ServiceID + "&appid=" + w.m.AppID + "&out_order_no=QRY0001", 404, "ORDER_NOT_EXIST", []string{"/service_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := w.with(t)
			e := w.fail(http.MethodGet, "/v3/payscore/serviceorder"+tc.query, nil, tc.status, tc.code)
			vs, _ := e["violations"].([]any)
			for _, p := range tc.paths {
				if !contains(vs, p) {
					t.Errorf("violations: got %s, want %s", paths(vs), p)
				}
			}
			if d, _ := e["detail"].(map[string]any); tc.status == 400 && d["location"] != "query" {
				t.Errorf("detail: got %v, want location query", d)
			}
		})
	}
	t.Run("another merchant's query_id", func(t *testing.T) {
		w := w.with(t)
		qid := w.confirmed("QRY0002")
		c := w.client(other)
		_, err := c.Get(t.Context(), apiHost+"/v3/payscore/serviceorder?service_id="+other.ServiceID+"&appid="+other.AppID+"&query_id="+qid)
		if err == nil || !strings.Contains(err.Error(), "ORDER_NOT_EXIST") {
			t.Errorf("got %v, want ORDER_NOT_EXIST", err)
		}
	})
}

func TestStateMachine(t *testing.T) {
	w := newWorld(t)
	withKey := func(body map[string]any) map[string]any {
		body["appid"], body["service_id"] = w.m.AppID, w.m.ServiceID
		return body
	}

	t.Run("complete on CREATED is the real 400", func(t *testing.T) {
		w := w.with(t)
		w.create("SM0001")
		e := w.fail(http.MethodPost, op("SM0001", "complete"), w.completeBody(), 400, "INVALID_REQUEST")
		if e["message"] != "当前订单状态不合法" {
			t.Errorf("message: got %v", e["message"])
		}
	})
	t.Run("cancel then complete on REVOKED", func(t *testing.T) {
		w := w.with(t)
		w.create("SM0002")
		out := w.ok(http.MethodPost, op("SM0002", "cancel"), withKey(map[string]any{"reason": "用户取消"}), schemaCancelResponse)
		if out["out_order_no"] != "SM0002" || out["order_id"] == "" {
			t.Errorf("cancel: got %v", out)
		}
		if got := stateOf(w.query("SM0002")); got != "REVOKED" {
			t.Errorf("got %s, want REVOKED", got)
		}
		w.fail(http.MethodPost, op("SM0002", "complete"), w.completeBody(), 400, "INVALID_REQUEST")
		w.fail(http.MethodPost, op("SM0002", "cancel"), withKey(map[string]any{"reason": "again"}), 400, "INVALID_ORDER_STATE")
	})
	t.Run("total_amount arithmetic", func(t *testing.T) {
		w := w.with(t)
		w.confirmed("SM0003")
		body := w.completeBody()
		body["total_amount"] = 40000
		e := w.fail(http.MethodPost, op("SM0003", "complete"), body, 400, "PARAM_ERROR")
		if d := e["detail"].(map[string]any); d["field"] != "/total_amount" || !strings.Contains(d["issue"].(string), "= 39900") {
			t.Errorf("detail: got %v, want /total_amount explaining 39900", d)
		}
	})
	t.Run("end_time is required at complete when create had none", func(t *testing.T) {
		w := w.with(t)
		body := w.createBody("SM0005")
		body["time_range"] = map[string]any{"start_time": "OnAccept"}
		pkg := w.ok(http.MethodPost, "/v3/payscore/serviceorder", body, schemaCreateResponse)["package"].(string)
		w.returned(w.open(pkg, nil))
		c := w.completeBody()
		delete(c, "time_range")
		e := w.fail(http.MethodPost, op("SM0005", "complete"), c, 400, "PARAM_ERROR")
		if e["message"] != msgEndTimeRequired {
			t.Errorf("message: got %v, want %s", e["message"], msgEndTimeRequired)
		}
		if o := w.query("SM0005"); o["time_range"].(map[string]any)["start_time"] == "OnAccept" {
			t.Errorf("start_time stays OnAccept after the user accepted")
		}
	})
	t.Run("complete twice", func(t *testing.T) {
		w := w.with(t)
		w.confirmed("SM0006")
		w.ok(http.MethodPost, op("SM0006", "complete"), w.completeBody(), schemaOrder)
		w.fail(http.MethodPost, op("SM0006", "complete"), w.completeBody(), 400, "INVALID_ORDER_STATE")
	})
	t.Run("complete with 0 is done at once", func(t *testing.T) {
		w := w.with(t)
		w.confirmed("SM0007")
		body := w.completeBody()
		body["post_payments"] = []any{map[string]any{"name": "就餐费用", "amount": 100}}
		body["total_amount"] = 0
		out := w.ok(http.MethodPost, op("SM0007", "complete"), body, schemaOrder)
		if stateOf(out) != "DONE" || out["need_collection"] != false {
			t.Errorf("got %s need_collection %v, want DONE false", stateOf(out), out["need_collection"])
		}
	})
	t.Run("expires after 30 days", func(t *testing.T) {
		w := w.with(t)
		w.create("SM0008")
		w.advance(30*24*time.Hour - time.Second)
		if got := stateOf(w.query("SM0008")); got != "CREATED" {
			t.Errorf("a second before: got %s, want CREATED", got)
		}
		w.advance(time.Second)
		if got := stateOf(w.query("SM0008")); got != "EXPIRED" {
			t.Errorf("after 30 days: got %s, want EXPIRED", got)
		}
		w.fail(http.MethodPost, op("SM0008", "cancel"), withKey(map[string]any{"reason": "r"}), 400, "INVALID_ORDER_STATE")
	})
	t.Run("unknown order", func(t *testing.T) {
		w := w.with(t)
		e := w.fail(http.MethodPost, op("NOPE0001", "cancel"), withKey(map[string]any{"reason": "r"}), 404, "ORDER_NOT_EXIST")
		if d := e["detail"].(map[string]any); d["location"] != "uri" {
			t.Errorf("detail: got %v, want location uri", d)
		}
	})
}

func TestDepositCap(t *testing.T) {
	w := newWorld(t)
	body := w.createBody("DEP0001")
	body["risk_fund"] = map[string]any{"name": "DEPOSIT", "amount": 30000}
	pkg := w.ok(http.MethodPost, "/v3/payscore/serviceorder", body, schemaCreateResponse)["package"].(string)
	w.returned(w.open(pkg, nil))
	e := w.fail(http.MethodPost, op("DEP0001", "complete"), w.completeBody(), 400, "PARAM_ERROR")
	if d := e["detail"].(map[string]any); d["field"] != "/total_amount" || !strings.Contains(d["issue"].(string), "30000") {
		t.Errorf("detail: got %v", d)
	}
}

// TestWhilePaying covers modify, pay and sync on an order whose deduction
// fails (scenario payscore.unpaid, by magic prefix).
func TestWhilePaying(t *testing.T) {
	w := newWorld(t)
	key := func(body map[string]any) map[string]any {
		body["appid"], body["service_id"] = w.m.AppID, w.m.ServiceID
		return body
	}
	lower := func(total int) map[string]any {
		return key(map[string]any{
			"post_payments":  []any{map[string]any{"name": "就餐费用", "amount": total + 100}},
			"post_discounts": []any{map[string]any{"name": "满20减1元", "description": "不与其他优惠叠加", "amount": 100}},
			"total_amount":   total, "reason": "少收一点",
		})
	}
	paying := func(w *world, no string) {
		w.tb.Helper()
		w.confirmed(no)
		w.advance(time.Second)
		w.next(EventUserConfirm)
		w.ok(http.MethodPost, op(no, "complete"), w.completeBody(), schemaOrder)
		w.advance(24 * time.Hour)
		if got := stateOf(w.query(no)); got != "DOING/MCH_COMPLETE USER_PAYING" {
			w.tb.Fatalf("got %s, want DOING/MCH_COMPLETE USER_PAYING a day later", got)
		}
	}
	t.Run("modify goes down only", func(t *testing.T) {
		w := w.with(t)
		paying(w, "PSUNPAID01")
		w.fail(http.MethodPost, op("PSUNPAID01", "modify"), lower(50000), 400, "PARAM_ERROR")
		out := w.ok(http.MethodPost, op("PSUNPAID01", "modify"), lower(30000), schemaOrder)
		if out["total_amount"] != json.Number("30000") || out["collection"].(map[string]any)["paying_amount"] != json.Number("30000") {
			t.Errorf("modify: got %v", out)
		}
	})
	t.Run("pay collects and notifies", func(t *testing.T) {
		w := w.with(t)
		w.ok(http.MethodPost, op("PSUNPAID01", "pay"), key(map[string]any{}), schemaPayResponse)
		o := w.query("PSUNPAID01")
		if stateOf(o) != "DONE USER_PAID" || o["collection"].(map[string]any)["paid_amount"] != json.Number("30000") {
			t.Errorf("after pay: got %v", o)
		}
		w.advance(time.Second)
		rec := w.next(EventUserPaid)
		var res map[string]any
		_ = json.Unmarshal(rec.resource, &res)
		if res["total_amount"] != float64(30000) {
			t.Errorf("USER_PAID resource total: got %v, want the modified 30000", res["total_amount"])
		}
		w.fail(http.MethodPost, op("PSUNPAID01", "modify"), lower(100), 400, "INVALID_ORDER_STATE")
		w.fail(http.MethodPost, op("PSUNPAID01", "pay"), key(map[string]any{}), 400, "INVALID_ORDER_STATE")
	})
	t.Run("sync marks it paid by the merchant", func(t *testing.T) {
		w := w.with(t)
		paying(w, "PSUNPAID02")
		out := w.ok(http.MethodPost, op("PSUNPAID02", "sync"), key(map[string]any{"type": "Order_Paid", "detail": map[string]any{"paid_time": "20250302091010"}}), schemaOrder)
		d := out["collection"].(map[string]any)["details"].([]any)[0].(map[string]any)
		if stateOf(out) != "DONE USER_PAID" || d["paid_type"] != "MCH" || d["paid_time"] != "20250302091010" {
			t.Errorf("sync: got %v", out)
		}
		w.fail(http.MethodPost, op("PSUNPAID02", "sync"), key(map[string]any{"type": "Order_Paid", "detail": map[string]any{"paid_time": "20250302"}}), 400, "INVALID_ORDER_STATE")
		w.fail(http.MethodPost, op("PSUNPAID02", "sync"), key(map[string]any{"type": "Refund", "detail": map[string]any{"paid_time": "2025"}}), 400, "PARAM_ERROR")
	})
	t.Run("cancel while paying", func(t *testing.T) {
		w := w.with(t)
		paying(w, "PSUNPAID03")
		w.ok(http.MethodPost, op("PSUNPAID03", "cancel"), key(map[string]any{"reason": "协商取消"}), schemaCancelResponse)
		if got := stateOf(w.query("PSUNPAID03")); got != "REVOKED USER_PAYING" {
			t.Errorf("got %s, want REVOKED", got)
		}
	})
}

// TestDeductionRetry: the first deduction fails, the retry an hour later
// succeeds and only then is PAYSCORE.USER_PAID sent; a cancel before it
// drops the notification.
func TestDeductionRetry(t *testing.T) {
	w := newWorld(t)
	for _, no := range []string{"PSRETRYPAY01", "PSRETRYPAY02"} {
		w.confirmed(no)
		w.advance(time.Second)
		w.next(EventUserConfirm)
		out := w.ok(http.MethodPost, op(no, "complete"), w.completeBody(), schemaOrder)
		if got := out["state_description"]; got != "MCH_COMPLETE" {
			t.Fatalf("complete: got %v", out)
		}
	}
	w.advance(59 * time.Minute)
	if got := stateOf(w.query("PSRETRYPAY01")); got != "DOING/MCH_COMPLETE USER_PAYING" {
		t.Fatalf("before the retry: got %s", got)
	}
	w.ok(http.MethodPost, op("PSRETRYPAY02", "cancel"), map[string]any{"appid": w.m.AppID, "service_id": w.m.ServiceID, "reason": "r"}, schemaCancelResponse)
	w.advance(time.Minute + time.Second)
	w.next(EventUserPaid)
	if got := stateOf(w.query("PSRETRYPAY01")); got != "DONE USER_PAID" {
		t.Errorf("after the retry: got %s", got)
	}
	ns := w.notifications("PSRETRYPAY02")
	if len(ns) != 2 || ns[1].Event != EventUserPaid || ns[1].State != sandbox.NotifyDropped {
		t.Errorf("cancelled order's notifications: got %d, want USER_CONFIRM and a dropped USER_PAID", len(ns))
	}
}

// TestConcurrentChangesOneWins: two completes race; exactly one wins and
// the other gets the answer the winner's state gives.
func TestConcurrentChangesOneWins(t *testing.T) {
	w := newWorld(t)
	w.confirmed("RACE0001")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, apiErr := w.v3(http.MethodPost, op("RACE0001", "complete"), w.completeBody())
			code := "OK"
			if apiErr != nil {
				code = apiErr.Code
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes["OK"] != 1 || codes["INVALID_ORDER_STATE"] != 3 {
		t.Errorf("got %v, want 1 OK and 3 INVALID_ORDER_STATE", codes)
	}
	if got := len(w.notifications("RACE0001")); got != 2 {
		t.Errorf("notifications: got %d, want USER_CONFIRM and one USER_PAID", got)
	}
}
