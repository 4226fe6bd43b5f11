package wxpayv2

import (
	"maps"
	"strings"
	"testing"
)

// FuzzParseXML: whatever a stranger posts as a v2 body, ParseXML answers
// with parameters or violations, never a panic; every violation has a path
// of "" or "/<name>"; and parameters it accepts survive EncodeXML and a
// second parse unchanged, so an answer built from them is well-formed.
func FuzzParseXML(f *testing.F) {
	for _, s := range []string{
		`<xml><appid><![CDATA[wxd678efh567hg6787]]></appid><mch_id>1230000109</mch_id><nonce_str>5K8264ILTKCH16CQ2502SI8ZNMTM67VS</nonce_str><sign>C380BEC2BFD727A4B6845133519F3AD6</sign></xml>`,
		`<xml><a>1</a><a>2</a></xml>`,
		`<xml><a><b>1</b></a></xml>`,
		`<!DOCTYPE x [<!ENTITY e "boom">]><xml><a>&e;</a></xml>`,
		`<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a></xml>`,
		`<other/>`,
		`<xml></xml><xml></xml>`,
		"<xml><a>\r\nline</a></xml>",
		`<xml><ns:a xmlns:ns="u">v</ns:a></xml>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		params, vs := ParseXML(body)
		for _, v := range vs {
			if v.Path != "" && !strings.HasPrefix(v.Path, "/") || v.Message == "" {
				t.Fatalf("violation %+v: want a message and a path of \"\" or /<name>", v)
			}
		}
		if len(vs) > 0 {
			return
		}
		again, vs := ParseXML(EncodeXML(params))
		if len(vs) > 0 || !maps.Equal(params, again) {
			t.Fatalf("parameters %q do not survive EncodeXML: got %q, %v", params, again, vs)
		}
	})
}
