package merchant

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// File is a merchants file (--merchants-file): one or more YAML documents,
// each with a list of merchants, so that exports can be concatenated.
type File struct {
	Merchants []FileEntry `yaml:"merchants"`
}

// FileEntry is one merchant of a merchants file, and what
// GET /sandbox/v1/merchants/{mchid}/export writes: every credential the
// merchant has, under the names of its credentials, and every setting the
// admin API changes (platform_key_mode, strict, sub_merchants, api_faults,
// active_scenarios), under the admin API's names. Only mchid is required;
// a credential left out is generated (reproducibly with
// --credentials-seed), a setting left out has its default.
type FileEntry struct {
	MchID         string   `yaml:"mchid"`
	Name          string   `yaml:"name,omitempty"`
	AppID         string   `yaml:"appid,omitempty"`
	ServiceID     string   `yaml:"service_id,omitempty"`
	NotifyHosts   []string `yaml:"notify_hosts,omitempty"`
	MerchantToken string   `yaml:"merchant_token,omitempty"`

	MerchantSerialNo       string `yaml:"merchant_serial_no,omitempty"`
	MerchantPrivateKeyPEM  string `yaml:"merchant_private_key_pem,omitempty"`
	MerchantCertificatePEM string `yaml:"merchant_certificate_pem,omitempty"`
	MerchantPublicKeyPEM   string `yaml:"merchant_public_key_pem,omitempty"`

	APIv2Key string `yaml:"api_v2_key,omitempty"`
	APIv3Key string `yaml:"api_v3_key,omitempty"`

	PlatformPublicKeyID    string `yaml:"platform_public_key_id,omitempty"`
	PlatformPrivateKeyPEM  string `yaml:"platform_private_key_pem,omitempty"`
	PlatformPublicKeyPEM   string `yaml:"platform_public_key_pem,omitempty"`
	PlatformSerialNo       string `yaml:"platform_serial_no,omitempty"`
	PlatformCertificatePEM string `yaml:"platform_certificate_pem,omitempty"`

	PCloudAppID     string `yaml:"pcloud_app_id,omitempty"`
	PCloudAppSecret string `yaml:"pcloud_app_secret,omitempty"`
	PCloudMerchant  string `yaml:"pcloud_merchant,omitempty"`

	// The settings (PATCH /sandbox/v1/merchants/{mchid}, …/api-faults,
	// …/scenarios/{product}).
	PlatformKeyMode string                        `yaml:"platform_key_mode,omitempty"`
	Strict          bool                          `yaml:"strict,omitempty"`
	SubMerchants    []FileSubMerchant             `yaml:"sub_merchants,omitempty"`
	APIFaults       []FileAPIFault                `yaml:"api_faults,omitempty"`
	ActiveScenarios map[string]FileActiveScenario `yaml:"active_scenarios,omitempty"`
}

// FileSubMerchant is one of a service provider's sub-merchants.
type FileSubMerchant struct {
	SubMchID string `yaml:"sub_mchid"`
	SubAppID string `yaml:"sub_appid,omitempty"`
}

// FileAPIFault is an API fault as POST …/api-faults takes it; times is
// what remains of it.
type FileAPIFault struct {
	Method string `yaml:"method,omitempty"`
	Path   string `yaml:"path"`
	Kind   string `yaml:"kind"`
	Times  int    `yaml:"times,omitempty"`
	// Hold is a Go duration ("30s") or seconds, for a timeout.
	Hold string `yaml:"hold,omitempty"`
}

// FileActiveScenario is the merchant's active scenario of a product, as
// PUT …/scenarios/{product} takes it.
type FileActiveScenario struct {
	ID   string `yaml:"id"`
	Once bool   `yaml:"once,omitempty"`
}

// Bounds of a merchants file entry's settings, as the admin API's.
const (
	maxSubMerchants = 100 // admin/merchant-create's maxItems
)

var (
	subMchIDPattern = regexp.MustCompile(`^[1-9][0-9]{7,11}$`) // fixtures/mchid
	appIDPattern    = regexp.MustCompile(`^wx[0-9a-f]{16}$`)   // fixtures/appid
)

// errTooShort marks a key below WeChat Pay's 2048 bits.
var errTooShort = errors.New("key too short")

// maxFileMerchants bounds a merchants file.
const maxFileMerchants = 1000

// ParseFile reads a merchants file; unknown keys are errors, naming the
// document and line.
func ParseFile(raw []byte) ([]FileEntry, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var all []FileEntry
	for doc := 1; ; doc++ {
		var f File
		err := dec.Decode(&f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		all = append(all, f.Merchants...)
		if len(all) > maxFileMerchants {
			return nil, fmt.Errorf("more than %d merchants", maxFileMerchants)
		}
	}
	return all, nil
}

// EntryOf is the merchant as a merchants-file entry: everything needed to
// make the same merchant in another sandbox, the platform private key
// included — in a sandbox it is a test key of the sandbox's own.
func EntryOf(m *sandbox.Merchant) FileEntry {
	return FileEntry{MchID: m.MchID, Name: m.Name, AppID: m.AppID, ServiceID: m.ServiceID,
		NotifyHosts: m.NotifyHosts, MerchantToken: m.Token,
		MerchantSerialNo: m.MerchantSerialNo, MerchantPrivateKeyPEM: m.MerchantPrivateKeyPEM,
		MerchantCertificatePEM: m.MerchantCertificatePEM, MerchantPublicKeyPEM: m.MerchantPublicKeyPEM,
		APIv2Key: m.APIv2Key, APIv3Key: m.APIv3Key,
		PlatformPublicKeyID: m.PlatformPublicKeyID, PlatformPrivateKeyPEM: m.PlatformPrivateKeyPEM,
		PlatformPublicKeyPEM: m.PlatformPublicKeyPEM, PlatformSerialNo: m.PlatformSerialNo,
		PlatformCertificatePEM: m.PlatformCertificatePEM,
		PCloudAppID:            m.PCloudAppID, PCloudAppSecret: m.PCloudAppSecret, PCloudMerchant: m.PCloudMerchant,
		PlatformKeyMode: m.PlatformKeyMode, Strict: m.Strict, SubMerchants: fileSubMerchants(m.SubMerchants),
		APIFaults: fileAPIFaults(m.APIFaults), ActiveScenarios: fileActive(m.Active)}
}

func fileSubMerchants(subs []sandbox.SubMerchant) []FileSubMerchant {
	var out []FileSubMerchant
	for _, s := range subs {
		out = append(out, FileSubMerchant{SubMchID: s.SubMchID, SubAppID: s.SubAppID})
	}
	return out
}

func fileAPIFaults(fs []sandbox.APIFault) []FileAPIFault {
	var out []FileAPIFault
	for _, f := range fs {
		ff := FileAPIFault{Method: f.Method, Path: f.Path, Kind: f.Kind, Times: f.Remaining}
		if f.Hold != 0 {
			ff.Hold = f.Hold.D().String()
		}
		out = append(out, ff)
	}
	return out
}

func fileActive(active map[string]sandbox.ActiveScenario) map[string]FileActiveScenario {
	if len(active) == 0 {
		return nil
	}
	out := make(map[string]FileActiveScenario, len(active))
	for p, a := range active {
		out[p] = FileActiveScenario{ID: a.ID, Once: a.Once}
	}
	return out
}

// settings checks the entry's settings — every problem at its path — and
// puts them on m. scenarios, when not nil, checks the active scenarios.
func (e *FileEntry) settings(m *sandbox.Merchant, scenarios sandbox.Scenarios, bad func(field, format string, args ...any)) {
	if e.PlatformKeyMode != "" && !slices.Contains(sandbox.PlatformKeyModes, e.PlatformKeyMode) {
		bad("platform_key_mode", "%q is not one of %v", e.PlatformKeyMode, sandbox.PlatformKeyModes)
	}
	m.PlatformKeyMode, m.Strict = e.PlatformKeyMode, e.Strict
	if len(e.SubMerchants) > maxSubMerchants {
		bad("sub_merchants", "has %d sub-merchants; at most %d", len(e.SubMerchants), maxSubMerchants)
	}
	m.SubMerchants = nil
	for i, s := range e.SubMerchants {
		if !subMchIDPattern.MatchString(s.SubMchID) {
			bad(fmt.Sprintf("sub_merchants/%d/sub_mchid", i), "%q is not a merchant id (8 to 12 digits, not starting with 0)", s.SubMchID)
		}
		if s.SubAppID != "" && !appIDPattern.MatchString(s.SubAppID) {
			bad(fmt.Sprintf("sub_merchants/%d/sub_appid", i), "%q is not an appid (wx and 16 hex digits)", s.SubAppID)
		}
		m.SubMerchants = append(m.SubMerchants, sandbox.SubMerchant{SubMchID: s.SubMchID, SubAppID: s.SubAppID})
	}
	if len(e.APIFaults) > MaxAPIFaults {
		bad("api_faults", "has %d faults; a merchant has at most %d", len(e.APIFaults), MaxAPIFaults)
	}
	m.APIFaults = nil
	for i, ff := range e.APIFaults {
		req := APIFaultRequest{Method: ff.Method, Path: ff.Path, Kind: ff.Kind, Times: ff.Times}
		if ff.Hold != "" {
			d, err := parseHold(ff.Hold)
			if err != nil {
				bad(fmt.Sprintf("api_faults/%d/hold", i), "%q: %v", ff.Hold, err)
			}
			req.Hold = sandbox.Duration(d)
		}
		f, vs := req.fault()
		for _, v := range vs {
			bad(fmt.Sprintf("api_faults/%d%s", i, v.Path), "%s", v.Message)
		}
		m.APIFaults = append(m.APIFaults, f)
	}
	products := make([]string, 0, len(e.ActiveScenarios))
	for p := range e.ActiveScenarios {
		products = append(products, p)
	}
	slices.Sort(products)
	for _, p := range products {
		a := e.ActiveScenarios[p]
		if scenarios != nil {
			if sc, ok := scenarios.Get(a.ID); !ok || sc.Product != p {
				bad("active_scenarios/"+p+"/id", "%q is not a %s scenario of the catalogue (GET /sandbox/v1/scenarios)", a.ID, p)
			}
		}
		if m.Active == nil {
			m.Active = map[string]sandbox.ActiveScenario{}
		}
		m.Active[p] = sandbox.ActiveScenario{ID: a.ID, Once: a.Once}
	}
}

// parseHold reads a Go duration or a number of seconds.
func parseHold(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs <= 0 {
		return 0, errors.New("is neither a Go duration (30s) nor a number of seconds")
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// Import creates the entry's merchant: generated credentials, each replaced
// by the entry's when it gives one, and the entry's settings. Every problem
// is reported, with its field. scenarios, when not nil, checks the active
// scenarios against the catalogue.
func (d *Directory) Import(ctx context.Context, e FileEntry, scenarios sandbox.Scenarios) (*sandbox.Merchant, error) {
	if !mchidPattern.MatchString(e.MchID) {
		return nil, sandbox.Invalid("invalid merchant", sandbox.Violation{Path: "/mchid", Message: "must be 8 to 12 digits, like WeChat Pay merchant ids"})
	}
	f, err := d.generate(e.MchID, e.Name)
	if err != nil {
		return nil, err
	}
	m := FromFixture(f)
	var vs []sandbox.Violation
	bad := func(field, format string, args ...any) {
		vs = append(vs, sandbox.Violation{Path: "/" + field, Message: fmt.Sprintf(format, args...)})
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&m.Name, e.Name)
	set(&m.AppID, e.AppID)
	set(&m.ServiceID, e.ServiceID)
	set(&m.Token, e.MerchantToken)
	set(&m.APIv2Key, e.APIv2Key)
	set(&m.APIv3Key, e.APIv3Key)
	set(&m.PlatformPublicKeyID, e.PlatformPublicKeyID)
	set(&m.PCloudAppID, e.PCloudAppID)
	set(&m.PCloudAppSecret, e.PCloudAppSecret)
	set(&m.PCloudMerchant, e.PCloudMerchant)
	if e.NotifyHosts != nil {
		m.NotifyHosts = e.NotifyHosts
	}
	e.settings(m, scenarios, bad)
	// The two keys are 32 bytes: v3's is the AES-256-GCM key and v2's is
	// "32 位" in WeChat Pay's key setting (pay.weixin.qq.com, API 安全).
	if len(m.APIv2Key) != 32 {
		bad("api_v2_key", "is %d bytes; WeChat Pay's API v2 key is 32", len(m.APIv2Key))
	}
	if len(m.APIv3Key) != 32 {
		bad("api_v3_key", "is %d bytes; the API v3 key is the 32-byte AES-256-GCM key", len(m.APIv3Key))
	}
	if len(m.Token) < 16 {
		bad("merchant_token", "is %d characters; at least 16, it guards the merchant's admin access", len(m.Token))
	}
	notBefore, notAfter := fixtures.CertificateValidity(time.Now().UTC())

	// The merchant's pair: its private key (the SDK signs with it), its
	// certificate (serial_no) and the public key requests are verified
	// against, which may be one the merchant registered instead.
	overlayPair("merchant", e.MerchantPrivateKeyPEM, e.MerchantCertificatePEM, e.MerchantSerialNo,
		&m.MerchantPrivateKeyPEM, &m.MerchantCertificatePEM, &m.MerchantSerialNo, &m.MerchantPublicKeyPEM,
		func(k *rsa.PrivateKey, serial string) (string, error) {
			return fixtures.MerchantCertificate(k, serial, m.MchID, m.Name, notBefore, notAfter)
		}, bad)
	if e.MerchantPublicKeyPEM != "" {
		if err := checkPublicKey(e.MerchantPublicKeyPEM); err != nil {
			bad("merchant_public_key_pem", "%v", err)
		}
		m.MerchantPublicKeyPEM = e.MerchantPublicKeyPEM
	}
	// The platform's pair: the sandbox signs with the private key; the
	// public key and certificate are what the merchant verifies with.
	overlayPair("platform", e.PlatformPrivateKeyPEM, e.PlatformCertificatePEM, e.PlatformSerialNo,
		&m.PlatformPrivateKeyPEM, &m.PlatformCertificatePEM, &m.PlatformSerialNo, &m.PlatformPublicKeyPEM,
		func(k *rsa.PrivateKey, serial string) (string, error) {
			return fixtures.PlatformCertificate(k, serial, m.MchID, notBefore, notAfter)
		}, bad)
	if e.PlatformPublicKeyPEM != "" {
		switch pub, err := wxsign.ParsePublicKey(e.PlatformPublicKeyPEM); {
		case err != nil:
			bad("platform_public_key_pem", "%v", err)
		case e.PlatformPrivateKeyPEM == "":
			bad("platform_public_key_pem", "comes without platform_private_key_pem: the sandbox signs with the private key, so give both or neither")
		default:
			if pk, err := wxsign.ParsePrivateKey(e.PlatformPrivateKeyPEM); err == nil && !pub.Equal(&pk.PublicKey) {
				bad("platform_public_key_pem", "is not the public key of platform_private_key_pem")
			}
		}
	}
	if len(vs) > 0 {
		return nil, sandbox.Invalid("invalid merchant", vs...)
	}
	if err := d.add(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// overlayPair puts a key pair the file gives over the generated one: the
// private key (and the public key derived from it), the certificate, its
// serial. A key or a serial without a certificate gets one issued.
func overlayPair(kind, keyPEM, certPEM, serial string, key, cert, serialNo, pub *string,
	issue func(k *rsa.PrivateKey, serial string) (string, error), bad func(field, format string, args ...any)) {
	given := keyPair(kind, keyPEM, certPEM, &serial, bad)
	if given {
		*key = keyPEM
	}
	// A platform key may be two: the public key's, then the certificate's
	// (as the sandbox generates them); one key serves as both.
	keys, err := wxsign.ParsePrivateKeys(*key)
	if err != nil || len(keys) == 0 {
		return // a bad key given is reported; the generated one parses
	}
	k, ck := keys[0], keys[len(keys)-1]
	if given {
		*pub, _ = fixtures.PublicKeyPEM(&k.PublicKey)
	}
	if serial != "" {
		*serialNo = serial
	}
	if certPEM != "" {
		*cert = certPEM
		return
	}
	if given || serial != "" {
		c, err := issue(ck, *serialNo)
		if err != nil {
			bad(kind+"_serial_no", "%v", err)
			return
		}
		*cert = c
	}
}

// keyPair checks a private key and its certificate, either of which may be
// absent, and reports whether a usable key was given. A certificate fixes
// the serial: *serial, when given, must be its serial, and is set from it
// otherwise; it must be the key's.
func keyPair(kind, keyPEM, certPEM string, serial *string, bad func(field, format string, args ...any)) bool {
	// key is the one the certificate holds: the last of the PEM's.
	var key *rsa.PrivateKey
	if keyPEM != "" {
		ks, err := wxsign.ParsePrivateKeys(keyPEM)
		if err != nil {
			bad(kind+"_private_key_pem", "%v", err)
		}
		for _, k := range ks {
			if k.N.BitLen() < 2048 {
				bad(kind+"_private_key_pem", "an RSA key of %d bits; WeChat Pay keys are 2048 bits", k.N.BitLen())
				err = errTooShort
			}
		}
		if err == nil && len(ks) > 0 {
			key = ks[len(ks)-1]
		}
	}
	if certPEM == "" {
		return key != nil
	}
	cert, err := wxsign.ParseCertificate(certPEM)
	if err != nil {
		bad(kind+"_certificate_pem", "%v", err)
		return key != nil
	}
	switch got := wxsign.CertificateSerial(cert); {
	case *serial == "":
		*serial = got
	case *serial != got:
		bad(kind+"_serial_no", "is %s but the certificate's serial is %s", *serial, got)
	}
	switch pub, ok := cert.PublicKey.(*rsa.PublicKey); {
	case keyPEM == "":
		bad(kind+"_certificate_pem", "comes without %s_private_key_pem: give the key with its certificate", kind)
	case key != nil && (!ok || !pub.Equal(&key.PublicKey)):
		bad(kind+"_certificate_pem", "is not a certificate of %s_private_key_pem", kind)
	}
	return key != nil
}
