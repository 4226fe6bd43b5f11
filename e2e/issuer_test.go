package e2e

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// The issuer plugin as the host's app.json declares it (the plugin guide 插件接入).
const (
	issuerAlias    = "issuer-plugin"
	issuerProvider = "wx06bc6021dc900553"
)

// issuerHost is a merchant's mini-program that embeds the ETC issuer
// plugin and lends it the payment functional page.
type issuerHost struct {
	s *Sandbox
	m *testkit.Merchant
}

// issuerAppJSON is the host's app.json: the plugin, and the functional
// pages the payment needs (the plugin guide 支付接入).
func issuerAppJSON(functionalPages bool) map[string]any {
	aj := map[string]any{
		"pages":   []string{"pages/index/index", "pages/login/login"},
		"plugins": map[string]any{issuerAlias: map[string]any{"version": "1.0.0", "provider": issuerProvider}},
	}
	if functionalPages {
		aj["functionalPages"] = true
	}
	return aj
}

// call makes a wx.* call as the host, with the scenario named in
// caller.scenario when given: accepted when want is 200, else refused with
// want.
func (h *issuerHost) call(tb testing.TB, c testkit.Call, aj map[string]any, scenario string, want int) (*testkit.Launch, *testkit.CallError) {
	tb.Helper()
	l, err := h.m.Jump(context.Background(), c, testkit.Caller{AppID: h.m.AppID, Platform: "android", SDKVersion: "3.4.0", AppJSON: aj, Scenario: scenario})
	if want == http.StatusOK {
		if err != nil {
			tb.Fatalf("%s: %v", c.API(), err)
		}
		return l, nil
	}
	var ce *testkit.CallError
	if !errors.As(err, &ce) || ce.Status != want {
		tb.Fatalf("%s: got %+v, %v, want a %d refusal", c.API(), l, err, want)
	}
	return nil, ce
}

// open navigates to a plugin page and returns the session id.
func (h *issuerHost) open(tb testing.TB, pluginURL, scenario string) string {
	tb.Helper()
	l, _ := h.call(tb, testkit.PluginNavigate{URL: pluginURL}, issuerAppJSON(true), scenario, http.StatusOK)
	if l.ErrMsg != "navigateTo:ok" || l.SessionID == "" {
		tb.Fatalf("navigateTo %s: %+v", pluginURL, l)
	}
	return l.SessionID
}

// visit opens a page, lets the scenario's user take their two seconds on
// the sandbox clock, and returns the session id and the way back.
func (h *issuerHost) visit(tb testing.TB, pluginURL, scenario string) (string, map[string]any) {
	tb.Helper()
	id := h.open(tb, pluginURL, scenario)
	if err := h.m.AdvanceClock(context.Background(), 2*time.Second); err != nil {
		tb.Fatal(err)
	}
	return id, h.back(tb, id, 15*time.Second)
}

// back is the session's return, decoded.
func (h *issuerHost) back(tb testing.TB, id string, wait time.Duration) map[string]any {
	tb.Helper()
	ret, err := h.s.Return(context.Background(), id, wait)
	var back map[string]any
	if err == nil && !ret.Pending {
		err = ret.Decode(&back)
	}
	if err != nil || back == nil {
		tb.Fatalf("return of %s: %+v, %v", id, ret, err)
	}
	return back
}

// getter reads requirePlugin('issuer-plugin').<name>() for a session.
func (h *issuerHost) getter(tb testing.TB, id, name string) map[string]any {
	tb.Helper()
	var out map[string]any
	if err := h.s.PluginResult(context.Background(), id, name, &out); err != nil {
		tb.Fatalf("%s of %s: %v", name, id, err)
	}
	return out
}

func (h *issuerHost) state(tb testing.TB, id, name string) float64 {
	tb.Helper()
	st, ok := h.getter(tb, id, name)["state"].(float64)
	if !ok {
		tb.Fatalf("%s of %s has no numeric state", name, id)
	}
	return st
}

// paymentArgs is what the host's beforeRequestPayment hands back for a
// JSAPI order, signed as the merchant's backend signs it: RSA with the
// official SDK's signer (SOURCES.md §5), or the v2 HMAC-SHA256 rule.
func (h *issuerHost) paymentArgs(tb testing.TB, prepayID, nonce, signType string) testkit.RequestPayment {
	tb.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	pkg := "prepay_id=" + prepayID
	var sign string
	switch signType {
	case "RSA":
		var err error
		if sign, err = utils.SignSHA256WithRSA(h.m.AppID+"\n"+ts+"\n"+nonce+"\n"+pkg+"\n", h.m.MerchantPrivateKey); err != nil {
			tb.Fatalf("sign: %v", err)
		}
	default:
		sign = testkit.V2HMACSign(map[string]string{"appId": h.m.AppID, "timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": signType},
			h.m.APIv2Key)
	}
	return testkit.RequestPayment{TimeStamp: ts, NonceStr: nonce, Package: pkg, SignType: signType, PaySign: sign}
}

var (
	obuPattern  = regexp.MustCompile(`^[0-9]{16}$`)
	cardPattern = regexp.MustCompile(`^[0-9]{20}$`)
)

// TestIssuerPlugin walks an application through the plugin — new
// application, protocol, car-service signing, activation failing, cancelled
// and succeeding, activeAgain — asserting each getter; pays through the
// functional page; and opens a table of bad plugin URLs.
func TestIssuerPlugin(t *testing.T) {
	s := startSandbox(t)
	h := &issuerHost{s: s, m: s.merchant(t, demoMchID)}

	const mobile = "13912345678"
	_, back := h.visit(t, "plugin://issuer-plugin/login?etcProductId=P1001&accountType=1&carType=0&redirectUrl=/pages/login/login&mobile="+mobile, "")
	query, _ := back["query"].(map[string]any)
	orderNo, _ := query["orderNo"].(string)
	plate, _ := query["plateNum"].(string)
	openID, _ := query["openId"].(string)
	if back["openType"] != "redirectTo" || back["path"] != "/pages/login/login" || orderNo == "" || plate == "" || openID == "" || query["accessToken"] == nil {
		t.Fatalf("login's way back: %v, want a redirect to /pages/login/login with openId, accessToken, orderNo, plateNum", back)
	}
	if !strings.HasPrefix(back["url"].(string), "/pages/login/login?openId="+openID+"&accessToken=") {
		t.Errorf("url got %v, want redirectUrl with the credential", back["url"])
	}

	t.Run("sign protocol", func(t *testing.T) {
		id, _ := h.visit(t, "plugin://issuer-plugin/signProtocol?orderNo="+orderNo, "")
		if got := h.state(t, id, "getSignProResult"); got != 0 {
			t.Errorf("getSignProResult state got %v, want 0", got)
		}
	})
	t.Run("car-service signing", func(t *testing.T) {
		id, _ := h.visit(t, "plugin://issuer-plugin/signGetAuth?orderNo="+orderNo+"&openId="+openID, "")
		if got := h.state(t, id, "getSignCarServiceResule"); got != 0 {
			t.Errorf("getSignCarServiceResule state got %v, want 0", got)
		}
	})
	for _, tc := range []struct {
		name, scenario string
		state          float64
	}{
		{"activation fails", "issuer.activation-failed", 1},
		{"activation cancelled", "issuer.activation-cancelled", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, _ := h.visit(t, "plugin://issuer-plugin/activeDes?orderNo="+orderNo, tc.scenario)
			got := h.getter(t, id, "getActiveResult")
			if got["state"] != tc.state || got["obu"] != "" || got["card"] != "" {
				t.Errorf("getActiveResult got %v, want {state: %v, obu: \"\", card: \"\"}", got, tc.state)
			}
		})
	}
	var obu, card string
	t.Run("activation succeeds", func(t *testing.T) {
		id, _ := h.visit(t, "plugin://issuer-plugin/activeDes?orderNo="+orderNo, "")
		got := h.getter(t, id, "getActiveResult")
		obu, _ = got["obu"].(string)
		card, _ = got["card"].(string)
		if got["state"] != float64(0) || !obuPattern.MatchString(obu) || !cardPattern.MatchString(card) {
			t.Fatalf("getActiveResult got %v, want {state: 0, obu: 16 digits, card: 20 digits}", got)
		}
	})
	t.Run("activeAgain", func(t *testing.T) {
		id, _ := h.visit(t, "plugin://issuer-plugin/activeAgain?plateNum="+plate, "")
		if got := h.getter(t, id, "getActiveResult"); got["state"] != float64(0) || got["obu"] != obu || got["card"] != card {
			t.Errorf("getActiveResult got %v, want {state: 0, obu: %s, card: %s}", got, obu, card)
		}
	})

	t.Run("payment", func(t *testing.T) {
		for _, tc := range []struct {
			name, prepayID, nonce, signType, want string
		}{
			{"RSA paid", "wx" + strconv.FormatInt(time.Now().UnixNano(), 10), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "RSA", "requestPayment:ok"},
			{"HMAC-SHA256 paid", "wx" + strconv.FormatInt(time.Now().UnixNano()+1, 10), "ibuaiVcKdpRxkhJA", "HMAC-SHA256", "requestPayment:ok"},
			{"cancelled", "wx" + strconv.FormatInt(time.Now().UnixNano()+2, 10), "sandboxcancel7", "RSA", "requestPayment:fail cancel"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, _ := h.call(t, h.paymentArgs(t, tc.prepayID, tc.nonce, tc.signType), issuerAppJSON(true), "", http.StatusOK)
				if out.ErrMsg != tc.want {
					t.Fatalf("errMsg got %v, want %s", out.ErrMsg, tc.want)
				}
				if ret := h.back(t, out.SessionID, 0); ret["errMsg"] != tc.want {
					t.Errorf("return got %v, want errMsg %s", ret, tc.want)
				}
			})
		}
		t.Run("a paySign of other args", func(t *testing.T) {
			args := h.paymentArgs(t, "wx_tampered", "nonce", "RSA")
			args.NonceStr = "other"
			_, out := h.call(t, args, issuerAppJSON(true), "", http.StatusUnauthorized)
			if msg := out.ErrMsg; !strings.HasPrefix(msg, "requestPayment:fail /args/paySign 支付验证签名失败") {
				t.Errorf("errMsg got %q, want requestPayment:fail naming /args/paySign", msg)
			}
		})
		t.Run("no functional pages", func(t *testing.T) {
			_, out := h.call(t, h.paymentArgs(t, "wx_nofp", "nonce", "RSA"), issuerAppJSON(false), "", http.StatusBadRequest)
			if msg := out.ErrMsg; !strings.Contains(msg, "/caller/appJson/functionalPages callMiniProgramFunction:fail File not found") {
				t.Errorf("errMsg got %q, want the missing functional page", msg)
			}
		})
	})

	t.Run("bad plugin URLs", func(t *testing.T) {
		const tail = "&redirectUrl=/pages/login/login&mobile=" + mobile
		for _, tc := range []struct {
			name, url, path, contains string
		}{
			{"unknown page", "plugin://issuer-plugin/activate?orderNo=" + orderNo, "/args/url", `page "plugin://issuer-plugin/activate" is not found`},
			{"afterType 2", "plugin://issuer-plugin/login?plateNum=" + plate + "&handleType=aftersale&afterType=2&orderNo=" + orderNo + tail, "/args/url?afterType", "must be one of"},
			{"afterType on a continuation", "plugin://issuer-plugin/login?etcProductId=P1&plateNum=浙A0P73H_0&handleType=continuation&afterType=1" + tail, "/args/url?afterType", "not allowed"},
			{"accountType 3", "plugin://issuer-plugin/login?etcProductId=P1&accountType=3&carType=0" + tail, "/args/url?accountType", "must be one of"},
			{"no carType", "plugin://issuer-plugin/login?etcProductId=P1&accountType=1" + tail, "/args/url?carType", "is required"},
			{"plate without colour", "plugin://issuer-plugin/activeAgain?plateNum=浙A0P73H", "/args/url?plateNum", "pattern"},
			{"unknown handleType", "plugin://issuer-plugin/login?plateNum=" + plate + "&handleType=renew" + tail, "/args/url?handleType", "is not a handleType"},
			{"signGetAuth without openId", "plugin://issuer-plugin/signGetAuth?orderNo=" + orderNo, "/args/url?openId", "is required"},
			{"signGetAuth with another openId", "plugin://issuer-plugin/signGetAuth?orderNo=" + orderNo + "&openId=oUpF8uMEb4qRXf22hE3X68TekukE", "/args/url?openId", "is not the openId"},
			{"unknown order", "plugin://issuer-plugin/signProtocol?orderNo=ETC404", "/args/url?orderNo", "does not exist"},
			{"activeAgain of an unknown plate", "plugin://issuer-plugin/activeAgain?plateNum=浙A0P73H_0", "/args/url?plateNum", "has no ETC device"},
			{"deviceUpgrade with a parameter", "plugin://issuer-plugin/deviceUpgrade?orderNo=" + orderNo, "/args/url?orderNo", "not allowed"},
			{"a parameter twice", "plugin://issuer-plugin/signProtocol?orderNo=A&orderNo=B", "/args/url?orderNo", "given 2 times"},
			{"another plugin", "plugin://etc-plugin/login?type=1", "/args/url", "is not a target"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, out := h.call(t, testkit.PluginNavigate{URL: tc.url}, issuerAppJSON(true), "", http.StatusBadRequest)
				if !strings.HasPrefix(out.ErrMsg, "navigateTo:fail ") {
					t.Errorf("errMsg got %q, want navigateTo:fail …", out.ErrMsg)
				}
				for _, v := range out.Violations {
					if v.Path == tc.path && strings.Contains(v.Message, tc.contains) {
						return
					}
				}
				t.Errorf("violations got %v, want one at %s containing %q", out.Violations, tc.path, tc.contains)
			})
		}
		// Rules the sandbox inferred (the plugin's documentation does not
		// state them) are warnings: the page opens, the header names the
		// parameter; a strict merchant is refused (the issuer's own tests).
		for _, tc := range []struct{ name, url, path string }{
			{"not a mainland mobile", "plugin://issuer-plugin/login?type=1&redirectUrl=/pages/a/a&mobile=+85291234567", "/args/url?mobile"},
			{"redirectUrl a web address", "plugin://issuer-plugin/login?type=1&redirectUrl=https://a.b/c&mobile=" + mobile, "/args/url?redirectUrl"},
			{"activation twice", "plugin://issuer-plugin/activeDes?orderNo=" + orderNo, "/args/url?orderNo"},
		} {
			t.Run(tc.name+" warns", func(t *testing.T) {
				l, _ := h.call(t, testkit.PluginNavigate{URL: tc.url}, issuerAppJSON(true), "", http.StatusOK)
				if l.ErrMsg != "navigateTo:ok" {
					t.Errorf("errMsg got %q, want navigateTo:ok", l.ErrMsg)
				}
				for _, w := range l.Warnings {
					if strings.HasPrefix(w, tc.path+": ") {
						return
					}
				}
				t.Errorf("warnings got %q, want one at %s", l.Warnings, tc.path)
			})
		}
		t.Run("no plugins entry", func(t *testing.T) {
			_, out := h.call(t, testkit.PluginNavigate{URL: "plugin://issuer-plugin/login?type=1&redirectUrl=/pages/a/a&mobile=" + mobile},
				map[string]any{"pages": []string{"pages/index/index"}}, "", http.StatusBadRequest)
			if msg := out.ErrMsg; msg != "navigateTo:fail /caller/appJson/plugins is required" {
				t.Errorf("errMsg got %q, want the missing plugins entry", msg)
			}
		})
	})
}
