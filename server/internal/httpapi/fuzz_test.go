package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// fuzzSchemas are the JSON bodies a stranger can post: the mini-program
// contract, the v3 pay-score and vehicle requests, and the admin API.
var fuzzSchemas = []string{
	"miniprogram/call",
	"payscore/create.request",
	"payscore/complete.request",
	"payscore/cancel.request",
	"repayment/vehicle-user-create.request",
	"admin/merchant-create",
	"admin/clock-advance",
}

// FuzzDecodeJSON: any body against any of the real request schemas is
// decoded or refused as one CodeInvalid error naming each problem with a
// JSON pointer — never a panic, never an internal error — and a body it
// accepts validates again once re-encoded.
func FuzzDecodeJSON(f *testing.F) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		f.Fatal(err)
	}
	for i, s := range []string{
		`{"caller":{"appId":"wx1234567890abcdef","platform":"android","sdkVersion":"3.4.0"},"args":{"appId":"wxa204074068ad40ef","path":"/external/payment/trade/create/index?pay_id=1"}}`,
		`{"out_order_no":"1234323JKHDFE1243252","appid":"wxd678efh567hg6787","service_id":"500001","service_introduction":"停车服务","time_range":{"start_time":"OnAccept"},"risk_fund":{"name":"ESTIMATE_ORDER_COST","amount":5000},"notify_url":"https://a.b/n"}`,
		`{"appid":"wx1","service_id":"1","post_payments":[{"name":"停车费","amount":1500,"count":1}],"total_amount":1500}`,
		`{"appid":"wx1","service_id":"1","reason":"用户取消"}`,
		`{"sub_mchid":"1","plate_number":"粤B888888","plate_color":"BLUE"}`,
		`{"mchid":"1900000001","name":"x"}`,
		`{"mchid":"1230000109","by":"90s"}`,
		`{"a":` + strings.Repeat("[", 64) + `}`,
		"{\"x\":\"\xff\"}",
		`1e999`,
		``,
	} {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		name := fuzzSchemas[int(which)%len(fuzzSchemas)]
		var doc any
		err := DecodeJSON(set, name, body, &doc)
		if err != nil {
			e := sandbox.AsError(err)
			if e.Code != sandbox.CodeInvalid || len(e.Fields) == 0 {
				t.Fatalf("%s: %q: got %v (%s), want an invalid error with violations", name, body, e, e.Code)
			}
			for _, v := range e.Fields {
				if v.Path != "" && !strings.HasPrefix(v.Path, "/") || v.Message == "" {
					t.Fatalf("%s: violation %+v is not a JSON pointer with a message", name, v)
				}
			}
			return
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("%s: accepted %q but cannot re-encode it: %v", name, body, err)
		}
		if vs, err := set.ValidateJSON(name, raw); err != nil || len(vs) > 0 {
			t.Fatalf("%s: accepted %q, whose re-encoding %s is invalid: %v %v", name, body, raw, vs, err)
		}
	})
}
