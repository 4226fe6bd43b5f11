package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/bench/internal/drive"
	"github.com/mpsandbox/mpsandbox/bench/internal/load"
)

// bench holds one run's state: the data dir every sandbox start shares, so
// that only the first start is on a fresh one.
type bench struct {
	c    Config
	r    *Report
	tmp  string
	data string
	logs int

	creds  *drive.Credentials
	bodies [][]byte // jump bodies over the prepared trades
}

func (b *bench) all() error {
	b.data = filepath.Join(b.tmp, "data")
	if b.c.on("sign") || b.c.on("v3") || b.c.on("postgres") {
		if err := b.signCeiling(); err != nil {
			return fmt.Errorf("signing ceiling: %w", err)
		}
	}
	s, err := b.start()
	if err != nil {
		return err
	}
	b.r.FreshStart = s.Ready
	defer func() {
		if s != nil {
			s.Kill()
		}
	}()
	time.Sleep(2 * time.Second) // let start-up garbage be collected
	if b.r.Idle, err = drive.ReadMemory(s.Pid()); err != nil {
		return err
	}
	client := drive.NewClient(s.Base, b.c.Conns)
	if b.creds, err = client.Credentials(drive.DemoMchID); err != nil {
		return err
	}
	if b.c.on("jump") || b.c.on("rss") {
		if b.bodies, err = b.prepareTrades(client, b.creds); err != nil {
			return err
		}
	}
	if b.c.on("jump") {
		if err := b.jumpRounds(s); err != nil {
			return err
		}
	}
	if b.c.on("v3") {
		if b.r.V3, err = b.v3([]*drive.Server{s}, client, b.creds); err != nil {
			return fmt.Errorf("v3: %w", err)
		}
	}
	if b.c.on("notify") {
		cr, err := client.CreateMerchant(notifyMchID)
		if err != nil {
			return err
		}
		if b.r.Notify, err = b.notify([]*drive.Server{s}, cr, b.c.Notify); err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
	}
	if b.c.on("rss") {
		if err := b.loaded(s); err != nil {
			return fmt.Errorf("loaded RSS: %w", err)
		}
	}
	if err := s.Stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	s = nil
	if b.c.on("postgres") {
		if err := b.postgres(); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	if b.c.on("startup") {
		if err := b.startups(); err != nil {
			return fmt.Errorf("start-up: %w", err)
		}
	}
	if b.c.on("testkit") {
		if err := b.testkitStarts(); err != nil {
			return fmt.Errorf("testkit: %w", err)
		}
	}
	if b.c.on("container") && b.c.Image != "" {
		if err := b.container(); err != nil {
			return fmt.Errorf("container: %w", err)
		}
	}
	return nil
}

// start starts the sandbox on the run's data dir with its default
// configuration (access log on) plus flags; its log goes to a file, as a
// container's goes to the engine's log.
func (b *bench) start(flags ...string) (*drive.Server, error) {
	b.logs++
	logPath := filepath.Join(b.tmp, fmt.Sprintf("mpsandbox-%d.log", b.logs))
	return drive.Start(b.c.Bin, logPath, append([]string{"--data-dir", b.data, "--log-format", "json"}, flags...)...)
}

var nsPerOp = regexp.MustCompile(`^BenchmarkRSASign\S*\s+\d+\s+([0-9.]+) ns/op`)

// signCeiling measures RSA-2048 SHA256 signing: one core with the
// project's own benchmark (go test -bench RSASign ./server/internal/wxsign),
// and every core at once in-process, the ceiling of a v3 endpoint on this
// machine.
func (b *bench) signCeiling() error {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkRSASign$", "-benchtime", "3s", "-count", "1", "./server/internal/wxsign")
	cmd.Dir = b.c.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := nsPerOp.FindStringSubmatch(line); m != nil {
			ns, _ := strconv.ParseFloat(m[1], 64)
			b.r.SignOneCore = 1e9 / ns
		}
	}
	if b.r.SignOneCore == 0 {
		return fmt.Errorf("no ns/op in:\n%s", out)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte("1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{\"state\":\"CREATED\"}\n"))
	res := testing.Benchmark(func(tb *testing.B) {
		tb.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:]); err != nil {
					panic(err)
				}
			}
		})
	})
	b.r.SignAllCores = 1e9 / float64(res.NsPerOp())
	return nil
}

// prepareTrades prepares the trades the jumps cycle through and returns
// the jump bodies: value 106 is embedpay.closed, where the user closes the
// half screen two seconds later (the sandbox resolves the session in the
// background) and the trade stays open, so each pay_id can be opened again.
func (b *bench) prepareTrades(client *drive.Client, cr *drive.Credentials) ([][]byte, error) {
	bodies := make([][]byte, b.c.Trades)
	return bodies, parallel(8, b.c.Trades, func(i int) error {
		payID, err := client.Prepare(cr, fmt.Sprintf("JUMP-%06d", i), drive.ValueClosed, "http://127.0.0.1:9/unused")
		if err != nil {
			return err
		}
		bodies[i] = drive.JumpBody(cr.AppID, payID)
		return nil
	})
}

// jumpRounds alternates the reference, the jump path as configured by
// default, and two variants that show where the time goes — a second
// sandbox without the access log, a third with its store in memory (no
// file, no system call for state) — so that all of them see the same
// background load of the shared machine; the best round of each is kept.
func (b *bench) jumpRounds(s *drive.Server) error {
	ref, err := drive.Start(b.c.Ref, filepath.Join(b.tmp, "refserver.log"))
	if err != nil {
		return err
	}
	defer ref.Kill()
	type target struct {
		srv    *drive.Server
		bodies [][]byte
		into   *[]load.Result
	}
	targets := []target{{ref, b.bodies, &b.r.Ref}, {s, b.bodies, &b.r.Jump}}
	type variant struct {
		name, bin string
		flags     []string
		into      *[]load.Result
	}
	var variants []variant
	if before, skipped := b.serverAt(b.c.JumpBefore); before != "" {
		// Right after this tree's jump in each round, so that the two meet
		// the same moments of the machine.
		variants = append(variants, variant{"before", before, []string{"--data-dir", filepath.Join(b.tmp, "before")}, &b.r.JumpBefore})
	} else {
		b.r.JumpBeforeSkipped = skipped
	}
	variants = append(variants,
		variant{"quiet", b.c.Bin, []string{"--data-dir", filepath.Join(b.tmp, "quiet"), "--access-log=false"}, &b.r.JumpNoLog},
		variant{"memory", b.c.Bin, []string{"--in-memory"}, &b.r.JumpMemory})
	for _, v := range variants {
		srv, err := drive.Start(v.bin, filepath.Join(b.tmp, v.name+".log"), append(v.flags, "--log-format", "json")...)
		if err != nil {
			return err
		}
		defer srv.Stop()
		client := drive.NewClient(srv.Base, 8)
		creds, err := client.Credentials(drive.DemoMchID)
		if err != nil {
			return err
		}
		bodies, err := b.prepareTrades(client, creds)
		if err != nil {
			return err
		}
		targets = append(targets, target{srv, bodies, v.into})
	}
	for round := range b.c.Rounds {
		for _, t := range targets {
			script := load.WrkScript(drive.JumpPath, t.bodies, http.StatusOK)
			io0, _ := drive.ReadIO(t.srv.Pid())
			res, err := load.Wrk(b.tmp, t.srv.Base, script, b.c.Conns, b.c.Warmup, b.c.Duration, cpuOf(t.srv))
			if err != nil {
				return err
			}
			io1, _ := drive.ReadIO(t.srv.Pid())
			*t.into = append(*t.into, res)
			fmt.Fprintf(os.Stderr, "round %d %s: %.0f req/s p50 %v p99 %v, server CPU %v/request, %.1f read/write calls and %.0f bytes written per request (warm-up included), failures %d %s\n",
				round+1, t.srv.Base, res.RPS(), res.P50, res.P99, res.CPUPerRequest(),
				float64(io1.Syscalls-io0.Syscalls)/float64(res.Requests), float64(io1.Written-io0.Written)/float64(res.Requests),
				res.Failures, res.FirstFailure)
			if t.srv == s && round == b.c.Rounds-1 {
				if err := b.drained(s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// drained waits until every session the jumps opened has been resolved in
// the background (each is due 2 s after its jump) and records how long
// that took after the load stopped: a resolver that falls behind would
// flatter the jump figure.
func (b *bench) drained(s *drive.Server) error {
	client := drive.NewClient(s.Base, 1)
	stopped := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := drive.WaitFor(ctx, func() (bool, error) {
		pending, err := client.HasPendingSession(drive.DemoMchID)
		return !pending, err
	})
	b.r.Drain = time.Since(stopped)
	fmt.Fprintf(os.Stderr, "every session resolved %v after the load stopped\n", b.r.Drain)
	return err
}

// cpuOf reads the server's CPU time.
// cpuOf reads the CPU time of the servers together.
func cpuOf(servers ...*drive.Server) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		var sum time.Duration
		for _, s := range servers {
			t, err := drive.CPUTime(s.Pid())
			if err != nil {
				return 0, err
			}
			sum += t
		}
		return sum, nil
	}
}

// v3 drives POST /v3/payscore/serviceorder with requests signed ahead by
// the official SDK, each a new order: verified, committed and answered
// with a signed body.
//
// With several servers (replicas sharing one database) the requests go to
// each in turn, over the same connections in all, and the server CPU is
// theirs together.
func (b *bench) v3(servers []*drive.Server, client *drive.Client, creds *drive.Credentials) (load.Result, error) {
	// Twice the ceiling: on a shared machine the ceiling is measured under
	// other load that may have gone by the time the window runs.
	n := int(b.r.SignAllCores*(b.c.Warmup+b.c.Duration).Seconds()*2) + 1000
	fmt.Fprintf(os.Stderr, "signing %d v3 requests ahead\n", n)
	prefix := fmt.Sprintf("B%d-", time.Now().Unix()%100000)
	// A loopback notify_url: the default --notify-allow refuses any other
	// (a create sends no notification; nothing listens there).
	signed, err := drive.PresignCreates(creds, prefix, "http://127.0.0.1:9/payscore/notify", n)
	if err != nil {
		return load.Result{}, err
	}
	var exhausted atomic.Bool
	res := load.Closed(context.Background(), client.HTTP, b.c.Conns, b.c.Warmup, b.c.Duration, http.StatusOK, cpuOf(servers...),
		func(i int64) (*http.Request, error) {
			if i >= int64(len(signed)) {
				exhausted.Store(true)
				return nil, nil
			}
			return signed[i].Request(servers[i%int64(len(servers))].Base)
		})
	if exhausted.Load() {
		return res, fmt.Errorf("the %d pre-signed requests ran out before the window ended (%d answered, %d failures: %s)", n, res.Requests, res.Failures, res.FirstFailure)
	}
	fmt.Fprintf(os.Stderr, "v3 (%d servers): %.0f req/s p50 %v p99 %v, server CPU %v/request, failures %d %s\n", len(servers), res.RPS(), res.P50, res.P99, res.CPUPerRequest(), res.Failures, res.FirstFailure)
	return res, nil
}

// notifyMchID is the merchant whose notifications are released at once.
const notifyMchID = "1900009001"

// notify queues Notify trade-notify rows due 60 s later (embedpay.notify-late:
// the user pays at once) for a merchant with none yet, advances its clock
// past them on every server (each keeps its own clock), and times how long
// their workers take to deliver every one to an acknowledging loopback
// receiver; then it checks that each attempt was journalled. The servers
// share one store: the first prepares and pays.
func (b *bench) notify(servers []*drive.Server, cr *drive.Credentials, n int) (NotifyFigures, error) {
	mchid := cr.MchID
	var f NotifyFigures
	client := drive.NewClient(servers[0].Base, b.c.Conns)
	var mu sync.Mutex
	acked := map[string]time.Time{}
	duplicates := 0
	recv, err := drive.NewReceiver(func(_ string, form url.Values) (int, []byte) {
		now := time.Now()
		mu.Lock()
		if _, again := acked[form.Get("pay_order")]; again {
			duplicates++
		} else {
			acked[form.Get("pay_order")] = now
		}
		mu.Unlock()
		return http.StatusOK, drive.AckBody
	})
	if err != nil {
		return f, err
	}
	defer recv.Close()
	prepared := time.Now()
	err = parallel(8, n, func(i int) error {
		payID, err := client.Prepare(cr, fmt.Sprintf("NOTIFY-%06d", i), drive.ValueNotifyLate, recv.URL+"/notify")
		if err != nil {
			return err
		}
		_, err = client.Jump(cr.AppID, payID)
		return err
	})
	if err != nil {
		return f, err
	}
	if got := recv.Requests(); got != 0 {
		return f, fmt.Errorf("%d notifications arrived before they were due: preparing %d took %v, and each is due 60 s after its payment (lower -notifications)",
			got, n, time.Since(prepared).Round(time.Second))
	}
	start := time.Now()
	for _, srv := range servers {
		if err := drive.NewClient(srv.Base, 1).Advance(mchid, 61*time.Second); err != nil {
			return f, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = drive.WaitFor(ctx, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= n, nil
	})
	if err != nil {
		return f, fmt.Errorf("%d of %d delivered: %w", len(acked), n, err)
	}
	var last time.Time
	for _, t := range acked {
		if t.After(last) {
			last = t
		}
	}
	mu.Lock()
	f = NotifyFigures{Count: n, Elapsed: last.Sub(start), Attempts: recv.Requests(), Servers: len(servers), Duplicates: duplicates}
	mu.Unlock()
	// Each attempt's journal entry is written in the background: wait for
	// the delivered rows and the entries to settle.
	err = drive.WaitFor(ctx, func() (bool, error) {
		pending, err := client.Notifications(mchid, "", "pending")
		if err != nil || len(pending) > 0 {
			return false, err
		}
		j := 0
		ids := map[string]bool{}
		err = client.Journal(mchid, "out", func(x drive.Exchange) bool {
			if x.Status == http.StatusOK {
				j++
				ids[x.NotifyID] = true
			}
			return true
		})
		f.Journalled, f.JournalledOnce = j, len(ids)
		return j >= f.Attempts, err
	})
	if err != nil {
		return f, fmt.Errorf("journal has %d of %d attempts: %w", f.Journalled, f.Attempts, err)
	}
	fmt.Fprintf(os.Stderr, "notifications (%d servers): %d in %v = %.0f/s, %d attempts (%d repeated), %d journalled for %d notifications\n",
		len(servers), n, f.Elapsed, f.Rate(), f.Attempts, f.Duplicates, f.Journalled, f.JournalledOnce)
	return f, nil
}

// loaded runs the jump path for the load time and reads the RSS.
func (b *bench) loaded(s *drive.Server) error {
	script := load.WrkScript(drive.JumpPath, b.bodies, http.StatusOK)
	res, err := load.Wrk(b.tmp, s.Base, script, b.c.Conns, 0, b.c.Soak, cpuOf(s))
	if err != nil {
		return err
	}
	b.r.LoadRun = res
	if b.r.Loaded, err = drive.ReadMemory(s.Pid()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "after %v of load (%.0f req/s): RSS %s MiB, peak %s MiB\n", b.c.Soak, res.RPS(),
		drive.MiB(b.r.Loaded.RSSKiB), drive.MiB(b.r.Loaded.PeakKiB))
	return nil
}

// startups starts and stops the binary on the existing data dir.
func (b *bench) startups() error {
	for range b.c.Startups {
		s, err := b.start()
		if err != nil {
			return err
		}
		b.r.Starts = append(b.r.Starts, s.Ready)
		if err := s.Stop(); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "start-to-ready on an existing data dir: median %v max %v\n", median(b.r.Starts), slices.Max(b.r.Starts))
	return nil
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(workers, n int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// serverAt builds the server of commit rev as make build does, returning
// the binary, or "" and why not (no commit asked for, a failed export or
// build).
func (b *bench) serverAt(rev string) (bin, skipped string) {
	if rev == "" {
		return "", "no -jump-before commit"
	}
	dir, err := b.exportCommit(rev)
	if err != nil {
		return "", err.Error()
	}
	bin = filepath.Join(b.tmp, "mpsandbox-"+rev)
	cmd := exec.Command("go", "build", "-tags", "nomsgpack", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./server/cmd/mpsandbox")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("build the server at %s: %v: %s", rev, err, bytes.TrimSpace(msg))
	}
	return bin, ""
}
