package payscore

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// warned calls the API with the official SDK and requires a 2xx answer
// that warns about path, in X-Sandbox-Warning and in its journal entry.
func (w *world) warned(method, path string, body any, warnPath string) {
	w.tb.Helper()
	res, err := w.send(method, path, body)
	if err != nil {
		w.tb.Fatalf("%s %s: got %v, want it accepted with a warning", method, path, err)
	}
	w.checkWarned(res.Response.Header, warnPath)
}

// checkWarned requires the answer's X-Sandbox-Warning and its journal
// entry to name warnPath.
func (w *world) checkWarned(h http.Header, warnPath string) {
	w.tb.Helper()
	if got := h.Get(httpapi.HeaderWarning); !strings.HasPrefix(got, warnPath+": ") || !strings.Contains(got, "inferred") {
		w.tb.Errorf("X-Sandbox-Warning: got %q, want %s and why", got, warnPath)
	}
	ws := w.Warnings(w.tb, w.m.MchID, h.Get("X-Request-Id"))
	if len(ws) != 1 || ws[0].Path != warnPath {
		w.tb.Errorf("journal warnings: got %+v, want one at %s", ws, warnPath)
	}
}

// TestInferredRulesWarn holds each rule the sandbox only inferred to a
// warning — the request the real system may accept goes through — and to a
// refusal in the caller's format once the merchant is strict; the
// documented rule beside it still refuses.
func TestInferredRulesWarn(t *testing.T) {
	w := newWorld(t)
	t.Run("end_time before start_time at create", func(t *testing.T) {
		w := w.with(t)
		w.SetStrict(t, w.m.MchID, false)
		body := w.createBody("INF0001")
		body["time_range"] = map[string]any{"start_time": "20250301120000", "end_time": "20250301100000"}
		w.warned(http.MethodPost, "/v3/payscore/serviceorder", body, "/time_range/end_time")
		if got := stateOf(w.query("INF0001")); got != "CREATED" {
			t.Errorf("got %s, want the order CREATED", got)
		}
		w.SetStrict(t, w.m.MchID, true)
		body["out_order_no"] = "INF0002"
		e := w.fail(http.MethodPost, "/v3/payscore/serviceorder", body, 400, "PARAM_ERROR")
		if vs, _ := e["violations"].([]any); !contains(vs, "/time_range/end_time") {
			t.Errorf("strict: got %s, want /time_range/end_time", paths(vs))
		}
		// A documented rule refuses whatever strict says.
		w.SetStrict(t, w.m.MchID, false)
		body["out_order_no"], body["notify_url"] = "INF0003", "not a url"
		w.fail(http.MethodPost, "/v3/payscore/serviceorder", body, 400, "PARAM_ERROR")
	})
	t.Run("modify to the same total", func(t *testing.T) {
		w := w.with(t)
		w.SetStrict(t, w.m.MchID, false)
		no := "PSUNPAID09"
		w.confirmed(no)
		w.advance(time.Second)
		w.next(EventUserConfirm)
		w.ok(http.MethodPost, op(no, "complete"), w.completeBody(), schemaOrder)
		w.advance(24 * time.Hour)
		same := map[string]any{
			"appid": w.m.AppID, "service_id": w.m.ServiceID,
			"post_payments":  []any{map[string]any{"name": "就餐费用", "amount": 40000}},
			"post_discounts": []any{map[string]any{"name": "满20减1元", "description": "不与其他优惠叠加", "amount": 100}},
			"total_amount":   39900, "reason": "原价",
		}
		w.SetStrict(t, w.m.MchID, true)
		w.fail(http.MethodPost, op(no, "modify"), same, 400, "PARAM_ERROR")
		w.SetStrict(t, w.m.MchID, false)
		w.warned(http.MethodPost, op(no, "modify"), same, "/total_amount")
		// Up is documented: refused.
		same["total_amount"], same["post_payments"] = 40000, []any{map[string]any{"name": "就餐费用", "amount": 40100}}
		w.fail(http.MethodPost, op(no, "modify"), same, 400, "PARAM_ERROR")
	})
	t.Run("a jump for an order no longer CREATED", func(t *testing.T) {
		w := w.with(t)
		w.SetStrict(t, w.m.MchID, false)
		pkg := w.create("INF0010")
		w.returned(w.open(pkg, nil)) // confirmed: DOING
		args := businessViewArgs(w.extraData(pkg))
		w.SetStrict(t, w.m.MchID, true)
		out, _ := w.call(sandbox.APIOpenBusinessView, args, http.StatusBadRequest)
		if !strings.HasPrefix(out["errMsg"].(string), "openBusinessView:fail") {
			t.Errorf("strict: got %v, want openBusinessView:fail", out)
		}
		w.SetStrict(t, w.m.MchID, false)
		out, h := w.call(sandbox.APIOpenBusinessView, args, http.StatusOK)
		w.checkWarned(h, "/args/extraData/package")
		if ret := w.returned(out["session_id"].(string)); queryIDOf(ret) != "" {
			t.Errorf("got %v, want the expired page's return: no query_id", ret)
		}
		if got := stateOf(w.query("INF0010")); got != "DOING/USER_CONFIRM" {
			t.Errorf("got %s, want the order unchanged", got)
		}
	})
}

// call makes a wx.* call as the test merchant's mini-program and returns
// the answer and its headers.
func (w *world) call(api string, args map[string]any, want int) (map[string]any, http.Header) {
	w.tb.Helper()
	body, _ := json.Marshal(map[string]any{"caller": w.caller(), "args": args})
	res, err := http.Post(w.Server.URL+"/miniprogram/v1/"+api, "application/json", bytes.NewReader(body))
	if err != nil {
		w.tb.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != want {
		w.tb.Fatalf("%s: got %d %v (%v), want %d", api, res.StatusCode, out, err, want)
	}
	return out, res.Header
}
