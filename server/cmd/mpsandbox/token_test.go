package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// TestGeneratedAdminTokenSurvivesRestart runs the binary off loopback
// twice on one data dir: the first start makes the token, writes it 0600
// and logs it; the second reads it, logs it nowhere, and it still opens
// the admin API.
func TestGeneratedAdminTokenSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	p := testproc.Start(t, testproc.Options{Addr: "0.0.0.0:0", DataDir: data})
	p.Stop()
	path := filepath.Join(data, adminTokenFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	token := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(token, "mps_") || strings.Count(p.Log(), token) != 1 {
		t.Fatalf("the first start should log the token %q once:\n%s", token, p.Log())
	}

	p = testproc.Start(t, testproc.Options{Addr: "0.0.0.0:0", DataDir: data})
	if strings.Contains(p.Log(), token) || !strings.Contains(p.Log(), "admin_token_loaded") {
		t.Errorf("the restart should read the token, not log it:\n%s", p.Log())
	}
	if r := send(t, "GET", p.URL+"/sandbox/v1/merchants", token, ""); r.Status != 200 {
		t.Errorf("the kept token after restart: got %d, want 200 (%s)", r.Status, r.Raw)
	}
	if r := send(t, "GET", p.URL+"/sandbox/v1/merchants", "", ""); r.Status != 401 {
		t.Errorf("no token: got %d, want 401", r.Status)
	}
}
