package e2e

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// The issuer plugin as the host's app.json declares it (the plugin guide 插件接入).
const (
	issuerAlias    = "issuer-plugin"
	issuerProvider = "wx06bc6021dc900553"
)

// issuerHost is a merchant's mini-program that embeds the ETC issuer
// plugin and lends it the payment functional page.
type issuerHost struct {
	s     *Sandbox
	appID string
	creds map[string]any
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

// call posts a wx.* call as the host, with the scenario named in
// caller.scenario when given, and decodes the answer.
func (h *issuerHost) call(tb testing.TB, api string, aj, args map[string]any, scenario string, want int) map[string]any {
	tb.Helper()
	caller := map[string]any{"appId": h.appID, "platform": "android", "sdkVersion": "3.4.0", "appJson": aj}
	if scenario != "" {
		caller["scenario"] = scenario
	}
	var out map[string]any
	h.s.JSON(tb, http.MethodPost, "/miniprogram/v1/"+api, map[string]any{"caller": caller, "args": args}, want, &out)
	return out
}

// open navigates to a plugin page and returns the session id.
func (h *issuerHost) open(tb testing.TB, pluginURL, scenario string) string {
	tb.Helper()
	out := h.call(tb, "plugin/navigate", issuerAppJSON(true), map[string]any{"url": pluginURL}, scenario, http.StatusOK)
	id, _ := out["session_id"].(string)
	if out["errMsg"] != "navigateTo:ok" || id == "" {
		tb.Fatalf("navigateTo %s: %v", pluginURL, out)
	}
	return id
}

// visit opens a page, lets the scenario's user take their two seconds on
// the sandbox clock, and returns the session id and the way back.
func (h *issuerHost) visit(tb testing.TB, pluginURL, scenario string) (string, map[string]any) {
	tb.Helper()
	id := h.open(tb, pluginURL, scenario)
	h.s.JSON(tb, http.MethodPost, "/sandbox/v1/clock/advance", map[string]any{"mchid": demoMchID, "by": "2s"}, http.StatusOK, nil)
	var back map[string]any
	h.s.JSON(tb, http.MethodGet, "/miniprogram/v1/sessions/"+id+"/return?wait=15s", nil, http.StatusOK, &back)
	return id, back
}

// getter reads requirePlugin('issuer-plugin').<name>() for a session.
func (h *issuerHost) getter(tb testing.TB, id, name string) map[string]any {
	tb.Helper()
	var out map[string]any
	h.s.JSON(tb, http.MethodGet, "/miniprogram/v1/sessions/"+id+"/plugin/"+name, nil, http.StatusOK, &out)
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
func (h *issuerHost) paymentArgs(tb testing.TB, prepayID, nonce, signType string) map[string]any {
	tb.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	pkg := "prepay_id=" + prepayID
	var sign string
	switch signType {
	case "RSA":
		key, err := utils.LoadPrivateKey(h.creds["merchant_private_key_pem"].(string))
		if err != nil {
			tb.Fatalf("merchant key: %v", err)
		}
		if sign, err = utils.SignSHA256WithRSA(h.appID+"\n"+ts+"\n"+nonce+"\n"+pkg+"\n", key); err != nil {
			tb.Fatalf("sign: %v", err)
		}
	default:
		sign = hmacSign(map[string]string{"appId": h.appID, "timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": signType},
			h.creds["api_v2_key"].(string))
	}
	return map[string]any{"timeStamp": ts, "nonceStr": nonce, "package": pkg, "signType": signType, "paySign": sign}
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
	s := startSandbox(t, Options{})
	creds := credentials(t, s, demoMchID)
	h := &issuerHost{s: s, appID: creds["appid"].(string), creds: creds}

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
				out := h.call(t, "requestPayment", issuerAppJSON(true), h.paymentArgs(t, tc.prepayID, tc.nonce, tc.signType), "", http.StatusOK)
				if out["errMsg"] != tc.want {
					t.Fatalf("errMsg got %v, want %s", out["errMsg"], tc.want)
				}
				var ret map[string]any
				s.JSON(t, http.MethodGet, "/miniprogram/v1/sessions/"+out["session_id"].(string)+"/return", nil, http.StatusOK, &ret)
				if ret["errMsg"] != tc.want {
					t.Errorf("return got %v, want errMsg %s", ret, tc.want)
				}
			})
		}
		t.Run("a paySign of other args", func(t *testing.T) {
			args := h.paymentArgs(t, "wx_tampered", "nonce", "RSA")
			args["nonceStr"] = "other"
			out := h.call(t, "requestPayment", issuerAppJSON(true), args, "", http.StatusUnauthorized)
			if msg, _ := out["errMsg"].(string); !strings.HasPrefix(msg, "requestPayment:fail /args/paySign 支付验证签名失败") {
				t.Errorf("errMsg got %q, want requestPayment:fail naming /args/paySign", msg)
			}
		})
		t.Run("no functional pages", func(t *testing.T) {
			out := h.call(t, "requestPayment", issuerAppJSON(false), h.paymentArgs(t, "wx_nofp", "nonce", "RSA"), "", http.StatusBadRequest)
			if msg, _ := out["errMsg"].(string); !strings.Contains(msg, "/caller/appJson/functionalPages callMiniProgramFunction:fail File not found") {
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
			{"not a mainland mobile", "plugin://issuer-plugin/login?type=1&redirectUrl=/pages/a/a&mobile=+85291234567", "/args/url?mobile", "pattern"},
			{"redirectUrl a web address", "plugin://issuer-plugin/login?type=1&redirectUrl=https://a.b/c&mobile=" + mobile, "/args/url?redirectUrl", "pattern"},
			{"unknown handleType", "plugin://issuer-plugin/login?plateNum=" + plate + "&handleType=renew" + tail, "/args/url?handleType", "is not a handleType"},
			{"signGetAuth without openId", "plugin://issuer-plugin/signGetAuth?orderNo=" + orderNo, "/args/url?openId", "is required"},
			{"signGetAuth with another openId", "plugin://issuer-plugin/signGetAuth?orderNo=" + orderNo + "&openId=oUpF8uMEb4qRXf22hE3X68TekukE", "/args/url?openId", "is not the openId"},
			{"unknown order", "plugin://issuer-plugin/signProtocol?orderNo=ETC404", "/args/url?orderNo", "does not exist"},
			{"activation twice", "plugin://issuer-plugin/activeDes?orderNo=" + orderNo, "/args/url?orderNo", "already active"},
			{"activeAgain of an unknown plate", "plugin://issuer-plugin/activeAgain?plateNum=浙A0P73H_0", "/args/url?plateNum", "has no ETC device"},
			{"deviceUpgrade with a parameter", "plugin://issuer-plugin/deviceUpgrade?orderNo=" + orderNo, "/args/url?orderNo", "not allowed"},
			{"a parameter twice", "plugin://issuer-plugin/signProtocol?orderNo=A&orderNo=B", "/args/url?orderNo", "given 2 times"},
			{"another plugin", "plugin://etc-plugin/login?type=1", "/args/url", "is not a target"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out := h.call(t, "plugin/navigate", issuerAppJSON(true), map[string]any{"url": tc.url}, "", http.StatusBadRequest)
				msg, _ := out["errMsg"].(string)
				if !strings.HasPrefix(msg, "navigateTo:fail ") {
					t.Errorf("errMsg got %q, want navigateTo:fail …", msg)
				}
				vs, _ := out["violations"].([]any)
				for _, v := range vs {
					v, _ := v.(map[string]any)
					if v["path"] == tc.path && strings.Contains(v["message"].(string), tc.contains) {
						return
					}
				}
				t.Errorf("violations got %v, want one at %s containing %q", vs, tc.path, tc.contains)
			})
		}
		t.Run("no plugins entry", func(t *testing.T) {
			out := h.call(t, "plugin/navigate", map[string]any{"pages": []string{"pages/index/index"}},
				map[string]any{"url": "plugin://issuer-plugin/login?type=1&redirectUrl=/pages/a/a&mobile=" + mobile}, "", http.StatusBadRequest)
			if msg, _ := out["errMsg"].(string); msg != "navigateTo:fail /caller/appJson/plugins is required" {
				t.Errorf("errMsg got %q, want the missing plugins entry", msg)
			}
		})
	})
}
