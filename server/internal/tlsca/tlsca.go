// Package tlsca is the local certificate authority behind
// --tls-self-signed: a CA made once and kept in the data dir (or, as a
// Bundle, in the database replicas share), which issues the server's
// certificate for the names it is reached by at every start.
// Clients trust the CA once (GET /sandbox/v1/ca.pem) and keep trusting the
// sandbox across restarts and new names.
package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files in the CA's directory.
const (
	CertFile = "ca.pem"     // the CA certificate, for clients to trust
	KeyFile  = "ca-key.pem" // its private key, mode 0600
)

// caValidity and leafValidity: the CA lasts ten years; a server certificate
// a year, re-issued at every start (Apple's clients refuse TLS server
// certificates valid for more than 825 days, even from a private CA:
// https://support.apple.com/en-us/103769).
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
)

// CA is the sandbox's certificate authority.
type CA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	keyPEM []byte
}

// LoadOrCreate reads the CA from dir, or makes one there (dir created 0700,
// the key 0600) when dir has none. An empty dir keeps a new CA in memory
// only (--in-memory).
func LoadOrCreate(dir string) (ca *CA, created bool, err error) {
	if dir != "" {
		certPEM, cerr := os.ReadFile(filepath.Join(dir, CertFile))
		keyPEM, kerr := os.ReadFile(filepath.Join(dir, KeyFile))
		switch {
		case cerr == nil && kerr == nil:
			ca, err := parse(certPEM, keyPEM)
			if err != nil {
				return nil, false, fmt.Errorf("local CA in %s: %w (delete both files to have a new CA made)", dir, err)
			}
			return ca, false, nil
		case !errors.Is(cerr, fs.ErrNotExist) || !errors.Is(kerr, fs.ErrNotExist):
			return nil, false, fmt.Errorf("local CA in %s: %w", dir, errors.Join(cerr, kerr))
		}
	}
	ca, keyPEM, err := create(time.Now())
	if err != nil {
		return nil, false, err
	}
	if dir == "" {
		return ca, true, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	if err := writeNew(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeNew(filepath.Join(dir, CertFile), ca.pem, 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

func create(now time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"mpsandbox"}, CommonName: "mpsandbox local CA " + host + " " + now.UTC().Format("2006-01-02")},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	ca, err := parse(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
	return ca, keyPEM, err
}

func parse(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T, not ECDSA", pair.PrivateKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("the certificate is not a CA")
	}
	return &CA{cert: cert, key: key, pem: certPEM, keyPEM: keyPEM}, nil
}

// Create makes a new CA, kept nowhere: a caller that shares it (replicas
// on one database) keeps its Bundle.
func Create(now time.Time) (*CA, error) {
	ca, _, err := create(now)
	return ca, err
}

// Bundle is the CA's certificate and private key in one PEM document, what
// FromBundle reads back. It holds the key: keep it as a secret.
func (ca *CA) Bundle() []byte {
	return append(append([]byte(nil), ca.pem...), ca.keyPEM...)
}

// FromBundle reads a CA from its Bundle.
func FromBundle(bundle []byte) (*CA, error) {
	var certPEM, keyPEM []byte
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certPEM = append(certPEM, pem.EncodeToMemory(b)...)
		} else {
			keyPEM = append(keyPEM, pem.EncodeToMemory(b)...)
		}
	}
	ca, err := parse(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("local CA: %w", err)
	}
	return ca, nil
}

// PEM is the CA certificate, what clients add to their trust store.
func (ca *CA) PEM() []byte { return ca.pem }

// Issue makes a server certificate for names (DNS names or IP addresses).
func (ca *CA) Issue(names []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"mpsandbox"}, CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
