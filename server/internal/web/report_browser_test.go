package web

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestQAPageReportTab drives a careless P云 integration against the real
// binary — its receiver acknowledges a trade-notify whose sign does not
// verify, and it never queries the trade after the user is back — and
// reads the verdicts on the 报告 Report tab: the failed checks with their
// evidence, an evidence entry opening the exchange in the journal view, and
// the journal deep link the exports use.
func TestQAPageReportTab(t *testing.T) {
	b := newBrowser(t)
	s := startSandbox(t, "127.0.0.1:0")
	qa := b.ctx

	recv := newReceiver(t) // answers 1001 to everything
	p := newPCloud(t, s)
	// Value 115: the user pays at once and the first trade-notify carries a
	// wrong sign.
	payID := p.prepare(t, "QA-REPORT-1", "115", recv.URL+"/pcloud/notify")
	var out struct {
		SessionID string `json:"session_id"`
	}
	s.json(t, http.MethodPost, "/miniprogram/v1/openEmbeddedMiniProgram", map[string]any{
		"caller": map[string]any{"appId": p.miniAppID, "platform": "ios", "sdkVersion": "3.4.0"},
		"args":   map[string]any{"appId": "wxa204074068ad40ef", "path": "/external/payment/trade/create/index?pay_id=" + payID},
	}, http.StatusOK, &out)
	s.json(t, http.MethodGet, "/miniprogram/v1/sessions/"+out.SessionID+"/return?wait=5s", nil, http.StatusOK, nil)
	// The attempt is journalled once the receiver has answered it.
	var journal struct {
		Exchanges []struct {
			ID int64 `json:"id"`
		} `json:"exchanges"`
	}
	for deadline := time.Now().Add(10 * time.Second); len(journal.Exchanges) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no notify attempt in the journal within 10 s")
		}
		s.json(t, http.MethodGet, "/sandbox/v1/journal?direction=out&mchid="+demoMchID, nil, http.StatusOK, &journal)
	}

	badSig := `.report-product[data-product="embedpay"] .check[data-check="notify.bad_signature"]`
	do(t, qa, "open the report",
		// Chinese whatever an earlier test left in the profile.
		chromedp.Navigate(s.URL+"/?lang=zh#report"),
		visible(badSig+`[data-verdict="failed"]`),
		visible(`.report-product[data-product="embedpay"] .check[data-check="return.queried"][data-verdict="failed"]`),
		visible(`.report-product[data-product="payscore"] .check[data-check="notify.bad_signature"][data-verdict="not_exercised"]`),
	)
	card := get(t, qa, "read the check", text(badSig))
	for _, want := range []string{"未通过", "SECURITY", "trade-notify.md", "app_secret"} {
		if !strings.Contains(card, want) {
			t.Errorf("the bad-signature check lacks %q:\n%s", want, card)
		}
	}
	id := strconv.FormatInt(journal.Exchanges[0].ID, 10)
	do(t, qa, "open its evidence",
		click(badSig+` [data-exchange="`+id+`"]`),
		visible(`#detail .code`),
	)
	if detail := get(t, qa, "read the evidence", text(`#detail`)); !strings.Contains(detail, "#"+id) || !strings.Contains(detail, `"code": "1001"`) {
		t.Errorf("the evidence opens %q, want exchange #%s acknowledged with 1001", detail, id)
	}
	do(t, qa, "close it", click(`#detail .close`), chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	if failed := get(t, qa, "read the failed list", text(`.report-failed`)); !strings.Contains(failed, "Notifications with a bad signature refused") {
		t.Errorf("the failed checks list lacks the bad-signature check:\n%s", failed)
	}
	screenshot(t, qa, "report")

	// The tab renders again in English after the click: wait for it, not
	// just for the check, which the Chinese rendering already shows.
	do(t, qa, "English", click(`[data-lang="en"]`), visible(badSig),
		chromedp.Poll[chromedp.Void](`document.querySelector(`+strconv.Quote(badSig+` .badge`)+`)?.textContent === "failed"`))
	if v := get(t, qa, "read the verdict", text(badSig+` .badge`)); v != "failed" {
		t.Errorf("the verdict reads %q in English, want failed", v)
	}
	do(t, qa, "back to Chinese", click(`[data-lang="zh"]`))

	do(t, qa, "follow an export's journal link",
		chromedp.Navigate(s.URL+"/#journal/"+id),
		visible(`#detail .code`),
	)
	if detail := get(t, qa, "read the linked exchange", text(`#detail`)); !strings.Contains(detail, "#"+id) {
		t.Errorf("/#journal/%s opens %q", id, detail)
	}
}
