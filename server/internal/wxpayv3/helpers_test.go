package wxpayv3

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

const (
	testMchID     = "1900000001"
	testAppID     = "wx1234567890abcdef"
	testMchSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	testPlatSer   = "3775B6A45ACD588826D15E583A95F5DD2C4A5C1B"
	testPubKeyID  = "PUB_KEY_ID_0119000000012025010100000000000001"
	testAPIv3Key  = "mpsandboxTestAPIv3Key00000000000"
)

// Keys are generated once per test binary: RSA-2048 generation takes a
// good part of a second, and no private key is committed.
var testKeys = sync.OnceValues(func() ([4]*rsa.PrivateKey, error) {
	var keys [4]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return keys, err
		}
		keys[i] = k
	}
	return keys, nil
})

const (
	merchantKey = iota
	platformKey // the WeChat Pay public key's
	strangerKey
	certKey // the platform certificate's
)

func testKey(tb testing.TB, which int) *rsa.PrivateKey {
	tb.Helper()
	keys, err := testKeys()
	if err != nil {
		tb.Fatalf("generate keys: %v", err)
	}
	return keys[which]
}

func certPEM(tb testing.TB, key *rsa.PrivateKey, serialHex string) string {
	tb.Helper()
	serial, _ := new(big.Int).SetString(serialHex, 16)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mpsandbox test"},
		NotBefore:    time.Unix(1700000000, 0),
		NotAfter:     time.Unix(1700000000, 0).AddDate(5, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("create certificate: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func pkcs8(tb testing.TB, key *rsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func pkixPEM(tb testing.TB, pub *rsa.PublicKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// testMerchant has a platform certificate and a public key with keys of
// their own, as WeChat Pay's are; its mode is the default, public_key.
func testMerchant(tb testing.TB) *sandbox.Merchant {
	tb.Helper()
	m, p, c := testKey(tb, merchantKey), testKey(tb, platformKey), testKey(tb, certKey)
	return &sandbox.Merchant{
		MchID: testMchID, AppID: testAppID, MerchantSerialNo: testMchSerial,
		MerchantPrivateKeyPEM: pkcs8(tb, m), MerchantPublicKeyPEM: pkixPEM(tb, &m.PublicKey),
		APIv3Key: testAPIv3Key, PlatformPublicKeyID: testPubKeyID, PlatformPublicKeyPEM: pkixPEM(tb, &p.PublicKey),
		PlatformSerialNo: testPlatSer, PlatformCertificatePEM: certPEM(tb, c, testPlatSer),
		PlatformPrivateKeyPEM: pkcs8(tb, p) + pkcs8(tb, c),
	}
}

// merchants is a sandbox.Merchants over a map.
type merchants struct {
	mu sync.Mutex
	m  map[string]*sandbox.Merchant
}

func (d *merchants) Get(id string) (*sandbox.Merchant, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.m[id]
	return m, ok
}
func (d *merchants) put(m *sandbox.Merchant) {
	d.mu.Lock()
	d.m[m.MchID] = m
	d.mu.Unlock()
}
func (d *merchants) ByAppID(string) (*sandbox.Merchant, bool)       { return nil, false }
func (d *merchants) ByPCloudAppID(string) (*sandbox.Merchant, bool) { return nil, false }
func (d *merchants) List() []*sandbox.Merchant                      { return nil }

// TakeAPIFault: API faults are tested on the real directory, through the
// admin API (payscore's apifault_test.go).
func (d *merchants) TakeAPIFault(context.Context, string, string, string) (*sandbox.APIFault, error) {
	return nil, nil
}

type journal struct {
	mu  sync.Mutex
	got []*sandbox.Exchange
}

func (j *journal) Record(x *sandbox.Exchange) {
	j.mu.Lock()
	j.got = append(j.got, x)
	j.mu.Unlock()
}

func (j *journal) last(tb testing.TB) *sandbox.Exchange {
	tb.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.got) == 0 {
		tb.Fatal("journal is empty")
	}
	return j.got[len(j.got)-1]
}

var schemaSet = sync.OnceValues(func() (*schema.Set, error) { return schema.Compile(schemas.FS) })

func validate(tb testing.TB, name string, body []byte) {
	tb.Helper()
	set, err := schemaSet()
	if err != nil {
		tb.Fatalf("compile schemas: %v", err)
	}
	vs, err := set.ValidateJSON(name, body)
	if err != nil {
		tb.Fatalf("validate %s: %v", name, err)
	}
	if len(vs) > 0 {
		tb.Errorf("body does not match %s: %v\n%s", name, vs, body)
	}
}

// authorization signs a request as the SDK does.
func authorization(tb testing.TB, key *rsa.PrivateKey, mchid, serial, method, uri string, ts int64, body string) string {
	tb.Helper()
	nonce := wxsign.NonceStr(32)
	tsText := big.NewInt(ts).String()
	sig, err := wxsign.RSASign(key, wxsign.V3RequestMessage(method, uri, tsText, nonce, body))
	if err != nil {
		tb.Fatal(err)
	}
	return wxsign.FormatAuthorization(wxsign.Authorization{MchID: mchid, NonceStr: nonce, Timestamp: tsText, SerialNo: serial, Signature: sig})
}
