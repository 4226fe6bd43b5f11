package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
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
	port, token := strconv.Itoa(freePort(t)), "e2e-compose-"+hex.EncodeToString(suffix[:])
	compose := func(args ...string) (string, error) {
		cmd := exec.Command("docker-compose", append([]string{"-f", "../docker-compose.yml", "-p", project}, args...)...)
		cmd.Env = append(os.Environ(), "MPSANDBOX_IMAGE="+testImage, "MPSANDBOX_PORT="+port, "MPSANDBOX_ADMIN_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	p := &pcloud{}
	recv, recvPort := newReceiverOn(t, strings.TrimSpace(string(gateway))+":0", func(r Received) (int, []byte) {
		if n := p.parse(t, r); !n.signedOK {
			return http.StatusOK, []byte(`{"code":"400","message":"签名错误","hint":"sign"}`)
		}
		return http.StatusOK, []byte(`{"code":"1001","message":"通知成功","hint":""}`)
	})
	recv.URL = fmt.Sprintf("http://host.docker.internal:%d", recvPort)

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

	s := &Sandbox{URL: "http://127.0.0.1:" + port, Token: token, client: &http.Client{Timeout: 30 * time.Second}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := s.client.Get(s.URL + "/readyz")
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

	c := credentials(t, s, demoMchID)
	if hosts := fmt.Sprint(c["notify_hosts"]); hosts != "[host.docker.internal]" {
		t.Errorf("the demo merchant's notify_hosts under compose: %s, want [host.docker.internal]", hosts)
	}
	*p = pcloud{s: s, appID: c["pcloud_app_id"].(string), secret: c["pcloud_app_secret"].(string),
		merchant: c["pcloud_merchant"].(string), miniAppID: c["appid"].(string), recv: recv}
	p.jump(t, p.prepare(t, "COMPOSE-1", "101"))
	if got := p.genuine(t, "COMPOSE-1"); got["status"] != "1" {
		t.Errorf("trade-notify status %q, want 1 (paid)", got["status"])
	}
}
