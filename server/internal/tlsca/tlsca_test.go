package tlsca

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// TestBundleRoundTrip: a CA read back from its Bundle is the same CA (same
// certificate, and it issues certificates the original's trust verifies),
// and the PEM it serves holds the certificate only, never the key.
func TestBundleRoundTrip(t *testing.T) {
	ca, err := Create(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromBundle(ca.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.PEM(), ca.PEM()) {
		t.Fatalf("the certificate read back differs:\n%s\nwant\n%s", back.PEM(), ca.PEM())
	}
	if strings.Contains(string(back.PEM()), "PRIVATE KEY") {
		t.Fatal("the served PEM holds the private key")
	}
	leaf, err := back.Issue([]string{"sandbox.example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "sandbox.example.test"}); err != nil {
		t.Errorf("a certificate the read-back CA issued does not verify against the original: %v", err)
	}
	if _, err := FromBundle(ca.PEM()); err == nil {
		t.Error("a bundle without the key was accepted")
	}
}
