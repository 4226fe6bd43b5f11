package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

const demoMchID = "1230000109"

// receiver is the merchant's notify_url on loopback: it answers P云's
// acknowledgement and keeps what it was sent.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []url.Values
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(b))
		r.mu.Lock()
		r.got = append(r.got, form)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"code":"1001","message":"通知成功","hint":""}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]url.Values(nil), r.got...)
}

// pcloud is the demo merchant's P云 side.
type pcloud struct {
	s                       *server
	appID, secret, merchant string
	miniAppID               string
}

func newPCloud(t *testing.T, s *server) *pcloud {
	t.Helper()
	var c map[string]any
	s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/credentials", nil, http.StatusOK, &c)
	str := func(k string) string { v, _ := c[k].(string); return v }
	return &pcloud{s: s, appID: str("pcloud_app_id"), secret: str("pcloud_app_secret"), merchant: str("pcloud_merchant"), miniAppID: str("appid")}
}

// form posts P云 parameters, signed unless sign is set, and decodes the
// answer (P云 answers 200 whatever happens).
func (p *pcloud) form(t *testing.T, path string, params map[string]string) map[string]any {
	t.Helper()
	if _, ok := params["sign"]; !ok {
		params["sign"] = wxsign.PCloudSign(params, p.secret)
	}
	v := url.Values{}
	for k, s := range params {
		v.Set(k, s)
	}
	status, body := p.s.do(t, http.MethodPost, path, "application/x-www-form-urlencoded", []byte(v.Encode()))
	var out map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		t.Fatalf("POST %s: %d %s", path, status, body)
	}
	return out
}

// prepare makes a trade of value fen and returns its pay_id.
func (p *pcloud) prepare(t *testing.T, payOrder, value, notifyURL string) string {
	t.Helper()
	out := p.form(t, "/gate/1.0/payment/trade/prepare", map[string]string{
		"app_id": p.appID, "merchant": p.merchant, "pay_order": payOrder, "subject": "停车支付 川A12345", "value": value,
		"notify_url": notifyURL, "trade_scene": "GENERIC", "sign_type": "MD5",
		"timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
	})
	id, _ := out["pay_id"].(string)
	if out["code"] != "1001" || id == "" {
		t.Fatalf("prepare %s: %v", payOrder, out)
	}
	return id
}

// openCashier is the merchant's wx.openEmbeddedMiniProgram to the P云
// cashier; it returns the session id.
func (p *pcloud) openCashier(t *testing.T, payID string) string {
	t.Helper()
	var out struct {
		ErrMsg    string `json:"errMsg"`
		SessionID string `json:"session_id"`
		Mode      string `json:"mode"`
		State     string `json:"state"`
	}
	p.s.json(t, http.MethodPost, "/miniprogram/v1/openEmbeddedMiniProgram", map[string]any{
		"caller": map[string]any{"appId": p.miniAppID, "platform": "ios", "sdkVersion": "3.4.0"},
		"args":   map[string]any{"appId": "wxa204074068ad40ef", "path": "/external/payment/trade/create/index?pay_id=" + payID},
	}, http.StatusOK, &out)
	if out.ErrMsg != "openEmbeddedMiniProgram:ok" || out.SessionID == "" {
		t.Fatalf("openEmbeddedMiniProgram: %+v", out)
	}
	if out.Mode != "manual" || out.State != "pending" {
		t.Fatalf("value 199 launches mode %q state %q, want a pending manual session", out.Mode, out.State)
	}
	return out.SessionID
}

// Shorthands for the steps the tests repeat.
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}
func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
func text(sel string) chromedp.Action[string]         { return chromedp.Text(chromedp.CSS(sel)) }

// TestQAPageRunsAManualEmbedPaySession is the acceptance test: in
// a real browser against the real binary, QA activates a scenario, a
// manual P云 half-screen payment waits for them, they click "pay" on the
// stand-in cashier, and the notify attempt shows up in the live journal of
// another tab without a reload.
func TestQAPageRunsAManualEmbedPaySession(t *testing.T) {
	b := newBrowser(t)
	s := startSandbox(t, "127.0.0.1:0")
	qa := b.ctx

	// The overview: the demo merchant, its credentials, the clock.
	do(t, qa, "open the overview",
		chromedp.Navigate(s.URL+"/"),
		visible(`.merchant[data-mchid="`+demoMchID+`"]`),
		visible(`.cred[data-field="api_v3_key"]`),
	)
	if hidden := get(t, qa, "read a secret", text(`.cred[data-field="api_v3_key"] .cred-value`)); strings.ContainsAny(hidden, "0123456789abcdef") {
		t.Errorf("the API v3 key shows %q before it is revealed", hidden)
	}
	screenshot(t, qa, "overview")

	// Activate a scenario with one click; the card is marked and the admin
	// API agrees.
	do(t, qa, "activate embedpay.manual",
		chromedp.Navigate(s.URL+"/#scenarios/embedpay"),
		visible(`[data-scenario="embedpay.manual"] [data-op="activate"]`),
		click(`[data-scenario="embedpay.manual"] [data-op="activate"]`),
		visible(`[data-scenario="embedpay.manual"].active`),
	)
	var active struct {
		Products map[string]struct {
			Active struct {
				ID   string `json:"id"`
				Once bool   `json:"once"`
			} `json:"active"`
		} `json:"products"`
	}
	s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/scenarios", nil, http.StatusOK, &active)
	if got := active.Products["embedpay"].Active; got.ID != "embedpay.manual" || got.Once {
		t.Fatalf("active embedpay scenario after the click: %+v, want embedpay.manual for every launch", got)
	}
	screenshot(t, qa, "scenarios")

	// The journal tab is open and live before anything happens.
	do(t, qa, "open the live journal",
		chromedp.Navigate(s.URL+"/#journal"),
		visible(`body[data-live="on"]`),
		// A reload would lose this mark.
		chromedp.Evaluate[chromedp.Void](`window.noReload = true`),
	)

	// The merchant's backend prepares a trade with the magic value 199 and
	// its mini-program opens the cashier.
	recv := newReceiver(t)
	p := newPCloud(t, s)
	payID := p.prepare(t, "QA20250301001", "199", recv.URL+"/pcloud/notify")
	// A malformed prepare too, so the journal has violations to show.
	bad := p.form(t, "/gate/1.0/payment/trade/prepare", map[string]string{"app_id": p.appID, "value": "1.00", "sign": "0"})
	if bad["code"] != "400" {
		t.Fatalf("a prepare without merchant and with value 1.00: %v, want code 400", bad)
	}
	sessionID := p.openCashier(t, payID)

	do(t, qa, "see the launch arrive live", visible(`.xrow[data-session="`+sessionID+`"]`))

	// Sessions: the manual one waits for a person.
	act := b.tab(t)
	do(t, act, "list the waiting session",
		chromedp.Navigate(s.URL+"/#sessions"),
		visible(`.session[data-session="`+sessionID+`"].waiting [data-op="act"]`),
	)

	// Act as the user at the session's stable URL: the half-screen cashier.
	do(t, act, "open the stand-in cashier",
		chromedp.Navigate(s.URL+"/act/"+sessionID),
		visible(`.act[data-product="embedpay"] .sheet [data-action="pay"]`),
	)
	// It shows what the user pays: the trade's value (199 fen), from the
	// session's subject.
	if amount := get(t, act, "read the amount", text(`.sheet .ep-value`)); amount != "¥1.99" {
		t.Errorf("the cashier shows %q as the amount, want ¥1.99", amount)
	}
	for _, a := range []string{"fail", "paying", "close"} {
		if n := get(t, act, "find "+a, chromedp.Evaluate[int](`document.querySelectorAll('.sheet [data-action="`+a+`"]').length`)); n != 1 {
			t.Errorf("the cashier has %d %q buttons, want 1", n, a)
		}
	}
	screenshot(t, act, "act-embedpay")
	do(t, act, "pay",
		click(`.sheet [data-action="pay"]`),
		visible(`.act[data-state="returned"]`),
	)
	var sess struct {
		Session struct {
			State  string          `json:"state"`
			Action string          `json:"action"`
			Return json.RawMessage `json:"return"`
		} `json:"session"`
	}
	s.json(t, http.MethodGet, "/sandbox/v1/sessions/"+sessionID, nil, http.StatusOK, &sess)
	if sess.Session.State != "returned" || sess.Session.Action != "pay" || !strings.Contains(string(sess.Session.Return), `"status":1`) {
		t.Fatalf("session after the click: %+v %s, want returned by pay with status 1", sess.Session, sess.Session.Return)
	}
	screenshot(t, act, "act-returned")

	// The notify attempt appears in the first tab's journal, live.
	attempt := `.xrow[data-direction="out"][data-product="embedpay"]`
	do(t, qa, "see the notify attempt live", visible(attempt))
	if !get(t, qa, "check for a reload", chromedp.Evaluate[bool](`window.noReload === true`)) {
		t.Fatal("the journal tab was reloaded; the attempt must arrive over the event stream")
	}
	if got := recv.received(); len(got) == 0 || got[0].Get("pay_order") != "QA20250301001" || got[0].Get("status") != "1" {
		t.Fatalf("the notify_url received %v, want the paid trade-notify", got)
	}
	do(t, qa, "open the attempt", click(attempt), visible(`#detail .code`))
	detail := get(t, qa, "read the attempt", text(`#detail`))
	for _, want := range []string{"pay_order = QA20250301001", "status = 1", `"code": "1001"`} {
		if !strings.Contains(detail, want) {
			t.Errorf("the attempt's detail lacks %q:\n%s", want, detail)
		}
	}
	screenshot(t, qa, "journal-notify")

	// The malformed prepare: each violation with its path.
	do(t, qa, "open the bad prepare",
		click(`#detail .close`),
		click(`.xrow[data-product="embedpay"][data-status="200"] .badge.bad`),
		visible(`#detail .violations`),
	)
	detail = get(t, qa, "read the violations", text(`#detail .violations`))
	for _, want := range []string{"/merchant", "/value"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the bad prepare's violations lack %s:\n%s", want, detail)
		}
	}
	screenshot(t, qa, "journal-violations")

	// Notifications, per order, with their attempts.
	delivered := `.order .notification[data-state="delivered"]`
	do(t, qa, "open the notifications",
		click(`#detail .close`),
		chromedp.Navigate(s.URL+"/#notifications"),
		visible(delivered+` [data-op="attempts"]`),
		click(delivered+` [data-op="attempts"]`),
		visible(`table.attempts tbody tr`),
	)
	if row := get(t, qa, "read the attempt row", text(`table.attempts tbody tr`)); !strings.Contains(row, "200") || !strings.Contains(row, "ms") {
		t.Errorf("the attempt row reads %q, want its status 200 and latency", row)
	}
	// The controls: fail the next attempt, redeliver now (it fails and is
	// rescheduled on the sandbox clock), hold and release it, then advance
	// the clock with its button to bring the retry, which arrives.
	n := `.order .notification`
	do(t, qa, "fail the next one", click(n+` [data-op="fail-next"]`), visible(n+`[data-fail-next="1"]`))
	do(t, qa, "redeliver", click(n+` [data-op="redeliver"]`), visible(n+`[data-attempts="2"][data-state="pending"][data-fail-next="0"]`))
	do(t, qa, "hold", click(n+` [data-op="hold"]`), visible(n+`[data-state="held"] [data-op="release"]`))
	do(t, qa, "release", click(n+` [data-op="release"]`), visible(n+`[data-state="pending"] [data-op="hold"]`))
	do(t, qa, "advance the clock", click(`[data-advance="1m"]`), visible(n+`[data-attempts="3"][data-state="delivered"]`),
		visible(`table.attempts tbody tr:nth-child(3)`))
	if got := recv.received(); len(got) != 2 {
		t.Errorf("the notify_url received %d requests, want 2: the first and the retry, not the attempt made to fail", len(got))
	}
	rows := get(t, qa, "read the attempts", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('table.attempts tbody tr')).map((r) => r.innerText)`))
	if len(rows) != 3 || !strings.Contains(rows[0], "200") || strings.Contains(rows[1], "200") || !strings.Contains(rows[2], "200") {
		t.Errorf("attempts read %q, want 200, a failure, 200", rows)
	}
	screenshot(t, qa, "notifications")

	// English on the switch.
	do(t, qa, "switch to English", click(`[data-lang="en"]`))
	if tab := get(t, qa, "read a tab", text(`#tabs a[data-view="notifications"]`)); tab != "Notifications" {
		t.Errorf("the notifications tab reads %q in English", tab)
	}
	do(t, qa, "English journal", chromedp.Navigate(s.URL+"/#journal"), visible(attempt))
	screenshot(t, qa, "journal-en")
	do(t, qa, "back to Chinese", click(`[data-lang="zh"]`))
}

// TestQAPageAsksForTheTokenOffLoopback binds the sandbox to every address:
// the page and the act page show the token prompt and no data until a
// token is given, and a merchant token sees its merchant only.
func TestQAPageAsksForTheTokenOffLoopback(t *testing.T) {
	const adminToken = "mps_web_test_admin_token"
	b := newBrowser(t)
	s := startSandbox(t, "0.0.0.0:0", "--admin-token", adminToken)
	ctx := b.ctx

	noData := func(t *testing.T, ctx context.Context) {
		t.Helper()
		do(t, ctx, "wait for the prompt", visible(`#token-prompt #token-input`))
		if body := get(t, ctx, "read the page", text(`body`)); strings.Contains(body, demoMchID) || strings.Contains(body, "演示商户") {
			t.Errorf("the page shows merchant data without a token:\n%s", body)
		}
		if !get(t, ctx, "look for more", chromedp.Evaluate[bool](`document.getElementById('tabs').hidden && document.querySelectorAll('#main .card').length === 1`)) {
			t.Error("the page shows more than the token prompt without a token")
		}
	}
	t.Run("page", func(t *testing.T) {
		do(t, ctx, "open", chromedp.Navigate(s.URL+"/#overview"))
		noData(t, ctx)
		screenshot(t, ctx, "token-prompt")
	})
	t.Run("act", func(t *testing.T) {
		do(t, ctx, "open", chromedp.Navigate(s.URL+"/act/ses_0123456789abcdef01234567"))
		noData(t, ctx)
	})
	t.Run("wrong token", func(t *testing.T) {
		do(t, ctx, "enter a wrong token",
			chromedp.Navigate(s.URL+"/"),
			visible(`#token-input`),
			chromedp.SendKeys(chromedp.CSS(`#token-input`), "not-a-token"),
			click(`#token-prompt button[type=submit]`),
			visible(`#token-prompt p.bad`),
		)
		noData(t, ctx)
	})
	t.Run("admin token", func(t *testing.T) {
		do(t, ctx, "enter the admin token",
			chromedp.SetValue(chromedp.CSS(`#token-input`), adminToken),
			click(`#token-prompt button[type=submit]`),
			visible(`.merchant[data-mchid="`+demoMchID+`"]`),
			visible(`body[data-live="on"]`),
			// The tab keeps the token across a reload.
			chromedp.Reload(),
			visible(`.merchant[data-mchid="`+demoMchID+`"]`),
		)
	})
	t.Run("merchant token", func(t *testing.T) {
		s.token = adminToken
		s.json(t, http.MethodPost, "/sandbox/v1/merchants", map[string]any{"mchid": "1900000001", "name": "另一个商户 Other"}, http.StatusCreated, nil)
		var c map[string]any
		s.json(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/credentials", nil, http.StatusOK, &c)
		merchantToken, _ := c["merchant_token"].(string)
		if merchantToken == "" {
			t.Fatalf("the demo merchant has no merchant_token: %v", c)
		}
		const options = `Array.from(document.querySelectorAll('#merchant option')).map((o) => o.value)`
		tab := b.tab(t)
		do(t, tab, "open with the merchant token",
			chromedp.Navigate(s.URL+"/?token="+url.QueryEscape(merchantToken)+"#overview"),
			visible(`.merchant[data-mchid="`+demoMchID+`"]`),
		)
		if got := get(t, tab, "list merchants", chromedp.Evaluate[[]string](options)); len(got) != 1 || got[0] != demoMchID {
			t.Errorf("a merchant token's page offers merchants %v, want only %s", got, demoMchID)
		}
		if loc := get(t, tab, "read the address", chromedp.Location()); strings.Contains(loc, "token") {
			t.Errorf("the address bar keeps the token: %s", loc)
		}
		do(t, ctx, "the admin tab sees both", chromedp.Reload(), visible(`.merchant[data-mchid="1900000001"]`))
		if got := get(t, ctx, "list merchants", chromedp.Evaluate[[]string](options)); len(got) != 2 {
			t.Errorf("the admin token's page offers merchants %v, want both", got)
		}
	})
}
