package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	// The journal writes behind the answer.
	eventually(t, 10*time.Second, "the unsigned request in the journal", func() bool {
		mustJSON(t, "GET", p.URL+"/sandbox/v1/journal?mchid="+demoMchID+"&limit=1", nil, 200, &page)
		return len(page.Exchanges) == 1
	})
	if len(page.Exchanges) != 1 || !page.Exchanges[0].Unverified || !page.Exchanges[0].Summary || len(page.Exchanges[0].Request) > 1024 {
		t.Fatalf("journal listing %+v; want one unverified summary", page)
	}
	status, raw, err := call("GET", p.URL+"/sandbox/v1/journal/"+strconv.FormatInt(page.Exchanges[0].ID, 10), nil, nil)
	if err != nil || status != 200 || len(raw) > 16<<10 {
		t.Fatalf("the whole unverified entry: %d %v, %d bytes; want 200 and under 16 KiB", status, err, len(raw))
	}

	before := page.Exchanges[0].ID // entries up to it came before the flood
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
	// The limiter counts per second of the clock: the flood may touch one
	// second more than it lasted.
	secs := int(time.Now().Unix()-start.Unix()) + 1
	mustJSON(t, "GET", p.URL+"/sandbox/v1/journal?limit=1000", nil, 200, &page)
	stored := 0
	for _, x := range page.Exchanges {
		if x.Unverified && x.ID > before {
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

// TestSmallHoles: clock advances are bounded, a merchant-less journal
// entry is the admin's alone, /validate refuses invalid UTF-8, ?token=
// works only on the event stream and never reaches the log, a merchant
// token can be rotated, and credential answers are not cached (issue 13,
// item 7).
func TestSmallHoles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := testproc.Start(t, testproc.Options{})
	base := p.URL
	year := clockNow(t, base, demoMchID).Year()
	for _, body := range []map[string]any{
		{"mchid": demoMchID, "by": "2562047h"},
		{"mchid": demoMchID, "by": "87601h"},
		{"mchid": demoMchID, "seconds": 1e300},
	} {
		status, raw, err := call("POST", base+"/sandbox/v1/clock/advance", nil, body)
		if err != nil || status != 400 || !strings.Contains(string(raw), "at most") {
			t.Errorf("advance %v: %d %v %s; want 400 naming the limit", body, status, err, raw)
		}
	}
	if got := clockNow(t, base, demoMchID).Year(); got != year {
		t.Errorf("the clock reads year %d after refused advances; want %d", got, year)
	}

	creds := credsOf(t, base, demoMchID)
	var full struct {
		Token string `json:"merchant_token"`
	}
	status, raw, _ := call("GET", base+"/sandbox/v1/merchants/"+demoMchID+"/credentials", nil, nil)
	_ = json.Unmarshal(raw, &full)
	resp, err := faultClient.Get(base + "/sandbox/v1/merchants/" + demoMchID + "/credentials")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("credentials answered with Cache-Control %q, X-Content-Type-Options %q; want no-store, nosniff", resp.Header.Get("Cache-Control"), resp.Header.Get("X-Content-Type-Options"))
	}
	asMerchant := func(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

	// A P云 call with a mistyped app_id is journalled with no merchant.
	bad := *creds
	bad.PCloudAppID = "op_mistyped"
	_, _ = pcloudForm(base, "/gate/1.0/payment/trade/query", &bad, map[string]string{"pay_order": "X"})
	var page journalPage
	eventually(t, 10*time.Second, "the mistyped call in the journal", func() bool {
		mustJSON(t, "GET", base+"/sandbox/v1/journal?limit=1", nil, 200, &page)
		return len(page.Exchanges) == 1 && page.Exchanges[0].MchID == ""
	})
	if len(page.Exchanges) != 1 || page.Exchanges[0].MchID != "" {
		t.Fatalf("newest entry %+v; want the merchant-less P云 call", page.Exchanges)
	}
	entry := base + "/sandbox/v1/journal/" + strconv.FormatInt(page.Exchanges[0].ID, 10)
	if status, raw, _ := call("GET", entry, asMerchant(full.Token), nil); status != 404 {
		t.Errorf("a merchant token read a merchant-less entry: %d %s", status, raw)
	}
	if status, _, _ := call("GET", entry, nil, nil); status != 200 {
		t.Errorf("the admin could not read it: %d", status)
	}

	status, raw, _ = call("POST", base+"/sandbox/v1/validate/admin/clock-advance", nil, []byte("{\"mchid\":\"\xff\xfe\",\"by\":\"1h\"}"))
	if status != 200 || !strings.Contains(string(raw), `"valid":false`) {
		t.Errorf("validate invalid UTF-8: %d %s; want valid false", status, raw)
	}

	// ?token= only on the event stream, and never in the log.
	proxied := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	if status, _, _ := call("GET", base+"/sandbox/v1/merchants?token="+full.Token, proxied, nil); status != 401 {
		t.Errorf("?token= on an ordinary call: %d; want 401", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/sandbox/v1/journal/stream?token="+full.Token, nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("?token= on the stream: %v %v", err, resp)
	}
	resp.Body.Close()
	cancel()

	// Rotation: the old token stops working, the new one works.
	var rotated struct {
		Token string `json:"merchant_token"`
	}
	status, raw, _ = call("POST", base+"/sandbox/v1/merchants/"+demoMchID+"/token", asMerchant(full.Token), "{}")
	if err := json.Unmarshal(raw, &rotated); status != 200 || err != nil || rotated.Token == "" || rotated.Token == full.Token {
		t.Fatalf("rotate: %d %s", status, raw)
	}
	if status, _, _ := call("GET", base+"/sandbox/v1/merchants/"+demoMchID, asMerchant(full.Token), nil); status != 401 {
		t.Errorf("the old token still works: %d", status)
	}
	if status, _, _ := call("GET", base+"/sandbox/v1/merchants/"+demoMchID, asMerchant(rotated.Token), nil); status != 200 {
		t.Errorf("the new token does not work: %d", status)
	}
	p.Stop()
	if strings.Contains(p.Log(), full.Token) || strings.Contains(p.Log(), rotated.Token) {
		t.Error("a merchant token reached the log")
	}
}
