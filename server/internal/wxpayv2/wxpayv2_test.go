package wxpayv2

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func TestParseXML(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		want  map[string]string
		paths []string
		says  string
	}{
		{"CDATA and text", "<xml><appid><![CDATA[wx1]]></appid>\n<total_fee>1</total_fee><empty></empty></xml>",
			map[string]string{"appid": "wx1", "total_fee": "1", "empty": ""}, nil, ""},
		{"declaration and spaces kept", `<?xml version="1.0" encoding="UTF-8"?><xml><a> b </a></xml>`, map[string]string{"a": " b "}, nil, ""},
		{"nested", "<xml><a><b>1</b></a><c>2</c></xml>", map[string]string{"a": "", "c": "2"}, []string{"/a"}, "<b>"},
		{"twice", "<xml><a>1</a><a>2</a></xml>", map[string]string{"a": "1"}, []string{"/a"}, "more than once"},
		{"empty", " \n", nil, []string{""}, "empty"},
		{"JSON", `{"a":1}`, nil, []string{""}, "no <xml>"},
		{"another root", "<root><a>1</a></root>", nil, []string{""}, "<root>"},
		{"two roots", "<xml></xml><xml></xml>", nil, []string{""}, "more than one root"},
		{"unclosed", "<xml><a>1</xml>", nil, []string{""}, "not well-formed"},
		{"doctype", `<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>`, nil, []string{""}, "DOCTYPE"},
		{"not UTF-8", "<xml><a>\xff</a></xml>", nil, []string{""}, "UTF-8"},
		{"too large", "<xml><a>" + strings.Repeat("x", MaxBody) + "</a></xml>", nil, []string{""}, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, vs := ParseXML([]byte(tc.body))
			var gotPaths []string
			for _, v := range vs {
				gotPaths = append(gotPaths, v.Path)
				if !strings.Contains(v.Message, tc.says) {
					t.Errorf("message %q does not say %q", v.Message, tc.says)
				}
			}
			if !slices.Equal(gotPaths, tc.paths) {
				t.Fatalf("paths: got %v, want %v (%v)", gotPaths, tc.paths, vs)
			}
			if tc.want != nil && !equalMaps(got, tc.want) {
				t.Fatalf("params: got %v, want %v", got, tc.want)
			}
			if tc.want == nil && got != nil {
				t.Fatalf("params: got %v, want none", got)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestEncodeXMLRoundTrips(t *testing.T) {
	in := map[string]string{"b": "x]]>y", "a": "<&>", "c": "中文", "d": ""}
	out := EncodeXML(in)
	if !strings.HasPrefix(string(out), "<xml><a><![CDATA[") {
		t.Fatalf("got %s, want sorted CDATA elements", out)
	}
	got, vs := ParseXML(out)
	if len(vs) > 0 || !equalMaps(got, in) {
		t.Fatalf("round trip: got %v %v, want %v", got, vs, in)
	}
}

// engine answers with err, after Authenticated when signed.
func engine(err error, signed bool) *gin.Engine {
	e := gin.New()
	e.Use(httpapi.RequestIDs())
	e.POST("/x", httpapi.UseRenderer(Render), httpapi.Handle(func(c *gin.Context) error {
		if signed {
			Authenticated(c, Signer{AppID: "wx1234567890abcdef", MchID: "1230000109", Key: testKey, SignType: wxsign.SignTypeHMACSHA256})
		}
		if err == nil {
			return Respond(c, map[string]string{"user_state": "NORMAL"})
		}
		return err
	}))
	return e
}

const testKey = "0123456789abcdef0123456789abcdef"

func answer(t *testing.T, e *gin.Engine) map[string]string {
	t.Helper()
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/x", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("status: got %d, want 200: v2 answers failures in the body", w.Code)
	}
	out, vs := ParseXML(w.Body.Bytes())
	if len(vs) > 0 {
		t.Fatalf("answer is not v2 XML: %v", vs)
	}
	return out
}

func TestRender(t *testing.T) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	signErr := &sandbox.Error{Code: sandbox.CodeUnauthorized, Message: "sign does not match", Diagnostics: "a=1&key=***",
		Fields: []sandbox.Violation{{Path: "/sign", Message: "mismatch"}}}
	for _, tc := range []struct {
		name                     string
		err                      error
		signed                   bool
		returnCode, msg, errCode string
		detail                   string
	}{
		{"signature", signErr, false, Fail, MsgSignError, "", "sign does not match; /sign: mismatch"},
		{"signature after auth stays unsigned", signErr, true, Fail, MsgSignError, "", "sign does not match; /sign: mismatch"},
		{"not XML", &sandbox.Error{Code: sandbox.CodeInvalid, Upstream: CodeXMLFormatError, Message: "no xml"}, false, Fail, MsgXMLError, "", "no xml"},
		{"malformed parameter", sandbox.Invalid("bad", sandbox.Violation{Path: "/version", Message: "is required"}), true, Fail, MsgParamError, "", "bad; /version: is required"},
		{"business", Business("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配", sandbox.Violation{Path: "/appid", Message: "not yours"}), true,
			Success, MsgOK, "APPID_MCHID_NOT_MATCH", "/appid: not yours"},
		{"business before auth", Business("X_ERROR", "描述"), false, Fail, "描述", "", ""},
		{"internal", sandbox.Errorf(sandbox.CodeInternal, "boom"), true, Fail, MsgSystemError, "", "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := answer(t, engine(tc.err, tc.signed))
			raw, _ := json.Marshal(out)
			if vs, _ := set.ValidateJSON("common/v2-error", raw); len(vs) > 0 {
				t.Fatalf("%s does not match common/v2-error: %v", raw, vs)
			}
			if out["return_code"] != tc.returnCode || out["return_msg"] != tc.msg || out["err_code"] != tc.errCode || out[FieldDetail] != tc.detail {
				t.Fatalf("got %v, want %s %s %q detail %q", out, tc.returnCode, tc.msg, tc.errCode, tc.detail)
			}
			signed := tc.returnCode == Success
			if (out["sign"] != "") != signed {
				t.Fatalf("sign: got %q, signed want %v", out["sign"], signed)
			}
			if signed {
				if err := wxsign.V2Verify(out, testKey, wxsign.SignTypeHMACSHA256, out["sign"]); err != nil {
					t.Fatalf("answer sign: %v", err)
				}
			}
			if tc.err == signErr && out[FieldDiagnostics] != "a=1&key=***" {
				t.Fatalf("diagnostics: got %q", out[FieldDiagnostics])
			}
		})
	}
}

func TestRespondIsSigned(t *testing.T) {
	out := answer(t, engine(nil, true))
	if out["return_code"] != Success || out["result_code"] != Success || out["user_state"] != "NORMAL" || len(out["nonce_str"]) != 32 {
		t.Fatalf("got %v", out)
	}
	if err := wxsign.V2Verify(out, testKey, wxsign.SignTypeHMACSHA256, out["sign"]); err != nil {
		t.Fatalf("sign: %v", err)
	}
	out2 := answer(t, engine(nil, false))
	if out2["return_code"] != Fail || out2["return_msg"] != MsgSystemError {
		t.Fatalf("Respond before Authenticated: got %v, want a system error", out2)
	}
}

func BenchmarkParseXML(b *testing.B) {
	body := EncodeXML(map[string]string{"appid": "wx1234567890abcdef", "mch_id": "1230000109", "nonce_str": wxsign.NonceStr(32),
		"sign_type": "HMAC-SHA256", "trade_scene": "PARKING", "version": "3.0", "openid": "oUpF8uMEb4qRXf22hE3X68TekukE", "sign": strings.Repeat("A", 64)})
	b.ReportAllocs()
	for b.Loop() {
		ParseXML(body)
	}
}
