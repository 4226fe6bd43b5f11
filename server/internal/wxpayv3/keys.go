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

	platformPEM  string
	platformPriv *rsa.PrivateKey
	platformErr  error

	certPEM string
	cert    *x509.Certificate
	certErr error
	// certSameKey says the platform certificate holds the platform key, so
	// an answer signed with it may name the certificate's serial.
	certSameKey bool
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
		next.platformPEM, next.platformPriv, next.platformErr = k.platformPEM, k.platformPriv, k.platformErr
		next.certPEM, next.cert, next.certErr, next.certSameKey = k.certPEM, k.cert, k.certErr, k.certSameKey
	} else {
		next.platformPEM = m.PlatformPrivateKeyPEM
		next.platformPriv, next.platformErr = wxsign.ParsePrivateKey(m.PlatformPrivateKeyPEM)
		next.certPEM = m.PlatformCertificatePEM
		next.cert, next.certErr = wxsign.ParseCertificate(m.PlatformCertificatePEM)
		if next.platformErr == nil && next.certErr == nil {
			next.certSameKey = next.platformPriv.PublicKey.Equal(next.cert.PublicKey)
		}
	}
	c.mu.Lock()
	c.m[m.MchID] = next
	c.mu.Unlock()
	return next
}

// signer returns the merchant's platform private key, or an internal error:
// the sandbox generated it, so a bad one is the sandbox's fault.
func (k *merchantKeys) signer() (*rsa.PrivateKey, error) {
	if k.platformErr != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal,
			Message: "the platform private key of merchant " + k.m.MchID + " does not parse", Err: k.platformErr}
	}
	return k.platformPriv, nil
}
