package wxpayv3

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// BenchmarkRawSign is the ceiling: one RSA-2048 signature.
func BenchmarkRawSign(b *testing.B) {
	key := testKey(b, platformKey)
	msg := wxsign.V3ResponseMessage("1554209980", wxsign.NonceStr(32), `{"mchid":"1900000001","uri":"/v3/echo","body":""}`)
	for b.Loop() {
		if _, err := wxsign.RSASign(key, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEndpoint is one authenticated, signed v3 exchange through the
// middleware: compare with BenchmarkRawSign (target ≥ 0.8×).
func BenchmarkEndpoint(b *testing.B) {
	h := newHarness(b)
	req := h.request(b, http.MethodGet, "/v3/echo", "", time.Now().Unix(), merchantKey)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("got %d %s", w.Code, w.Body)
		}
	}
}
