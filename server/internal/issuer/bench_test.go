package issuer

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// BenchmarkLaunch is the product's share of the jump path for the page that
// reads the most: the args, app.json and query schemas, the device and
// order reads, and the scenario pick.
func BenchmarkLaunch(b *testing.B) {
	w := newWorld(b)
	r := w.apply("P1")
	no, plate := r.Query["orderNo"], r.Query["plateNum"]
	w.back(w.navigate("plugin://issuer-plugin/signProtocol?orderNo="+no, "issuer.instant"))
	w.back(w.navigate("plugin://issuer-plugin/activeDes?orderNo="+no, "issuer.instant"))
	args, _ := json.Marshal(map[string]any{"url": "plugin://issuer-plugin/activeAgain?plateNum=" + plate})
	benchLaunch(b, w, sandbox.APIPluginNavigate, args)
}

// BenchmarkPaymentLaunch is the functional page's check: the args and
// app.json schemas, the RSA paySign verification and the paid-prepay read.
func BenchmarkPaymentLaunch(b *testing.B) {
	w := newWorld(b)
	args, _ := json.Marshal(w.paymentArgsFor("wx_bench", "nonce", paySignRSA))
	benchLaunch(b, w, sandbox.APIRequestPayment, args)
}

// benchLaunch launches api with args as the test merchant's host, b.N times.
func benchLaunch(b *testing.B, w *world, api string, args json.RawMessage) {
	aj, _ := json.Marshal(appJSON())
	call := &sandbox.Call{API: api, Args: args, Merchant: w.m, Caller: sandbox.Caller{AppID: w.m.AppID, AppJSON: aj}}
	doc, _ := schema.Decode(args)
	call.Doc = doc.(map[string]any)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.p.Launch(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}
