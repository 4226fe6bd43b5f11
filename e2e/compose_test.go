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
	p := newComposeProject(t, "mpsandboxe2e")
	port, token := strconv.Itoa(composePort(t)), "e2e-compose-"+p.tag
	p.env = []string{"MPSANDBOX_IMAGE=" + testImage, "MPSANDBOX_PORT=" + port, "MPSANDBOX_ADMIN_TOKEN=" + token}
	notifyURL, forms := hostReceiver(t)
	p.up(t)
	if out, _ := p.run("port", "mpsandbox", "8080"); strings.TrimSpace(out) != "127.0.0.1:"+port {
		t.Errorf("published on %q, want 127.0.0.1:%s only", strings.TrimSpace(out), port)
	}

	s := newComposeClient("http://127.0.0.1:"+port, token)
	s.waitReady(t, 60*time.Second)

	var c testkit.Credentials
	s.call(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/credentials", "", nil, &c)
	if len(c.NotifyHosts) != 0 {
		t.Errorf("the demo merchant's notify_hosts under compose: %v, want none (the operator's --notify-allow governs)", c.NotifyHosts)
	}
	params := map[string]string{"app_id": c.PCloudAppID, "merchant": c.PCloudMerchant, "pay_order": "COMPOSE-1", "subject": "停车支付",
		"value": "101", "notify_url": notifyURL, "trade_scene": "GENERIC", "sign_type": "MD5"}
	var prepared map[string]any
	s.call(t, http.MethodPost, "/gate/1.0/payment/trade/prepare", "application/x-www-form-urlencoded", pcloudForm(params, c.PCloudAppSecret), &prepared)
	var launched map[string]any
	s.call(t, http.MethodPost, "/miniprogram/v1/openEmbeddedMiniProgram", "application/json", jumpBody(c.AppID, prepared["pay_id"]), &launched)

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

// composeProject is docker-compose.yml run under a project name of its own,
// with the settings in env.
type composeProject struct {
	name, tag string   // the project, and the random part of its name
	args      []string // before the command, e.g. --profile replicated
	env       []string
}

func newComposeProject(t *testing.T, prefix string, args ...string) *composeProject {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: apt-get install docker-compose")
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	tag := hex.EncodeToString(suffix[:])
	return &composeProject{name: prefix + tag, tag: tag, args: args}
}

// run runs one docker-compose command and returns its output.
func (p *composeProject) run(args ...string) (string, error) {
	argv := append(append([]string{"-f", "../docker-compose.yml", "-p", p.name}, p.args...), args...)
	cmd := exec.Command("docker-compose", argv...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// up starts the services (all of the default ones when none is named) and
// takes the project down, volumes and all, when the test ends, logging the
// services' output first if it failed.
func (p *composeProject) up(t *testing.T, services ...string) {
	t.Helper()
	if out, err := p.run(append([]string{"up", "-d"}, services...)...); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := p.run("logs", "--no-color", "--tail", "50")
			t.Log(out)
		}
		if out, err := p.run("down", "-v", "--timeout", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
}

// hostReceiver is a merchant's notify receiver on this host, listening on
// the docker bridge's gateway address, which containers reach as
// host.docker.internal and nothing off this machine does. It returns the
// notify_url to give and the forms it receives, acknowledging each.
func hostReceiver(t *testing.T) (string, <-chan url.Values) {
	t.Helper()
	gateway, err := exec.Command("docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}").Output()
	if err != nil {
		t.Fatalf("the docker bridge's gateway: %v", err)
	}
	ln, err := net.Listen("tcp", strings.TrimSpace(string(gateway))+":0")
	if err != nil {
		t.Fatalf("a receiver on the bridge's gateway: %v", err)
	}
	forms := make(chan url.Values, 64)
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		form, _ := url.ParseQuery(string(body))
		forms <- form
		_, _ = w.Write([]byte(`{"code":"1001","message":"通知成功","hint":""}`))
	})}
	go recv.Serve(ln)
	t.Cleanup(func() { recv.Close() })
	return fmt.Sprintf("http://host.docker.internal:%d/pcloud/notify", ln.Addr().(*net.TCPAddr).Port), forms
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

// composeClient calls one sandbox a compose file started, with the admin
// token on every request.
type composeClient struct {
	base, token string
	client      *http.Client
}

func newComposeClient(base, token string) *composeClient {
	return &composeClient{base: base, token: token, client: &http.Client{Timeout: 30 * time.Second}}
}

// call sends one request and decodes its 200 answer into out.
func (s *composeClient) call(t *testing.T, method, path, contentType string, body []byte, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, s.base, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || json.Unmarshal(raw, out) != nil {
		t.Fatalf("%s %s%s: %d %s", method, s.base, path, res.StatusCode, raw)
	}
}

// waitReady waits for /readyz to answer 200.
func (s *composeClient) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := s.client.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v: %v", s.base, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pcloudForm is a P云 request's form body, signed with the app secret.
func pcloudForm(params map[string]string, secret string) []byte {
	params["sign"] = testkit.PCloudSign(params, secret)
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	return []byte(form.Encode())
}

// jumpBody is the wx.openEmbeddedMiniProgram call that opens the cashier
// on a prepared trade.
func jumpBody(appID string, payID any) []byte {
	body, _ := json.Marshal(map[string]any{
		"caller": map[string]any{"appId": appID, "platform": "android", "sdkVersion": "3.4.0"},
		"args":   map[string]any{"appId": "wxa204074068ad40ef", "path": fmt.Sprintf("/external/payment/trade/create/index?pay_id=%v", payID)},
	})
	return body
}
