package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
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

// TestPostgresReplicasShareTokenCAAndClock starts two replicas on one
// database with --tls-self-signed and --clock-scale 60, the second a
// second after the first: they answer to the same generated admin token,
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

	// A client by a public name is not local: it needs the token, on
	// either replica.
	byName := func(p *testproc.Proc, auth string) int {
		req, _ := http.NewRequest("GET", https(p)+"/sandbox/v1/merchants", nil)
		req.Host = "sandbox.example.test"
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
	for _, p := range []*testproc.Proc{a, b} {
		if got := byName(p, ""); got != 401 {
			t.Errorf("%s by its public name without a token: %d, want 401", p.URL, got)
		}
		if got := byName(p, token); got != 200 {
			t.Errorf("%s by its public name with the shared token: %d, want 200", p.URL, got)
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
