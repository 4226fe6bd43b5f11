package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// unsignedV3 sends a v3 request whose Authorization names a real merchant
// but whose signature is wrong: anyone who can reach the port can.
func unsignedV3(base string, body []byte) (int, error) {
	h := http.Header{"Authorization": {`WECHATPAY2-SHA256-RSA2048 mchid="` + demoMchID +
		`",nonce_str="n",signature="bm90IGEgc2lnbmF0dXJl",timestamp="` + strconv.FormatInt(time.Now().Unix(), 10) + `",serial_no="X"`}}
	status, _, err := call("POST", base+"/v3/payscore/serviceorder", h, body)
	return status, err
}

type journalPage struct {
	Exchanges []struct {
		ID         int64  `json:"id"`
		MchID      string `json:"mchid"`
		Unverified bool   `json:"unverified"`
		Summary    bool   `json:"summary"`
		Request    string `json:"request_body"`
	} `json:"exchanges"`
	NextBefore int64 `json:"next_before"`
}

// TestUnsignedFloodIsBoundedInTheJournal: oversized requests that name a
// real merchant but do not prove it are journalled small, marked
// unverified, rate-limited per source, and listing the journal returns
// summaries whatever the entries hold (issue 13, items 1 and 2).
func TestUnsignedFloodIsBoundedInTheJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	data := t.TempDir()
	p := testproc.Start(t, testproc.Options{DataDir: data})
	body := []byte(`{"out_order_no":"` + strings.Repeat("A", 1000*1000) + `"}`)
	if status, err := unsignedV3(p.URL, body); err != nil || status != 401 {
		t.Fatalf("unsigned request: %d %v; want 401", status, err)
	}
	var page journalPage
	mustJSON(t, "GET", p.URL+"/sandbox/v1/journal?mchid="+demoMchID+"&limit=1", nil, 200, &page)
	if len(page.Exchanges) != 1 || !page.Exchanges[0].Unverified || !page.Exchanges[0].Summary || len(page.Exchanges[0].Request) > 1024 {
		t.Fatalf("journal listing %+v; want one unverified summary", page)
	}
	status, raw, err := call("GET", p.URL+"/sandbox/v1/journal/"+strconv.FormatInt(page.Exchanges[0].ID, 10), nil, nil)
	if err != nil || status != 200 || len(raw) > 16<<10 {
		t.Fatalf("the whole unverified entry: %d %v, %d bytes; want 200 and under 16 KiB", status, err, len(raw))
	}

	start := time.Now()
	var wg sync.WaitGroup
	const clients, each = 4, 25
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := unsignedV3(p.URL, body); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	secs := int(time.Since(start).Seconds()) + 2
	mustJSON(t, "GET", p.URL+"/sandbox/v1/journal?limit=1000", nil, 200, &page)
	stored := 0
	for _, x := range page.Exchanges {
		if x.Unverified {
			stored++
		}
	}
	// One source (loopback), 20 a second.
	if stored > 20*secs || stored == 0 {
		t.Errorf("%d of %d unverified requests in %d s were journalled; want some and at most 20 a second", stored, clients*each, secs)
	}
	var size int64
	for _, f := range []string{"mpsandbox.db", "mpsandbox.db-wal"} {
		if fi, err := os.Stat(filepath.Join(data, f)); err == nil {
			size += fi.Size()
		}
	}
	if size > 32<<20 {
		t.Errorf("database and WAL hold %d bytes after %d MB of unsigned requests; want under 32 MiB", size, clients*each)
	}
}

// TestNotifyTargetsAreTheOperatorsDecision: a merchant cannot widen the
// operator's --notify-allow (nor ever reach a metadata address), and a
// create call whose notify_url is not allowed fails at once, in the
// upstream's format, naming the reason (issue 13, item 3).
func TestNotifyTargetsAreTheOperatorsDecision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := testproc.Start(t, testproc.Options{Flags: []string{"--notify-allow", "127.0.0.1, receiver.example.com:8443"}})
	for _, hosts := range [][]string{{"169.254.169.254"}, {"10.0.0.1"}, {"metadata.google.internal"}, {"receiver.example.com:9000"}} {
		status, raw, err := call("PATCH", p.URL+"/sandbox/v1/merchants/"+demoMchID, nil, map[string]any{"notify_hosts": hosts})
		if err != nil || status != 400 || !strings.Contains(string(raw), `"path":"/notify_hosts/0"`) {
			t.Errorf("PATCH notify_hosts %v: %d %v %s; want 400 at /notify_hosts/0", hosts, status, err, raw)
		}
	}
	mustJSON(t, "PATCH", p.URL+"/sandbox/v1/merchants/"+demoMchID, map[string]any{"notify_hosts": []string{"receiver.example.com"}}, 200, nil)
	mustJSON(t, "PATCH", p.URL+"/sandbox/v1/merchants/"+demoMchID, map[string]any{"notify_hosts": []string{}}, 200, nil)

	c := credsOf(t, p.URL, demoMchID)
	for url, reason := range map[string]string{
		"http://169.254.169.254/latest/meta-data/": "never allowed",
		"http://10.0.0.1:8080/notify":              "--notify-allow",
	} {
		out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/prepare", c, map[string]string{
			"pay_order": "SSRF" + strconv.Itoa(len(url)), "subject": "停车支付", "value": "1", "notify_url": url, "trade_scene": "GENERIC",
			"expire_time": "2099-01-01T00:00:00.000Z", "sign_type": "MD5",
		})
		if err != nil {
			t.Fatalf("prepare with notify_url %s: %v", url, err)
		}
		if out["code"] == "1001" || !strings.Contains(fmt.Sprint(out), "notify_url") || !strings.Contains(fmt.Sprint(out), reason) {
			t.Errorf("prepare with notify_url %s answered %v; want a P云 error naming notify_url and %q", url, out, reason)
		}
	}
	if _, err := prepare(p.URL, c, "SSRF-OK", "1", "http://127.0.0.1:9/notify"); err != nil {
		t.Errorf("prepare with an allowed notify_url: %v", err)
	}
}

// TestNoCSRFOrRebindingOnLoopback: bound to loopback, the admin API gives
// nothing to a rebound DNS name, a page of another origin, a no-cors form
// post or a client behind a proxy (issue 13, item 5).
func TestNoCSRFOrRebindingOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := testproc.Start(t, testproc.Options{})
	before := clockNow(t, p.URL, demoMchID)
	for _, tc := range []struct {
		name, method, path, host, ctype, body string
		header                                map[string]string
		want                                  int
	}{
		{"rebound name reads credentials", "GET", "/sandbox/v1/merchants/" + demoMchID + "/credentials", "rebind.attacker.example", "", "", nil, 421},
		{"no-cors clock advance", "POST", "/sandbox/v1/clock/advance", "", "text/plain", `{"mchid":"` + demoMchID + `","by":"1h"}`, nil, 415},
		{"form-encoded merchant create", "POST", "/sandbox/v1/merchants", "", "application/x-www-form-urlencoded", `mchid=1900000999`, nil, 415},
		{"a page elsewhere", "POST", "/sandbox/v1/merchants", "", "application/json", `{"mchid":"1900000999"}`, map[string]string{"Origin": "http://evil.example"}, 403},
		{"through a proxy on loopback", "GET", "/sandbox/v1/merchants/" + demoMchID + "/credentials", "", "", "", map[string]string{"X-Forwarded-For": "203.0.113.9"}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, p.URL+tc.path, strings.NewReader(tc.body))
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := faultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw := make([]byte, 4096)
			n, _ := resp.Body.Read(raw)
			if resp.StatusCode != tc.want || strings.Contains(string(raw[:n]), "merchant_token") {
				t.Fatalf("got %d %s; want %d and no credentials", resp.StatusCode, raw[:n], tc.want)
			}
		})
	}
	if after := clockNow(t, p.URL, demoMchID); after.Sub(before) > 30*time.Minute {
		t.Errorf("the clock moved from %v to %v", before, after)
	}
	status, _, _ := call("GET", p.URL+"/sandbox/v1/merchants/1900000999", nil, nil)
	if status != 404 {
		t.Errorf("the forged merchant exists: GET answered %d", status)
	}
}

// TestSlowClientsCannotHoldTheServer: a body trickling in is cut with 408
// once it falls behind, and one source cannot hold more than its share of
// connections (issue 13, item 4).
func TestSlowClientsCannotHoldTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := testproc.Start(t, testproc.Options{Flags: []string{"--body-timeout", "2s", "--max-conns-per-source", "4"}})
	addr := strings.TrimPrefix(p.URL, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v3/payscore/serviceorder HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", addr)
	start := time.Now()
	answered := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		answered <- line
	}()
	var line string
trickle:
	for {
		select {
		case line = <-answered:
			break trickle
		case <-time.After(time.Second):
			if time.Since(start) > 15*time.Second {
				t.Fatal("a body sent at a byte a second held its connection for 15 s")
			}
			_, _ = conn.Write([]byte("{"))
		}
	}
	if !strings.Contains(line, " 408 ") || time.Since(start) > 6*time.Second {
		t.Fatalf("after %v the server answered %q; want 408 within the 2 s body timeout", time.Since(start), line)
	}

	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Fatalf("a fifth connection from one source: read %v; want it closed at once", err)
	}
	held[0].Close()
	eventually(t, 5*time.Second, "a connection once one is freed", func() bool {
		status, _, err := call("GET", p.URL+"/healthz", nil, nil)
		return err == nil && status == 200
	})
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
