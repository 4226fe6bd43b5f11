package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// notifyLedger is a merchant's notify_url: it checks each trade-notify's
// MD5 sign with the merchant's secret, acknowledges it, and remembers which
// pay_orders arrived.
type notifyLedger struct {
	*httptest.Server
	secret string
	delay  time.Duration

	mu       sync.Mutex
	got      map[string]int
	forged   int
	inflight int // attempts being answered
}

func newLedger(t testing.TB, secret string, delay time.Duration) *notifyLedger {
	l := &notifyLedger{secret: secret, delay: delay, got: map[string]int{}}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		params := map[string]string{}
		for k := range r.PostForm {
			params[k] = r.PostForm.Get(k)
		}
		l.mu.Lock()
		l.inflight++
		l.mu.Unlock()
		time.Sleep(l.delay)
		l.mu.Lock()
		l.inflight--
		if wxsign.PCloudVerify(params, l.secret, params["sign"]) != nil {
			l.forged++
		} else {
			l.got[params["pay_order"]]++
		}
		l.mu.Unlock()
		w.Write([]byte(`{"code":"1001","message":"通知成功"}`))
	}))
	t.Cleanup(l.Close)
	return l
}

// missing returns the pay_orders that never arrived.
func (l *notifyLedger) missing(want map[string]bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for po := range want {
		if l.got[po] == 0 {
			out = append(out, po)
		}
	}
	return out
}

// TestFaultKill9KeepsAcceptedWork kills the server with SIGKILL while
// notifications are being delivered, others are pending, and requests are
// in flight; after a restart on the same data dir every trade that was
// acknowledged is still there, every notification that was accepted is
// delivered, and the database and its journal are whole.
func TestFaultKill9KeepsAcceptedWork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	data := t.TempDir()
	rounds, first := 1, 40
	if soak() {
		rounds, first = 5, 300
	}
	p := testproc.Start(t, testproc.Options{DataDir: data})
	c := credsOf(t, p.URL, demoMchID)
	// A slow merchant keeps deliveries in flight when the kill comes.
	ledger := newLedger(t, c.PCloudSecret, 200*time.Millisecond)
	accepted := map[string]bool{} // jumps acknowledged: their trade-notify was accepted
	prepared := map[string]bool{} // prepares acknowledged: the trade must survive
	var mu sync.Mutex
	seq := atomic.Int64{}
	order := func(base string) error {
		po := fmt.Sprintf("K9-%06d", seq.Add(1))
		ok, err := paidOrder(base, c, po, ledger.URL+"/notify")
		mu.Lock()
		defer mu.Unlock()
		if ok {
			prepared[po] = true
		}
		if err == nil {
			accepted[po] = true
		}
		return err
	}
	for range first {
		if err := order(p.URL); err != nil {
			t.Fatal(err)
		}
	}
	for round := range rounds {
		// Due now: deliveries start. Then load, then the kill mid-flight.
		advance(t, p.URL, demoMchID, 61*time.Second)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for order(p.URL) == nil {
				}
			}()
		}
		// The kill comes once a delivery is in flight: on a loaded machine
		// the worker may take a while to start one.
		time.Sleep(300 * time.Millisecond)
		inflight, deadline := 0, time.Now().Add(10*time.Second)
		for {
			ledger.mu.Lock()
			inflight = ledger.inflight
			ledger.mu.Unlock()
			if inflight > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.Kill()
		wg.Wait()
		if inflight == 0 {
			t.Fatal("no delivery was in flight at the kill: the test did not test that")
		}
		mu.Lock()
		t.Logf("round %d: killed with %d deliveries in flight, %d trades acknowledged, %d notifications accepted, %d delivered",
			round+1, inflight, len(prepared), len(accepted), len(accepted)-len(ledger.missing(accepted)))
		mu.Unlock()
		p = testproc.Start(t, testproc.Options{DataDir: data})
	}
	// Whatever was accepted after the last advance falls due with this one.
	advance(t, p.URL, demoMchID, 61*time.Second)
	settle := 60 * time.Second
	if soak() {
		settle = 5 * time.Minute
	}
	eventually(t, settle, "every accepted trade-notify delivered", func() bool { return len(ledger.missing(accepted)) == 0 })
	if ledger.forged != 0 {
		t.Errorf("%d notifications did not verify with the merchant's secret", ledger.forged)
	}
	for po := range prepared {
		out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/query", c, map[string]string{"pay_order": po})
		if err != nil || out["code"] != "1001" {
			t.Fatalf("acknowledged trade %s after the kill: %v %v", po, out, err)
		}
	}
	p.Stop()
	checkDatabase(t, filepath.Join(data, "mpsandbox.db"))
}

// checkDatabase opens the closed database: SQLite's integrity check passes
// and every journal entry decodes whole.
func checkDatabase(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&verdict); err != nil || verdict != "ok" {
		t.Fatalf("integrity_check: %q %v", verdict, err)
	}
	rows, err := db.Query("SELECT id, json FROM journal")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			t.Fatal(err)
		}
		var x sandbox.Exchange
		if err := json.Unmarshal(doc, &x); err != nil || x.Method == "" || x.URL == "" || x.Direction == "" {
			t.Fatalf("journal entry %d is torn: %v %s", id, err, doc)
		}
		n++
	}
	if err := rows.Err(); err != nil || n == 0 {
		t.Fatalf("journal: %d entries, %v", n, err)
	}
}

// TestFaultNotifyReceivers points notifications at receivers that hang,
// reset the connection, answer 500 or answer slowly: each failure is
// retried on P云's schedule (15 s, 15 s, 30 s on the sandbox clock), one
// merchant's hanging receiver cannot take the whole worker pool, and
// another merchant's notifications keep flowing meanwhile.
func TestFaultNotifyReceivers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	hangs := 20 // more than one merchant's share of the 32 workers
	if soak() {
		hangs = 60
	}
	p := testproc.Start(t, testproc.Options{DataDir: t.TempDir()})
	stuck := credsOf(t, p.URL, demoMchID)
	failing := newMerchant(t, p.URL, "1900000071")
	healthy := newMerchant(t, p.URL, "1900000072")

	release := make(chan struct{})
	defer close(release)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		po := r.PostForm.Get("pay_order")
		switch {
		case strings.HasPrefix(po, "HANG-"):
			select { // until the worker gives up (5 s) or the test ends
			case <-r.Context().Done():
			case <-release:
			}
		case strings.HasPrefix(po, "RESET-"):
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		case strings.HasPrefix(po, "E500-"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasPrefix(po, "SLOW-"):
			time.Sleep(1500 * time.Millisecond)
			w.Write([]byte(`{"code":"1001"}`))
		}
	}))
	defer bad.Close()
	good := newLedger(t, healthy.PCloudSecret, 0)

	mk := func(c *merchantCreds, prefix string, n int, to string) []string {
		var pos []string
		for i := range n {
			po := fmt.Sprintf("%s%03d", prefix, i)
			if _, err := paidOrder(p.URL, c, po, to); err != nil {
				t.Fatal(err)
			}
			pos = append(pos, po)
		}
		return pos
	}
	mk(stuck, "HANG-", hangs, bad.URL)
	slow := mk(stuck, "SLOW-", 2, bad.URL)
	reset := mk(failing, "RESET-", 2, bad.URL)
	e500 := mk(failing, "E500-", 2, bad.URL)
	fine := mk(healthy, "OK-", 40, good.URL)
	want := map[string]bool{}
	for _, po := range fine {
		want[po] = true
	}
	for _, m := range []string{demoMchID, failing.MchID, healthy.MchID} {
		advance(t, p.URL, m, 61*time.Second)
	}
	released := time.Now()

	t.Run("other merchants keep flowing", func(t *testing.T) {
		// Every hanging attempt holds a worker for 5 s; the healthy
		// merchant's 40 must not wait for them.
		eventually(t, 4*time.Second, "the healthy merchant's notifications delivered while another's receiver hangs", func() bool {
			return len(good.missing(want)) == 0
		})
		t.Logf("40 delivered %v after release, beside %d hanging attempts", time.Since(released).Round(time.Millisecond), hangs)
	})

	t.Run("failures are retried on the schedule", func(t *testing.T) {
		for _, po := range append(reset, e500...) {
			var n notificationRow
			eventually(t, 10*time.Second, po+": first attempt recorded", func() bool {
				rows := notificationsOf(t, p.URL, failing.MchID, po)
				if len(rows) == 1 && rows[0].Attempts >= 1 {
					n = rows[0]
				}
				return n.Attempts == 1
			})
			if n.State != "pending" || n.LastError == "" && n.LastCode != 500 {
				t.Fatalf("%s after a failed attempt: %+v", po, n)
			}
		}
		// P云's schedule (embedpay.retrySchedule): 15 s, 15 s, 30 s.
		for attempt, gap := range []time.Duration{15 * time.Second, 15 * time.Second, 30 * time.Second} {
			now := clockNow(t, p.URL, failing.MchID)
			for _, po := range append(reset, e500...) {
				n := notificationsOf(t, p.URL, failing.MchID, po)[0]
				if d := n.DueAt.Sub(now); d <= gap-5*time.Second || d > gap {
					t.Fatalf("%s after attempt %d: due in %v, want about %v", po, attempt+1, d, gap)
				}
			}
			advance(t, p.URL, failing.MchID, gap)
			for _, po := range append(reset, e500...) {
				eventually(t, 10*time.Second, fmt.Sprintf("%s: attempt %d", po, attempt+2), func() bool {
					return notificationsOf(t, p.URL, failing.MchID, po)[0].Attempts == attempt+2
				})
			}
		}
	})

	t.Run("a slow answer is delivered, a hang times out", func(t *testing.T) {
		// The slow ones wait for a slot behind the hanging ones: 5 s per
		// wave of one merchant's share (16) of the workers.
		wait := time.Duration(hangs/16+2) * 6 * time.Second
		for _, po := range slow {
			eventually(t, wait, po+" delivered", func() bool {
				return notificationsOf(t, p.URL, demoMchID, po)[0].State == "delivered"
			})
		}
		eventually(t, 15*time.Second, "the hanging attempts timed out and were rescheduled", func() bool {
			n := notificationsOf(t, p.URL, demoMchID, "HANG-000")[0]
			return n.Attempts == 1 && n.State == "pending" && n.LastError != ""
		})
	})
}

// TestFaultDataDirUnusableAtStart starts the binary on a data dir it
// cannot write — read-only, or on a full disk — and expects a prompt exit
// with status 1 and a message that names the directory and the cause, not a
// panic, a hang, or a server that answers ready and loses what it is sent.
func TestFaultDataDirUnusableAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := testproc.Binary(t)
	existing := t.TempDir()
	p := testproc.Start(t, testproc.Options{DataDir: existing})
	p.Stop()

	for _, tc := range []struct {
		name  string
		data  string
		setup func(t *testing.T, dir string) (wrap []string)
		cause []string // one of these must be in the message
	}{
		{"read-only, fresh", t.TempDir(), readOnly, []string{"permission denied", "read-only", "readonly"}},
		{"read-only, existing database", existing, readOnly, []string{"permission denied", "read-only", "readonly"}},
		{"disk full, fresh", t.TempDir(), fileSizeLimit, []string{"disk is full", "file size limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrap := tc.setup(t, tc.data)
			args := append(wrap, bin, "--addr", "127.0.0.1:0", "--data-dir", tc.data)
			cmd := exec.Command(args[0], args[1:]...)
			start := time.Now()
			out, err := runWithin(cmd, 10*time.Second)
			exit, _ := err.(*exec.ExitError)
			if exit == nil || exit.ExitCode() != 1 {
				t.Fatalf("got %v after %v, want exit status 1:\n%s", err, time.Since(start), out)
			}
			msg := string(out)
			if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
				t.Fatalf("a crash, not an error:\n%s", msg)
			}
			if !strings.Contains(msg, tc.data) || !containsAny(strings.ToLower(msg), tc.cause) {
				t.Fatalf("the message must name %s and one of %q:\n%s", tc.data, tc.cause, msg)
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// readOnly makes dir and its files read-only; root ignores modes, so then
// the binary runs as nobody.
func readOnly(t *testing.T, dir string) []string {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Chmod(filepath.Join(dir, e.Name()), 0o444)
	}
	os.Chmod(dir, 0o555)
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if os.Geteuid() != 0 {
		return nil
	}
	// nobody must reach the binary and the directory.
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o001)
		}
	}
	return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
}

// fileSizeLimit runs the binary with a file size limit of 4 KiB: every
// write past it fails as on a full disk (EFBIG, which SQLite reports as it
// reports ENOSPC: the write failed).
func fileSizeLimit(t *testing.T, _ string) []string {
	return []string{"sh", "-c", `ulimit -f 4 && exec "$0" "$@"`}
}

// runWithin runs cmd and returns its combined output, killing it after d.
func runWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		return out, fmt.Errorf("still running after %v", d)
	}
	return out, err
}

// TestFaultDiskFullWhileServing lets the disk fill up under a running
// server (a file size limit on its data files): writes are refused in the
// caller's own error shape, the process stays up but /readyz turns not ready, what was
// acknowledged before can still be read, and after a restart with room
// again nothing acknowledged is missing and new writes succeed.
func TestFaultDiskFullWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	data := t.TempDir()
	testproc.Start(t, testproc.Options{DataDir: data}).Stop()
	// 512 blocks of 512 bytes: the database written at the first start
	// fits, and the WAL fills after a few dozen commits.
	p := testproc.Start(t, testproc.Options{DataDir: data, Wrap: []string{"sh", "-c", `ulimit -f 512 && exec "$0" "$@"`}})
	c := credsOf(t, p.URL, demoMchID)
	var acked []string
	refused := 0
	for i := 0; i < 2000 && refused < 5; i++ {
		po := fmt.Sprintf("FULL-%04d", i)
		out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/prepare", c, map[string]string{
			"pay_order": po, "subject": "x", "value": "100", "notify_url": "http://127.0.0.1:9/n", "trade_scene": "GENERIC",
		})
		switch {
		case err != nil:
			t.Fatalf("prepare %s: %v: the server must answer a full disk, not fail\n%s", po, err, p.Log())
		case out["code"] == "1001":
			acked = append(acked, po)
		case out["code"] == "500" && out["message"] != "":
			refused++ // P云's own failure shape
		default:
			t.Fatalf("prepare %s on a full disk: %v", po, out)
		}
	}
	if refused == 0 {
		t.Fatalf("the disk never filled after %d trades", len(acked))
	}
	// Not ready once its next write probe fails, so that a load balancer
	// stops sending work it cannot keep; reads go on being answered.
	eventually(t, 3*readyProbeEvery, "/readyz turning not ready on a full disk", func() bool {
		status, raw, err := call("GET", p.URL+"/readyz", nil, nil)
		return err == nil && status == 503 && strings.Contains(string(raw), "cannot write")
	})
	for _, po := range acked {
		if out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/query", c, map[string]string{"pay_order": po}); err != nil || out["code"] != "1001" {
			t.Fatalf("query %s on a full disk: %v %v", po, out, err)
		}
	}
	p.Kill()
	p = testproc.Start(t, testproc.Options{DataDir: data})
	for _, po := range acked {
		if out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/query", c, map[string]string{"pay_order": po}); err != nil || out["code"] != "1001" {
			t.Fatalf("acknowledged trade %s after the restart: %v %v", po, out, err)
		}
	}
	if _, err := prepare(p.URL, c, "FULL-AFTER", "100", "http://127.0.0.1:9/n"); err != nil {
		t.Fatalf("with room again: %v", err)
	}
	if status, _, err := call("GET", p.URL+"/readyz", nil, nil); err != nil || status != 200 {
		t.Fatalf("readyz with room again: %d %v", status, err)
	}
	t.Logf("%d trades acknowledged before the disk filled, %d refused", len(acked), refused)
}

// TestFaultConcurrentChangesToOneOrder races two requests on one order,
// many times: two creates of one out_order_no, a complete against a
// cancel, two jumps paying one pay_id. Exactly one wins each race; the
// other gets the error the real system gives.
func TestFaultConcurrentChangesToOneOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	races := 10
	if soak() {
		races = 100
	}
	p := testproc.Start(t, testproc.Options{DataDir: t.TempDir(), Flags: []string{"--notify-allow", "127.0.0.1,merchant.example"}})
	c := credsOf(t, p.URL, demoMchID)
	create := func(no string, amount int) map[string]any {
		return map[string]any{
			"out_order_no": no, "appid": c.AppID, "service_id": c.ServiceID, "service_introduction": "停车服务",
			"time_range": map[string]any{"start_time": "OnAccept"}, "risk_fund": map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": amount},
			"notify_url": "https://merchant.example/notify", "need_user_confirm": false, "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		}
	}
	createOf := func(no string, amount int) func() (int, map[string]any) {
		return func() (int, map[string]any) {
			return v3Call(t, p.URL, c, "POST", "/v3/payscore/serviceorder", create(no, amount))
		}
	}
	both := func(a, b func() (int, map[string]any)) (ra, rb result) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; ra.status, ra.body = a() }()
		go func() { defer wg.Done(); <-start; rb.status, rb.body = b() }()
		close(start)
		wg.Wait()
		return ra, rb
	}

	t.Run("create twice with other parameters", func(t *testing.T) {
		for i := range races {
			no := fmt.Sprintf("RACE-C-%d", i)
			a, b := both(createOf(no, 5000), createOf(no, 6000))
			win, lose := oneWinner(t, a, b)
			if lose.status != 400 || lose.body["code"] != "INVALID_REQUEST" {
				t.Fatalf("%s: the loser got %d %v, want 400 INVALID_REQUEST", no, lose.status, lose.body)
			}
			got := win.body["risk_fund"].(map[string]any)["amount"]
			status, q := v3Call(t, p.URL, c, "GET", "/v3/payscore/serviceorder?service_id="+c.ServiceID+"&appid="+c.AppID+"&out_order_no="+no, nil)
			if status != 200 || q["risk_fund"].(map[string]any)["amount"] != got {
				t.Fatalf("%s: the stored order is not the winner's: %d %v", no, status, q)
			}
		}
	})

	t.Run("create twice with the same parameters", func(t *testing.T) {
		for i := range races {
			no := fmt.Sprintf("RACE-S-%d", i)
			a, b := both(createOf(no, 5000), createOf(no, 5000))
			// 原参重入 (SOURCES.md §2): the same order, answered twice.
			if a.status != 200 || b.status != 200 || a.body["order_id"] != b.body["order_id"] {
				t.Fatalf("%s: got %d %v and %d %v, want one order answered twice", no, a.status, a.body, b.status, b.body)
			}
		}
	})

	t.Run("complete while cancelling", func(t *testing.T) {
		for i := range races {
			no := fmt.Sprintf("RACE-X-%d", i)
			if status, out := createOf(no, 5000)(); status != 200 || out["state"] != "DOING" {
				t.Fatalf("create %s: %d %v", no, status, out)
			}
			end := time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405")
			a, b := both(
				func() (int, map[string]any) {
					return v3Call(t, p.URL, c, "POST", "/v3/payscore/serviceorder/"+no+"/complete", map[string]any{
						"appid": c.AppID, "service_id": c.ServiceID, "total_amount": 1500, "time_range": map[string]any{"end_time": end},
						"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
					})
				},
				func() (int, map[string]any) {
					return v3Call(t, p.URL, c, "POST", "/v3/payscore/serviceorder/"+no+"/cancel", map[string]any{
						"appid": c.AppID, "service_id": c.ServiceID, "reason": "用户取消"})
				})
			_, lose := oneWinner(t, a, b)
			if lose.status != 400 || (lose.body["code"] != "INVALID_ORDER_STATE" && lose.body["code"] != "INVALID_REQUEST") {
				t.Fatalf("%s: the loser got %d %v, want the state error", no, lose.status, lose.body)
			}
			wantState := "REVOKED"
			if a.status == 200 {
				wantState = "DONE"
			}
			_, q := v3Call(t, p.URL, c, "GET", "/v3/payscore/serviceorder?service_id="+c.ServiceID+"&appid="+c.AppID+"&out_order_no="+no, nil)
			if q["state"] != wantState {
				t.Fatalf("%s: state %v after the winner, want %s", no, q["state"], wantState)
			}
		}
	})

	t.Run("two jumps pay one pay_id", func(t *testing.T) {
		// Two cashiers open on one pay_id: exactly one payment is made and
		// notified. The other jump either fails ("already paid") or, when
		// it got in first, shows the trade as the winner left it.
		for i := range races {
			po := fmt.Sprintf("RACE-J-%d", i)
			payID, err := prepare(p.URL, c, po, valuePayNowNotifyLate, "http://127.0.0.1:9/notify")
			if err != nil {
				t.Fatal(err)
			}
			jumpOnce := func() (int, map[string]any) {
				status, raw, err := jump(p.URL, c, payID)
				if err != nil {
					t.Error(err)
				}
				var out map[string]any
				_ = json.Unmarshal(raw, &out)
				return status, out
			}
			a, b := both(jumpOnce, jumpOnce)
			serials := map[any]bool{}
			for _, r := range []result{a, b} {
				msg, _ := r.body["errMsg"].(string)
				switch {
				case r.status == 200:
					var ret struct {
						ReferrerInfo struct {
							ExtraData map[string]any `json:"extraData"`
						} `json:"referrerInfo"`
					}
					mustJSON(t, "GET", p.URL+"/miniprogram/v1/sessions/"+r.body["session_id"].(string)+"/return?wait=5s", nil, 200, &ret)
					serials[ret.ReferrerInfo.ExtraData["pay_serial"]] = true
				case r.status < 400 || r.status >= 500 || !strings.HasPrefix(msg, "openEmbeddedMiniProgram:fail"):
					t.Fatalf("%s: a jump got %d %v, want 200 or an errMsg failure", po, r.status, r.body)
				}
			}
			if len(serials) != 1 {
				t.Fatalf("%s: the jumps saw %d payments (%v), want one", po, len(serials), serials)
			}
			if rows := notificationsOf(t, p.URL, demoMchID, po); len(rows) != 1 {
				t.Fatalf("%s: %d trade-notify rows, want exactly one: %+v", po, len(rows), rows)
			}
		}
	})
}

// result is one side of a race.
type result struct {
	status int
	body   map[string]any
}

// oneWinner checks that exactly one side succeeded and returns it first.
func oneWinner(t *testing.T, a, b result) (win, lose result) {
	t.Helper()
	switch {
	case a.status == 200 && b.status != 200:
		return a, b
	case b.status == 200 && a.status != 200:
		return b, a
	}
	t.Fatalf("want exactly one winner, got %d %v and %d %v", a.status, a.body, b.status, b.body)
	return
}
