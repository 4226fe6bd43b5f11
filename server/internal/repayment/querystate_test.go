package repayment

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

func TestQueryStateAnswers(t *testing.T) {
	w := newWorld(t)
	byState := map[string]userView{}
	for _, u := range w.users(w.m.MchID, "") {
		byState[u.UserState] = u
	}
	for _, tc := range []struct {
		name       string
		change     map[string]string
		state      string
		path       bool
		deductMode string
		channel    string
		commonUse  bool
	}{
		{"NORMAL", map[string]string{"openid": byState[StateNormal].OpenID}, StateNormal, false, DeductProactive, "", true},
		{"PAUSED", map[string]string{"openid": byState[StatePaused].OpenID}, StatePaused, true, DeductAutopay, "", false},
		{"OVERDUE", map[string]string{"openid": byState[StateOverdue].OpenID}, StateOverdue, true, DeductProactive, "", true},
		{"UNAUTHORIZED", map[string]string{"openid": byState[StateUnauthorized].OpenID}, StateUnauthorized, true, "", "", false},
		{"unknown openid", map[string]string{"openid": "oNeverSeenBefore000000000000"}, StateUnauthorized, true, "", "", false},
		{"by plate", map[string]string{"openid": "", "plate_number": byState[StateOverdue].PlateNumber}, StateOverdue, true, DeductProactive, "", true},
		{"unknown plate", map[string]string{"openid": "", "plate_number": "藏Z99999"}, StateUnauthorized, true, "", "", false},
		{"highway, version 2.0", map[string]string{"openid": byState[StateNormal].OpenID, "trade_scene": "HIGHWAY", "version": "2.0", "jump_scene": "APP"},
			StateNormal, false, DeductProactive, channelETC, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := w.stateParams("")
			for k, v := range tc.change {
				if v == "" {
					delete(params, k)
				} else {
					params[k] = v
				}
			}
			out := w.querystate(params)
			w.validSuccess(out)
			if out["user_state"] != tc.state || (out["path"] != "") != tc.path || out["deduct_mode"] != tc.deductMode {
				t.Fatalf("got %v, want %s, path %v, deduct_mode %q", out, tc.state, tc.path, tc.deductMode)
			}
			if out["appid"] != w.m.AppID || out["mch_id"] != w.m.MchID || out["nonce_str"] == params["nonce_str"] {
				t.Fatalf("got appid %s mch_id %s nonce_str %s: want the merchant's, and a nonce of the answer's own", out["appid"], out["mch_id"], out["nonce_str"])
			}
			if tc.deductMode == "" {
				return
			}
			var info plateNumberInfo
			if err := json.Unmarshal([]byte(out["plate_number_info"]), &info); err != nil || len(info.PlateNumberInfo) != 1 {
				t.Fatalf("plate_number_info %q: %v", out["plate_number_info"], err)
			}
			pi := info.PlateNumberInfo[0]
			if pi.ChannelType != tc.channel || (pi.CommonUseFlag == commonUse) != tc.commonUse {
				t.Fatalf("plate_number_info: got %+v, want channel %q, common use %v", pi, tc.channel, tc.commonUse)
			}
		})
	}
}

func TestQueryStateFailures(t *testing.T) {
	w := newWorld(t)
	openid := w.users(w.m.MchID, StateOverdue)[0].OpenID
	signed := func(change map[string]string) []byte {
		p := w.stateParams(openid)
		for k, v := range change {
			if v == "" {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		sign, _ := wxsign.V2Sign(p, w.m.APIv2Key, p["sign_type"])
		p["sign"] = sign
		return wxpayv2.EncodeXML(p)
	}
	good := signed(nil)
	for _, tc := range []struct {
		name       string
		body       []byte
		returnMsg  string
		errCode    string
		detailSays []string
	}{
		{"JSON", []byte(`{"openid":"x"}`), wxpayv2.MsgXMLError, "", []string{"no <xml>"}},
		{"malformed", []byte(`<xml><openid>x</xml>`), wxpayv2.MsgXMLError, "", []string{"not well-formed"}},
		{"another root", []byte(`<request><openid>x</openid></request>`), wxpayv2.MsgXMLError, "", []string{"<request>"}},
		{"empty", nil, wxpayv2.MsgXMLError, "", []string{"empty"}},
		{"bad sign", withSign(signed(nil), strings.Repeat("A", 64)),
			wxpayv2.MsgSignError, "", []string{"/sign"}},
		{"lower-case sign", withSign(good, strings.ToLower(signOf(good))), wxpayv2.MsgSignError, "", []string{"upper case"}},
		{"bad sign and bad fields", withSign(signed(map[string]string{"trade_scene": "PARK"}), strings.Repeat("B", 64)),
			wxpayv2.MsgSignError, "", []string{"/sign", "/trade_scene"}},
		{"missing fields, signed", signed(map[string]string{"openid": "", "version": "", "nonce_str": ""}), wxpayv2.MsgParamError, "",
			[]string{"/version: is required", "/nonce_str: is required", `needs one of "openid" or "plate_number"`}},
		{"version 3.0 for HIGHWAY", signed(map[string]string{"trade_scene": "HIGHWAY"}), wxpayv2.MsgParamError, "", []string{"/trade_scene"}},
		{"MD5, signed with MD5", signed(map[string]string{"sign_type": "MD5"}), wxpayv2.MsgParamError, "", []string{"/sign_type", "/sign: must match"}},
		{"unknown mch_id", signed(map[string]string{"mch_id": "1999999999"}), wxpayv2.MsgParamError, "", []string{"/mch_id", "not a merchant"}},
		{"another merchant's appid", signed(map[string]string{"appid": w.other.AppID}), "", errAppID, []string{"/appid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := w.postXML(tc.body)
			raw, _ := json.Marshal(out)
			w.valid("common/v2-error", raw)
			if tc.errCode != "" {
				// A business failure is answered signed.
				if out["return_code"] != wxpayv2.Success || out["result_code"] != wxpayv2.Fail || out["err_code"] != tc.errCode {
					t.Fatalf("got %v, want result_code FAIL %s", out, tc.errCode)
				}
				if err := wxsign.V2Verify(out, w.m.APIv2Key, wxsign.SignTypeHMACSHA256, out["sign"]); err != nil {
					t.Fatalf("business failure sign: %v", err)
				}
			} else {
				if out["return_code"] != wxpayv2.Fail || out["return_msg"] != tc.returnMsg || out["sign"] != "" {
					t.Fatalf("got %v, want an unsigned return_code FAIL %q", out, tc.returnMsg)
				}
			}
			if !contains(out[wxpayv2.FieldDetail], tc.detailSays...) {
				t.Fatalf("sandbox_detail %q does not say %q", out[wxpayv2.FieldDetail], tc.detailSays)
			}
			if tc.returnMsg == wxpayv2.MsgSignError {
				d := out[wxpayv2.FieldDiagnostics]
				if !strings.HasSuffix(d, "&key=***") || strings.Contains(d, w.m.APIv2Key) || !strings.Contains(d, "openid="+openid) {
					t.Fatalf("diagnostics %q: want the string-to-sign with the key masked", d)
				}
			}
		})
	}
}

func signOf(body []byte) string {
	p, _ := wxpayv2.ParseXML(body)
	return p["sign"]
}

func withSign(body []byte, sign string) []byte {
	p, _ := wxpayv2.ParseXML(body)
	p["sign"] = sign
	return wxpayv2.EncodeXML(p)
}
