package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
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
