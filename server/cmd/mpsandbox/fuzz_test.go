package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzOnce    sync.Once
	fuzzHandler http.Handler
	fuzzAppID   string
)

// fuzzServer starts one real server per fuzzing process and drives its
// handler in-process, so that every input goes through the whole stack
// (body limit, UTF-8 check, schema, merchant lookup, product) quickly.
func fuzzServer(f *testing.F) http.Handler {
	fuzzOnce.Do(func() {
		m, base := start(f, nil)
		fuzzHandler = m.server.Handler
		creds := send(f, "GET", base+"/sandbox/v1/merchants/1230000109/credentials", "", "")
		fuzzAppID, _ = creds.Body["appid"].(string)
	})
	return fuzzHandler
}

// FuzzMiniProgramCall: whatever a stranger posts to the mini-program
// contract, the answer is a 4xx or 2xx JSON body with an errMsg — never a
// 5xx, a panic or a non-JSON body.
func FuzzMiniProgramCall(f *testing.F) {
	h := fuzzServer(f)
	for _, s := range []struct{ api, body string }{
		{"navigateToMiniProgram", `{"caller":{"appId":"APPID"},"args":{"appId":"wx0000000000000000"}}`},
		{"openBusinessView", `{"caller":{"appId":"APPID","sdkVersion":"2.5.0"},"args":{"businessType":"wxpayScoreUse","extraData":{}}}`},
		{"openEmbeddedMiniProgram", `{"caller":{"appId":"APPID","platform":"alipay"},"args":{"appId":"2021004130621008","path":"/external/payment/trade/create/index?pay_id=1"}}`},
		{"plugin/navigate", `{"caller":{"appId":"APPID","appJson":{"plugins":{}}},"args":{"url":"plugin://issuer-plugin/login?type=1"}}`},
		{"app/launchMiniProgram", `{"caller":{"appId":"APPID"},"args":{"userName":"gh_5e259b7a73b1","path":"pages/invest_list/invest_list?mchid=1"}}`},
		{"requestPayment", `{"caller":{"appId":"APPID"},"args":{"timeStamp":1,"package":"x"}}`},
		{"navigateToMiniProgram", "{\"caller\":\xff}"},
		{"x/../../sandbox/v1/merchants", `[]`},
	} {
		f.Add(s.api, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, api string, body []byte) {
		body = bytes.ReplaceAll(body, []byte("APPID"), []byte(fuzzAppID))
		req, err := http.NewRequest(http.MethodPost, "/miniprogram/v1/"+api, bytes.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s: status %d for %q: %s", api, w.Code, body, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: not JSON (%d): %s", api, w.Code, w.Body)
		}
		if strings.HasPrefix(req.URL.Path, "/miniprogram/v1/") && w.Code != 404 && w.Code != 405 {
			if _, ok := out["errMsg"].(string); !ok {
				t.Fatalf("%s: no errMsg in %s", api, w.Body)
			}
		}
	})
}

// FuzzValidate: any document posted to the validate endpoint gets a 200
// verdict listing violations — malformed JSON included.
func FuzzValidate(f *testing.F) {
	h := fuzzServer(f)
	for _, s := range []string{`{}`, `{"caller":{"appId":1}}`, `[`, "\"\xff\"", `{"args":{"a":[1,2,{"b":null}]}}`, `1e999`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/sandbox/v1/validate/miniprogram/call", bytes.NewReader(body))
		// A local client of the loopback-bound server, as the QA page is.
		req.Host, req.RemoteAddr = "127.0.0.1:8080", "127.0.0.1:40000"
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 && w.Code != 400 && w.Code != 413 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("not JSON: %s", w.Body)
		}
		if w.Code == 200 {
			if v, _ := out["valid"].(bool); !v && len(out["violations"].([]any)) == 0 {
				t.Fatalf("invalid without a violation: %s", w.Body)
			}
		}
	})
}
