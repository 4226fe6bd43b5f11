package repayment

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
)

// TestSampleAppIDWarns: the repayment page's table fixes extraData.appid
// to the repayment mini-program's own, its sample passes the merchant's.
// The sample's reading is accepted with a warning (header and journal) and
// refused for a strict merchant; any other appid breaks both readings and
// is refused.
func TestSampleAppIDWarns(t *testing.T) {
	w := newWorld(t)
	u := w.overdue(500)
	jump := func(appid string, want int) (map[string]any, http.Header) {
		t.Helper()
		extra := w.extraData(u.OpenID, seedNonce)
		extra["appid"] = appid
		body, _ := json.Marshal(map[string]any{"caller": w.caller(), "args": navigateArgs(extra)})
		res, err := http.Post(w.Server.URL+"/miniprogram/v1/navigateToMiniProgram", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != want {
			t.Fatalf("appid %s: got %d %v (%v), want %d", appid, res.StatusCode, out, err, want)
		}
		return out, res.Header
	}
	w.SetStrict(t, w.m.MchID, true)
	out, _ := jump(w.m.AppID, http.StatusBadRequest)
	if msg, _ := out["errMsg"].(string); !strings.HasPrefix(msg, "navigateToMiniProgram:fail") || !strings.Contains(msg, "/args/extraData/appid") {
		t.Errorf("strict: got %v, want a fail naming /args/extraData/appid", out)
	}
	w.SetStrict(t, w.m.MchID, false)
	out, h := jump(w.m.AppID, http.StatusOK)
	if got := h.Get(httpapi.HeaderWarning); !strings.HasPrefix(got, "/args/extraData/appid: ") || !strings.Contains(got, AppID) {
		t.Errorf("X-Sandbox-Warning: got %q, want /args/extraData/appid naming %s", got, AppID)
	}
	if ws := w.Warnings(t, w.m.MchID, h.Get("X-Request-Id")); len(ws) != 1 || ws[0].Path != "/args/extraData/appid" {
		t.Errorf("journal warnings: got %+v", ws)
	}
	w.advance(2 * time.Second)
	w.returned(out["session_id"].(string), "repayment/return")
	if got := w.state(u.OpenID); got["user_state"] != StateNormal {
		t.Errorf("after the jump: got %v, want the user NORMAL (repaid)", got)
	}
	// Neither reading: refused.
	if out, _ := jump("wx0000000000000000", http.StatusBadRequest); !strings.Contains(out["errMsg"].(string), "/args/extraData/appid") {
		t.Errorf("another appid: got %v", out)
	}
	// The table's value: no warning.
	if _, h := jump(AppID, http.StatusOK); h.Get(httpapi.HeaderWarning) != "" {
		t.Errorf("the table's appid: got warning %q", h.Get(httpapi.HeaderWarning))
	}
}
