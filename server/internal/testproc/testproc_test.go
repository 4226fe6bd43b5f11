package testproc

import (
	"net/http"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestStartStopKill starts the binary in memory, on a wildcard bind and on
// a data dir, reaches it on loopback, reads its log, and ends it both ways.
func TestStartStopKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, o := range []Options{{}, {Addr: "0.0.0.0:0", Flags: []string{"--access-log=false"}}, {DataDir: t.TempDir()}} {
		p := Start(t, o)
		if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
			t.Fatalf("URL %q, want loopback", p.URL)
		}
		resp, err := http.Get(p.URL + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("readyz: %v %v", err, resp)
		}
		resp.Body.Close()
		if !strings.Contains(p.Log(), `"msg":"ready"`) || p.PID() <= 0 {
			t.Fatalf("pid %d, log:\n%s", p.PID(), p.Log())
		}
		if o.DataDir == "" {
			p.Stop()
		} else {
			p.Kill()
			if p.Wait() == nil {
				t.Fatal("a killed process exited cleanly")
			}
		}
	}
}
