package wxsign

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Test keys are generated once per test binary: RSA-2048 generation costs
// a good part of a second, and no private key is committed.
var testKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
})

// Which generated key plays which part.
const (
	merchantKey = iota
	platformKey
	strangerKey
)

func testKey(tb testing.TB, which int) *rsa.PrivateKey {
	tb.Helper()
	keys, err := testKeys()
	if err != nil {
		tb.Fatalf("generate RSA keys: %v", err)
	}
	return keys[which]
}

// testCertificate self-signs a certificate for key with the serial given in
// hex, the way WeChat's merchant API certificates carry a 20-byte serial.
func testCertificate(tb testing.TB, key *rsa.PrivateKey, serialHex string) (*x509.Certificate, string) {
	tb.Helper()
	serial, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		tb.Fatalf("bad serial %q", serialHex)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mpsandbox test merchant", Organization: []string{"1900000001"}},
		NotBefore:    time.Unix(1700000000, 0),
		NotAfter:     time.Unix(1700000000, 0).AddDate(5, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("create certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse certificate: %v", err)
	}
	return c, encodePEM("CERTIFICATE", der)
}

func encodePEM(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8PEM(tb testing.TB, key *rsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("marshal PKCS#8: %v", err)
	}
	return encodePEM("PRIVATE KEY", der)
}

func pkixPEM(tb testing.TB, pub *rsa.PublicKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatalf("marshal PKIX: %v", err)
	}
	return encodePEM("PUBLIC KEY", der)
}

// wantSandboxError fails unless err is a *sandbox.Error with the code whose
// message contains every one of msgParts, and returns it.
func wantSandboxError(tb testing.TB, err error, code sandbox.Code, msgParts ...string) *sandbox.Error {
	tb.Helper()
	var e *sandbox.Error
	if !errors.As(err, &e) {
		tb.Fatalf("got error %v (%T), want a *sandbox.Error %s", err, err, code)
	}
	if e.Code != code {
		tb.Fatalf("got code %q (%v), want %q", e.Code, e, code)
	}
	for _, p := range msgParts {
		if !strings.Contains(e.Message, p) {
			tb.Errorf("got message %q, want it to contain %q", e.Message, p)
		}
	}
	return e
}
