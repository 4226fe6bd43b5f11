package merchant

import (
	"context"
	"crypto/rsa"
	"testing"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// TestImportIssuesCertificates: keys given without their certificates get
// certificates of those keys, under the serials given; the public keys are
// derived; a serial alone re-issues the generated key's certificate.
func TestImportIssuesCertificates(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d, err := Load(ctx, st, sandbox.NewClock(1, nil), WithoutDemo(true), WithCredentialsSeed("test"))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := fixtures.SeededMerchant("keys", "1900000123", "")
	m, err := d.Import(ctx, FileEntry{MchID: "1900000123", MerchantPrivateKeyPEM: keys.MerchantPrivateKeyPEM,
		MerchantSerialNo: "1234ABCD", PlatformPrivateKeyPEM: keys.PlatformPrivateKeyPEM, PlatformSerialNo: "5678EF01"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ name, key, cert, serial, pub string }{
		{"merchant", keys.MerchantPrivateKeyPEM, m.MerchantCertificatePEM, "1234ABCD", m.MerchantPublicKeyPEM},
		{"platform", keys.PlatformPrivateKeyPEM, m.PlatformCertificatePEM, "5678EF01", m.PlatformPublicKeyPEM},
	} {
		// The platform's PEM holds two keys: the public key's, then the
		// certificate's.
		ks, _ := wxsign.ParsePrivateKeys(p.key)
		k, ck := ks[0], ks[len(ks)-1]
		c, err := wxsign.ParseCertificate(p.cert)
		if err != nil {
			t.Fatalf("%s certificate: %v", p.name, err)
		}
		if wxsign.CertificateSerial(c) != p.serial || !c.PublicKey.(*rsa.PublicKey).Equal(&ck.PublicKey) {
			t.Errorf("%s certificate: serial %s, want %s, of the given key", p.name, wxsign.CertificateSerial(c), p.serial)
		}
		if pub, _ := wxsign.ParsePublicKey(p.pub); pub == nil || !pub.Equal(&k.PublicKey) {
			t.Errorf("%s public key is not the given key's", p.name)
		}
	}
	if _, err := d.Import(ctx, FileEntry{MchID: "1900000124", MerchantToken: m.Token, AppID: m.AppID}, nil); err == nil {
		t.Error("a second merchant with the first one's token and appid was imported")
	}
}
