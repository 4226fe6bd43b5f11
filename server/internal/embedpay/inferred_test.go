package embedpay

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestInferredRulesWarn: a prepare that breaks only what the sandbox
// inferred (a pay_order outside the alphabet, a subject over 128
// characters, a PARKING extra without free_value) is accepted with a
// warning per rule, in X-Sandbox-Warning and the journal; a strict merchant
// gets P云's parameter error instead; a documented rule still refuses.
func TestInferredRulesWarn(t *testing.T) {
	w := newWorld(t)
	prepare := func(params map[string]string) (map[string]any, http.Header) {
		t.Helper()
		res, err := http.Post(w.Server.URL+"/gate/1.0/payment/trade/prepare", formType, strings.NewReader(form(params, w.m.PCloudAppSecret)))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("prepare: %d %v", res.StatusCode, err)
		}
		return out, res.Header
	}
	params := w.prepareParams("停车-订单#1", "300")
	params["subject"] = strings.Repeat("停", 129)
	params["trade_scene"] = "PARKING"
	params["extra"] = `{"plate":"粤B12345","plate_color":"1","parking_serial":"S1","park_name":"P","enter_time":"1700000000000","parking_time":"3600"}`
	want := []string{"/extra/free_value", "/pay_order", "/subject"}

	w.SetStrict(t, w.m.MchID, true)
	out, h := prepare(params)
	if out["code"] != codeParam || h.Get(httpapi.HeaderWarning) != "" {
		t.Fatalf("strict: got %v, want P云's %s", out, codeParam)
	}
	for _, p := range want {
		if hint, _ := out["hint"].(string); !strings.Contains(string(mustJSON(t, out["violations"])), `"`+p+`"`) {
			t.Errorf("strict: violations %v (hint %q) lack %s", out["violations"], hint, p)
		}
	}

	w.SetStrict(t, w.m.MchID, false)
	out, h = prepare(params)
	if out["code"] != codeOK {
		t.Fatalf("got %v, want the trade prepared", out)
	}
	hs := h.Values(httpapi.HeaderWarning)
	ws := w.Warnings(t, w.m.MchID, h.Get("X-Request-Id"))
	if len(hs) != len(want) || len(ws) != len(want) {
		t.Fatalf("warnings: header %q, journal %+v; want %v", hs, ws, want)
	}
	for i, p := range want {
		if ws[i].Path != p || !strings.Contains(ws[i].Message, "inferred") {
			t.Errorf("journal warning %d: got %+v, want %s, inferred", i, ws[i], p)
		}
		if d, err := new(mime.WordDecoder).DecodeHeader(hs[i]); err != nil || !strings.HasPrefix(d, p+": ") {
			t.Errorf("X-Sandbox-Warning %d: got %q (%v), want %s", i, d, err, p)
		}
	}
	if q := w.query(params["pay_order"]); q["pay_order"] != params["pay_order"] {
		t.Errorf("query: got %v", q)
	}

	// Documented: trade_scene is required (trade-prepare.md's table).
	delete(params, "trade_scene")
	params["pay_order"] = "DOC-1"
	if out, _ := prepare(params); out["code"] != codeParam {
		t.Errorf("without trade_scene: got %v, want %s", out, codeParam)
	}
}

// TestPaidPayIDWarns: P云's guide does not say its cashier refuses a pay_id
// already paid for, so opening one again is accepted with a warning at
// /args/path (header and journal): the cashier shows the trade's outcome
// again and sends no notification. A strict merchant is refused. Before the
// change the jump was refused.
func TestPaidPayIDWarns(t *testing.T) {
	w := newWorld(t)
	payID := w.prepare("AGAIN-PAID-1", "100")
	sid := w.open(payID, nil)
	w.advance(2 * time.Second)
	if extra := extraOf(t, w.returned(sid)); extra["status"].(json.Number) != "1" {
		t.Fatalf("first payment: extraData %v, want status 1", extra)
	}
	sent := len(w.notifications("AGAIN-PAID-1"))
	jump := func(want int) (map[string]any, http.Header) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"caller": w.caller(), "args": cashierArgs(WeChatAppID, payID)})
		res, err := http.Post(w.Server.URL+"/miniprogram/v1/"+sandbox.APIOpenEmbeddedMiniProgram, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != want {
			t.Fatalf("jump: got %d %v (%v), want %d", res.StatusCode, out, err, want)
		}
		return out, res.Header
	}
	w.SetStrict(t, w.m.MchID, true)
	out, _ := jump(http.StatusBadRequest)
	if msg, _ := out["errMsg"].(string); !strings.HasPrefix(msg, "openEmbeddedMiniProgram:fail") || !strings.Contains(msg, "was already paid for in session "+sid+" (status 1 now)") {
		t.Errorf("strict: got %v, want a fail naming the first session", out)
	}
	w.SetStrict(t, w.m.MchID, false)
	out, h := jump(http.StatusOK)
	got, err := new(mime.WordDecoder).DecodeHeader(h.Get(httpapi.HeaderWarning))
	if err != nil || !strings.HasPrefix(got, "/args/path: ") || !strings.Contains(got, "inferred rule") {
		t.Errorf("X-Sandbox-Warning: got %q (%v), want /args/path: … inferred rule …", got, err)
	}
	if ws := w.Warnings(t, w.m.MchID, h.Get("X-Request-Id")); len(ws) != 1 || ws[0].Path != "/args/path" {
		t.Errorf("journal warnings: got %+v", ws)
	}
	w.advance(2 * time.Second)
	if extra := extraOf(t, w.returned(out["session_id"].(string))); extra["status"].(json.Number) != "1" {
		t.Errorf("second cashier: extraData %v, want the trade as it stands (status 1)", extra)
	}
	if n := len(w.notifications("AGAIN-PAID-1")); n != sent {
		t.Errorf("notifications: %d after the second cashier, want %d (nothing more sent)", n, sent)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
