package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash/fnv"
	"math/big"
	"time"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// order is an ETC application, stored as a KindOrder record.
type order struct {
	OrderNo string `json:"orderNo"`
	// Handle is how it began: new, app or continuation.
	Handle       string `json:"handle"`
	EtcProductID string `json:"etcProductId,omitempty"`
	AccountType  string `json:"accountType,omitempty"`
	CarType      string `json:"carType,omitempty"`
	WechatSignNo string `json:"wechatSignNo,omitempty"`
	PlateNum     string `json:"plateNum"`
	Mobile       string `json:"mobile"`
	OpenID       string `json:"openId"`
	// Scenario is the scenario the application was made under when a
	// header or a magic value chose it; the order's later pages play it
	// unless they name another.
	Scenario           string      `json:"scenario,omitempty"`
	ProtocolSignedAt   *time.Time  `json:"protocolSignedAt,omitempty"`
	CarServiceSignedAt *time.Time  `json:"carServiceSignedAt,omitempty"`
	AfterSales         []afterSale `json:"afterSales,omitempty"`
	CreatedAt          time.Time   `json:"createdAt"` // merchant clock
}

// afterSale is one after-sale request made through login?handleType=aftersale.
type afterSale struct {
	AfterType string    `json:"afterType"`
	At        time.Time `json:"at"`
	Session   string    `json:"session"`
}

// Device states.
const (
	deviceIssued      = "issued"      // applied for, not activated yet
	deviceActive      = "active"      // activated
	deviceDeactivated = "deactivated" // cancelled (注销) or returned (退货) after sale [I]
)

// device is the ETC device (OBU and card) of a plate, stored as a
// KindDevice record.
type device struct {
	PlateNum    string     `json:"plateNum"`
	OrderNo     string     `json:"orderNo"`
	State       string     `json:"state"`
	OBU         string     `json:"obu,omitempty"`
	Card        string     `json:"card,omitempty"`
	ActivatedAt *time.Time `json:"activatedAt,omitempty"`
	// Activations counts activations: the first, reactivations and
	// activeAgain.
	Activations int `json:"activations,omitempty"`
}

// payment is a prepay_id the functional page paid, stored as a KindPayment
// record, so that the same prepay_id cannot be paid twice.
type payment struct {
	PrepayID string    `json:"prepayId"`
	Session  string    `json:"session"`
	PaidAt   time.Time `json:"paidAt"`
}

// stored is a record with its decoded data.
type stored[T any] = sandbox.Stored[T]

// load reads the merchant's record of kind by key; a missing one is nil
// without error.
func load[T any](ctx context.Context, st sandbox.Store, kind, mchid, key string) (*stored[T], error) {
	return optional(sandbox.Get[T](ctx, st, kind, mchid, key))
}

// find reads the merchant's record of kind by alias; a missing one is nil
// without error.
func find[T any](ctx context.Context, st sandbox.Store, kind, mchid, alias string) (*stored[T], error) {
	return optional(sandbox.Find[T](ctx, st, kind, mchid, alias))
}

func optional[T any](s *stored[T], err error) (*stored[T], error) {
	if sandbox.IsCode(err, sandbox.CodeNotFound) {
		return nil, nil
	}
	return s, err
}

// signNoAlias is the alias under which an App-launched order is found by
// its wechatSignNo.
func signNoAlias(signNo string) string { return "wechatSignNo:" + signNo }

// newOrderNo returns an order number: "ETC", the merchant's date and 12
// random digits [I: the plugin guide never shows one].
func newOrderNo(now time.Time) string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e12))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	digits := n.String()
	for len(digits) < 12 {
		digits = "0" + digits
	}
	return "ETC" + now.Format("20060102") + digits
}

// faker returns the fixtures generator of an order: the same order always
// gets the same plate, OBU and card numbers, drawn in that order.
func faker(mchid, orderNo string) *fixtures.Faker {
	h := fnv.New64a()
	h.Write([]byte(mchid))
	h.Write([]byte{0})
	h.Write([]byte(orderNo))
	return fixtures.New(int64(h.Sum64()))
}

// deviceNumbers are the OBU and card numbers an order's activation reports:
// the scenario's, else the order's own from fixtures.
func deviceNumbers(pr params, mchid, orderNo string) (obu, card string) {
	f := faker(mchid, orderNo)
	_ = f.PlateNum() // the plate is the order's first draw
	obu, card = f.OBU(), f.ETCCard()
	if pr.OBU != "" {
		obu = pr.OBU
	}
	if pr.Card != "" {
		card = pr.Card
	}
	return obu, card
}

// openID is the openId the plugin's login gives a mobile number: stable per
// merchant and number, as a WeChat openid is per app and user [I].
func openID(mchid, mobile string) string {
	sum := sha256.Sum256([]byte("issuer-plugin openid\x00" + mchid + "\x00" + mobile))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

// newAccessToken returns a login's accessToken: 32 hex digits [I].
func newAccessToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
