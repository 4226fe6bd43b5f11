package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// TestComposeDeliversToTheHost runs docker-compose.yml as it is — the
// suite's image, a free port, a token — and gets a P云 trade-notify
// delivered to a receiver on this host at host.docker.internal, the
// default allow-list of that file. The receiver listens on the docker
// bridge's gateway address, which the container reaches and nothing off
// this machine does; the port is published on 127.0.0.1 only.
func TestComposeDeliversToTheHost(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: apt-get install docker-compose")
	}
	gateway, err := exec.Command("docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}").Output()
	if err != nil {
		t.Fatalf("the docker bridge's gateway: %v", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	project := "mpsandboxe2e" + hex.EncodeToString(suffix[:])
	port, token := strconv.Itoa(composePort(t)), "e2e-compose-"+hex.EncodeToString(suffix[:])
	compose := func(args ...string) (string, error) {
		cmd := exec.Command("docker-compose", append([]string{"-f", "../docker-compose.yml", "-p", project}, args...)...)
		cmd.Env = append(os.Environ(), "MPSANDBOX_IMAGE="+testImage, "MPSANDBOX_PORT="+port, "MPSANDBOX_ADMIN_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// The merchant's notify_url, on the bridge's gateway.
	ln, err := net.Listen("tcp", strings.TrimSpace(string(gateway))+":0")
	if err != nil {
		t.Fatalf("a receiver on the bridge's gateway: %v", err)
	}
	forms := make(chan url.Values, 8)
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		form, _ := url.ParseQuery(string(body))
		forms <- form
		_, _ = w.Write([]byte(`{"code":"1001","message":"通知成功","hint":""}`))
	})}
	go recv.Serve(ln)
	t.Cleanup(func() { recv.Close() })
	notifyURL := fmt.Sprintf("http://host.docker.internal:%d/pcloud/notify", ln.Addr().(*net.TCPAddr).Port)

	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose("logs", "--no-color", "--tail", "50")
			t.Log(out)
		}
		if out, err := compose("down", "-v", "--timeout", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	if out, _ := compose("port", "mpsandbox", "8080"); strings.TrimSpace(out) != "127.0.0.1:"+port {
		t.Errorf("published on %q, want 127.0.0.1:%s only", strings.TrimSpace(out), port)
	}

	base := "http://127.0.0.1:" + port
	client := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path, contentType string, body []byte, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || json.Unmarshal(raw, out) != nil {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 60 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var c testkit.Credentials
	call(http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/credentials", "", nil, &c)
	if len(c.NotifyHosts) != 0 {
		t.Errorf("the demo merchant's notify_hosts under compose: %v, want none (the operator's --notify-allow governs)", c.NotifyHosts)
	}
	params := map[string]string{"app_id": c.PCloudAppID, "merchant": c.PCloudMerchant, "pay_order": "COMPOSE-1", "subject": "停车支付",
		"value": "101", "notify_url": notifyURL, "trade_scene": "GENERIC", "sign_type": "MD5"}
	params["sign"] = testkit.PCloudSign(params, c.PCloudAppSecret)
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	var prepared map[string]any
	call(http.MethodPost, "/gate/1.0/payment/trade/prepare", "application/x-www-form-urlencoded", []byte(form.Encode()), &prepared)
	jump, _ := json.Marshal(map[string]any{
		"caller": map[string]any{"appId": c.AppID, "platform": "android", "sdkVersion": "3.4.0"},
		"args":   map[string]any{"appId": "wxa204074068ad40ef", "path": fmt.Sprintf("/external/payment/trade/create/index?pay_id=%v", prepared["pay_id"])},
	})
	var launched map[string]any
	call(http.MethodPost, "/miniprogram/v1/openEmbeddedMiniProgram", "application/json", jump, &launched)

	select {
	case got := <-forms:
		sent := map[string]string{}
		for k := range got {
			sent[k] = got.Get(k)
		}
		if sent["pay_order"] != "COMPOSE-1" || sent["status"] != "1" || !strings.EqualFold(testkit.PCloudSign(sent, c.PCloudAppSecret), sent["sign"]) {
			t.Errorf("trade-notify: %v, want COMPOSE-1 paid, signed with the merchant's secret", sent)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no trade-notify reached the receiver on the host within 30 s")
	}
}

// composePort is a free port for compose to publish on 127.0.0.1.
func composePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
