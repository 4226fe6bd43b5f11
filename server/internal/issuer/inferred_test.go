package issuer

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// raw posts a call under a scenario and returns the status, the headers and
// the decoded body, whatever the status.
func (w *world) raw(api string, args map[string]any, scenarioID string) (int, http.Header, map[string]any) {
	w.tb.Helper()
	b, _ := json.Marshal(map[string]any{"caller": w.caller(appJSON()), "args": args})
	req, _ := http.NewRequest(http.MethodPost, w.Server.URL+"/miniprogram/v1/"+api, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if scenarioID != "" {
		req.Header.Set("X-Sandbox-Scenario", scenarioID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.tb.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		w.tb.Fatalf("%s: decode %s: %v", api, body, err)
	}
	return res.StatusCode, res.Header, out
}

// warned checks an accepted call's warnings: in the X-Sandbox-Warning
// header and in its journal entry, exactly at paths.
func (w *world) warned(h http.Header, paths ...string) {
	w.tb.Helper()
	got := h.Values(httpapi.HeaderWarning)
	if len(got) != len(paths) {
		w.tb.Fatalf("X-Sandbox-Warning: got %q, want one at each of %v", got, paths)
	}
	for i, p := range paths {
		if dec, err := new(mime.WordDecoder).DecodeHeader(got[i]); err == nil {
			got[i] = dec // non-ASCII travels as an RFC 2047 encoded word
		}
		if !strings.HasPrefix(got[i], p+": ") || !strings.Contains(got[i], "inferred rule") {
			w.tb.Errorf("X-Sandbox-Warning %d: got %q, want %s: … inferred rule …", i, got[i], p)
		}
	}
	ws := w.Warnings(w.tb, w.m.MchID, h.Get("X-Request-Id"))
	if len(ws) != len(paths) {
		w.tb.Fatalf("journal warnings: got %+v, want %v", ws, paths)
	}
	for i, p := range paths {
		if ws[i].Path != p {
			w.tb.Errorf("journal warning %d: got %s, want %s", i, ws[i].Path, p)
		}
	}
}

// TestInferredLoginRulesWarn: the plugin guide gives redirectUrl and mobile
// in every login example but states no rule that they are required, nor a
// format for them, etcProductId or wechatSignNo. A login that breaks what
// the sandbox inferred is accepted with a warning per rule (header and
// journal) and refused for a strict merchant; a login without redirectUrl
// goes back instead of redirecting. Before the change each was refused.
func TestInferredLoginRulesWarn(t *testing.T) {
	w := newWorld(t)
	const login = "plugin://issuer-plugin/login?"
	for _, tc := range []struct {
		name, query string
		paths       []string
		back        bool
	}{
		{"no redirectUrl", "type=1&mobile=13912345678", []string{"/args/url?redirectUrl"}, true},
		{"no mobile", "etcProductId=P1&accountType=1&carType=0&redirectUrl=/pages/a/a", []string{"/args/url?mobile"}, false},
		{"neither", "wechatSignNo=WSN0001", []string{"/args/url?mobile", "/args/url?redirectUrl"}, true},
		{"a short mobile", "type=1&redirectUrl=/pages/a/a&mobile=1391234", []string{"/args/url?mobile"}, false},
		{"redirectUrl a web URL", "type=1&redirectUrl=https://example.com/a&mobile=13912345678", []string{"/args/url?redirectUrl"}, false},
		{"etcProductId with a dot and 40 characters", "etcProductId=P." + strings.Repeat("1", 38) + "&accountType=1&carType=0&redirectUrl=/pages/a/a&mobile=13912345678",
			[]string{"/args/url?etcProductId"}, false},
		{"wechatSignNo with a colon", "wechatSignNo=WSN:0002&redirectUrl=/pages/a/a&mobile=13912345678", []string{"/args/url?wechatSignNo"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := map[string]any{"url": login + tc.query}
			w.SetStrict(t, w.m.MchID, true)
			status, _, out := w.raw(sandbox.APIPluginNavigate, args, "issuer.instant")
			if status != http.StatusBadRequest || !strings.HasPrefix(out["errMsg"].(string), "navigateTo:fail ") {
				t.Fatalf("strict: got %d %v, want 400 navigateTo:fail", status, out)
			}
			for _, p := range tc.paths {
				hasAll(t, violationsOf(t, out), want{p, "inferred rule"})
			}
			w.SetStrict(t, w.m.MchID, false)
			status, h, out := w.raw(sandbox.APIPluginNavigate, args, "issuer.instant")
			if status != http.StatusOK || out["errMsg"] != "navigateTo:ok" {
				t.Fatalf("got %d %v, want 200 navigateTo:ok", status, out)
			}
			w.warned(h, tc.paths...)
			ret := w.back(out["session_id"].(string))
			if tc.back {
				if ret.OpenType != openBack || ret.Query != nil {
					t.Errorf("way back without redirectUrl: got %+v, want navigateBack", ret)
				}
			} else if ret.OpenType != openRedirect || ret.Query["openId"] == "" {
				t.Errorf("way back: got %+v, want redirectTo with the credential", ret)
			}
		})
	}
	t.Run("the plugin guide's own example: no warning", func(t *testing.T) {
		status, h, _ := w.raw(sandbox.APIPluginNavigate, map[string]any{"url": loginURL("P1")}, "issuer.instant")
		if status != http.StatusOK || h.Get(httpapi.HeaderWarning) != "" {
			t.Errorf("got %d, warning %q; want 200 and none", status, h.Get(httpapi.HeaderWarning))
		}
	})
}

// TestPaidPrepayIDWarns: no document says WeChat refuses a paid prepay_id
// at the payment sheet, so paying one again is accepted with a warning at
// /args/package (refused for a strict merchant), and the first payment
// stays the record. Before the change it was refused.
func TestPaidPrepayIDWarns(t *testing.T) {
	w := newWorld(t)
	const prepayID = "wx201410272009395522657a690389285199"
	if out := w.pay(w.paymentArgsFor(prepayID, "first", paySignRSA), "", http.StatusOK); out["errMsg"] != "requestPayment:ok" {
		t.Fatalf("first payment: got %v", out)
	}
	first := mustLoad[payment](w, KindPayment, prepayID)
	args := w.paymentArgsFor(prepayID, "again", paySignRSA)
	w.SetStrict(t, w.m.MchID, true)
	status, _, out := w.raw(sandbox.APIRequestPayment, args, "")
	if status != http.StatusBadRequest || !strings.HasPrefix(out["errMsg"].(string), "requestPayment:fail ") {
		t.Fatalf("strict: got %d %v, want 400 requestPayment:fail", status, out)
	}
	hasAll(t, violationsOf(t, out), want{"/args/package", "该订单已支付"})
	w.SetStrict(t, w.m.MchID, false)
	status, h, out := w.raw(sandbox.APIRequestPayment, args, "")
	if status != http.StatusOK || out["errMsg"] != "requestPayment:ok" {
		t.Fatalf("got %d %v, want 200 requestPayment:ok", status, out)
	}
	w.warned(h, "/args/package")
	if got := mustLoad[payment](w, KindPayment, prepayID); got.Session != first.Session || !got.PaidAt.Equal(first.PaidAt) {
		t.Errorf("payment record: got %+v, want the first payment %+v", got, first)
	}
}

// TestPageOrderWarns: the plugin guide lists the pages, not what each
// needs from earlier ones, so a page out of the inferred order is accepted
// with a warning at its parameter (a strict merchant is refused:
// TestApplicationWalk) and does what it says: an activation without a
// signed protocol activates, a second one activates again, a continuation
// of an activated plate answers its order, an activeAgain of a deactivated
// device activates it. Before the change each was refused.
func TestPageOrderWarns(t *testing.T) {
	w := newWorld(t)
	r := w.apply("P2")
	no, plate := r.Query["orderNo"], r.Query["plateNum"]
	visit := func(url string, paths ...string) string {
		t.Helper()
		status, h, out := w.raw(sandbox.APIPluginNavigate, map[string]any{"url": url}, "issuer.instant")
		if status != http.StatusOK || out["errMsg"] != "navigateTo:ok" {
			t.Fatalf("%s: got %d %v, want navigateTo:ok", url, status, out)
		}
		w.warned(h, paths...)
		id := out["session_id"].(string)
		w.back(id)
		return id
	}

	id := visit("plugin://issuer-plugin/activeDes?orderNo="+no, "/args/url?orderNo")
	if got := w.getter(id, GetterActive); got["state"] != float64(ActiveSuccess) || got["obu"] == "" {
		t.Errorf("activation without a signed protocol: getActiveResult %v, want {0, obu, card}", got)
	}
	// Still no signed protocol, and the device is active: two warnings.
	visit("plugin://issuer-plugin/activeDes?orderNo="+no, "/args/url?orderNo", "/args/url?orderNo")
	if d := w.loadDevice(plate); d.State != deviceActive || d.Activations != 2 {
		t.Errorf("after a second activeDes: device %+v, want active, 2 activations", d)
	}
	cont := visit("plugin://issuer-plugin/login?etcProductId=P2&plateNum="+plate+"&handleType=continuation&redirectUrl=/pages/a/a&mobile=13912345678", "/args/url?plateNum")
	if ret := w.back(cont); ret.Query["orderNo"] != no {
		t.Errorf("continuation of an activated plate: way back %+v, want order %s", ret, no)
	}
	w.back(w.navigate("plugin://issuer-plugin/login?plateNum="+plate+"&handleType=aftersale&afterType=6&orderNo="+no+
		"&redirectUrl=/pages/a/a&mobile=13912345678", "issuer.instant"))
	if d := w.loadDevice(plate); d.State != deviceDeactivated {
		t.Fatalf("after 注销: device %+v, want deactivated", d)
	}
	id = visit("plugin://issuer-plugin/activeAgain?plateNum="+plate, "/args/url?plateNum")
	if got := w.getter(id, GetterActive); got["state"] != float64(ActiveSuccess) || got["obu"] == "" {
		t.Errorf("activeAgain of a deactivated device: getActiveResult %v, want {0, obu, card}", got)
	}
	if d := w.loadDevice(plate); d.State != deviceActive {
		t.Errorf("after activeAgain: device %+v, want active", d)
	}
}
