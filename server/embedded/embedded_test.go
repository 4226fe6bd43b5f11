package embedded_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"net/http"
	"testing"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/fixtures/testkeys"
	"github.com/mpsandbox/mpsandbox/server/embedded"
	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

func TestStartServesAndCloses(t *testing.T) {
	s, err := embedded.Start(context.Background(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		APIVersion string `json:"api_version"`
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil || v.APIVersion != embedded.APIVersion {
		t.Errorf("GET /version: got %+v (%v), want api_version %s", v, err, embedded.APIVersion)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
}

func TestStartRefusesANonLoopbackAddress(t *testing.T) {
	if s, err := embedded.Start(context.Background(), embedded.Options{Addr: "0.0.0.0:0"}); err == nil {
		s.Close()
		t.Fatal("started on 0.0.0.0, want a refusal: the admin API would be open to the network")
	}
}

// TestDemoMerchantKeys: an embedded sandbox's demo merchant has the public
// test key of fixtures/testkeys, so that no start generates keys; the
// binary's wiring (app.New with no merchants given, as cmd/mpsandbox calls
// it) still generates the demo merchant's keys.
func TestDemoMerchantKeys(t *testing.T) {
	ctx := context.Background()
	s, err := embedded.Start(ctx, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL + "/sandbox/v1/merchants/" + fixtures.DemoMchID + "/credentials")
	if err != nil {
		t.Fatal(err)
	}
	var creds struct {
		Key string `json:"merchant_private_key_pem"`
	}
	err = json.NewDecoder(resp.Body).Decode(&creds)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	public := keyDER(t, mustRead(t, "demo-merchant.key.pem"))
	if got := keyDER(t, creds.Key); string(got) != string(public) {
		t.Error("the embedded sandbox's demo merchant does not have the public test key")
	}

	a, err := app.New(ctx, app.Options{StorePath: sqlite.MemoryPath, Products: embedded.Products})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	demo, ok := a.Merchants.Get(fixtures.DemoMchID)
	if !ok {
		t.Fatal("the binary's wiring has no demo merchant")
	}
	if string(keyDER(t, demo.MerchantPrivateKeyPEM)) == string(public) {
		t.Error("the binary's demo merchant has the public test key; it must generate its own")
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	raw, err := fs.ReadFile(testkeys.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// keyDER is the PKCS#8 key of a PEM text (labels before the block skipped),
// re-encoded so that two encodings of one key compare equal.
func keyDER(t *testing.T, pemText string) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatalf("no PEM block in %.40q", pemText)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
