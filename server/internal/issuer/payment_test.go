package issuer

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// TestPayment pays through the functional page with each signType and
// scenario outcome; the answer is the callback's result.
func TestPayment(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, prepayID, nonce, signType, scenario string
		want                                      string
	}{
		{"RSA", "wx201410272009395522657a690389285100", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", paySignRSA, "", "requestPayment:ok"},
		{"MD5", "wx2014102720093955226570000000000001", "ibuaiVcKdpRxkhJA", wxsign.SignTypeMD5, "", "requestPayment:ok"},
		{"HMAC-SHA256", "wx2014102720093955226570000000000002", "ibuaiVcKdpRxkhJA", wxsign.SignTypeHMACSHA256, "", "requestPayment:ok"},
		{"the user cancels", "wx2014102720093955226570000000000003", "n1", paySignRSA, "issuer.payment-cancelled", "requestPayment:fail cancel"},
		{"the payment fails", "wx2014102720093955226570000000000004", "n2", paySignRSA, "issuer.payment-failed", "requestPayment:fail 余额不足"},
		{"cancelled by a magic nonceStr", "wx2014102720093955226570000000000005", "sandboxcancel01", paySignRSA, "", "requestPayment:fail cancel"},
		{"failed by a magic nonceStr", "wx2014102720093955226570000000000006", "sandboxfail01", wxsign.SignTypeMD5, "", "requestPayment:fail 余额不足"},
		{"every page fails", "wx2014102720093955226570000000000007", "n3", paySignRSA, "issuer.failure", "requestPayment:fail " + defaultPaymentFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := w.pay(w.paymentArgsFor(tc.prepayID, tc.nonce, tc.signType), tc.scenario, http.StatusOK)
			if out["errMsg"] != tc.want {
				t.Fatalf("errMsg got %v, want %q", out["errMsg"], tc.want)
			}
			_, raw := w.do(http.MethodGet, "/miniprogram/v1/sessions/"+out["session_id"].(string)+"/return", nil, nil, http.StatusOK)
			w.valid(SchemaPaymentReturn, raw)
			if !strings.Contains(string(raw), tc.want) {
				t.Errorf("return got %s, want errMsg %q", raw, tc.want)
			}
		})
	}
	t.Run("a cancelled prepay_id can be paid", func(t *testing.T) {
		out := w.pay(w.paymentArgsFor("wx2014102720093955226570000000000003", "again", paySignRSA), "", http.StatusOK)
		if out["errMsg"] != "requestPayment:ok" {
			t.Errorf("errMsg got %v, want requestPayment:ok", out["errMsg"])
		}
	})
}

// TestBadPayments sends what a faulty beforeRequestPayment or host could
// hand back; each fails with requestPayment:fail naming the problem.
func TestBadPayments(t *testing.T) {
	w := newWorld(t)
	good := func() map[string]any { return w.paymentArgsFor("wx_bad_1", "nonce", paySignRSA) }
	with := func(k string, v any) map[string]any {
		a := good()
		if v == nil {
			delete(a, k)
		} else {
			a[k] = v
		}
		return a
	}
	noFunctionalPages := appJSON()
	delete(noFunctionalPages, "functionalPages")
	for _, tc := range []struct {
		name    string
		appJSON map[string]any
		args    map[string]any
		status  int
		wants   []want
	}{
		{"timeStamp a number", appJSON(), with("timeStamp", 1740794400), http.StatusBadRequest, []want{{"/args/timeStamp", "expected string"}}},
		{"timeStamp in milliseconds", appJSON(), with("timeStamp", "1740794400000"), http.StatusBadRequest, []want{{"/args/timeStamp", "milliseconds"}}},
		{"package without prepay_id=", appJSON(), with("package", "wx_bad_1"), http.StatusBadRequest, []want{{"/args/package", "pattern"}}},
		{"nonceStr too long", appJSON(), with("nonceStr", strings.Repeat("n", 33)), http.StatusBadRequest, []want{{"/args/nonceStr", ""}}},
		{"no signType", appJSON(), with("signType", nil), http.StatusBadRequest, []want{{"/args/signType", "is required"}}},
		{"signType SHA1", appJSON(), with("signType", "SHA1"), http.StatusBadRequest, []want{{"/args/signType", ""}}},
		{"no paySign", appJSON(), with("paySign", nil), http.StatusBadRequest, []want{{"/args/paySign", "is required"}}},
		{"a paySign of other args", appJSON(), with("nonceStr", "other"), http.StatusUnauthorized, []want{{"/args/paySign", paymentSignatureFailure}}},
		{"an MD5 paySign sent as HMAC-SHA256", appJSON(), func() map[string]any {
			a := w.paymentArgsFor("wx_bad_2", "nonce", wxsign.SignTypeMD5)
			a["signType"] = wxsign.SignTypeHMACSHA256
			return a
		}(), http.StatusUnauthorized, []want{{"/args/paySign", paymentSignatureFailure}}},
		{"no functional pages", noFunctionalPages, good(), http.StatusBadRequest,
			[]want{{"/caller/appJson/functionalPages", "callMiniProgramFunction:fail File not found"}}},
		{"no plugin", map[string]any{"functionalPages": true}, good(), http.StatusBadRequest, []want{{"/caller/appJson/plugins", "is required"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := w.call(sandbox.APIRequestPayment, w.caller(tc.appJSON), tc.args, "", tc.status)
			if msg, _ := out["errMsg"].(string); !strings.HasPrefix(msg, "requestPayment:fail ") {
				t.Errorf("errMsg got %q, want requestPayment:fail …", msg)
			}
			hasAll(t, violationsOf(t, out), tc.wants...)
		})
	}
	t.Run("a bad RSA paySign shows the message to sign", func(t *testing.T) {
		args := with("nonceStr", "other")
		out := w.call(sandbox.APIRequestPayment, w.caller(appJSON()), args, "", http.StatusUnauthorized)
		want := wxsign.PaySignMessage(w.m.AppID, args["timeStamp"].(string), "other", args["package"].(string))
		if out["diagnostics"] != want {
			t.Errorf("diagnostics got %q, want %q", out["diagnostics"], want)
		}
	})
	t.Run("functionalPages as an object", func(t *testing.T) {
		aj := appJSON()
		aj["functionalPages"] = map[string]any{"independent": true}
		out := w.call(sandbox.APIRequestPayment, w.caller(aj), w.paymentArgsFor("wx_ok_obj", "nonce", paySignRSA), "", http.StatusOK)
		if out["errMsg"] != "requestPayment:ok" {
			t.Errorf("errMsg got %v, want requestPayment:ok", out["errMsg"])
		}
	})
}

// TestManualPayment leaves the payment sheet to a person: the call only
// acknowledges, and the return carries the outcome.
func TestManualPayment(t *testing.T) {
	w := newWorld(t)
	out := w.pay(w.paymentArgsFor("wx_manual_1", "nonce", paySignRSA), "issuer.manual", http.StatusOK)
	id := out["session_id"].(string)
	if out["state"] != string(sandbox.SessionPending) {
		t.Fatalf("state got %v, want pending", out["state"])
	}
	w.pending(id)
	if _, err := w.Sessions.Resolve(context.Background(), id, ActionCancel); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	_, raw := w.do(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/return", nil, nil, http.StatusOK)
	if got := string(raw); got != `{"errMsg":"requestPayment:fail cancel"}` {
		t.Errorf("return got %s, want requestPayment:fail cancel", got)
	}
	if _, raw := w.do(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/plugin/"+GetterActive, nil, nil, http.StatusNotFound); !strings.Contains(string(raw), "no plugin getters") {
		t.Errorf("getter of a payment got %s, want not found", raw)
	}
}
