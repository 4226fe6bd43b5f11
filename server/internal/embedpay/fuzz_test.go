package embedpay

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzGatewayForm: whatever a stranger sends to P云's gateway — any query,
// any form body, any media type — the answer is HTTP 200 with P云's JSON
// shape (a code; a hint when it is not 1001), never a panic and never an
// internal failure. Seeds include signed forms, so that mutations also
// reach the checks behind the signature.
func FuzzGatewayForm(f *testing.F) {
	w := newWorld(f)
	prepare := w.prepareParams("FUZZ-1", "100")
	for _, s := range []struct {
		query, contentType, body string
		which                    uint8
	}{
		{"", formType, form(prepare, docSecret), 0},
		{"", formType, form(map[string]string{"app_id": docAppID, "merchant": docMerchant, "pay_order": "FUZZ-1"}, docSecret), 1},
		{"pay_order=FUZZ-1&merchant=" + docMerchant + "&app_id=" + docAppID, "", "", 2},
		{"a=1&a=2", formType, "value=%zz", 0},
		{"", "application/json", `{"app_id":"x"}`, 0},
		{"", formType + "; charset=gbk", "subject=\xff\xfe", 1},
		{"", "", strings.Repeat("x=1&", 300), 0},
	} {
		f.Add(s.which, s.query, s.contentType, []byte(s.body))
	}
	routes := []struct{ method, path string }{
		{http.MethodPost, "/gate/1.0/payment/trade/prepare"},
		{http.MethodPost, "/gate/1.0/payment/trade/query"},
		{http.MethodGet, "/gate/1.0/payment/trade/query"},
	}
	h := w.Server.Config.Handler
	f.Fuzz(func(t *testing.T, which uint8, query, contentType string, body []byte) {
		r := routes[int(which)%len(routes)]
		req, err := http.NewRequest(r.method, r.path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Hint    string `json:"hint"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Code == "" {
			t.Fatalf("%s %s?%s (%s) %q: got %d %s, want 200 with P云's shape", r.method, r.path, query, contentType, body, rec.Code, rec.Body)
		}
		if out.Code != codeOK && out.Hint == "" && out.Message == "" {
			t.Fatalf("%s: failure without a word: %s", r.path, rec.Body)
		}
		if strings.Contains(out.Message, "internal") {
			t.Fatalf("%s %s?%s (%s) %q: an internal failure: %s", r.method, r.path, query, contentType, body, rec.Body)
		}
	})
}
