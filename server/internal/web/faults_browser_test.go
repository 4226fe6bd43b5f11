package web

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestQAPageSwitchesKeyModeAndScriptsAPIFaults: in a real browser against
// the real binary, the overview switches the merchant's platform key mode
// and scripts, lists and deletes an API fault — each a call of the admin
// API, which agrees afterwards.
func TestQAPageSwitchesKeyModeAndScriptsAPIFaults(t *testing.T) {
	b := newBrowser(t)
	s := startSandbox(t, "127.0.0.1:0")
	qa := b.ctx
	type view struct {
		KeyMode   string `json:"platform_key_mode"`
		APIFaults []struct {
			ID, Method, Path, Kind string
			Remaining              int
		} `json:"api_faults"`
	}
	read := func() view {
		var v view
		s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID, nil, http.StatusOK, &v)
		return v
	}

	do(t, qa, "switch to the certificate",
		chromedp.Navigate(s.URL+"/"),
		visible(`#keymode [data-key-mode="public_key"].on`),
		click(`#keymode [data-key-mode="certificate"]`),
		visible(`#keymode [data-key-mode="certificate"].on`),
	)
	if got := read().KeyMode; got != "certificate" {
		t.Fatalf("platform_key_mode after the click: %q, want certificate", got)
	}
	screenshot(t, qa, "key-mode")

	do(t, qa, "script a fault",
		chromedp.SetValue(chromedp.CSS(`#api-fault-form [name="method"]`), "POST"),
		chromedp.SetValue(chromedp.CSS(`#api-fault-form [name="path"]`), "/v3/payscore/serviceorder/*/complete"),
		chromedp.SetValue(chromedp.CSS(`#api-fault-form [name="kind"]`), "rate_limited"),
		chromedp.SetValue(chromedp.CSS(`#api-fault-form [name="times"]`), "3"),
		click(`#api-fault-form button[type="submit"]`),
		visible(`#api-faults .api-fault[data-kind="rate_limited"]`),
	)
	v := read()
	if len(v.APIFaults) != 1 || v.APIFaults[0].Method != "POST" || v.APIFaults[0].Path != "/v3/payscore/serviceorder/*/complete" || v.APIFaults[0].Remaining != 3 {
		t.Fatalf("api_faults after the form: %+v", v.APIFaults)
	}
	screenshot(t, qa, "api-faults")

	do(t, qa, "delete it",
		click(`#api-faults [data-fault="`+v.APIFaults[0].ID+`"] [data-op="delete"]`),
		chromedp.WaitNotPresent(chromedp.CSS(`#api-faults .api-fault`)),
	)
	if got := read().APIFaults; len(got) != 0 {
		t.Errorf("api_faults after delete: %+v", got)
	}
}
