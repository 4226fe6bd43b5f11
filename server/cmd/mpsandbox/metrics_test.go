package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// TestMetricsAndLogs drives a P云 trade to a delivered notification on the
// real binary, then reads /metrics — requests by product, route and status,
// the attempt by outcome, commit latency, queues, pending sessions, the
// journal's size — and the JSON log, whose lines name the request, the
// merchant, the product and the session under the same keys.
func TestMetricsAndLogs(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"1001","message":"通知成功","hint":""}`))
	}))
	defer recv.Close()
	p := testproc.Start(t, testproc.Options{DataDir: t.TempDir(), Flags: []string{"--clock-scale", "60"}})
	c := credsOf(t, p.URL, demoMchID)
	payID, err := prepare(p.URL, c, "MET-1", "101", recv.URL+"/notify")
	if err != nil {
		t.Fatal(err)
	}
	if status, raw, err := jump(p.URL, c, payID); err != nil || status != 200 {
		t.Fatalf("jump: %d %s %v", status, raw, err)
	}
	eventually(t, 20*time.Second, "the trade-notify delivered", func() bool {
		n := notificationsOf(t, p.URL, demoMchID, "MET-1")
		return len(n) == 1 && n[0].State == "delivered"
	})

	status, raw, err := call("GET", p.URL+"/metrics", nil, nil)
	if err != nil || status != 200 {
		t.Fatalf("/metrics: %d %v", status, err)
	}
	text := string(raw)
	for _, want := range []string{
		`mpsandbox_http_requests_total{product="embedpay",route="/gate/1.0/payment/trade/prepare",status="200"} 1`,
		`mpsandbox_http_requests_total{product="none",route="/sandbox/v1/notifications",status="200"}`,
		`mpsandbox_notification_attempts_total{attempt="1",outcome="delivered",product="embedpay"} 1`,
		`mpsandbox_http_request_duration_seconds_bucket{product="embedpay",route="/gate/1.0/payment/trade/prepare",le=`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, gauge := range []string{"store_commit_duration_seconds_count", "journal_entries", "journal_bytes", "journal_queue_depth",
		"notification_queue_depth", "sessions_pending", "store_write_queue_depth"} {
		m := regexp.MustCompile(`(?m)^mpsandbox_` + gauge + ` (\S+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("/metrics lacks mpsandbox_%s", gauge)
			continue
		}
		if v, _ := strconv.ParseFloat(m[1], 64); v <= 0 && (gauge == "journal_entries" || gauge == "journal_bytes" || gauge == "store_commit_duration_seconds_count") {
			t.Errorf("mpsandbox_%s is %s, want above 0", gauge, m[1])
		}
	}

	// One set of keys: the prepare's line names the merchant and the
	// product, the jump's the session too.
	seen := map[string]bool{}
	for _, line := range strings.Split(p.Log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "request" {
			continue
		}
		if rec["request_id"] == nil {
			t.Errorf("an access log line without request_id: %s", line)
		}
		switch {
		case rec["path"] == "/gate/1.0/payment/trade/prepare":
			seen["prepare"] = rec["mchid"] == demoMchID && rec["product"] == "embedpay"
		case rec["path"] == "/miniprogram/v1/openEmbeddedMiniProgram":
			seen["jump"] = rec["mchid"] == demoMchID && rec["product"] == "embedpay" && strings.HasPrefix(rec["session_id"].(string), "ses_")
		}
	}
	if !seen["prepare"] || !seen["jump"] {
		t.Errorf("access log lines with mchid, product (and session_id): %v\n%s", seen, p.Log())
	}
}

// checkPostgresMetrics reads /metrics of a sandbox on PostgreSQL that has
// delivered a notification and lived through a restart of its database:
// the pool's connections and acquires, the claims, and the LISTEN
// connection made again.
func checkPostgresMetrics(t *testing.T, base string) {
	t.Helper()
	status, raw, err := call("GET", base+"/metrics", nil, nil)
	if err != nil || status != 200 {
		t.Fatalf("/metrics: %d %v", status, err)
	}
	for name, least := range map[string]float64{
		"postgres_pool_connections": 1, "postgres_pool_max_connections": 1, "postgres_pool_acquires_total": 1,
		"postgres_pool_acquired_connections": 0, "postgres_pool_idle_connections": 0,
		"postgres_pool_empty_acquires_total": 0, "postgres_pool_acquire_wait_seconds_total": 0,
		"postgres_notification_claims_total": 1, "postgres_notifications_claimed_total": 1, "postgres_listen_reconnects_total": 1,
	} {
		m := regexp.MustCompile(`(?m)^mpsandbox_` + name + ` (\S+)$`).FindStringSubmatch(string(raw))
		if m == nil {
			t.Errorf("/metrics lacks mpsandbox_%s", name)
			continue
		}
		if v, err := strconv.ParseFloat(m[1], 64); err != nil || v < least {
			t.Errorf("mpsandbox_%s is %s, want at least %v", name, m[1], least)
		}
	}
}

// TestMetricsAccess: off loopback /metrics wants the metrics token or the
// admin token, and the metrics token opens nothing else.
func TestMetricsAccess(t *testing.T) {
	_, base := start(t, func(c *Config) { c.Addr, c.AdminToken, c.MetricsToken = "0.0.0.0:0", "adm1n", "m3trics" })
	merchant := send(t, "GET", base+"/sandbox/v1/merchants/"+demoMchID+"/credentials", "adm1n", "").Body["merchant_token"].(string)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", 401}, {"/metrics", "m3trics", 200}, {"/metrics", "adm1n", 200}, {"/metrics", merchant, 401},
		{"/sandbox/v1/merchants", "m3trics", 401},
	} {
		if r := send(t, "GET", base+tc.path, tc.token, ""); r.Status != tc.want {
			t.Errorf("GET %s with %q: got %d, want %d", tc.path, tc.token, r.Status, tc.want)
		}
	}
}
