// Command soak is `make soak`: it runs the real binary for a long while
// (10 minutes by default) under steady mixed load — jumps that close the
// cashier, jumps that pay and so queue a trade-notify, v3 creates signed by
// the official SDK — for three merchants whose notify receiver fails 30 % of
// the attempts (HTTP 500, a reset connection, an answer that does not
// acknowledge). It samples the server's RSS, counts errors, and ends with
// the notification ledger: every notification accepted is delivered or
// still scheduled, none is lost, none reached another merchant's receiver.
// The report is printed and written into docs/PERFORMANCE.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsandbox/mpsandbox/bench/internal/drive"
	"github.com/mpsandbox/mpsandbox/bench/internal/load"
)

// Config is what the run is told.
type Config struct {
	Bin, Out                   string
	Duration, Sample, Drain    time.Duration
	JumpRate, PaidRate, V3Rate float64
	FailShare                  float64
}

func main() {
	var c Config
	flag.StringVar(&c.Bin, "bin", "bin/mpsandbox", "the sandbox binary")
	flag.StringVar(&c.Out, "out", "docs/PERFORMANCE.md", "the document whose soak section is rewritten (\"\" to only print)")
	flag.DurationVar(&c.Duration, "duration", 10*time.Minute, "how long the load runs")
	flag.DurationVar(&c.Sample, "sample", 30*time.Second, "how often RSS is read")
	flag.DurationVar(&c.Drain, "drain", 90*time.Second, "how long notifications may settle after the load")
	flag.Float64Var(&c.JumpRate, "jumps", 150, "jumps per second that close the cashier")
	flag.Float64Var(&c.PaidRate, "paid", 30, "paid jumps per second, each queueing a trade-notify")
	flag.Float64Var(&c.V3Rate, "v3", 20, "v3 creates per second")
	flag.Float64Var(&c.FailShare, "fail", 0.3, "share of notification attempts the receiver fails")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// merchants of the soak: the demo one and two more, each with its own
// notify path, so a notification at the wrong merchant's receiver shows.
var soakMerchants = []string{drive.DemoMchID, "1900009101", "1900009102"}

// tenant is one merchant's side of the soak.
type tenant struct {
	creds  *drive.Credentials
	signer *drive.Signer
	bodies [][]byte // jumps to trades that stay open
}

func run(c Config) error {
	bin, err := filepath.Abs(c.Bin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mpsandbox-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &Report{Config: c, Started: time.Now(), LoadBefore: drive.LoadAverage()}
	s, err := drive.Start(bin, filepath.Join(tmp, "mpsandbox.log"), "--data-dir", filepath.Join(tmp, "data"), "--log-format", "json")
	if err != nil {
		return err
	}
	defer s.Kill()
	client := drive.NewClient(s.Base, 64)
	led := newLedger(c.FailShare)
	recv, err := drive.NewReceiver(led.answer)
	if err != nil {
		return err
	}
	defer recv.Close()

	tenants := map[string]*tenant{}
	for _, mchid := range soakMerchants {
		var cr *drive.Credentials
		if mchid == drive.DemoMchID {
			cr, err = client.Credentials(mchid)
		} else {
			cr, err = client.CreateMerchant(mchid)
		}
		if err != nil {
			return err
		}
		signer, err := drive.NewSigner(cr)
		if err != nil {
			return err
		}
		t := &tenant{creds: cr, signer: signer}
		led.secrets[mchid] = cr.PCloudAppSecret
		for i := range 100 {
			payID, err := client.Prepare(cr, fmt.Sprintf("OPEN-%s-%d", mchid, i), drive.ValueClosed, recv.URL+"/m/"+mchid)
			if err != nil {
				return err
			}
			t.bodies = append(t.bodies, drive.JumpBody(cr.AppID, payID))
		}
		tenants[mchid] = t
	}
	r.Idle, _ = drive.ReadMemory(s.Pid())

	ctx, cancel := context.WithTimeout(context.Background(), c.Duration)
	defer cancel()
	var wg sync.WaitGroup
	pick := func(i int64) (string, *tenant) {
		m := soakMerchants[int(i)%len(soakMerchants)]
		return m, tenants[m]
	}
	loads := []struct {
		rate float64
		fire func(i int64)
	}{
		{c.JumpRate, func(i int64) {
			_, t := pick(i)
			r.count("jump", jumpOK(client, t.bodies[int(i/3)%len(t.bodies)]))
		}},
		{c.PaidRate, func(i int64) {
			m, t := pick(i)
			po := fmt.Sprintf("PAID-%s-%d", m, i)
			payID, err := client.Prepare(t.creds, po, drive.ValuePaid, recv.URL+"/m/"+m)
			r.count("prepare", err)
			if err != nil {
				return
			}
			_, err = client.Jump(t.creds.AppID, payID)
			r.count("paid jump", err)
			if err == nil {
				led.accept(m, po)
			}
		}},
		{c.V3Rate, func(i int64) {
			m, t := pick(i)
			signed, err := t.signer.Create(drive.CreateBody(t.creds, fmt.Sprintf("SOAK-%d", i), recv.URL+"/payscore/"+m))
			if err == nil {
				var req *http.Request
				if req, err = signed.Request(s.Base); err == nil {
					err = client.Do(req, nil, http.StatusOK)
				}
			}
			r.count("v3 create", err)
		}},
	}
	for _, l := range loads {
		wg.Add(1)
		go func() { defer wg.Done(); load.Paced(ctx, l.rate, 256, l.fire) }()
	}
	start := time.Now()
	tick := time.NewTicker(c.Sample)
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-tick.C:
			r.sample(s, time.Since(start), led)
		case <-s.Exited():
			return fmt.Errorf("the server exited during the soak:\n%s", drive.Tail(s.LogPath, 30))
		}
	}
	tick.Stop()
	wg.Wait()
	if last := r.Samples; len(last) == 0 || time.Since(start)-last[len(last)-1].At > time.Second {
		r.sample(s, time.Since(start), led)
	}
	r.LoadEnd = drive.LoadAverage()

	// Let retries due within the drain run (P云's schedule: 15 s, 15 s, 30 s,
	// 3 min, then 30 min), then close the books.
	time.Sleep(c.Drain)
	if err := r.closeBooks(client, led); err != nil {
		return err
	}
	r.Final, _ = drive.ReadMemory(s.Pid())
	if err := s.Stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	r.Took = time.Since(r.Started)
	text := r.Markdown()
	fmt.Println(text)
	if c.Out != "" {
		if err := drive.ReplaceSection(c.Out, beginMarker, endMarker, text); err != nil {
			return err
		}
	}
	if r.Lost > 0 || r.WrongMerchant > 0 || r.Forged > 0 {
		return fmt.Errorf("the ledger does not balance: %d lost, %d at the wrong merchant, %d not verifying", r.Lost, r.WrongMerchant, r.Forged)
	}
	return nil
}

// jumpOK posts one jump and reports a failure as an error.
func jumpOK(client *drive.Client, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, client.Base+drive.JumpPath, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return client.Do(req, nil, http.StatusOK)
}

// ledger is the merchants' side of the notifications: what was accepted,
// what each receiver acknowledged, and what arrived where it should not.
type ledger struct {
	fail    float64
	secrets map[string]string // written before the load starts

	mu       sync.Mutex
	accepted map[string]string // pay_order → merchant
	acked    map[string]int    // pay_order → acknowledged attempts
	failed   map[string]int    // failure kind → attempts failed on purpose
	wrong    int               // a notification at another merchant's path
	forged   int               // a sign that does not verify with the path's merchant's secret
	attempts int
}

func newLedger(fail float64) *ledger {
	return &ledger{fail: fail, secrets: map[string]string{}, accepted: map[string]string{}, acked: map[string]int{}, failed: map[string]int{}}
}

func (l *ledger) accept(mchid, payOrder string) {
	l.mu.Lock()
	l.accepted[payOrder] = mchid
	l.mu.Unlock()
}

// answer is the receivers of every merchant at /m/<mchid>: it checks the
// notification belongs there, then fails FailShare of the attempts.
func (l *ledger) answer(path string, form url.Values) (int, []byte) {
	mchid := strings.TrimPrefix(path, "/m/")
	params := map[string]string{}
	for k := range form {
		params[k] = form.Get(k)
	}
	po := params["pay_order"]
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts++
	if !strings.HasPrefix(po, "PAID-"+mchid+"-") {
		l.wrong++
		return http.StatusOK, drive.AckBody // stop it: the ledger has seen it
	}
	if secret := l.secrets[mchid]; !strings.EqualFold(drive.PCloudSign(params, secret), params["sign"]) {
		l.forged++
		return http.StatusOK, []byte(`{"code":"400","message":"签名错误"}`)
	}
	if rand.Float64() < l.fail {
		switch rand.IntN(3) {
		case 0:
			l.failed["HTTP 500"]++
			return http.StatusInternalServerError, []byte("oops")
		case 1:
			l.failed["reset connection"]++
			return 0, nil
		default:
			l.failed["answer without code 1001"]++
			return http.StatusOK, []byte(`{"code":"500","message":"busy"}`)
		}
	}
	l.acked[po]++
	return http.StatusOK, drive.AckBody
}

func (l *ledger) snapshot() (accepted, acked, attempts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted), len(l.acked), l.attempts
}

// Sample is one reading during the soak.
type Sample struct {
	At                        time.Duration
	Mem                       drive.Memory
	Accepted, Acked, Attempts int
	Requests, Errors          int64
}

// Report is what the soak found.
type Report struct {
	Config                Config
	Started               time.Time
	Took                  time.Duration
	LoadBefore, LoadEnd   string
	Idle, Final           drive.Memory
	Samples               []Sample
	mu                    sync.Mutex
	requests              map[string]*[2]int64 // kind → ok, failed
	firstErr              map[string]string
	total, errors         atomic.Int64
	Accepted, Delivered   int
	Scheduled, Lost       int
	WrongMerchant, Forged int
	Attempts              int
	Failed                map[string]int
	Duplicates            int
	States                map[string]int
}

func (r *Report) count(kind string, err error) {
	r.total.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests == nil {
		r.requests, r.firstErr = map[string]*[2]int64{}, map[string]string{}
	}
	c := r.requests[kind]
	if c == nil {
		c = &[2]int64{}
		r.requests[kind] = c
	}
	if err != nil {
		c[1]++
		r.errors.Add(1)
		if _, ok := r.firstErr[kind]; !ok {
			r.firstErr[kind] = err.Error()
		}
		return
	}
	c[0]++
}

func (r *Report) sample(s *drive.Server, at time.Duration, l *ledger) {
	m, _ := drive.ReadMemory(s.Pid())
	acc, ack, att := l.snapshot()
	r.Samples = append(r.Samples, Sample{At: at, Mem: m, Accepted: acc, Acked: ack, Attempts: att,
		Requests: r.total.Load(), Errors: r.errors.Load()})
	fmt.Fprintf(os.Stderr, "%v: RSS %s MiB, %d requests (%d errors), %d notifications accepted, %d acknowledged, %d attempts\n",
		at.Round(time.Second), drive.MiB(m.RSSKiB), r.total.Load(), r.errors.Load(), acc, ack, att)
}

// closeBooks checks every accepted notification against the sandbox's rows
// and the receivers' acknowledgements.
func (r *Report) closeBooks(client *drive.Client, l *ledger) error {
	l.mu.Lock()
	accepted := make(map[string]string, len(l.accepted))
	for po, m := range l.accepted {
		accepted[po] = m
	}
	l.mu.Unlock()
	r.States = map[string]int{}
	type check struct{ po, mchid string }
	checks := make(chan check)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range checks {
				rows, err := client.Notifications(c.mchid, c.po, "")
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
				case len(rows) != 1:
					r.Lost++ // none, or more than one notification for one payment
					r.States[fmt.Sprintf("%d rows", len(rows))]++
				default:
					r.States[rows[0].State]++
					l.mu.Lock()
					acked := l.acked[c.po]
					l.mu.Unlock()
					switch {
					case rows[0].State == "delivered" && acked > 0:
						r.Delivered++
						r.Duplicates += acked - 1
					case rows[0].State == "pending":
						r.Scheduled++
					default:
						r.Lost++
					}
				}
				mu.Unlock()
			}
		}()
	}
	for po, m := range accepted {
		checks <- check{po, m}
	}
	close(checks)
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Accepted, r.WrongMerchant, r.Forged, r.Attempts = len(accepted), l.wrong, l.forged, l.attempts
	r.Failed = l.failed
	for po := range l.acked {
		if _, ok := accepted[po]; !ok {
			r.WrongMerchant++ // acknowledged but never accepted: not ours
		}
	}
	return firstErr
}

// Markdown renders the soak section of docs/PERFORMANCE.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.Config
	w("%s\n## `make soak` — %s\n\n", beginMarker, r.Started.UTC().Format("2006-01-02 15:04 MST"))
	w("Command: `make soak` (the fault tests' long variants, then `go run ./bench/cmd/soak -duration %v`), %s in all. ", c.Duration, r.Took.Round(time.Second))
	w("Load average %s at the start and %s when the load stopped. ", r.LoadBefore, r.LoadEnd)
	w("Steady open-loop load for %v on one server with a fresh data dir: %.0f jumps/s that close the cashier, %.0f paid jumps/s (prepare + jump, each queueing a trade-notify), %.0f v3 creates/s signed by the official SDK, spread over %d merchants. ",
		c.Duration, c.JumpRate, c.PaidRate, c.V3Rate, len(soakMerchants))
	w("Each merchant's notify_url is its own path on one loopback receiver that fails %.0f %% of the attempts (HTTP 500, a reset connection, or an answer without code 1001, in equal parts). ", 100*c.FailShare)
	w("After the load, %v for due retries, then the books are closed.\n\n", c.Drain)
	w("| time | RSS | requests | errors | notifications accepted | acknowledged | attempts |\n|---|---|---|---|---|---|---|\n")
	w("| idle | %s MiB | | | | | |\n", drive.MiB(r.Idle.RSSKiB))
	for _, s := range r.Samples {
		w("| %v | %s MiB | %d | %d | %d | %d | %d |\n", s.At.Round(time.Second), drive.MiB(s.Mem.RSSKiB), s.Requests, s.Errors, s.Accepted, s.Acked, s.Attempts)
	}
	w("| after the drain | %s MiB (peak %s MiB) | | | | | |\n\n", drive.MiB(r.Final.RSSKiB), drive.MiB(r.Final.PeakKiB))
	kinds := make([]string, 0, len(r.requests))
	for k := range r.requests {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	w("| requests | succeeded | failed | first failure |\n|---|---|---|---|\n")
	for _, k := range kinds {
		w("| %s | %d | %d | %s |\n", k, r.requests[k][0], r.requests[k][1], strings.ReplaceAll(r.firstErr[k], "|", "\\|"))
	}
	failed := 0
	for _, n := range r.Failed {
		failed += n
	}
	w("\nNotification ledger: **%d accepted** (paid jumps answered 200) = **%d delivered** (acknowledged by the right merchant's receiver) + **%d still scheduled** (pending on the retry schedule) + **%d lost**. ",
		r.Accepted, r.Delivered, r.Scheduled, r.Lost)
	w("%d attempts reached the receivers, %d of them failed on purpose (%s); %d deliveries were repeated after an acknowledgement was not recorded in time (at least once, as upstream). ",
		r.Attempts, failed, describe(r.Failed), r.Duplicates)
	w("Notifications at another merchant's receiver: **%d**; signs that did not verify with the receiving merchant's secret: **%d**. Rows by state: %s.\n", r.WrongMerchant, r.Forged, describe(r.States))
	w("%s\n", endMarker)
	return b.String()
}

func describe(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

const (
	beginMarker = "<!-- make soak: begin -->"
	endMarker   = "<!-- make soak: end -->"
)
