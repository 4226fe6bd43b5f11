package wxsign

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// PEM block types the parsers accept.
const (
	pemPKCS8Private = "PRIVATE KEY"
	pemPKCS1Private = "RSA PRIVATE KEY"
	pemPKIXPublic   = "PUBLIC KEY"
	pemPKCS1Public  = "RSA PUBLIC KEY"
	pemCertificate  = "CERTIFICATE"
)

// ParsePrivateKey reads an RSA private key from PEM: PKCS#8 ("PRIVATE KEY",
// what the WeChat Pay certificate tool writes as apiclient_key.pem) or
// PKCS#1 ("RSA PRIVATE KEY", what openssl genrsa writes by default). Bad
// input is a CodeInvalid *sandbox.Error: merchants paste keys into the admin
// API and must see what is wrong with them.
func ParsePrivateKey(pemText string) (*rsa.PrivateKey, error) {
	block, err := decodePEM("private key", pemText, pemPKCS8Private, pemPKCS1Private)
	if err != nil {
		return nil, err
	}
	return privateKey(block)
}

// ParsePrivateKeys reads every RSA private key of a PEM text, in order, as
// ParsePrivateKey reads one; other blocks are skipped. There is at least
// one key, or an error.
func ParsePrivateKeys(pemText string) ([]*rsa.PrivateKey, error) {
	if _, err := decodePEM("private key", pemText, pemPKCS8Private, pemPKCS1Private); err != nil {
		return nil, err
	}
	var keys []*rsa.PrivateKey
	for rest := []byte(pemText); ; {
		block, r := pem.Decode(rest)
		if block == nil {
			return keys, nil
		}
		rest = r
		if block.Type != pemPKCS8Private && block.Type != pemPKCS1Private {
			continue
		}
		k, err := privateKey(block)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
}

func privateKey(block *pem.Block) (*rsa.PrivateKey, error) {
	if block.Type == pemPKCS1Private {
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, keyError("private key: bad PKCS#1 data", err)
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, keyError("private key: bad PKCS#8 data", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "private key: %T is not an RSA key (WeChat Pay v3 uses RSA 2048)", k)
	}
	return rk, nil
}

// ParsePublicKey reads an RSA public key from PEM: PKIX ("PUBLIC KEY", the
// format of WeChat Pay's platform public key), PKCS#1 ("RSA PUBLIC KEY"), or
// the key of a certificate ("CERTIFICATE", a merchant or platform cert).
func ParsePublicKey(pemText string) (*rsa.PublicKey, error) {
	block, err := decodePEM("public key", pemText, pemPKIXPublic, pemPKCS1Public, pemCertificate)
	if err != nil {
		return nil, err
	}
	var k any
	switch block.Type {
	case pemPKCS1Public:
		pk, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, keyError("public key: bad PKCS#1 data", err)
		}
		return pk, nil
	case pemCertificate:
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, keyError("public key: bad certificate", err)
		}
		k = c.PublicKey
	default:
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, keyError("public key: bad PKIX data", err)
		}
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "public key: %T is not an RSA key (WeChat Pay v3 uses RSA 2048)", k)
	}
	return rk, nil
}

// ParseCertificate reads an X.509 certificate from PEM ("CERTIFICATE").
func ParseCertificate(pemText string) (*x509.Certificate, error) {
	block, err := decodePEM("certificate", pemText, pemCertificate)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, keyError("certificate: bad DER data", err)
	}
	return c, nil
}

// CertificateSerial returns the certificate's serial number as WeChat Pay
// prints it in serial_no and Wechatpay-Serial: upper-case hex of the serial's
// big-endian bytes, without a sign byte or separators (the SDK's
// utils.GetCertificateSerialNumber, fmt "%X" of SerialNumber.Bytes()).
func CertificateSerial(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	b := c.SerialNumber.Bytes()
	return string(appendUpperHex(make([]byte, 0, 2*len(b)), b))
}

// decodePEM returns the first PEM block in text whose type is one of types,
// skipping others (a bundle may start with a certificate before the key, or
// carry an "EC PARAMETERS" block).
func decodePEM(what, text string, types ...string) (*pem.Block, error) {
	rest := []byte(strings.TrimSpace(text))
	if len(rest) == 0 {
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "%s: empty", what)
	}
	var seen []string
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		for _, t := range types {
			if block.Type == t {
				return block, nil
			}
		}
		seen = append(seen, block.Type)
		rest = r
	}
	if len(seen) == 0 {
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "%s: no PEM block found (expected -----BEGIN %s-----)", what, types[0])
	}
	return nil, sandbox.Errorf(sandbox.CodeInvalid, "%s: found PEM %q, expected one of %q", what, seen, types)
}

func keyError(message string, err error) *sandbox.Error {
	return &sandbox.Error{Code: sandbox.CodeInvalid, Message: message + ": " + err.Error(), Err: err}
}
