package testkit

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Credentials are a sandbox merchant's test credentials, as GET
// /sandbox/v1/merchants/{mchid}/credentials gives them, keys parsed.
type Credentials struct {
	MchID     string `json:"mchid"`
	Name      string `json:"name"`
	AppID     string `json:"appid"`      // the merchant's mini-program
	ServiceID string `json:"service_id"` // 支付分 service id

	// The merchant's API key pair and certificate (WeChat Pay v3 request
	// signatures).
	MerchantSerialNo       string            `json:"merchant_serial_no"`
	MerchantPrivateKeyPEM  string            `json:"merchant_private_key_pem"`
	MerchantCertificatePEM string            `json:"merchant_certificate_pem"`
	MerchantPrivateKey     *rsa.PrivateKey   `json:"-"`
	MerchantCertificate    *x509.Certificate `json:"-"`

	APIv2Key string `json:"api_v2_key"` // v2 HMAC-SHA256/MD5 signs (extraData, XML APIs)
	APIv3Key string `json:"api_v3_key"` // AES-256-GCM of v3 notifications

	// WeChat Pay's side: the platform public key (public-key mode, id
	// PUB_KEY_ID_…) and the platform certificate (certificate mode).
	PlatformPublicKeyID    string            `json:"platform_public_key_id"`
	PlatformPublicKeyPEM   string            `json:"platform_public_key_pem"`
	PlatformSerialNo       string            `json:"platform_serial_no"`
	PlatformCertificatePEM string            `json:"platform_certificate_pem"`
	PlatformPublicKey      *rsa.PublicKey    `json:"-"`
	PlatformCertificate    *x509.Certificate `json:"-"`

	// P云.
	PCloudAppID     string `json:"pcloud_app_id"`
	PCloudAppSecret string `json:"pcloud_app_secret"`
	PCloudMerchant  string `json:"pcloud_merchant"`

	// NotifyHosts is the notify allow-list; empty means loopback only.
	NotifyHosts []string `json:"notify_hosts"`
	// Token is the merchant-scoped admin token: it sees only this merchant.
	Token string `json:"merchant_token"`
}

// parse fills the parsed keys from the PEM fields.
func (c *Credentials) parse() error {
	var errs []error
	var err error
	if c.MerchantPrivateKey, err = parsePrivateKey(c.MerchantPrivateKeyPEM); err != nil {
		errs = append(errs, fmt.Errorf("merchant_private_key_pem: %w", err))
	}
	if c.MerchantCertificate, err = parseCertificate(c.MerchantCertificatePEM); err != nil {
		errs = append(errs, fmt.Errorf("merchant_certificate_pem: %w", err))
	}
	if c.PlatformPublicKey, err = parsePublicKey(c.PlatformPublicKeyPEM); err != nil {
		errs = append(errs, fmt.Errorf("platform_public_key_pem: %w", err))
	}
	if c.PlatformCertificate, err = parseCertificate(c.PlatformCertificatePEM); err != nil {
		errs = append(errs, fmt.Errorf("platform_certificate_pem: %w", err))
	}
	return errors.Join(errs...)
}

func pemBlock(text string) ([]byte, error) {
	b, _ := pem.Decode([]byte(text))
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return b.Bytes, nil
}

func parsePrivateKey(text string) (*rsa.PrivateKey, error) {
	der, err := pemBlock(text)
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an RSA key", k)
	}
	return rk, nil
}

func parsePublicKey(text string) (*rsa.PublicKey, error) {
	der, err := pemBlock(text)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an RSA key", k)
	}
	return rk, nil
}

func parseCertificate(text string) (*x509.Certificate, error) {
	der, err := pemBlock(text)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Merchant is one sandbox merchant and its credentials.
type Merchant struct {
	Credentials
	sb *Sandbox
}

// Merchant returns the merchant mchid (DemoMchID: the one every sandbox
// has) with its credentials.
func (s *Sandbox) Merchant(ctx context.Context, mchid string) (*Merchant, error) {
	m := &Merchant{sb: s}
	if err := s.Admin(ctx, http.MethodGet, "/sandbox/v1/merchants/"+url.PathEscape(mchid)+"/credentials", nil, &m.Credentials); err != nil {
		return nil, err
	}
	return m, m.parse()
}

// NewMerchant is what POST /sandbox/v1/merchants creates; the sandbox
// generates whatever is left empty, credentials included.
type NewMerchant struct {
	MchID       string   `json:"mchid,omitempty"`
	Name        string   `json:"name,omitempty"`
	AppID       string   `json:"appid,omitempty"`
	NotifyHosts []string `json:"notify_hosts,omitempty"`
	// MerchantPublicKeyPEM registers the merchant's own RSA-2048 public key
	// (PKIX PEM) for request signatures instead of the generated one.
	MerchantPublicKeyPEM string `json:"merchant_public_key_pem,omitempty"`
}

// CreateMerchant creates a merchant, isolated from every other one (its own
// clock, scenarios and records), and returns it with its credentials.
func (s *Sandbox) CreateMerchant(ctx context.Context, spec NewMerchant) (*Merchant, error) {
	m := &Merchant{sb: s}
	if err := s.Admin(ctx, http.MethodPost, "/sandbox/v1/merchants", spec, &m.Credentials); err != nil {
		return nil, err
	}
	return m, m.parse()
}

// Sandbox is the sandbox the merchant lives in.
func (m *Merchant) Sandbox() *Sandbox { return m.sb }

// UseScenario makes scenario id (GET /sandbox/v1/scenarios lists them) the
// merchant's active one for product: for every launch from now on, or,
// with once, for the next launch only.
func (m *Merchant) UseScenario(ctx context.Context, product, id string, once bool) error {
	return m.sb.Admin(ctx, http.MethodPut, m.path("/scenarios/"+url.PathEscape(product)),
		map[string]any{"id": id, "once": once}, nil)
}

// ClearScenario goes back to product's default scenario.
func (m *Merchant) ClearScenario(ctx context.Context, product string) error {
	return m.sb.Admin(ctx, http.MethodDelete, m.path("/scenarios/"+url.PathEscape(product)), nil, nil)
}

// AdvanceClock moves the merchant's sandbox clock forward by d (at least a
// nanosecond): expiries, scenario timelines and notification retries due
// by then happen.
func (m *Merchant) AdvanceClock(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("testkit: advance the clock by %v: must be positive", d)
	}
	return m.sb.Admin(ctx, http.MethodPost, "/sandbox/v1/clock/advance", map[string]string{"mchid": m.MchID, "by": d.String()}, nil)
}

// SetNotifyHosts replaces the merchant's notify allow-list (host or
// host:port; empty: loopback only).
func (m *Merchant) SetNotifyHosts(ctx context.Context, hosts []string) error {
	if hosts == nil {
		hosts = []string{}
	}
	if err := m.sb.Admin(ctx, http.MethodPatch, m.path(""), map[string]any{"notify_hosts": hosts}, nil); err != nil {
		return err
	}
	m.NotifyHosts = hosts
	return nil
}

func (m *Merchant) path(rest string) string {
	return "/sandbox/v1/merchants/" + url.PathEscape(m.MchID) + rest
}
