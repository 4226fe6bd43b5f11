package payscore

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestHappyPath is the flow with the official SDK: create → jump
// with a correctly signed extraData → return with query_id → query by
// query_id shows DOING/USER_CONFIRM → PAYSCORE.USER_CONFIRM parsed by
// notify.NewRSANotifyHandler → complete → PAYSCORE.USER_PAID → DONE.
func TestHappyPath(t *testing.T) {
	w := newWorld(t)
	const no = "1234323JKHDFE1243252"
	pkg := w.create(no)
	if pkg == "" {
		t.Fatal("create answered no package")
	}
	if got := stateOf(w.query(no)); got != "CREATED" {
		t.Fatalf("after create: got %s, want CREATED", got)
	}

	ret := w.returned(w.open(pkg, nil))
	if got := ret["scene"]; got != json.Number("1038") {
		t.Errorf("scene: got %v, want 1038", got)
	}
	qid := queryIDOf(ret)
	if qid == "" {
		t.Fatalf("return: got %v, want referrerInfo.extraData.query_id", ret)
	}
	o := w.ok(http.MethodGet, w.queryPath("query_id", qid), nil, schemaOrder)
	if got := stateOf(o); got != "DOING/USER_CONFIRM" || o["out_order_no"] != no || o["openid"] == "" {
		t.Fatalf("query by query_id: got %s %v, want DOING/USER_CONFIRM of %s with the user's openid", got, o["out_order_no"], no)
	}

	w.advance(time.Second) // the scenario's notify delay
	confirm := w.next(EventUserConfirm)
	var res map[string]any
	_ = json.Unmarshal(confirm.resource, &res)
	if got := stateOf(res); got != "DOING/USER_CONFIRM" || res["out_order_no"] != no {
		t.Errorf("USER_CONFIRM resource: got %s %v", got, res["out_order_no"])
	}

	done := w.ok(http.MethodPost, "/v3/payscore/serviceorder/"+no+"/complete", w.completeBody(), schemaOrder)
	if got := stateOf(done); got != "DOING/MCH_COMPLETE" || done["total_amount"] != json.Number("39900") || done["need_collection"] != true {
		t.Errorf("complete: got %s total %v need_collection %v, want DOING/MCH_COMPLETE 39900 true", got, done["total_amount"], done["need_collection"])
	}
	w.advance(time.Second)
	paid := w.next(EventUserPaid)
	_ = json.Unmarshal(paid.resource, &res)
	if got := stateOf(res); got != "DONE USER_PAID" {
		t.Errorf("USER_PAID resource: got %s, want DONE USER_PAID", got)
	}
	final := w.query(no)
	col := final["collection"].(map[string]any)
	details := col["details"].([]any)
	d := details[0].(map[string]any)
	if stateOf(final) != "DONE USER_PAID" || col["paid_amount"] != json.Number("39900") || d["paid_type"] != "NEWTON" || d["transaction_id"] == nil {
		t.Errorf("final query: got %v, want DONE, USER_PAID 39900 by NEWTON with a transaction_id", final)
	}
	if again := w.query(no); again["collection"].(map[string]any)["details"].([]any)[0].(map[string]any)["transaction_id"] != d["transaction_id"] {
		t.Errorf("transaction_id changes between queries")
	}
}

func TestNavigateToMiniProgramJumps(t *testing.T) {
	w := newWorld(t)
	pkg := w.create("NAV0001")
	out := w.jump(sandbox.APINavigateToMiniProgram, w.caller(),
		map[string]any{"appId": AppID, "path": Path, "extraData": w.extraData(pkg), "envVersion": "release"}, nil, http.StatusOK)
	if out["errMsg"] != "navigateToMiniProgram:ok" {
		t.Fatalf("got %v", out)
	}
	if qid := queryIDOf(w.returned(out["session_id"].(string))); qid == "" {
		t.Errorf("no query_id after navigateToMiniProgram")
	}
	if got := stateOf(w.query("NAV0001")); got != "DOING/USER_CONFIRM" {
		t.Errorf("got %s, want DOING/USER_CONFIRM", got)
	}
}

// TestReturnPerScenario covers each way back, selected by header, by
// caller.scenario and by magic out_order_no prefix.
func TestReturnPerScenario(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, no, header string
		queryID          bool
		state            string
		notifications    int
		wantScenario     string
	}{
		{"default confirms", "RET0001", "", true, "DOING/USER_CONFIRM", 1, "payscore.confirm"},
		{"back icon by magic", "PSBACK0001", "", false, "DOING/USER_CONFIRM", 1, "payscore.confirm-back-icon"},
		{"back icon by header", "RET0002", "payscore.confirm-back-icon", false, "DOING/USER_CONFIRM", 1, "payscore.confirm-back-icon"},
		{"cancel by magic", "PSCANCEL0001", "", true, "CREATED", 0, "payscore.cancel"},
		{"expired by magic", "PSEXPIRED0001", "", false, "CREATED", 0, "payscore.expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := w.with(t)
			var header map[string]string
			if tc.header != "" {
				header = map[string]string{"X-Sandbox-Scenario": tc.header}
			}
			id := w.open(w.create(tc.no), header)
			ret := w.returned(id)
			if got := queryIDOf(ret) != ""; got != tc.queryID {
				t.Errorf("query_id returned: got %v, want %v (%v)", got, tc.queryID, ret)
			}
			if !tc.queryID {
				if ri := ret["referrerInfo"].(map[string]any); ri["extraData"] != nil {
					t.Errorf("got extraData %v, want none", ri["extraData"])
				}
			}
			if got := stateOf(w.query(tc.no)); got != tc.state {
				t.Errorf("order: got %s, want %s", got, tc.state)
			}
			if got := len(w.notifications(tc.no)); got != tc.notifications {
				t.Errorf("notifications: got %d, want %d", got, tc.notifications)
			}
			s, err := w.Store.GetSession(t.Context(), id)
			if err != nil || s.Scenario != tc.wantScenario {
				t.Errorf("session scenario: got %v %v, want %s", s, err, tc.wantScenario)
			}
		})
	}
	t.Run("scenario named at create", func(t *testing.T) {
		w := w.with(t)
		raw, _ := json.Marshal(w.createBody("RET0004"))
		res, err := w.sdk.Request(t.Context(), http.MethodPost, apiHost+"/v3/payscore/serviceorder",
			http.Header{"X-Sandbox-Scenario": {"payscore.cancel"}}, nil, raw, "application/json")
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Response.Header.Get("X-Sandbox-Scenario"); got != "payscore.cancel" {
			t.Errorf("create's X-Sandbox-Scenario: got %q", got)
		}
		var out map[string]any
		_ = json.NewDecoder(res.Response.Body).Decode(&out)
		w.returned(w.open(out["package"].(string), nil))
		if got := stateOf(w.query("RET0004")); got != "CREATED" {
			t.Errorf("got %s, want CREATED: the create's scenario has the user decline", got)
		}
	})
	t.Run("caller.scenario", func(t *testing.T) {
		w := w.with(t)
		pkg := w.create("RET0003")
		c := w.caller()
		c["scenario"] = "payscore.cancel"
		out := w.jump(sandbox.APIOpenBusinessView, c, businessViewArgs(w.extraData(pkg)), nil, http.StatusOK)
		w.returned(out["session_id"].(string))
		if got := stateOf(w.query("RET0003")); got != "CREATED" {
			t.Errorf("got %s, want CREATED (the user declined)", got)
		}
	})
}

func TestManualSession(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, no, action string
		state            string
		queryID          bool
	}{
		{"person confirms", "PSMANUAL01", ActionConfirm, "DOING/USER_CONFIRM", true},
		{"person lets it time out", "PSMANUAL02", sandbox.ActionTimeout, "CREATED", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := w.with(t)
			id := w.open(w.create(tc.no), nil)
			var s *sandbox.Session
			var err error
			if tc.action == sandbox.ActionTimeout {
				w.advance(31 * time.Minute) // past the manual timeout
				s, err = w.Sessions.Wait(t.Context(), id, 5*time.Second)
			} else {
				s, err = w.Sessions.Resolve(t.Context(), id, tc.action)
			}
			if err != nil || s.State != sandbox.SessionReturned {
				t.Fatalf("got %v %v, want a returned session", s, err)
			}
			var ret map[string]any
			_ = json.Unmarshal(s.Return, &ret)
			w.valid(schemaReturn, s.Return)
			if got := queryIDOf(ret) != ""; got != tc.queryID {
				t.Errorf("query_id: got %v, want %v", got, tc.queryID)
			}
			if got := stateOf(w.query(tc.no)); got != tc.state {
				t.Errorf("got %s, want %s", got, tc.state)
			}
		})
	}
}

func TestJumpFailures(t *testing.T) {
	w := newWorld(t)
	other := w.other()
	pkg := w.create("JMP0001")
	otherPkg := func() string {
		c := w.client(other)
		body := w.createBody("JMP0002")
		body["appid"], body["service_id"] = other.AppID, other.ServiceID
		res, err := c.Post(t.Context(), apiHost+"/v3/payscore/serviceorder", body)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(res.Response.Body).Decode(&out)
		return out["package"].(string)
	}()
	with := func(change func(ed map[string]any)) map[string]any {
		ed := w.extraData(pkg)
		change(ed)
		return businessViewArgs(ed)
	}
	caller := func(change func(c map[string]any)) map[string]any {
		c := w.caller()
		change(c)
		return c
	}
	for _, tc := range []struct {
		name   string
		api    string
		caller map[string]any
		args   map[string]any
		paths  []string
		errMsg string
	}{
		{"bad sign", "", nil, with(func(ed map[string]any) { ed["sign"] = strings.Repeat("A", 64) }), []string{"/args/extraData/sign"}, "&key=***"},
		{"signed with the v3 key", "", nil, with(func(ed map[string]any) {
			delete(ed, "sign")
			ed["sign"] = resign(t, ed, w.m.APIv3Key)
		}), []string{"/args/extraData/sign"}, "not the v3 one"},
		{"timestamp as a number", "", nil, with(func(ed map[string]any) { ed["timestamp"] = 1530097563 }), []string{"/args/extraData/timestamp"}, ""},
		{"nonce_str over 32", "", nil, with(func(ed map[string]any) { ed["nonce_str"] = strings.Repeat("n", 33) }), []string{"/args/extraData/nonce_str", "/args/extraData/sign"}, ""},
		{"sign_type MD5", "", nil, with(func(ed map[string]any) { ed["sign_type"] = "MD5" }), []string{"/args/extraData/sign_type"}, ""},
		{"mchid instead of mch_id", "", nil, with(func(ed map[string]any) { ed["mchid"] = ed["mch_id"]; delete(ed, "mch_id") }), []string{"/args/extraData/mchid", "/args/extraData/mch_id"}, ""},
		{"another merchant's mch_id", "", nil, with(func(ed map[string]any) { ed["mch_id"] = other.MchID }), []string{"/args/extraData/mch_id", "/args/extraData/sign"}, ""},
		{"unknown package", "", nil, with(func(ed map[string]any) { ed["package"] = "XXXXXXXX"; ed["sign"] = resign(t, ed, w.m.APIv2Key) }), []string{"/args/extraData/package"}, ""},
		{"another merchant's package", "", nil, with(func(ed map[string]any) { ed["package"] = otherPkg; ed["sign"] = resign(t, ed, w.m.APIv2Key) }), []string{"/args/extraData/package"}, ""},
		{"wrong businessType", "", nil, map[string]any{"businessType": "wxpayScoreDetail", "extraData": w.extraData(pkg)}, []string{"/args/businessType"}, ""},
		{"base library 2.5.0", "", caller(func(c map[string]any) { c["sdkVersion"] = "2.5.0" }), with(func(map[string]any) {}), []string{"/caller/sdkVersion"}, "not a function"},
		{"WeChat 7.0.2 on iOS", "", caller(func(c map[string]any) { c["wechatVersion"] = "7.0.2" }), with(func(map[string]any) {}), []string{"/caller/wechatVersion"}, "可能由于应用的请求非法或者微信版本过低"},
		{"WeChat 7.0.2 on Android", "", caller(func(c map[string]any) { c["wechatVersion"] = "7.0.2"; c["platform"] = "android" }), with(func(map[string]any) {}), []string{"/caller/wechatVersion"}, "cannot even reach WeChat"},
		{"navigate to another path", sandbox.APINavigateToMiniProgram, nil, map[string]any{"appId": AppID, "path": "pages/index/index", "extraData": w.extraData(pkg)}, []string{"/args/path"}, "navigateToMiniProgram:fail"},
		{"navigate not in the app id list", sandbox.APINavigateToMiniProgram, caller(func(c map[string]any) {
			c["appJson"] = map[string]any{"navigateToMiniProgramAppIdList": []string{"wx0000000000000001"}}
		}), map[string]any{"appId": AppID, "path": Path, "extraData": w.extraData(pkg)}, []string{"/caller/appJson/navigateToMiniProgramAppIdList"}, `appId "wxd8f3793ea3b935b8" is not in navigateToMiniProgramAppIdList`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := w.with(t)
			api := tc.api
			if api == "" {
				api = sandbox.APIOpenBusinessView
			}
			c := tc.caller
			if c == nil {
				c = w.caller()
			}
			out := w.jump(api, c, tc.args, nil, http.StatusBadRequest)
			msg, _ := out["errMsg"].(string)
			if !strings.HasPrefix(msg, api+":fail ") {
				t.Errorf("errMsg: got %q, want %s:fail …", msg, api)
			}
			vs, _ := out["violations"].([]any)
			for _, p := range tc.paths {
				if !contains(vs, p) {
					t.Errorf("violations: got %s, want one at %s", paths(vs), p)
				}
			}
			if tc.errMsg != "" && !strings.Contains(msg, tc.errMsg) {
				t.Errorf("errMsg %q does not say %q", msg, tc.errMsg)
			}
			if strings.Contains(msg, w.m.APIv2Key) || strings.Contains(msg, w.m.APIv3Key) {
				t.Errorf("errMsg leaks a key: %s", msg)
			}
		})
	}
	t.Run("bad sign shows the masked string-to-sign", func(t *testing.T) {
		w := w.with(t)
		ed := w.extraData(pkg)
		ed["sign"] = strings.Repeat("B", 64)
		out := w.jump(sandbox.APIOpenBusinessView, w.caller(), businessViewArgs(ed), nil, http.StatusBadRequest)
		want := "mch_id=" + w.m.MchID + "&nonce_str=" + ed["nonce_str"].(string) + "&package=" + pkg +
			"&sign_type=HMAC-SHA256&timestamp=" + ed["timestamp"].(string) + "&key=***"
		if got := out["diagnostics"]; got != want {
			t.Errorf("diagnostics: got %v, want %q", got, want)
		}
	})
	t.Run("expired package", func(t *testing.T) {
		w := w.with(t)
		w.advance(time.Hour)
		out := w.jump(sandbox.APIOpenBusinessView, w.caller(), businessViewArgs(w.extraData(pkg)), nil, http.StatusBadRequest)
		if vs, _ := out["violations"].([]any); !contains(vs, "/args/extraData/package") || !strings.Contains(out["errMsg"].(string), "expired") {
			t.Errorf("got %v, want a package violation saying it expired", out)
		}
	})
}

// resign signs ed (without its sign) with key.
func resign(tb testing.TB, ed map[string]any, key string) string {
	tb.Helper()
	params := map[string]string{}
	for k, v := range ed {
		if s, ok := v.(string); ok && k != "sign" {
			params[k] = s
		}
	}
	return signHMAC(tb, params, key)
}
