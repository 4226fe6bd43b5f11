package wxpayv3

import (
	"crypto/rsa"
	"crypto/x509"
	"sync"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// merchantKeys are one merchant's parsed keys. Parsing a PEM costs far more
// than a request may spend, so it happens once per key, not per request.
type merchantKeys struct {
	// m is the merchant the keys were parsed from: the directory never
	// modifies a *Merchant it handed out, so the same pointer means the
	// same keys.
	m *sandbox.Merchant

	merchantPEM string
	merchantPub *rsa.PublicKey
	merchantErr error

	// platformPEM holds the public key's private key and, after it, the
	// certificate's (sandbox.Merchant.PlatformPrivateKeyPEM).
	platformPEM string
	publicKey   *rsa.PrivateKey
	certKey     *rsa.PrivateKey
	platformErr error

	certPEM string
	cert    *x509.Certificate
	certErr error
	// certUsable says the platform certificate holds certKey, so that an
	// answer signed with it may name the certificate's serial.
	certUsable bool
}

// keyCache holds merchantKeys by mchid: bounded by the number of merchants.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]*merchantKeys
}

// get returns the merchant's parsed keys, parsing only what changed since
// the merchant was last seen.
func (c *keyCache) get(m *sandbox.Merchant) *merchantKeys {
	c.mu.RLock()
	k := c.m[m.MchID]
	c.mu.RUnlock()
	if k != nil && k.m == m {
		return k
	}
	next := &merchantKeys{m: m}
	if k != nil && k.merchantPEM == m.MerchantPublicKeyPEM {
		next.merchantPEM, next.merchantPub, next.merchantErr = k.merchantPEM, k.merchantPub, k.merchantErr
	} else {
		next.merchantPEM = m.MerchantPublicKeyPEM
		next.merchantPub, next.merchantErr = wxsign.ParsePublicKey(m.MerchantPublicKeyPEM)
	}
	if k != nil && k.platformPEM == m.PlatformPrivateKeyPEM && k.certPEM == m.PlatformCertificatePEM {
		next.platformPEM, next.publicKey, next.certKey, next.platformErr = k.platformPEM, k.publicKey, k.certKey, k.platformErr
		next.certPEM, next.cert, next.certErr, next.certUsable = k.certPEM, k.cert, k.certErr, k.certUsable
	} else {
		next.parsePlatform(m)
	}
	c.mu.Lock()
	c.m[m.MchID] = next
	c.mu.Unlock()
	return next
}

func (k *merchantKeys) parsePlatform(m *sandbox.Merchant) {
	k.platformPEM = m.PlatformPrivateKeyPEM
	keys, err := wxsign.ParsePrivateKeys(m.PlatformPrivateKeyPEM)
	if err != nil {
		k.platformErr = err
	} else {
		// One key (a merchant from before the two keys) is both.
		k.publicKey, k.certKey = keys[0], keys[len(keys)-1]
	}
	k.certPEM = m.PlatformCertificatePEM
	k.cert, k.certErr = wxsign.ParseCertificate(m.PlatformCertificatePEM)
	k.certUsable = k.platformErr == nil && k.certErr == nil && k.certKey.PublicKey.Equal(k.cert.PublicKey)
}

// signer is a platform private key and the Wechatpay-Serial that names it.
type signer struct {
	key    *rsa.PrivateKey
	serial string
}

// byPublicKey is the WeChat Pay public key's signer, or an internal error:
// the sandbox generated the key, so a bad one is the sandbox's fault.
func (k *merchantKeys) byPublicKey() (signer, error) {
	if k.platformErr != nil {
		return signer{}, &sandbox.Error{Code: sandbox.CodeInternal,
			Message: "the platform private key of merchant " + k.m.MchID + " does not parse", Err: k.platformErr}
	}
	return signer{key: k.publicKey, serial: k.m.PlatformPublicKeyID}, nil
}

// byCertificate is the platform certificate's signer; a merchant whose
// certificate does not hold the key gets the public key's instead, which
// its certificate could not verify anyway.
func (k *merchantKeys) byCertificate() (signer, error) {
	if !k.certUsable {
		return k.byPublicKey()
	}
	return signer{key: k.certKey, serial: k.m.PlatformSerialNo}, nil
}
