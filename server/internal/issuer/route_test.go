package issuer

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// want is a violation expected at path whose message contains a fragment.
type want struct{ path, contains string }

// hasAll fails unless every wanted violation is among got.
func hasAll(tb testing.TB, got []sandbox.Violation, wants ...want) {
	tb.Helper()
	for _, w := range wants {
		found := false
		for _, v := range got {
			if v.Path == w.path && strings.Contains(v.Message, w.contains) {
				found = true
				break
			}
		}
		if !found {
			tb.Errorf("violation at %s containing %q: got %+v", w.path, w.contains, got)
		}
	}
}

// TestBadPluginURLs opens plugin URLs that a real host could write wrongly;
// each must fail with navigateTo:fail and name every problem at its path.
func TestBadPluginURLs(t *testing.T) {
	w := newWorld(t)
	const login = "plugin://issuer-plugin/login?"
	const tail = "&redirectUrl=/pages/login/login&mobile=13912345678"
	for _, tc := range []struct {
		name  string
		url   string
		wants []want
	}{
		{"unknown page", "plugin://issuer-plugin/activate?orderNo=1", []want{{"/args/url", `page "plugin://issuer-plugin/activate" is not found`}}},
		{"no page", "plugin://issuer-plugin/", []want{{"/args/url", "is not found"}}},
		{"new application without carType", login + "etcProductId=P1&accountType=1" + tail, []want{{"/args/url?carType", "is required"}}},
		{"accountType 3", login + "etcProductId=P1&accountType=3&carType=0" + tail, []want{{"/args/url?accountType", ""}}},
		{"carType 2", login + "etcProductId=P1&accountType=1&carType=2" + tail, []want{{"/args/url?carType", ""}}},
		{"afterType 2", login + "plateNum=浙A0P73H_0&handleType=aftersale&afterType=2&orderNo=ETC1" + tail, []want{{"/args/url?afterType", ""}}},
		{"aftersale without orderNo", login + "plateNum=浙A0P73H_0&handleType=aftersale&afterType=1" + tail, []want{{"/args/url?orderNo", "is required"}}},
		{"afterType on a continuation", login + "etcProductId=P1&plateNum=浙A0P73H_0&handleType=continuation&afterType=1" + tail,
			[]want{{"/args/url?afterType", "not allowed"}}},
		{"unknown handleType", login + "plateNum=浙A0P73H_0&handleType=renew" + tail, []want{{"/args/url?handleType", `"renew" is not a handleType`}}},
		{"plateNum without colour", login + "plateNum=浙A0P73H&handleType=reactivate" + tail, []want{{"/args/url?plateNum", "pattern"}}},
		{"plateNum colour 7", "plugin://issuer-plugin/activeAgain?plateNum=浙A0P73H_7", []want{{"/args/url?plateNum", "pattern"}}},
		{"percent-encoded plate, bad colour", "plugin://issuer-plugin/activeAgain?plateNum=%E6%B5%99A0P73H_9", []want{{"/args/url?plateNum", "pattern"}}},
		{"type 2", login + "type=2" + tail, []want{{"/args/url?type", ""}}},
		{"signGetAuth without openId", "plugin://issuer-plugin/signGetAuth?orderNo=ETC1", []want{{"/args/url?openId", "is required"}}},
		{"signGetAuth of an unknown order", "plugin://issuer-plugin/signGetAuth?orderNo=ETC1&openId=oUpF8uMEb4qRXf22hE3X68TekukE",
			[]want{{"/args/url?orderNo", "order ETC1 does not exist"}}},
		{"activeDes of an unknown order", "plugin://issuer-plugin/activeDes?orderNo=ETC404", []want{{"/args/url?orderNo", "does not exist"}}},
		{"signProtocol without orderNo", "plugin://issuer-plugin/signProtocol", []want{{"/args/url?orderNo", "is required"}}},
		{"deviceUpgrade with a parameter", "plugin://issuer-plugin/deviceUpgrade?orderNo=1", []want{{"/args/url?orderNo", "not allowed"}}},
		{"activeAgain of an unknown plate", "plugin://issuer-plugin/activeAgain?plateNum=浙A0P73H_0", []want{{"/args/url?plateNum", "has no ETC device"}}},
		{"a parameter twice", "plugin://issuer-plugin/activeDes?orderNo=A&orderNo=B", []want{{"/args/url?orderNo", "given 2 times"}}},
		{"a query that does not decode", "plugin://issuer-plugin/activeDes?orderNo=%zz", []want{{"/args/url", "not URL-encoded"}}},
		{"every problem at once", login + "etcProductId=P1&accountType=9&mobile=1&afterType=1",
			[]want{{"/args/url?accountType", ""}, {"/args/url?carType", "is required"}, {"/args/url?afterType", "not allowed"}}},
		{"an unbounded etcProductId", login + "etcProductId=" + strings.Repeat("P", 257) + "&accountType=1&carType=0" + tail,
			[]want{{"/args/url?etcProductId", "256"}}},
		{"another plugin", "plugin://other-plugin/login?type=1", []want{{"/args/url", `"other-plugin" is not a target`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := w.call(sandbox.APIPluginNavigate, w.caller(appJSON()), map[string]any{"url": tc.url}, "", http.StatusBadRequest)
			if msg, _ := out["errMsg"].(string); !strings.HasPrefix(msg, "navigateTo:fail ") {
				t.Errorf("errMsg got %q, want navigateTo:fail …", msg)
			}
			hasAll(t, violationsOf(t, out), tc.wants...)
		})
	}
}

// TestHostAppJSON checks what the host's app.json must declare.
func TestHostAppJSON(t *testing.T) {
	w := newWorld(t)
	const ok = "plugin://issuer-plugin/login?type=1&redirectUrl=/pages/a/a&mobile=13912345678"
	plugin := func(entry map[string]any) map[string]any {
		return map[string]any{"plugins": map[string]any{Alias: entry}}
	}
	for _, tc := range []struct {
		name   string
		caller map[string]any
		args   map[string]any
		wants  []want
	}{
		{"no app.json", w.caller(nil), map[string]any{"url": ok}, []want{{"/caller/appJson/plugins", "is required"}}},
		{"plugin under another alias", w.caller(map[string]any{"plugins": map[string]any{"etc": map[string]any{"version": "1.0.0", "provider": Provider}}}),
			map[string]any{"url": ok}, []want{{"/caller/appJson/plugins/issuer-plugin", "is required"}}},
		{"another provider", w.caller(plugin(map[string]any{"version": "1.0.0", "provider": "wx0000000000000000"})),
			map[string]any{"url": ok}, []want{{"/caller/appJson/plugins/issuer-plugin/provider", ""}}},
		{"empty version", w.caller(plugin(map[string]any{"version": "", "provider": Provider})),
			map[string]any{"url": ok}, []want{{"/caller/appJson/plugins/issuer-plugin/version", "pattern"}}},
		{"no version", w.caller(plugin(map[string]any{"provider": Provider})),
			map[string]any{"url": ok}, []want{{"/caller/appJson/plugins/issuer-plugin/version", "is required"}}},
		{"unknown navigateTo argument", w.caller(appJSON()), map[string]any{"url": ok, "appId": "wx1"}, []want{{"/args/appId", "not allowed"}}},
		{"host and URL problems together", w.caller(nil), map[string]any{"url": "plugin://issuer-plugin/activeDes"},
			[]want{{"/caller/appJson/plugins", "is required"}, {"/args/url?orderNo", "is required"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hasAll(t, w.refused(tc.caller, tc.args), tc.wants...)
		})
	}
	t.Run("development version in a release build: a warning, refused when strict", func(t *testing.T) {
		c := w.caller(plugin(map[string]any{"version": "dev-4f1b2a9c", "provider": Provider}))
		c["envVersion"] = "release"
		args := map[string]any{"url": ok}
		w.SetStrict(t, w.m.MchID, true)
		hasAll(t, w.refused(c, args), want{"/caller/appJson/plugins/issuer-plugin/version", "development version"})
		w.SetStrict(t, w.m.MchID, false)
		body, _ := json.Marshal(map[string]any{"caller": c, "args": args})
		req, _ := http.NewRequest(http.MethodPost, w.Server.URL+"/miniprogram/v1/"+sandbox.APIPluginNavigate, bytes.NewReader(body))
		req.Header.Set("X-Sandbox-Scenario", "issuer.instant")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		const path = "/caller/appJson/plugins/issuer-plugin/version"
		if got := res.Header.Get(httpapi.HeaderWarning); res.StatusCode != http.StatusOK || !strings.HasPrefix(got, path+": ") {
			t.Errorf("got %d, X-Sandbox-Warning %q; want 200 and a warning at %s", res.StatusCode, got, path)
		}
		if ws := w.Warnings(t, w.m.MchID, res.Header.Get("X-Request-Id")); len(ws) != 1 || ws[0].Path != path {
			t.Errorf("journal warnings: got %+v", ws)
		}
	})
	t.Run("development version in a develop build", func(t *testing.T) {
		c := w.caller(plugin(map[string]any{"version": "dev-4f1b2a9c", "provider": Provider}))
		c["envVersion"] = "develop"
		out := w.call(sandbox.APIPluginNavigate, c, map[string]any{"url": ok}, "issuer.instant", http.StatusOK)
		if out["errMsg"] != "navigateTo:ok" {
			t.Errorf("errMsg got %v, want navigateTo:ok", out["errMsg"])
		}
	})
}

// TestLoginVariants opens every login URL of the plugin guide and checks the way
// back: a redirect to redirectUrl with the credential, and the order where
// the login concerns one.
func TestLoginVariants(t *testing.T) {
	w := newWorld(t)
	applied := w.apply("P1")
	plate, no := applied.Query["plateNum"], applied.Query["orderNo"]
	const tail = "&redirectUrl=/pages/etc/done?from=plugin&mobile=13912345678"
	for _, tc := range []struct {
		name      string
		query     string
		wantOrder bool
	}{
		{"App-launched", "wechatSignNo=WSN20250301001", true},
		{"new application", "etcProductId=P2&accountType=2&carType=1", true},
		{"continuation", "etcProductId=P1&plateNum=" + plate + "&handleType=continuation", true},
		{"resumed signing", "plateNum=" + plate + "&handleType=resumeSigning", true},
		{"after-sale", "plateNum=" + plate + "&handleType=aftersale&afterType=4&orderNo=" + no, true},
		{"credential only", "type=1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := w.back(w.navigate("plugin://issuer-plugin/login?"+tc.query+tail, "issuer.instant"))
			if r.OpenType != openRedirect || r.Path != "/pages/etc/done" {
				t.Fatalf("way back got %+v, want a redirect to /pages/etc/done", r)
			}
			if got := r.Query["from"]; got != "plugin" {
				t.Errorf("redirectUrl's own query: from got %q, want plugin", got)
			}
			if got, want := r.Query["openId"], openID(w.m.MchID, "13912345678"); got != want {
				t.Errorf("openId got %q, want %q (stable per mobile)", got, want)
			}
			if !strings.HasPrefix(r.URL, "/pages/etc/done?from=plugin&openId=") {
				t.Errorf("url got %q, want redirectUrl then the plugin's parameters", r.URL)
			}
			if _, has := r.Query["orderNo"]; has != tc.wantOrder {
				t.Errorf("orderNo in the query: got %v, want %v (%+v)", has, tc.wantOrder, r.Query)
			}
		})
	}
	t.Run("continuation resumes the plate's order", func(t *testing.T) {
		r := w.back(w.navigate("plugin://issuer-plugin/login?etcProductId=P1&plateNum="+plate+"&handleType=continuation"+tail, "issuer.instant"))
		if r.Query["orderNo"] != no {
			t.Errorf("orderNo got %q, want the plate's order %q", r.Query["orderNo"], no)
		}
	})
	t.Run("the App's wechatSignNo keeps its order", func(t *testing.T) {
		first := w.back(w.navigate("plugin://issuer-plugin/login?wechatSignNo=WSN-KEEP"+tail, "issuer.instant"))
		again := w.back(w.navigate("plugin://issuer-plugin/login?wechatSignNo=WSN-KEEP"+tail, "issuer.instant"))
		if first.Query["orderNo"] == "" || again.Query["orderNo"] != first.Query["orderNo"] {
			t.Errorf("orderNo got %q then %q, want the same order", first.Query["orderNo"], again.Query["orderNo"])
		}
	})
	t.Run("after-sale is recorded", func(t *testing.T) {
		if got := w.loadOrder(no).AfterSales; len(got) != 1 || got[0].AfterType != "4" {
			t.Errorf("after-sales got %+v, want one of type 4", got)
		}
	})
}

// FuzzNavigate: whatever URL a host opens, the answer is navigateTo:ok or a
// 4xx navigateTo:fail with violations — never a 5xx.
func FuzzNavigate(f *testing.F) {
	for _, s := range []string{
		"plugin://issuer-plugin/login?etcProductId=P1&accountType=1&carType=0&redirectUrl=/pages/a/a&mobile=13912345678",
		"plugin://issuer-plugin/login?plateNum=浙A0P73H_0&handleType=aftersale&afterType=1&orderNo=x&redirectUrl=/a&mobile=1",
		"plugin://issuer-plugin/activeAgain?plateNum=%E6%B5%99A0P73H_0",
		"plugin://issuer-plugin/signGetAuth?orderNo=a&orderNo=b&openId=%zz#frag",
		"plugin://issuer-plugin/deviceUpgrade?",
	} {
		f.Add(s)
	}
	w := newWorld(f)
	f.Fuzz(func(t *testing.T, u string) {
		out, err := w.post(u)
		if err != nil {
			t.Fatalf("post %q: %v", u, err)
		}
		if out.status >= 500 {
			t.Fatalf("status %d for %q: %s", out.status, u, out.body)
		}
		if out.status == http.StatusOK && !strings.HasPrefix(out.errMsg, "navigateTo:ok") {
			t.Fatalf("200 with %q for %q", out.errMsg, u)
		}
	})
}
