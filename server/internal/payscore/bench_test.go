package payscore

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// BenchmarkQuery is one authenticated, signed query through the whole
// server-side stack (SQLite read included); compare it with the raw
// RSA-2048 signing rate of BenchmarkRawSign (target ≥ 0.8×).
func BenchmarkQuery(b *testing.B) {
	w := newWorld(b)
	w.create("BENCH0001")
	uri := "/v3/payscore/serviceorder?service_id=" + w.m.ServiceID + "&out_order_no=BENCH0001&appid=" + w.m.AppID
	key, err := utils.LoadPrivateKey(w.m.MerchantPrivateKeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), wxsign.NonceStr(32)
	sig, _ := wxsign.RSASign(key, wxsign.V3RequestMessage(http.MethodGet, uri, ts, nonce, ""))
	auth := wxsign.FormatAuthorization(wxsign.Authorization{MchID: w.m.MchID, NonceStr: nonce, Timestamp: ts, SerialNo: w.m.MerchantSerialNo, Signature: sig})
	h := w.Server.Config.Handler
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, uri, nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("got %d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkRawSign is the ceiling: one RSA-2048 signature with the
// platform key.
func BenchmarkRawSign(b *testing.B) {
	w := newWorld(b)
	key, err := utils.LoadPrivateKey(w.m.PlatformPrivateKeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	msg := wxsign.V3ResponseMessage("1554209980", wxsign.NonceStr(32), `{"state":"CREATED"}`)
	b.ResetTimer()
	for b.Loop() {
		if _, err := wxsign.RSASign(key, msg); err != nil {
			b.Fatal(err)
		}
	}
}
