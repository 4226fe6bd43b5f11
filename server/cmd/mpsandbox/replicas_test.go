package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// loggedToken is the admin token a process logged, "" when none.
func loggedToken(p *testproc.Proc) string {
	sc := bufio.NewScanner(strings.NewReader(p.Log()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg   string `json:"msg"`
			Token string `json:"admin_token"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Token != "" {
			return rec.Token
		}
	}
	return ""
}

// TestPostgresReplicasShareTokenCAAndClock starts replicas on one
// database with --tls-self-signed and --clock-scale 60, the second a
// second after the first, a third bound off loopback: they answer to the
// same generated admin token (printed only by the replica that made it
// and by those on loopback),
// serve certificates of the same CA (a client trusting the CA it fetched
// from one trusts the other), and tell the same sandbox time, though their
// scaled clocks started a second (a sandbox minute) apart.
func TestPostgresReplicasShareTokenCAAndClock(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	opts := testproc.Options{DatabaseURL: url, Flags: []string{"--tls-self-signed", "--clock-scale", "60", "--public-name", "sandbox.example.test"}}
	a := testproc.Start(t, opts)
	time.Sleep(time.Second)
	b := testproc.Start(t, opts)
	https := func(p *testproc.Proc) string { return "https" + strings.TrimPrefix(p.URL, "http") }

	if !strings.Contains(a.Log(), `"msg":"admin_token_generated"`) || !strings.Contains(a.Log(), `"msg":"tls_ca_created"`) {
		t.Errorf("the first replica did not make the token and the CA:\n%s", a.Log())
	}
	if strings.Contains(b.Log(), `"msg":"admin_token_generated"`) || strings.Contains(b.Log(), `"msg":"tls_ca_created"`) {
		t.Errorf("the second replica made a token or a CA of its own:\n%s", b.Log())
	}
	token := loggedToken(a)
	if token == "" || loggedToken(b) != token {
		t.Fatalf("admin tokens: first %q, second %q; want one, the same", token, loggedToken(b))
	}

	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	caPEM := get(t, insecure, https(a)+"/sandbox/v1/ca.pem")
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", caPEM)
	}
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get(t, trusting, https(b)+"/readyz")

	// GET /sandbox/v1/merchants on p, by host when given, with a token
	// when given.
	admin := func(p *testproc.Proc, host, auth string) int {
		req, _ := http.NewRequest("GET", https(p)+"/sandbox/v1/merchants", nil)
		if host != "" {
			req.Host = host
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := trusting.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// A client by a public name is not local: it needs the token, on
	// either replica.
	for _, p := range []*testproc.Proc{a, b} {
		for auth, want := range map[string]int{"": 401, token: 200} {
			if got := admin(p, "sandbox.example.test", auth); got != want {
				t.Errorf("%s by its public name with token %q: %d, want %d", p.URL, auth, got, want)
			}
		}
	}

	// A third replica bound off loopback requires the token of everyone,
	// and does not print it: it was logged once, by the replica that made it.
	wide := opts
	wide.Addr = "0.0.0.0:0"
	c := testproc.Start(t, wide)
	if strings.Contains(c.Log(), token) || !strings.Contains(c.Log(), `"msg":"admin_token_loaded"`) {
		t.Errorf("the replica off loopback printed the token or did not say it loaded it:\n%s", c.Log())
	}
	for auth, want := range map[string]int{"": 401, token: 200} {
		if got := admin(c, "", auth); got != want {
			t.Errorf("off loopback with token %q: %d, want %d", auth, got, want)
		}
	}

	now := func(p *testproc.Proc) time.Time {
		var out struct {
			Now time.Time `json:"now"`
		}
		if err := json.Unmarshal(get(t, trusting, https(p)+"/sandbox/v1/clock?mchid="+demoMchID), &out); err != nil {
			t.Fatal(err)
		}
		return out.Now
	}
	// Read back to back, the two clocks differ by the scaled time between
	// the reads (60 × a few ms), not by the scaled second between starts.
	ta, tb := now(a), now(b)
	if d := tb.Sub(ta); d < 0 || d > 10*time.Second {
		t.Errorf("the replicas' sandbox times differ by %v, want under 10s at scale 60", d)
	}
}

// fleet is a client of several replicas on fixed loopback ports, as a
// client behind a load balancer sees them: a request that fails to
// connect, or whose connection is closed before an answer, is sent again
// to the next replica. Any answer, whatever its status, is final.
type fleet struct {
	bases   []string
	retries atomic.Int64
}

// freeAddrs reserves n loopback addresses for replicas that must come back
// on the same port after a restart.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	return addrs
}

// on is a caller of path-only URLs that starts at replica k.
func (f *fleet) on(k int) caller {
	return func(method, path string, header http.Header, body any) (int, []byte, error) {
		var errs []error
		for i := range 100 {
			status, raw, err := call(method, f.bases[(k+i)%len(f.bases)]+path, header, body)
			if err == nil {
				return status, raw, nil
			}
			errs = append(errs, err)
			f.retries.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		return 0, nil, fmt.Errorf("%s %s: every replica refused: %w", method, path, errors.Join(errs...))
	}
}

// TestPostgresRollingRestart runs three replicas of the binary on one
// database and restarts them one after the other (SIGTERM, wait for the
// exit, start again on the same port) while four clients pay P云 trades
// through them, each trade prepared on one replica and paid on the next.
// A client retries on another replica when a connection fails, as behind
// a load balancer; no request may fail otherwise. Every trade is then
// found, and its trade-notify delivered once.
func TestPostgresRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	addrs := freeAddrs(t, 3)
	procs := make([]*testproc.Proc, 3)
	f := &fleet{}
	for i, addr := range addrs {
		procs[i] = testproc.Start(t, testproc.Options{DatabaseURL: url, Addr: addr})
		f.bases = append(f.bases, procs[i].URL)
	}
	c := credsOf(t, f.bases[0], demoMchID)
	ledger := newLedger(t, c.PCloudSecret, 0)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid := map[string]bool{}
	var failures []string
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				po := fmt.Sprintf("RR-%d-%05d", w, i)
				k := w + i
				payID, err := prepareBy(f.on(k), "", c, po, valuePayNowNotifyLate, ledger.URL+"/notify")
				if err == nil {
					var status int
					var raw []byte
					if status, raw, err = jumpBy(f.on(k+1), "", c, payID); err == nil && status != 200 {
						err = fmt.Errorf("jump %s: %d %s", po, status, raw)
					}
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					paid[po] = true
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(paid)
	}
	rounds := 1
	if soak() {
		rounds = 5
	}
	time.Sleep(500 * time.Millisecond)
	for range rounds {
		for i, p := range procs {
			before := count()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(); err != nil {
				t.Fatalf("replica %d after SIGTERM: %v\n%s", i, err, p.Log())
			}
			procs[i] = testproc.Start(t, testproc.Options{DatabaseURL: url, Addr: addrs[i]})
			// Load goes on through the others, then through all three.
			eventually(t, 30*time.Second, "trades paid after the restart", func() bool { return count() >= before+20 })
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d trades paid during %d rolling restarts of 3 replicas; %d requests retried on another replica", len(paid), rounds, f.retries.Load())
	if len(failures) > 0 {
		t.Fatalf("%d of %d flows failed during the rolling restart; the first: %s", len(failures), len(failures)+len(paid), failures[0])
	}
	if f.retries.Load() == 0 {
		t.Log("no request needed a retry: the restarts fell between requests")
	}

	advance(t, f.bases[0], demoMchID, 61*time.Second)
	eventually(t, 60*time.Second, "every trade-notify delivered", func() bool { return len(ledger.missing(paid)) == 0 })
	time.Sleep(time.Second) // time for a second delivery, were there one
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for po, n := range ledger.got {
		if n != 1 {
			t.Errorf("trade-notify of %s delivered %d times, want once", po, n)
		}
	}
}

// sseEvent is one exchange event of the journal stream.
type sseEvent struct {
	ID  int64
	URL string
}

// journalStream opens GET /sandbox/v1/journal/stream on base (resuming
// after lastID when it is not negative) and sends its exchange events on
// the channel until the test ends.
func journalStream(t *testing.T, base string, lastID int64) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/sandbox/v1/journal/stream", nil)
	if lastID >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	res, err := (&http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}).Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("journal stream on %s: %v %v", base, res, err)
	}
	out := make(chan sseEvent, 4096)
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "data: "):
				var x struct {
					URL string `json:"url"`
				}
				_ = json.Unmarshal([]byte(line[6:]), &x)
				ev.URL = x.URL
			case line == "" && ev.ID != 0:
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

// counter is a notify_url that acknowledges everything with ack and
// counts what arrives.
func counter(t *testing.T, ack string) (url string, count func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(ack))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/notify", func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// returned long-polls a session's return on base and fails the test
// unless the user came back within the wait.
func returned(t *testing.T, base, sessionID string) map[string]any {
	t.Helper()
	status, raw, err := call("GET", base+"/miniprogram/v1/sessions/"+sessionID+"/return?wait=20s", nil, nil)
	var out map[string]any
	if err != nil || status != 200 || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("return of %s long-polled on %s: %d %v %s", sessionID, base, status, err, raw)
	}
	return out
}

// launched is a mini-program call on base that must open a session.
func launched(t *testing.T, base, api string, body map[string]any) string {
	t.Helper()
	var out struct {
		ErrMsg    string `json:"errMsg"`
		SessionID string `json:"session_id"`
	}
	mustJSON(t, "POST", base+"/miniprogram/v1/"+api, body, 200, &out)
	if out.SessionID == "" || !strings.HasSuffix(out.ErrMsg, ":ok") {
		t.Fatalf("%s on %s: %+v", api, base, out)
	}
	return out.SessionID
}

// deliveredOnce waits until every notification of the merchant about refs
// is delivered, then checks each was sent once, at its first attempt, and
// that the receiver got exactly that many.
func deliveredOnce(t *testing.T, base, mchid string, refs []string, got func() int) {
	t.Helper()
	var rows []notificationRow
	eventually(t, 30*time.Second, "the notifications delivered", func() bool {
		rows = rows[:0]
		for _, ref := range refs {
			ns := notificationsOf(t, base, mchid, ref)
			if len(ns) == 0 {
				return false
			}
			for _, n := range ns {
				if n.State != "delivered" {
					return false
				}
			}
			rows = append(rows, ns...)
		}
		return got() >= len(rows)
	})
	time.Sleep(time.Second) // time for a second delivery, were there one
	if got() != len(rows) {
		t.Errorf("the receiver got %d requests for %d notifications, want one each", got(), len(rows))
	}
	for _, n := range rows {
		if n.Attempts != 1 {
			t.Errorf("notification %s took %d attempts, want 1", n.ID, n.Attempts)
		}
	}
}

// TestPostgresThreeReplicaFlows runs three replicas of the binary on one
// database and drives a flow of each product with its steps on different
// replicas: the record made on A, the jump on B, the return long-polled on
// C, the query on A; each notification is delivered once. Ten Pay Score
// sessions fall due together on all three schedulers, and each order
// still gets one PAYSCORE.USER_CONFIRM. Meanwhile a journal stream on C
// shows the exchanges of all three replicas in id order, and a client
// that resumes on A with the Last-Event-ID of C's stream gets exactly the
// entries that followed.
func TestPostgresThreeReplicaFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	var r [3]*testproc.Proc
	for i := range r {
		r[i] = testproc.Start(t, testproc.Options{DatabaseURL: url})
	}
	a, b, c := r[0].URL, r[1].URL, r[2].URL
	stream := journalStream(t, c, -1)
	cr := credsOf(t, a, demoMchID)
	var ed struct {
		APIv2Key string `json:"api_v2_key"`
	}
	mustJSON(t, "GET", a+"/sandbox/v1/merchants/"+demoMchID+"/credentials", nil, 200, &ed)
	caller := map[string]any{"appId": cr.AppID, "platform": "android", "sdkVersion": "3.4.0"}

	t.Run("embedpay", func(t *testing.T) {
		notifyURL, got := counter(t, `{"code":"1001","message":"通知成功"}`)
		payID, err := prepare(a, cr, "3R-EMBED-1", valuePayNowNotifyLate, notifyURL)
		if err != nil {
			t.Fatal(err)
		}
		id := launched(t, b, "openEmbeddedMiniProgram", map[string]any{"caller": caller,
			"args": map[string]any{"appId": "wxa204074068ad40ef", "path": "/external/payment/trade/create/index?pay_id=" + payID}})
		returned(t, c, id)
		out, err := pcloudForm(a, "/gate/1.0/payment/trade/query", cr, map[string]string{"pay_order": "3R-EMBED-1"})
		if err != nil || out["code"] != "1001" {
			t.Fatalf("query on A: %v %v", out, err)
		}
		advance(t, b, demoMchID, 61*time.Second) // the trade-notify falls due
		deliveredOnce(t, a, demoMchID, []string{"3R-EMBED-1"}, got)
	})

	t.Run("payscore", func(t *testing.T) {
		notifyURL, got := counter(t, `{"code":"SUCCESS","message":"成功"}`)
		n := 10
		if soak() {
			n = 100
		}
		var sessions, orders []string
		for i := range n {
			order := fmt.Sprintf("3R-SCORE-%02d", i)
			status, out := v3Call(t, a, cr, "POST", "/v3/payscore/serviceorder", map[string]any{
				"out_order_no": order, "appid": cr.AppID, "service_id": cr.ServiceID, "service_introduction": "停车服务",
				"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
				"time_range":    map[string]any{"start_time": "OnAccept"},
				"risk_fund":     map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
				"notify_url":    notifyURL,
			})
			pkg, _ := out["package"].(string)
			if status != 200 || pkg == "" {
				t.Fatalf("create on A: %d %v", status, out)
			}
			extra := map[string]string{"mch_id": cr.MchID, "package": pkg, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
				"nonce_str": fmt.Sprintf("nonce%021d", i), "sign_type": "HMAC-SHA256"}
			sign, err := wxsign.V2Sign(extra, ed.APIv2Key, "HMAC-SHA256")
			if err != nil {
				t.Fatal(err)
			}
			extra["sign"] = sign
			sessions = append(sessions, launched(t, b, "openBusinessView", map[string]any{"caller": caller,
				"args": map[string]any{"businessType": "wxpayScoreUse", "extraData": extra}}))
			orders = append(orders, order)
		}
		// The user confirms 2 s after each jump, on whichever replica's
		// scheduler gets there first: all three wait for the same moments.
		for _, id := range sessions {
			returned(t, c, id)
		}
		for _, order := range orders {
			status, out := v3Call(t, a, cr, "GET", "/v3/payscore/serviceorder?service_id="+cr.ServiceID+"&appid="+cr.AppID+"&out_order_no="+order, nil)
			if status != 200 || out["state"] != "DOING" {
				t.Fatalf("query of %s on A: %d %v, want DOING", order, status, out)
			}
		}
		// One PAYSCORE.USER_CONFIRM per order: a session resolved twice
		// would have made two.
		var list struct {
			Notifications []struct {
				Ref   string `json:"ref"`
				Event string `json:"event"`
			} `json:"notifications"`
		}
		mustJSON(t, "GET", a+"/sandbox/v1/notifications?mchid="+demoMchID+"&product=payscore&limit=1000", nil, 200, &list)
		confirms := map[string]int{}
		for _, x := range list.Notifications {
			if x.Event == "PAYSCORE.USER_CONFIRM" {
				confirms[x.Ref]++
			}
		}
		var keys []string
		for _, order := range orders {
			found := 0
			for ref, k := range confirms {
				if strings.Contains(ref, order) {
					keys = append(keys, ref)
					found += k
				}
			}
			if found != 1 {
				t.Errorf("order %s has %d PAYSCORE.USER_CONFIRM notifications, want 1", order, found)
			}
		}
		deliveredOnce(t, a, demoMchID, keys, got)
	})

	t.Run("repayment", func(t *testing.T) {
		var u struct {
			OpenID string `json:"openid"`
		}
		mustJSON(t, "POST", a+"/sandbox/v1/vehicle-users", map[string]any{
			"mchid": demoMchID, "user_state": "OVERDUE", "advances": []map[string]any{{"amount": 1200}}}, 201, &u)
		id := launched(t, b, "navigateToMiniProgram", map[string]any{"caller": caller, "args": map[string]any{
			"appId": "wx5e73c65404eee268", "path": "pages/invest_list/invest_list",
			"extraData": map[string]any{"appid": "wx5e73c65404eee268", "mchid": demoMchID, "nonce_str": "3rnonce", "openid": u.OpenID}}})
		advance(t, a, demoMchID, 2*time.Second) // the user repays
		returned(t, c, id)
		var users struct {
			Users []struct {
				OpenID    string `json:"openid"`
				UserState string `json:"user_state"`
			} `json:"users"`
		}
		mustJSON(t, "GET", a+"/sandbox/v1/vehicle-users?mchid="+demoMchID, nil, 200, &users)
		i := slices.IndexFunc(users.Users, func(x struct {
			OpenID    string `json:"openid"`
			UserState string `json:"user_state"`
		}) bool {
			return x.OpenID == u.OpenID
		})
		if i < 0 || users.Users[i].UserState == "OVERDUE" {
			t.Errorf("on A after repaying through B, the user is %+v, want found and no longer OVERDUE", users.Users)
		}
	})

	t.Run("issuer", func(t *testing.T) {
		aj := map[string]any{"pages": []string{"pages/index/index", "pages/login/login"}, "functionalPages": true,
			"plugins": map[string]any{"issuer-plugin": map[string]any{"version": "1.0.0", "provider": "wx06bc6021dc900553"}}}
		id := launched(t, b, "plugin/navigate", map[string]any{"caller": map[string]any{"appId": cr.AppID, "platform": "android",
			"sdkVersion": "3.4.0", "appJson": aj}, "args": map[string]any{
			"url": "plugin://issuer-plugin/login?etcProductId=P1001&accountType=1&carType=0&redirectUrl=/pages/login/login&mobile=13800138000"}})
		advance(t, a, demoMchID, 2*time.Second)
		returned(t, c, id)
		var sess struct {
			State string `json:"state"`
		}
		mustJSON(t, "GET", a+"/sandbox/v1/sessions/"+id, nil, 200, &sess)
		if sess.State == "pending" {
			t.Errorf("the session is pending on A after its return on C")
		}
	})

	// The stream on C: every replica's exchanges, in id order.
	var seen []sseEvent
	urls := map[string]bool{}
	deadline := time.After(15 * time.Second)
collect:
	for {
		select {
		case ev := <-stream:
			if len(seen) > 0 && ev.ID <= seen[len(seen)-1].ID {
				t.Fatalf("the stream sent id %d after %d", ev.ID, seen[len(seen)-1].ID)
			}
			seen = append(seen, ev)
			path, _, _ := strings.Cut(ev.URL, "?")
			urls[path] = true
			if urls["/gate/1.0/payment/trade/prepare"] && urls["/v3/payscore/serviceorder"] && // A's
				urls["/miniprogram/v1/openEmbeddedMiniProgram"] && urls["/miniprogram/v1/plugin/navigate"] { // B's
				break collect
			}
		case <-deadline:
			t.Fatalf("after 15s the stream on C showed %d entries %v, want A's prepares and creates and B's jumps", len(seen), seen)
		}
	}
	if len(seen) < 4 {
		t.Fatalf("the stream saw %d entries", len(seen))
	}
	// Resume on A from the middle of what C sent: exactly what followed.
	mid := seen[len(seen)/2].ID
	resumed := journalStream(t, a, mid)
	for _, want := range seen[len(seen)/2+1:] {
		select {
		case ev := <-resumed:
			if ev.ID != want.ID {
				t.Fatalf("resumed on A after %d: got %d, want %d (what C's stream sent next)", mid, ev.ID, want.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("resumed on A after %d: %d never came", mid, want.ID)
		}
	}
}
