package embedpay

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// docPrepareForm is trade-prepare.md's "请求示例" exactly as its Java code
// sends it, sign included: the golden vector of SOURCES.md §8.
func docPrepareForm() map[string]string {
	return map[string]string{
		"app_id":       docAppID,
		"merchant":     docMerchant,
		"pay_order":    "11111111118",
		"subject":      "停车支付3.00元(川A12345)",
		"body":         "【川A12345】在【XXXXX-停车场】于【2021-07-01 00:00:00】支付费1.00元",
		"value":        "10",
		"channel":      "200201",
		"callback_url": "https://a.b.c/backurl",
		"notify_url":   "https://a.b.c/notify",
		"extra":        `{"plate_color":"-1","parking_serial":"01009970545516206225805859659","plate":"川AA37K2","enter_time":"1620621689000","park_name":"P云支付体验-停车场","parking_time":"175"}`,
		"sign":         "96FD052F81BBB3C25B5BD628E189A154",
	}
}

func TestPrepareGoldenVector(t *testing.T) {
	w := newWorld(t)
	t.Run("the doc's signed example verifies", func(t *testing.T) {
		// The example predates trade_scene, which the table requires: the
		// only problem named is that one, so its sign was accepted.
		e := w.prepareErr(form(docPrepareForm(), ""), nil)
		if e.Code != codeParam || e.Message != msgParam {
			t.Fatalf("got %s %s, want 400 %s", e.Code, e.Message, msgParam)
		}
		if want := []sandbox.Violation{{Path: "/trade_scene", Message: "is required"}}; !slices.Equal(e.Violations, want) {
			t.Fatalf("violations got %+v, want %+v", e.Violations, want)
		}
		if e.Hint != "`trade_scene` Required!" {
			t.Errorf("hint got %q, want P云's \"`trade_scene` Required!\"", e.Hint)
		}
		if e.Path != "POST /gate/1.0/payment/trade/prepare" || e.DataNode == "" || len(e.Seqno) != 16 {
			t.Errorf("seqno/data_node/path: %+v", e)
		}
	})
	t.Run("with trade_scene it prepares", func(t *testing.T) {
		p := docPrepareForm()
		delete(p, "sign")
		p["trade_scene"] = "PARKING"
		out, raw := w.post("/gate/1.0/payment/trade/prepare", formType, form(p, docSecret), nil)
		w.valid(SchemaPrepareResponse, raw)
		if out["pay_url"] != payURLPrefix+out["pay_id"].(string) {
			t.Errorf("pay_url %v does not carry pay_id %v", out["pay_url"], out["pay_id"])
		}
	})
	t.Run("one altered value breaks it", func(t *testing.T) {
		p := docPrepareForm()
		p["value"] = "1000"
		p["trade_scene"] = "PARKING" // not signed either: two changes, one sign check
		e := w.prepareErr(form(p, ""), nil)
		if e.Code != codeParam || e.Message != msgSign || len(e.Violations) != 1 || e.Violations[0].Path != "/sign" {
			t.Fatalf("got %+v, want one /sign violation with %s", e, msgSign)
		}
		q := map[string]string{}
		for k, v := range p {
			q[k] = v
		}
		wantDiag := strings.TrimSuffix(wxsign.PCloudStringToSign(q, docSecret), docSecret) + "***"
		if e.Diagnostics != wantDiag {
			t.Errorf("diagnostics\ngot  %q\nwant %q", e.Diagnostics, wantDiag)
		}
		if strings.Contains(e.Hint+e.Diagnostics, docSecret) {
			t.Errorf("the app secret leaks into the answer")
		}
	})
}

// TestPrepareValidationMessages pins the answer to every way a prepare can
// be wrong: P云's code and message, and each violation with its message.
func TestPrepareValidationMessages(t *testing.T) {
	w := newWorld(t)
	ok := w.prepareParams("DUP-1", "100")
	w.prepare("DUP-1", "100")
	tests := []struct {
		name    string
		mutate  func(p map[string]string)
		unsign  bool   // send without a sign
		rawBody string // instead of the form
		header  map[string]string
		code    string
		message string
		want    []sandbox.Violation
		hint    string // a substring of the hint
	}{
		{
			name:    "every required field missing",
			mutate:  func(p map[string]string) { clear(p) },
			unsign:  true,
			code:    codeParam,
			message: msgParam,
			want: []sandbox.Violation{
				v("/app_id", "is required"), v("/merchant", "is required"), v("/notify_url", "is required"),
				v("/pay_order", "is required"), v("/sign", "is required"), v("/subject", "is required"),
				v("/trade_scene", "is required"), v("/value", "is required"),
			},
			hint: "`app_id` Required!; `merchant` Required!; `notify_url` Required!",
		},
		{
			name: "value zero", mutate: func(p map[string]string) { p["value"] = "0" }, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/value", fieldRules["value"]+`; got "0"`)},
			hint: "`value` must be a positive whole number of fen",
		},
		{
			name: "value negative", mutate: func(p map[string]string) { p["value"] = "-100" }, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/value", fieldRules["value"]+`; got "-100"`)},
		},
		{
			name: "value in yuan", mutate: func(p map[string]string) { p["value"] = "1.00" }, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/value", fieldRules["value"]+`; got "1.00"`)},
		},
		{
			name: "value with a leading zero", mutate: func(p map[string]string) { p["value"] = "0100" }, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/value", fieldRules["value"]+`; got "0100"`)},
		},
		{
			name: "bad trade_scene, channel and notify_url", code: codeParam, message: msgParam,
			mutate: func(p map[string]string) { p["trade_scene"], p["channel"], p["notify_url"] = "SHOP", "300", "ftp://x" },
			want: []sandbox.Violation{
				v("/channel", `value must be one of "200201", "200001", "100002", "100102"`),
				v("/notify_url", fieldRules["notify_url"]+`; got "ftp://x"`),
				v("/trade_scene", `value must be one of "PARKING", "RECHARGE", "ENERGY", "LIVING", "GENERIC"`),
			},
		},
		{
			name: "expire_time not UTC", mutate: func(p map[string]string) { p["expire_time"] = "2025-03-01 10:00:00" },
			code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/expire_time", fieldRules["expire_time"]+`; got "2025-03-01 10:00:00"`)},
		},
		{
			name: "expire_time in the past", mutate: func(p map[string]string) { p["expire_time"] = "2025-03-01T01:59:59.000Z" },
			code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/expire_time", "2025-03-01T01:59:59.000Z is not in the future: the sandbox clock of merchant 1230000109 reads 2025-03-01T02:00:00Z")},
		},
		{
			name: "extra not JSON", mutate: func(p map[string]string) { p["extra"] = "plate=粤B1" }, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/extra", `must be a JSON object written as a string, e.g. {"plate":"粤B12345",…}`)},
		},
		{
			name: "PARKING extra incomplete", code: codeParam, message: msgParam,
			mutate: func(p map[string]string) {
				p["trade_scene"], p["extra"] = "PARKING", `{"plate":"粤B12345","plate_color":"9","enter_time":"x"}`
			},
			want: []sandbox.Violation{
				v("/extra/enter_time", `must match one of the alternatives: must match the pattern ^(0|[1-9][0-9]*)$; or expected integer, but got string`),
				v("/extra/park_name", "is required"), v("/extra/parking_serial", "is required"), v("/extra/parking_time", "is required"),
				v("/extra/plate_color", `value must be one of "1", "2", "3", "4", "5", "-1"`),
			},
		},
		{
			name: "deduct_mode without extra", mutate: func(p map[string]string) { p["deduct_mode"] = "PROACTIVE" },
			code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/extra", "is required with deduct_mode (无感支付场景必须传递extra, trade-prepare.md)")},
		},
		{
			name: "unknown app_id", mutate: func(p map[string]string) { p["app_id"] = "op404" }, code: codeParam, message: msgUnknownApp,
			want: []sandbox.Violation{v("/app_id", `"op404" is not a sandbox merchant's P云 app_id (GET /sandbox/v1/merchants/{mchid}/credentials: pcloud_app_id)`)},
		},
		{
			name: "another app's merchant", mutate: func(p map[string]string) { p["merchant"] = "70000001" }, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/merchant", `"70000001" is not the P云 merchant of app_id op0096196358123123; its merchant is "62626601" (pcloud_merchant)`)},
		},
		{
			name: "sign not hex", mutate: func(p map[string]string) { p["sign"] = "not-a-sign" }, unsign: true, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/sign", fieldRules["sign"]+`; got "not-a-sign"`)},
		},
		{
			name: "wrong secret", mutate: func(p map[string]string) { p["sign"] = wxsign.PCloudSign(p, "guess") }, unsign: true,
			code: codeParam, message: msgSign,
			want: []sandbox.Violation{v("/sign", "sign does not match the MD5 of the string-to-sign in diagnostics (the form/query parameters: non-empty ones except sign, sorted by ASCII name, joined k=v&…, then &app_secret=<secret>)")},
		},
		{
			name: "a parameter twice", rawBody: "value=1&value=2", code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/value", "is given 2 times; P云 signs a single value")},
		},
		{
			name: "a malformed form", rawBody: "value=%zz", code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("", `form body: invalid URL escape "%zz"`)},
		},
		{
			name: "unknown scenario header", header: map[string]string{"X-Sandbox-Scenario": "embedpay.nope"}, code: codeParam, message: msgParam,
			want: []sandbox.Violation{v("/X-Sandbox-Scenario", `"embedpay.nope" is not an embedpay scenario (GET /sandbox/v1/scenarios?product=embedpay lists them)`)},
		},
		{
			name: "pay_order already prepared", mutate: func(p map[string]string) { p["pay_order"] = "DUP-1" }, code: codeFailure, message: msgDuplicate,
			want: []sandbox.Violation{v("/pay_order", "already exists")},
			hint: `pay_order "DUP-1" was already prepared by app_id op0096196358123123`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := map[string]string{}
			for k, v := range ok {
				p[k] = v
			}
			if tt.mutate != nil {
				tt.mutate(p)
			}
			body := tt.rawBody
			if body == "" {
				secret := w.m.PCloudAppSecret
				if tt.unsign {
					secret = ""
				}
				body = form(p, secret)
			}
			e := w.prepareErr(body, tt.header)
			if e.Code != tt.code || e.Message != tt.message {
				t.Errorf("got %s %q, want %s %q", e.Code, e.Message, tt.code, tt.message)
			}
			if !slices.Equal(e.Violations, tt.want) {
				t.Errorf("violations\ngot  %+v\nwant %+v", e.Violations, tt.want)
			}
			if !strings.Contains(e.Hint, tt.hint) {
				t.Errorf("hint got %q, want it to contain %q", e.Hint, tt.hint)
			}
		})
	}
	t.Run("JSON instead of a form", func(t *testing.T) {
		_, raw := w.post("/gate/1.0/payment/trade/prepare", "application/json", `{"app_id":"x"}`, nil)
		e := w.pcloudError(raw)
		if e.Code != codeParam || !strings.Contains(e.Hint, "P云 takes a form, application/x-www-form-urlencoded") {
			t.Errorf("got %+v", e)
		}
	})
}

func TestPrepareDefaultExpiryIsThreeMinutesOnTheClock(t *testing.T) {
	w := newWorld(t)
	early := w.prepare("EXP-1", "100")
	late := w.prepare("EXP-2", "100")
	w.advance(3*time.Minute - time.Millisecond)
	w.open(early, nil)
	w.advance(time.Millisecond)
	out := w.jump(w.caller(), cashierArgs(WeChatAppID, late), nil, http.StatusBadRequest)
	if msg := out["errMsg"].(string); !strings.Contains(msg, "pay_id "+late+" expired at 2025-03-01T02:03:00Z; the sandbox clock reads 2025-03-01T02:03:00Z") {
		t.Errorf("errMsg got %q, want the expiry named", msg)
	}
}

func TestPrepareExpireTime(t *testing.T) {
	w := newWorld(t)
	p := w.prepareParams("EXP-T", "100")
	p["expire_time"] = "2025-03-01T02:10:00.000Z" // ten minutes on the frozen clock
	out, _ := w.post("/gate/1.0/payment/trade/prepare", formType, form(p, w.m.PCloudAppSecret), nil)
	payID := out["pay_id"].(string)
	w.advance(9*time.Minute + 59*time.Second)
	w.open(payID, map[string]string{"X-Sandbox-Scenario": "embedpay.closed"})
}

// TestConcurrentPrepareOfOnePayOrder: two prepares of one pay_order race;
// the store lets exactly one win, the other gets P云's duplicate answer.
func TestConcurrentPrepareOfOnePayOrder(t *testing.T) {
	w := newWorld(t)
	body := form(w.prepareParams("RACE-1", "100"), w.m.PCloudAppSecret)
	const n = 8
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _ := w.post("/gate/1.0/payment/trade/prepare", formType, body, nil)
			codes[i] = out["code"].(string) + " " + str(out["message"])
		}()
	}
	wg.Wait()
	var ok, dup int
	for _, c := range codes {
		switch c {
		case codeOK + " ":
			ok++
		case codeFailure + " " + msgDuplicate:
			dup++
		}
	}
	if ok != 1 || dup != n-1 {
		t.Fatalf("got %d successes and %d duplicates (%v), want 1 and %d", ok, dup, codes, n-1)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func TestQuery(t *testing.T) {
	w := newWorld(t)
	payID := w.prepare("Q-1", "250")
	sign := func(p map[string]string) string { return form(p, w.m.PCloudAppSecret) }
	base := func() map[string]string {
		return map[string]string{"app_id": w.m.PCloudAppID, "merchant": w.m.PCloudMerchant}
	}

	t.Run("before the user acts: 0, no serial", func(t *testing.T) {
		out := w.query("Q-1")
		if out["status"].(json.Number) != "0" || out["value"].(json.Number) != "250" || out["pay_serial"] != nil || out["trade_time"] != nil {
			t.Errorf("got %v", out)
		}
	})
	sid := w.open(payID, map[string]string{"X-Sandbox-Scenario": "embedpay.paid"})
	w.advance(2 * time.Second)
	extra := w.returned(sid)["referrerInfo"].(map[string]any)["extraData"].(map[string]any)
	serial := extra["pay_serial"].(string)

	t.Run("by pay_serial, as a GET", func(t *testing.T) {
		p := base()
		p["pay_serial"] = serial
		req, _ := http.NewRequest(http.MethodGet, w.Server.URL+"/gate/1.0/payment/trade/query?"+sign(p), nil)
		out, raw := w.do(req, http.StatusOK)
		w.valid(SchemaQueryResponse, raw)
		if out["pay_order"] != "Q-1" || out["status"].(json.Number) != "1" || out["pay_serial"] != serial ||
			out["channel"] != ChannelWeChatJSAPI || out["trade_time"] != "2025-03-01T02:00:02Z" {
			t.Errorf("got %s", raw)
		}
	})
	for _, tt := range []struct {
		name    string
		params  func() map[string]string
		body    func(map[string]string) string
		code    string
		message string
		hint    string
		paths   []string
	}{
		{
			name: "neither pay_order nor pay_serial", params: base, body: sign,
			code: codeFailure, message: msgQueryNeedsKey, paths: []string{"/pay_order"},
		},
		{
			name: "merchant missing", body: sign, code: codeParam, message: msgParam, hint: "参数`merchant`未传递",
			params: func() map[string]string { p := base(); delete(p, "merchant"); p["pay_order"] = "Q-1"; return p },
			paths:  []string{"/merchant"},
		},
		{
			name: "unknown pay_order", body: sign, code: codeFailure, message: msgNotFound,
			params: func() map[string]string { p := base(); p["pay_order"] = "NOPE"; return p },
		},
		{
			name: "pay_id is not a pay_serial", body: sign, code: codeFailure, message: msgNotFound,
			params: func() map[string]string { p := base(); p["pay_serial"] = payID; return p },
		},
		{
			name: "another merchant's trade", code: codeFailure, message: msgNotFound,
			params: func() map[string]string {
				return map[string]string{"app_id": w.other.PCloudAppID, "merchant": w.other.PCloudMerchant, "pay_serial": serial}
			},
			body: func(p map[string]string) string { return form(p, w.other.PCloudAppSecret) },
		},
		{
			name: "bad sign", code: codeParam, message: msgSign, paths: []string{"/sign"},
			params: func() map[string]string { p := base(); p["pay_order"] = "Q-1"; return p },
			body:   func(p map[string]string) string { return form(p, "wrong") },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, raw := w.post("/gate/1.0/payment/trade/query", formType, tt.body(tt.params()), nil)
			e := w.pcloudError(raw)
			if e.Code != tt.code || e.Message != tt.message || !strings.Contains(e.Hint, tt.hint) {
				t.Errorf("got %s %q hint %q, want %s %q hint %q", e.Code, e.Message, e.Hint, tt.code, tt.message, tt.hint)
			}
			var paths []string
			for _, v := range e.Violations {
				paths = append(paths, v.Path)
			}
			if !slices.Equal(paths, tt.paths) {
				t.Errorf("violation paths got %v, want %v", paths, tt.paths)
			}
			if e.Path != "POST /gate/1.0/payment/trade/query" {
				t.Errorf("path got %q", e.Path)
			}
		})
	}
}

func TestQueryStringOverriddenByForm(t *testing.T) {
	w := newWorld(t)
	w.prepare("QS-1", "100")
	p := map[string]string{"app_id": w.m.PCloudAppID, "merchant": w.m.PCloudMerchant, "pay_order": "QS-1"}
	// The URL says one order, the signed form another: the form wins.
	out, _ := w.post("/gate/1.0/payment/trade/query?pay_order=OTHER", formType, form(p, w.m.PCloudAppSecret), nil)
	if out["pay_order"] != "QS-1" {
		t.Errorf("got %v", out)
	}
}
