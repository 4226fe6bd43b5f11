// Package merchant keeps the sandbox's merchants: the store holds them, the
// Directory serves every lookup on the hot path from memory.
package merchant

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// Directory is an in-memory index of the merchants in the store. Merchants
// are copy-on-write: a *Merchant it returns is never modified afterwards.
type Directory struct {
	store sandbox.Store
	clock *sandbox.Clock
	// generate makes a merchant's credentials (fixtures.NewMerchant, or
	// fixtures.SeededMerchant under WithCredentialsSeed).
	generate func(mchid, name string) (*fixtures.Merchant, error)
	// noDemo leaves the demo merchant out of a first start (WithoutDemo).
	noDemo bool

	mu       sync.RWMutex
	byID     map[string]*sandbox.Merchant
	byApp    map[string]*sandbox.Merchant
	byPCloud map[string]*sandbox.Merchant
	byToken  map[string]*sandbox.Merchant
}

// Option changes how a Directory makes merchants.
type Option func(*Directory)

// WithCredentialsSeed makes every generated credential a function of seed
// and the mchid (--credentials-seed): the same merchants on every fresh
// start, for throwaway CI runs. Never for a shared server: the seed gives
// away every key.
func WithCredentialsSeed(seed string) Option {
	return func(d *Directory) {
		if seed != "" {
			d.generate = func(mchid, name string) (*fixtures.Merchant, error) {
				return fixtures.SeededMerchant(seed, mchid, name)
			}
		}
	}
}

// WithoutDemo leaves the demo merchant out of a first start: a merchants
// file that lists it creates it instead, with its credentials.
func WithoutDemo(without bool) Option { return func(d *Directory) { d.noDemo = without } }

// Load reads every merchant from the store, creating the demo merchant on
// first start, and restores each merchant's clock offset. From then on the
// directory hears of every commit through the store's after-commit hooks
// (Committed), its own changes included.
func Load(ctx context.Context, st sandbox.Store, clock *sandbox.Clock, opts ...Option) (*Directory, error) {
	d := &Directory{store: st, clock: clock, generate: fixtures.NewMerchant}
	for _, o := range opts {
		o(d)
	}
	ms, err := st.ListMerchants(ctx)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 && !d.noDemo {
		f, err := d.generate(fixtures.DemoMchID, fixtures.DemoName)
		if err != nil {
			return nil, fmt.Errorf("generate demo merchant: %w", err)
		}
		demo := FromFixture(f)
		demo.CreatedAt = time.Now().UTC()
		if err := st.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{demo}}); err != nil {
			return nil, fmt.Errorf("store demo merchant: %w", err)
		}
		ms = []*sandbox.Merchant{demo}
	}
	d.index(ms)
	for _, m := range ms {
		clock.SetOffset(m.MchID, m.ClockOffset)
	}
	st.OnCommit(d.Committed)
	return d, nil
}

func (d *Directory) index(ms []*sandbox.Merchant) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byID == nil {
		d.byID, d.byApp, d.byPCloud, d.byToken = map[string]*sandbox.Merchant{}, map[string]*sandbox.Merchant{}, map[string]*sandbox.Merchant{}, map[string]*sandbox.Merchant{}
	}
	for _, m := range ms {
		if old, ok := d.byID[m.MchID]; ok {
			if old.Version > m.Version {
				continue // a read that lost a race with a newer commit's
			}
			delete(d.byApp, old.AppID)
			delete(d.byPCloud, old.PCloudAppID)
			delete(d.byToken, old.Token)
		}
		d.byID[m.MchID] = m
		if m.AppID != "" {
			d.byApp[m.AppID] = m
		}
		if m.PCloudAppID != "" {
			d.byPCloud[m.PCloudAppID] = m
		}
		if m.Token != "" {
			d.byToken[m.Token] = m
		}
	}
}

func (d *Directory) lookup(idx map[string]*sandbox.Merchant, key string) (*sandbox.Merchant, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m, ok := idx[key]
	return m, ok
}

// Get finds a merchant by mchid.
func (d *Directory) Get(mchid string) (*sandbox.Merchant, bool) { return d.lookup(d.byID, mchid) }

// ByAppID finds the merchant whose mini-program appId this is.
func (d *Directory) ByAppID(appid string) (*sandbox.Merchant, bool) { return d.lookup(d.byApp, appid) }

// ByPCloudAppID finds the merchant by its P云 app_id.
func (d *Directory) ByPCloudAppID(appid string) (*sandbox.Merchant, bool) {
	return d.lookup(d.byPCloud, appid)
}

// ByToken finds the merchant a merchant-scoped token belongs to.
func (d *Directory) ByToken(token string) (string, bool) {
	m, ok := d.lookup(d.byToken, token)
	if !ok {
		return "", false
	}
	return m.MchID, true
}

// List returns every merchant, by mchid.
func (d *Directory) List() []*sandbox.Merchant {
	d.mu.RLock()
	out := make([]*sandbox.Merchant, 0, len(d.byID))
	for _, m := range d.byID {
		out = append(out, m)
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].MchID < out[j].MchID })
	return out
}

// Require returns the merchant or a CodeNotFound error naming it.
func (d *Directory) Require(mchid string) (*sandbox.Merchant, error) {
	m, ok := d.Get(mchid)
	if !ok {
		return nil, sandbox.Errorf(sandbox.CodeNotFound, "merchant %q does not exist in this sandbox", mchid)
	}
	return m, nil
}

// Edit returns a copy of the merchant that the caller may change and then
// commit: compare-and-swap on the version it was read at. Lookups see it
// once committed (Committed).
func (d *Directory) Edit(mchid string) (*sandbox.Merchant, error) {
	m, err := d.Require(mchid)
	if err != nil {
		return nil, err
	}
	c := *m
	c.Active = make(map[string]sandbox.ActiveScenario, len(m.Active))
	for k, v := range m.Active {
		c.Active[k] = v
	}
	c.NotifyHosts = append([]string(nil), m.NotifyHosts...)
	c.APIFaults = append([]sandbox.APIFault(nil), m.APIFaults...)
	return &c, nil
}

// merchantTries bounds the compare-and-swap retries of one Update: each
// round of racing changes lets one through, so it is enough for as many
// concurrent changes of one merchant.
const merchantTries = 100

// Update edits a merchant with f and commits it, with compare-and-swap:
// when another change to the merchant commits first, it reads the merchant
// again and applies f again, so that no change is lost.
func (d *Directory) Update(ctx context.Context, mchid string, f func(m *sandbox.Merchant) error) (*sandbox.Merchant, error) {
	for try := 1; ; try++ {
		m, err := d.Edit(mchid)
		if err != nil {
			return nil, err
		}
		if err := f(m); err != nil {
			return nil, err
		}
		err = d.store.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{m}})
		if err == nil {
			return m, nil
		}
		if !sandbox.IsCode(err, sandbox.CodeConflict) || try == merchantTries {
			return nil, err
		}
		if _, err := d.Refresh(ctx, mchid); err != nil {
			return nil, err
		}
	}
}

// Refresh reads the merchant from the store and makes it visible to
// lookups, and its clock offset the clock's, unless a newer version is
// there already. It returns the merchant as lookups now see it.
func (d *Directory) Refresh(ctx context.Context, mchid string) (*sandbox.Merchant, error) {
	m, err := d.store.GetMerchant(ctx, mchid)
	if err != nil {
		return nil, err
	}
	d.index([]*sandbox.Merchant{m})
	cur, _ := d.Get(mchid)
	d.clock.SetOffset(mchid, cur.ClockOffset)
	return cur, nil
}

// Committed is the store's after-commit hook: each merchant a commit wrote
// (in this process or, with a shared store, another) is read again, so that
// lookups and clocks follow every commit. A failed read leaves the old
// version until the merchant's next commit.
func (d *Directory) Committed(c sandbox.Committed) {
	for _, mchid := range c.Merchants {
		_, _ = d.Refresh(context.Background(), mchid)
	}
}

// CreateRequest is the body of POST /sandbox/v1/merchants.
type CreateRequest struct {
	MchID                string   `json:"mchid"`
	Name                 string   `json:"name"`
	AppID                string   `json:"appid"`
	NotifyHosts          []string `json:"notify_hosts"`
	MerchantPublicKeyPEM string   `json:"merchant_public_key_pem"`
	PlatformKeyMode      string   `json:"platform_key_mode"`
}

var mchidPattern = regexp.MustCompile(`^[0-9]{8,12}$`)

// Create generates a merchant with fresh test credentials.
func (d *Directory) Create(ctx context.Context, req CreateRequest) (*sandbox.Merchant, error) {
	mchid := req.MchID
	if mchid == "" {
		mchid = fixtures.New(time.Now().UnixNano()).MchID()
	}
	if !mchidPattern.MatchString(mchid) {
		return nil, sandbox.Invalid("invalid merchant", sandbox.Violation{Path: "/mchid", Message: "must be 8 to 12 digits, like WeChat Pay merchant ids"})
	}
	if _, ok := d.Get(mchid); ok { // before the keys are made
		return nil, sandbox.Errorf(sandbox.CodeConflict, "merchant %q already exists", mchid)
	}
	if err := checkPublicKey(req.MerchantPublicKeyPEM); err != nil {
		return nil, err
	}
	name := req.Name
	if name == "" {
		name = "商户 " + mchid
	}
	f, err := d.generate(mchid, name)
	if err != nil {
		return nil, err
	}
	m := FromFixture(f)
	if req.AppID != "" {
		m.AppID = req.AppID
	}
	if req.NotifyHosts != nil {
		m.NotifyHosts = req.NotifyHosts
	}
	if req.MerchantPublicKeyPEM != "" {
		m.MerchantPublicKeyPEM = req.MerchantPublicKeyPEM
	}
	m.PlatformKeyMode = req.PlatformKeyMode
	if err := d.add(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// add commits a new merchant and makes it visible, unless its mchid, appid,
// P云 app_id or token is another merchant's.
func (d *Directory) add(ctx context.Context, m *sandbox.Merchant) error {
	if _, ok := d.Get(m.MchID); ok {
		return sandbox.Errorf(sandbox.CodeConflict, "merchant %q already exists", m.MchID)
	}
	var vs []sandbox.Violation
	for _, k := range []struct {
		field, value string
		idx          map[string]*sandbox.Merchant
	}{{"appid", m.AppID, d.byApp}, {"pcloud_app_id", m.PCloudAppID, d.byPCloud}, {"merchant_token", m.Token, d.byToken}} {
		if other, ok := d.lookup(k.idx, k.value); ok {
			vs = append(vs, sandbox.Violation{Path: "/" + k.field, Message: fmt.Sprintf("%q already belongs to merchant %s", k.value, other.MchID)})
		}
	}
	if len(vs) > 0 {
		return sandbox.Invalid("invalid merchant", vs...)
	}
	m.CreatedAt = time.Now().UTC()
	if err := d.store.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{m}}); err != nil {
		return err
	}
	return nil
}

// AdvanceClock moves the merchant's clock: the offset is committed, then
// the clock follows it (Committed).
func (d *Directory) AdvanceClock(ctx context.Context, mchid string, by time.Duration) (*sandbox.Merchant, error) {
	return d.Update(ctx, mchid, func(m *sandbox.Merchant) error {
		m.ClockOffset += by
		return nil
	})
}

// FromFixture copies generated credentials into a domain merchant (fixtures
// cannot name sandbox types: it lives outside server/).
func FromFixture(f *fixtures.Merchant) *sandbox.Merchant {
	return &sandbox.Merchant{MchID: f.MchID, Name: f.Name, AppID: f.AppID, ServiceID: f.ServiceID,
		MerchantSerialNo: f.MerchantSerialNo, MerchantPrivateKeyPEM: f.MerchantPrivateKeyPEM,
		MerchantCertificatePEM: f.MerchantCertificatePEM, MerchantPublicKeyPEM: f.MerchantPublicKeyPEM,
		APIv2Key: f.APIv2Key, APIv3Key: f.APIv3Key, PlatformPublicKeyID: f.PlatformPublicKeyID,
		PlatformPublicKeyPEM: f.PlatformPublicKeyPEM, PlatformSerialNo: f.PlatformSerialNo,
		PlatformCertificatePEM: f.PlatformCertificatePEM, PlatformPrivateKeyPEM: f.PlatformPrivateKeyPEM,
		PCloudAppID: f.PCloudAppID, PCloudAppSecret: f.PCloudAppSecret, PCloudMerchant: f.PCloudMerchant,
		Token: f.Token, NotifyHosts: []string{}, Active: map[string]sandbox.ActiveScenario{}}
}

// checkPublicKey refuses a registered key that would make every request
// signature fail: not PEM, not RSA, or too short for WeChat Pay.
func checkPublicKey(pemText string) error {
	if pemText == "" {
		return nil
	}
	pub, err := wxsign.ParsePublicKey(pemText)
	if err != nil {
		return sandbox.Invalid("invalid merchant", sandbox.Violation{Path: "/merchant_public_key_pem", Message: "not an RSA public key in PEM: " + err.Error()})
	}
	if pub.N.BitLen() < 2048 {
		return sandbox.Invalid("invalid merchant", sandbox.Violation{Path: "/merchant_public_key_pem",
			Message: fmt.Sprintf("an RSA key of %d bits; WeChat Pay keys are 2048 bits", pub.N.BitLen())})
	}
	return nil
}

// UpdateRequest is the body of PATCH /sandbox/v1/merchants/{mchid}; nil
// fields keep their value.
type UpdateRequest struct {
	Name                 *string   `json:"name"`
	NotifyHosts          *[]string `json:"notify_hosts"`
	MerchantPublicKeyPEM *string   `json:"merchant_public_key_pem"`
	PlatformKeyMode      *string   `json:"platform_key_mode"`
}

// Change applies an UpdateRequest.
func (d *Directory) Change(ctx context.Context, mchid string, req UpdateRequest) (*sandbox.Merchant, error) {
	if req.MerchantPublicKeyPEM != nil {
		if err := checkPublicKey(*req.MerchantPublicKeyPEM); err != nil {
			return nil, err
		}
	}
	return d.Update(ctx, mchid, func(m *sandbox.Merchant) error {
		if req.Name != nil {
			m.Name = *req.Name
		}
		if req.NotifyHosts != nil {
			m.NotifyHosts = *req.NotifyHosts
		}
		if req.MerchantPublicKeyPEM != nil {
			m.MerchantPublicKeyPEM = *req.MerchantPublicKeyPEM
		}
		if req.PlatformKeyMode != nil {
			m.PlatformKeyMode = *req.PlatformKeyMode
		}
		return nil
	})
}
