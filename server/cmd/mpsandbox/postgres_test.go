package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// TestPostgresFlowSurvivesRestarts runs the real binary on PostgreSQL
// (--database-url): P云 trades are prepared and paid through the jump, a
// clock advance makes their trade-notify due, and the server is stopped,
// killed with SIGKILL and started again on the same database between the
// steps. Nothing acknowledged is lost: every trade is found, every
// trade-notify is delivered once, the clock keeps its advance, and the
// journal holds the exchanges of every run.
func TestPostgresFlowSurvivesRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	opts := testproc.Options{DatabaseURL: url}
	p := testproc.Start(t, opts)
	if !strings.Contains(p.Log(), `"data_dir":"postgres://postgres@127.0.0.1:`) {
		t.Errorf("the ready line does not name the database:\n%s", p.Log())
	}
	c := credsOf(t, p.URL, demoMchID)
	ledger := newLedger(t, c.PCloudSecret, 0)
	paid := map[string]bool{}
	pay := func(base string, n int) {
		t.Helper()
		for range n {
			po := fmt.Sprintf("PG-%04d", len(paid)+1)
			if _, err := paidOrder(base, c, po, ledger.URL+"/notify"); err != nil {
				t.Fatal(err)
			}
			paid[po] = true
		}
	}

	pay(p.URL, 10)
	start := clockNow(t, p.URL, demoMchID)
	p.Stop()
	first := p
	p = testproc.Start(t, opts)
	pay(p.URL, 10)
	// The journal is written behind the requests: let it catch up, so
	// that the kill tests what was written, not what was still queued.
	deadline := time.Now().Add(30 * time.Second)
	for n := prepares(t, p.URL); n != len(paid); n = prepares(t, p.URL) {
		if time.Now().After(deadline) {
			var errs []string
			for _, l := range strings.Split(p.Log(), "\n") {
				if !strings.Contains(l, `"msg":"request"`) {
					errs = append(errs, l)
				}
			}
			t.Fatalf("the journal holds %d prepares of %d after 30s; the log:\n%s\nthe first run's:\n%s", n, len(paid),
				strings.Join(errs, "\n"), first.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Kill()
	p = testproc.Start(t, opts)

	// The trade-notifies fall due 60 s after each payment.
	advance(t, p.URL, demoMchID, 61*time.Second)
	if now := clockNow(t, p.URL, demoMchID); now.Sub(start) < 61*time.Second {
		t.Errorf("the clock moved %v since the first run, want at least the 61s advance", now.Sub(start))
	}
	eventually(t, 30*time.Second, "every trade-notify delivered", func() bool { return len(ledger.missing(paid)) == 0 })
	for po := range paid {
		out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/query", c, map[string]string{"pay_order": po})
		if err != nil || out["code"] != "1001" {
			t.Errorf("trade %s after the restarts: %v %v", po, out, err)
		}
	}
	p.Stop()

	// Once more from a cold start: nothing is delivered twice, and the
	// journal kept the prepares of the runs before.
	p = testproc.Start(t, opts)
	if n := prepares(t, p.URL); n != len(paid) {
		t.Errorf("the journal holds %d prepares, want %d", n, len(paid))
	}
	time.Sleep(time.Second)
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for po, n := range ledger.got {
		if n != 1 {
			t.Errorf("trade-notify of %s delivered %d times, want once", po, n)
		}
	}
	if ledger.forged != 0 {
		t.Errorf("%d notifications did not verify with the merchant's secret", ledger.forged)
	}
}

// prepares counts the P云 prepares in the journal.
func prepares(t *testing.T, base string) int {
	t.Helper()
	var j struct {
		Exchanges []struct {
			URL string `json:"url"`
		} `json:"exchanges"`
	}
	mustJSON(t, "GET", base+"/sandbox/v1/journal?limit=1000", nil, 200, &j)
	n := 0
	for _, x := range j.Exchanges {
		if strings.HasSuffix(x.URL, "/trade/prepare") {
			n++
		}
	}
	return n
}

func TestConfigDatabaseURL(t *testing.T) {
	env := map[string]string{"MPSANDBOX_DATABASE_URL": "postgres://env/db"}
	c, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil || c.DatabaseURL != "postgres://env/db" {
		t.Fatalf("from the environment: %q, %v", c.DatabaseURL, err)
	}
	c, err = parseConfig([]string{"--database-url", "postgres://flag/db"}, func(k string) string { return env[k] })
	if err != nil || c.DatabaseURL != "postgres://flag/db" {
		t.Fatalf("flag over environment: %q, %v", c.DatabaseURL, err)
	}
	_, err = parseConfig([]string{"--in-memory"}, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "--in-memory and --database-url") {
		t.Fatalf("--in-memory with a database URL: %v, want refused", err)
	}
}

// TestPostgresReplicasDeliverOnce runs two replicas of the binary on one
// database. Trades are paid through both; the clock advance makes every
// trade-notify due on both at once, and both workers race for them: each
// is delivered exactly once (claims leased FOR UPDATE SKIP LOCKED), in one
// attempt, journalled once.
func TestPostgresReplicasDeliverOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	a := testproc.Start(t, testproc.Options{DatabaseURL: url})
	b := testproc.Start(t, testproc.Options{DatabaseURL: url})
	c := credsOf(t, a.URL, demoMchID)
	// A slow merchant keeps deliveries in flight on both at once.
	ledger := newLedger(t, c.PCloudSecret, 20*time.Millisecond)
	n := 120
	if soak() {
		n = 1000
	}
	paid := map[string]bool{}
	for i := range n {
		// Prepared on one replica, paid on the other.
		po := fmt.Sprintf("R2-%04d", i)
		payID, err := prepare(a.URL, c, po, valuePayNowNotifyLate, ledger.URL+"/notify")
		if err != nil {
			t.Fatal(err)
		}
		if status, raw, err := jump(b.URL, c, payID); err != nil || status != 200 {
			t.Fatalf("jump on the other replica: %d %v %s", status, err, raw)
		}
		paid[po] = true
	}
	advance(t, a.URL, demoMchID, 61*time.Second)
	advance(t, b.URL, demoMchID, 61*time.Second)
	eventually(t, 60*time.Second, "every trade-notify delivered", func() bool { return len(ledger.missing(paid)) == 0 })
	// Time for a second delivery, were there one.
	time.Sleep(2 * time.Second)
	ledger.mu.Lock()
	for po, k := range ledger.got {
		if k != 1 {
			t.Errorf("trade-notify of %s delivered %d times, want once", po, k)
		}
	}
	forged := ledger.forged
	ledger.mu.Unlock()
	if forged != 0 {
		t.Errorf("%d notifications did not verify with the merchant's secret", forged)
	}
	var j struct {
		Exchanges []struct {
			Attempt int `json:"attempt"`
		} `json:"exchanges"`
	}
	mustJSON(t, "GET", b.URL+"/sandbox/v1/journal?direction=out&limit=1000", nil, 200, &j)
	if len(j.Exchanges) != n {
		t.Errorf("the journal holds %d attempts, want %d: one each", len(j.Exchanges), n)
	}
	for _, x := range j.Exchanges {
		if x.Attempt != 1 {
			t.Errorf("an attempt numbered %d, want every notification delivered at its first", x.Attempt)
			break
		}
	}
}

// TestPostgresReplicaKilledMidBurst kills one of two replicas with SIGKILL
// while both deliver a burst to a slow merchant: the survivor takes over
// the killed one's claimed notifications once their lease ends, and every
// notification arrives, signed for its merchant. Only those in flight at
// the kill may arrive twice: their merchant answered, but the killed
// process never committed the outcome (delivery is at least once, as
// upstream).
func TestPostgresReplicaKilledMidBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	opts := testproc.Options{DatabaseURL: url, Flags: []string{"--notify-lease", "10s"}}
	a := testproc.Start(t, opts)
	b := testproc.Start(t, opts)
	c := credsOf(t, a.URL, demoMchID)
	ledger := newLedger(t, c.PCloudSecret, 300*time.Millisecond)
	n := 100
	if soak() {
		n = 1000
	}
	paid := map[string]bool{}
	for i := range n {
		po := fmt.Sprintf("K2-%04d", i)
		if _, err := paidOrder([]string{a.URL, b.URL}[i%2], c, po, ledger.URL+"/notify"); err != nil {
			t.Fatal(err)
		}
		paid[po] = true
	}
	advance(t, a.URL, demoMchID, 61*time.Second)
	advance(t, b.URL, demoMchID, 61*time.Second)
	eventually(t, 30*time.Second, "deliveries under way", func() bool {
		ledger.mu.Lock()
		defer ledger.mu.Unlock()
		return len(ledger.got) >= 10 && ledger.inflight > 0
	})
	ledger.mu.Lock()
	inflight := ledger.inflight
	ledger.mu.Unlock()
	a.Kill()
	killed := time.Now()
	// The merchant has answered every one when the store says so: the
	// killed replica's were answered but never committed, and wait for the
	// survivor to take them over.
	eventually(t, 90*time.Second, "every trade-notify delivered and committed after the kill", func() bool {
		var out struct {
			Notifications []notificationRow `json:"notifications"`
		}
		mustJSON(t, "GET", b.URL+"/sandbox/v1/notifications?mchid="+demoMchID+"&state=pending", nil, 200, &out)
		return len(out.Notifications) == 0 && len(ledger.missing(paid)) == 0
	})
	if took := time.Since(killed); took < 9*time.Second {
		t.Errorf("done %v after the kill: the killed replica's claims (10s leases) were not waited for", took)
	}
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	twice := 0
	for po, k := range ledger.got {
		if k > 1 {
			twice++
			t.Logf("%s delivered %d times", po, k)
		}
	}
	t.Logf("killed with %d deliveries in flight; all %d delivered %v later, %d twice", inflight, n, time.Since(killed).Round(time.Millisecond), twice)
	// A replica has at most half its 32 delivery workers on one merchant:
	// that many attempts of the killed one can have been answered and not
	// committed. (The count in flight read above is a moment before the
	// kill, not a bound.)
	const perMerchant = 16
	if twice > perMerchant {
		t.Errorf("%d notifications delivered twice, more than the %d the killed replica can have had in flight", twice, perMerchant)
	}
	if ledger.forged != 0 {
		t.Errorf("%d notifications did not verify with the merchant's secret", ledger.forged)
	}
}

// TestPostgresRestartedUnderTheServer stops the database under a running
// binary: /readyz turns 503 not_ready (requests fail, the process
// lives on), and once the database is back it turns 200 again and a flow
// goes through, without a restart of the binary.
func TestPostgresRestartedUnderTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	cluster := pgtest.NewCluster(t)
	url, err := cluster.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := testproc.Start(t, testproc.Options{DatabaseURL: url})
	c := credsOf(t, p.URL, demoMchID)
	ledger := newLedger(t, c.PCloudSecret, 0)
	ready := func() (int, string) {
		var out struct{ Status, Reason string }
		status, raw, err := call("GET", p.URL+"/readyz", nil, nil)
		if err != nil || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("/readyz: %v %s", err, raw)
		}
		return status, out.Status + " " + out.Reason
	}
	if status, got := ready(); status != 200 {
		t.Fatalf("/readyz = %d %s", status, got)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	// /readyz writes to the store at most every 5 s.
	eventually(t, 15*time.Second, "/readyz 503 with the database down", func() bool {
		status, got := ready()
		return status == 503 && strings.HasPrefix(got, "not_ready the store cannot write: ")
	})
	if _, err := paidOrder(p.URL, c, "DOWN-1", ledger.URL+"/notify"); err == nil {
		t.Error("a trade was acknowledged with the database down")
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "/readyz 200 once the database is back", func() bool {
		status, _ := ready()
		return status == 200
	})
	if _, err := paidOrder(p.URL, c, "UP-1", ledger.URL+"/notify"); err != nil {
		t.Fatalf("a trade after the database came back: %v", err)
	}
	advance(t, p.URL, demoMchID, 61*time.Second)
	eventually(t, 30*time.Second, "the trade-notify delivered", func() bool { return len(ledger.missing(map[string]bool{"UP-1": true})) == 0 })
	log := p.Log()
	if strings.Count(log, `"msg":"store_not_writable"`) != 1 || strings.Count(log, `"msg":"store_writable_again"`) != 1 {
		t.Errorf("want one store_not_writable and one store_writable_again line in the log:\n%s", log)
	}
	if err := p.Cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the server is gone: %v", err)
	}
	checkPostgresMetrics(t, p.URL)
}

// TestPostgresReplicasShareChanges runs two replicas on one database and
// changes things on one: the other sees a new merchant and its clock
// advance, and a long poll of a session's return on it is answered as
// soon as the session is resolved on the first (each store hears the
// other's commits through LISTEN/NOTIFY), not when the poll times out.
func TestPostgresReplicasShareChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	url := pgtest.NewDatabase(t)
	a := testproc.Start(t, testproc.Options{DatabaseURL: url})
	b := testproc.Start(t, testproc.Options{DatabaseURL: url})

	const mchid = "1900000077"
	c := newMerchant(t, a.URL, mchid)
	eventually(t, 5*time.Second, "the new merchant on the other replica", func() bool {
		status, _, err := call("GET", b.URL+"/sandbox/v1/merchants/"+mchid, nil, nil)
		return err == nil && status == 200
	})
	before := clockNow(t, b.URL, mchid)
	advance(t, a.URL, mchid, time.Hour)
	eventually(t, 5*time.Second, "the clock advance on the other replica", func() bool {
		return clockNow(t, b.URL, mchid).Sub(before) >= time.Hour
	})

	// A manual session (value 199), opened on A and long-polled on B.
	payID, err := prepare(a.URL, c, "SHARE-1", "199", "http://127.0.0.1:1/notify")
	if err != nil {
		t.Fatal(err)
	}
	status, raw, err := jump(a.URL, c, payID)
	var opened struct {
		SessionID string `json:"session_id"`
		Mode      string `json:"mode"`
	}
	if err != nil || status != 200 || json.Unmarshal(raw, &opened) != nil || opened.Mode != "manual" {
		t.Fatalf("jump: %d %v %s", status, err, raw)
	}
	answered := make(chan string, 1)
	go func() {
		status, raw, err := call("GET", b.URL+"/miniprogram/v1/sessions/"+opened.SessionID+"/return?wait=20s", nil, nil)
		answered <- fmt.Sprintf("%d %v %s", status, err, raw)
	}()
	time.Sleep(500 * time.Millisecond) // the poll is waiting on B
	resolved := time.Now()
	mustJSON(t, "POST", a.URL+"/sandbox/v1/sessions/"+opened.SessionID+"/resolve", map[string]string{"action": "pay"}, 200, nil)
	select {
	case got := <-answered:
		if !strings.HasPrefix(got, "200 <nil> ") {
			t.Fatalf("the long poll on B answered %s", got)
		}
		if took := time.Since(resolved); took > 3*time.Second {
			t.Errorf("the long poll on B answered %v after the resolution on A, want at once", took)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the long poll on B did not answer")
	}
}
