package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
	"github.com/mpsandbox/mpsandbox/server/internal/tlsca"
)

// TestHTTPSWithTheLocalCA runs the binary with --tls-self-signed: the CA
// it serves is the one in the data dir, the certificate names the public
// names, the official SDK talks to it over HTTPS trusting only that CA (its
// code unchanged but the host), the healthcheck probes it, and a restart
// keeps the CA.
func TestHTTPSWithTheLocalCA(t *testing.T) {
	data := t.TempDir()
	flags := []string{"--tls-self-signed", "--public-name", "sandbox.example.test,10.1.2.3"}
	p := testproc.Start(t, testproc.Options{DataDir: data, Flags: flags})
	base := "https" + strings.TrimPrefix(p.URL, "http")

	// Before trusting it, a client fetches the CA the way curl -k does.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	caPEM := get(t, insecure, base+"/sandbox/v1/ca.pem")
	onDisk, err := os.ReadFile(filepath.Join(data, tlsDir, tlsca.CertFile))
	if err != nil || !bytes.Equal(caPEM, onDisk) {
		t.Fatalf("GET /sandbox/v1/ca.pem is not %s/ca.pem (%v)", tlsDir, err)
	}
	if st, err := os.Stat(filepath.Join(data, tlsDir, tlsca.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the CA key: %v, want mode 0600", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	trusting := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}

	res, err := (&http.Client{Transport: trusting}).Get(base + "/readyz")
	if err != nil {
		t.Fatalf("a client trusting only the CA: %v", err)
	}
	res.Body.Close()
	leaf := res.TLS.PeerCertificates[0]
	for _, name := range []string{"sandbox.example.test", "localhost"} {
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("the certificate's names %v lack %s", leaf.DNSNames, name)
		}
	}
	if err := leaf.VerifyHostname("10.1.2.3"); err != nil {
		t.Errorf("the certificate does not cover --public-name 10.1.2.3: %v", err)
	}

	// The SDK, unchanged but for the host its requests go to.
	cred := map[string]any{}
	if err := json.Unmarshal(get(t, &http.Client{Transport: trusting}, base+"/sandbox/v1/merchants/1230000109/credentials"), &cred); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	ctx := context.Background()
	client := sdkClient(t, cred, base, trusting)
	_, err = client.Get(ctx, "https://api.mch.weixin.qq.com/v3/payscore/serviceorder?service_id="+cred["service_id"].(string)+
		"&appid="+cred["appid"].(string)+"&out_order_no=NOSUCHORDER")
	if !core.IsAPIError(err, "ORDER_NOT_EXIST") {
		t.Errorf("the SDK over HTTPS: got %v, want APIError ORDER_NOT_EXIST", err)
	}
	if res, err := client.Get(ctx, "https://api.mch.weixin.qq.com/v3/certificates"); err != nil {
		t.Errorf("the SDK over HTTPS, a signed answer: %v", err)
	} else {
		res.Response.Body.Close()
	}

	if out, err := exec.Command(testproc.Binary(t), "healthcheck", "--addr", u.Host, "--tls-self-signed").CombinedOutput(); err != nil {
		t.Errorf("healthcheck over HTTPS: %v\n%s", err, out)
	}

	p.Stop()
	p = testproc.Start(t, testproc.Options{DataDir: data, Flags: flags})
	base = "https" + strings.TrimPrefix(p.URL, "http")
	if again := get(t, &http.Client{Transport: trusting}, base+"/sandbox/v1/ca.pem"); !bytes.Equal(again, caPEM) {
		t.Error("a restart made a new CA")
	}
	if strings.Contains(p.Log(), "tls_ca_created") {
		t.Error("a restart logged a new CA")
	}
}

// TestHTTPSWithCertificateFiles: --tls-cert and --tls-key serve that
// certificate, and there is no CA to hand out.
func TestHTTPSWithCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	ca, _, err := tlsca.LoadOrCreate(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Issue([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	p := testproc.Start(t, testproc.Options{Flags: []string{"--tls-cert", certFile, "--tls-key", keyFile}})
	base := "https" + strings.TrimPrefix(p.URL, "http")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	res, err := c.Get(base + "/sandbox/v1/ca.pem")
	if err != nil {
		t.Fatalf("HTTPS with --tls-cert: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("ca.pem without a local CA: got %d, want 404", res.StatusCode)
	}
	if got := res.TLS.PeerCertificates[0].SerialNumber; got.Cmp(pair.Leaf.SerialNumber) != 0 {
		t.Errorf("served certificate serial %v, want the file's %v", got, pair.Leaf.SerialNumber)
	}
}

func TestTLSFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert", "c.pem"},
		{"--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
		{"--public-name", "https://sandbox.example.com"},
	} {
		if _, err := parseConfig(args, func(string) string { return "" }); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	c, err := parseConfig([]string{"--public-name", "a.test,b.test", "--public-name", "10.0.0.1"}, func(k string) string {
		return map[string]string{"MPSANDBOX_PUBLIC_NAME": "env.test"}[k]
	})
	if err != nil || !slices.Equal(c.PublicNames, []string{"a.test", "b.test", "10.0.0.1"}) {
		t.Errorf("--public-name: got %v (%v), want the flags' names over the variable's", c.PublicNames, err)
	}
}

func get(t testing.TB, c *http.Client, url string) []byte {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	return body
}
