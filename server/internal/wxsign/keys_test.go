package wxsign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

func TestParsePrivateKey(t *testing.T) {
	key := testKey(t, merchantKey)
	_, certPEM := testCertificate(t, key, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
	tests := []struct {
		name string
		pem  string
	}{
		{"pkcs8", pkcs8PEM(t, key)},
		{"pkcs1", encodePEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))},
		{"after a certificate in a bundle", certPEM + pkcs8PEM(t, key)},
		{"surrounded by blank lines", "\n\n" + pkcs8PEM(t, key) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tt.pem)
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !got.Equal(key) {
				t.Errorf("got a different key than the one encoded")
			}
		})
	}
}

func TestParsePrivateKeys(t *testing.T) {
	a, b := testKey(t, merchantKey), testKey(t, platformKey)
	_, certPEM := testCertificate(t, a, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
	got, err := ParsePrivateKeys(pkcs8PEM(t, a) + certPEM + encodePEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(b)))
	if err != nil {
		t.Fatalf("ParsePrivateKeys: %v", err)
	}
	if len(got) != 2 || !got[0].Equal(a) || !got[1].Equal(b) {
		t.Errorf("got %d keys, want the two encoded, in order", len(got))
	}
	if _, err := ParsePrivateKeys(certPEM); err == nil {
		t.Error("a text without a private key parsed")
	}
	if _, err := ParsePrivateKeys(pkcs8PEM(t, a) + encodePEM("PRIVATE KEY", []byte("junk"))); err == nil {
		t.Error("a bad second key parsed")
	}
}

func TestParsePublicKey(t *testing.T) {
	key := testKey(t, platformKey)
	_, certPEM := testCertificate(t, key, "01")
	tests := []struct {
		name string
		pem  string
	}{
		{"pkix", pkixPEM(t, &key.PublicKey)},
		{"pkcs1", encodePEM("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&key.PublicKey))},
		{"certificate", certPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.pem)
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if !got.Equal(&key.PublicKey) {
				t.Errorf("got a different key than the one encoded")
			}
		})
	}
	t.Run("the SDK reads the same pkix key", func(t *testing.T) {
		sdk, err := utils.LoadPublicKey(pkixPEM(t, &key.PublicKey))
		if err != nil {
			t.Fatalf("utils.LoadPublicKey: %v", err)
		}
		got, err := ParsePublicKey(pkixPEM(t, &key.PublicKey))
		if err != nil {
			t.Fatalf("ParsePublicKey: %v", err)
		}
		if !got.Equal(sdk) {
			t.Errorf("ParsePublicKey and the SDK disagree")
		}
	})
}

func TestParseKeyErrors(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPKCS8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPKIX, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := testKey(t, merchantKey)
	tests := []struct {
		name  string
		parse func(string) error
		pem   string
		want  string
	}{
		{"empty private key", parsePriv, "  \n", "private key: empty"},
		{"not pem", parsePriv, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "no PEM block found"},
		{"public key given as private", parsePriv, pkixPEM(t, &rsaKey.PublicKey), `found PEM ["PUBLIC KEY"]`},
		{"ec private key", parsePriv, encodePEM("PRIVATE KEY", ecPKCS8), "not an RSA key"},
		{"broken pkcs8", parsePriv, encodePEM("PRIVATE KEY", []byte("junk")), "bad PKCS#8 data"},
		{"broken pkcs1", parsePriv, encodePEM("RSA PRIVATE KEY", []byte("junk")), "bad PKCS#1 data"},
		{"ec public key", parsePub, encodePEM("PUBLIC KEY", ecPKIX), "not an RSA key"},
		{"private key given as public", parsePub, pkcs8PEM(t, rsaKey), `found PEM ["PRIVATE KEY"]`},
		{"broken certificate", parseCert, encodePEM("CERTIFICATE", []byte("junk")), "certificate: bad DER data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantSandboxError(t, tt.parse(tt.pem), sandbox.CodeInvalid, tt.want)
		})
	}
}

func parsePriv(s string) error { _, err := ParsePrivateKey(s); return err }
func parsePub(s string) error  { _, err := ParsePublicKey(s); return err }
func parseCert(s string) error { _, err := ParseCertificate(s); return err }

func TestCertificateSerial(t *testing.T) {
	key := testKey(t, merchantKey)
	tests := []struct {
		name   string
		serial string
		want   string
	}{
		{"wechat style 20 bytes", "5157f09efdc096de15ebe81a47057a7232f1b8e1", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"},
		{"leading zero nibble keeps its digit", "0a1b2c", "0A1B2C"},
		{"single byte", "7", "07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, certPEM := testCertificate(t, key, tt.serial)
			c, err := ParseCertificate(certPEM)
			if err != nil {
				t.Fatalf("ParseCertificate: %v", err)
			}
			if got := CertificateSerial(c); got != tt.want {
				t.Errorf("got serial %q, want %q", got, tt.want)
			}
			if got, sdk := CertificateSerial(c), utils.GetCertificateSerialNumber(*c); got != sdk {
				t.Errorf("got serial %q, the SDK prints %q", got, sdk)
			}
		})
	}
	if got := CertificateSerial(nil); got != "" {
		t.Errorf("got %q for a nil certificate, want empty", got)
	}
}
