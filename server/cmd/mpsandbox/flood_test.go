package main

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// TestFaultFlood runs a normal flow (trades prepared, paid and notified)
// first on an idle server, then while thousands of oversized requests that
// name a real merchant but prove nothing pour in and an event-stream
// client never reads. The database and its WAL stay within the journal's
// byte budget, the process's memory within its own, the flow's median
// latency within twice the idle one, and nothing the flow was told was
// accepted is lost (issue 13). make soak runs it longer.
func TestFaultFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const journalBytes = 8 << 20
	// The flood is open-loop: rate requests a second, total in all, from
	// clients connections, whatever the server's pace.
	flow, floodBody, floodClients, rate, total := 30, 256<<10, 4, 100, 2000
	if soak() {
		flow, floodBody, rate, total = 100, 1000<<10, 100, 30000
	}
	data := t.TempDir()
	p := testproc.Start(t, testproc.Options{DataDir: data, Flags: []string{"--journal-max-bytes", strconv.Itoa(journalBytes), "--access-log=false"}})
	c := credsOf(t, p.URL, demoMchID)
	ledger := newLedger(t, c.PCloudSecret, 0)
	var seq atomic.Int64
	accepted := map[string]bool{}
	// run does n paid orders one after another and returns their latencies.
	run := func(n int) []time.Duration {
		var lat []time.Duration
		for range n {
			po := fmt.Sprintf("FL-%06d", seq.Add(1))
			start := time.Now()
			if _, err := paidOrder(p.URL, c, po, ledger.URL+"/notify"); err != nil {
				t.Fatalf("the normal flow failed: %v", err)
			}
			lat = append(lat, time.Since(start))
			accepted[po] = true
		}
		return lat
	}
	run(5) // warm up
	idle := median(run(flow))

	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	host := strings.TrimPrefix(p.URL, "http://")
	// One request, encoded once and written as it is again and again over
	// a kept-alive connection: the flood should cost its sender little, so
	// that the machine's time goes to the server.
	body := `{"out_order_no":"` + strings.Repeat("A", floodBody) + `"}`
	req := []byte(fmt.Sprintf("POST /v3/payscore/serviceorder HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Authorization: WECHATPAY2-SHA256-RSA2048 mchid=\"%s\",nonce_str=\"n\",signature=\"bm90\",timestamp=\"%d\",serial_no=\"X\"\r\n"+
		"Content-Length: %d\r\n\r\n%s", host, demoMchID, time.Now().Unix(), len(body), body))
	for range floodClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * time.Duration(floodClients) / time.Duration(rate))
			defer tick.Stop()
			conn, err := net.Dial("tcp", host)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			for sent.Load() < int64(total) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write(req); err != nil {
					t.Errorf("flood request: %v", err)
					return
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Errorf("flood answer: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("flood answer %d, want 401", resp.StatusCode)
					return
				}
				sent.Add(1)
			}
		}()
	}
	// An event-stream client that never reads.
	stream, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	fmt.Fprintf(stream, "GET /sandbox/v1/journal/stream HTTP/1.1\r\nHost: %s\r\n\r\n", strings.TrimPrefix(p.URL, "http://"))
	if line, _ := bufio.NewReader(stream).ReadString('\n'); !strings.Contains(line, " 200 ") {
		t.Fatalf("the stream answered %q", line)
	}

	// Let the flood build up first: the flow then runs in its midst, round
	// after round, until the flood is over.
	for sent.Load() < int64(rate) {
		time.Sleep(50 * time.Millisecond)
	}
	var during []time.Duration
	for sent.Load() < int64(total) && !t.Failed() {
		during = append(during, run(flow)...)
	}
	busy := median(during)
	close(stop)
	wg.Wait()

	rss := peakRSS(t, p.PID())
	var files int64
	for _, f := range []string{"mpsandbox.db", "mpsandbox.db-wal"} {
		if fi, err := os.Stat(filepath.Join(data, f)); err == nil {
			files += fi.Size()
			t.Logf("%s: %d KiB", f, fi.Size()>>10)
		}
	}
	t.Logf("%d oversized unsigned requests of %d KiB; flow median %v idle, %v under the flood; database+WAL %d KiB (journal budget %d KiB); peak RSS %d MiB",
		sent.Load(), floodBody>>10, idle, busy, files>>10, journalBytes>>10, rss>>20)
	if busy > 2*idle+20*time.Millisecond {
		t.Errorf("the flow's median latency went from %v idle to %v under the flood; want within 2x", idle, busy)
	}
	held := storedBytes(t, filepath.Join(data, "mpsandbox.db"))
	t.Logf("stored documents: %v", held)
	if held["journal"] > journalBytes+journalBytes/4 {
		t.Errorf("the journal holds %d bytes; want within its budget of %d (and the eighth a prune may lag)", held["journal"], journalBytes)
	}
	var all int64
	for _, n := range held {
		all += n
	}
	// The file holds what is stored, indexes and free pages a prune left
	// for reuse; the WAL is checkpointed as it grows and cut back when it
	// starts over.
	if budget := 2*all + sqlite.WALKeepBytes; files > budget {
		t.Errorf("database and WAL hold %d bytes for %d bytes of documents; want at most %d", files, all, budget)
	}
	if budget := int64(384 << 20); rss > budget {
		t.Errorf("peak RSS %d MiB; want at most %d MiB", rss>>20, budget>>20)
	}

	advance(t, p.URL, demoMchID, 61*time.Second)
	eventually(t, time.Minute, "every accepted trade-notify delivered", func() bool { return len(ledger.missing(accepted)) == 0 })
	for po := range accepted {
		out, err := pcloudForm(p.URL, "/gate/1.0/payment/trade/query", c, map[string]string{"pay_order": po})
		if err != nil || out["code"] != "1001" {
			t.Fatalf("acknowledged trade %s: %v %v", po, out, err)
		}
	}
}

// storedBytes sums the stored documents of each table.
func storedBytes(t *testing.T, path string) map[string]int64 {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int64{}
	for table, doc := range map[string]string{"journal": "json", "records": "data", "sessions": "json", "notifications": "json", "merchants": "json"} {
		var n sql.NullInt64
		if err := db.QueryRow("SELECT sum(length(" + doc + ")) FROM " + table).Scan(&n); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		out[table] = n.Int64
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}
