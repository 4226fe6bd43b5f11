package payscore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// kindOrder is the record kind of a service order; its key is out_order_no
// and its aliases are aliasPackage+package and aliasQueryID+query_id.
const kindOrder = sandbox.ProductPayScore + ".order"

// Alias prefixes keep a package and a query_id from ever colliding.
const (
	aliasPackage = "package:"
	aliasQueryID = "query_id:"
)

// Order states (SOURCES.md §2).
const (
	stateCreated = "CREATED"
	stateDoing   = "DOING"
	stateDone    = "DONE"
	stateRevoked = "REVOKED"
	stateExpired = "EXPIRED"

	descUserConfirm = "USER_CONFIRM"
	descMchComplete = "MCH_COMPLETE"

	collectionPaying = "USER_PAYING"
	collectionPaid   = "USER_PAID"

	paidTypeNewton = "NEWTON" // deducted by WeChat from the user
	paidTypeMch    = "MCH"    // paid to the merchant by other means (sync)
)

const (
	// packageTTL is how long a package may be used for the jump (SOURCES.md §2).
	packageTTL = time.Hour
	// expireAfter is how long a CREATED order lives untouched (SOURCES.md §2).
	expireAfter = 30 * 24 * time.Hour
	// v3Time is the layout of yyyyMMddHHmmss times, read in +08:00.
	v3Time = "20060102150405"
)

// beijing is the zone the pay-score yyyyMMddHHmmss times are written in.
var beijing = time.FixedZone("CST", 8*60*60)

type payment struct {
	Name        string `json:"name"`
	Amount      *int64 `json:"amount,omitempty"`
	Description string `json:"description,omitempty"`
	Count       *int64 `json:"count,omitempty"`
}

type discount struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Amount      *int64 `json:"amount,omitempty"`
	Count       *int64 `json:"count,omitempty"`
}

type timeRange struct {
	StartTime       string `json:"start_time,omitempty"`
	StartTimeRemark string `json:"start_time_remark,omitempty"`
	EndTime         string `json:"end_time,omitempty"`
	EndTimeRemark   string `json:"end_time_remark,omitempty"`
}

type location struct {
	StartLocation string `json:"start_location,omitempty"`
	EndLocation   string `json:"end_location,omitempty"`
}

type riskFund struct {
	Name        string `json:"name"`
	Amount      int64  `json:"amount"`
	Description string `json:"description,omitempty"`
}

type device struct {
	StartDeviceID string `json:"start_device_id,omitempty"`
	EndDeviceID   string `json:"end_device_id,omitempty"`
	MaterielNo    string `json:"materiel_no,omitempty"`
}

type collection struct {
	State        string   `json:"state"`
	TotalAmount  int64    `json:"total_amount"`
	PayingAmount int64    `json:"paying_amount"`
	PaidAmount   int64    `json:"paid_amount"`
	Details      []detail `json:"details,omitempty"`
}

type detail struct {
	Seq           int    `json:"seq"`
	Amount        int64  `json:"amount"`
	PaidType      string `json:"paid_type"`
	PaidTime      string `json:"paid_time"`
	TransactionID string `json:"transaction_id,omitempty"`
}

// terms are what the merchant states at create and every answer shows.
type terms struct {
	ServiceIntroduction string     `json:"service_introduction"`
	PostPayments        []payment  `json:"post_payments,omitempty"`
	PostDiscounts       []discount `json:"post_discounts,omitempty"`
	RiskFund            riskFund   `json:"risk_fund"`
	TimeRange           timeRange  `json:"time_range"`
	Location            *location  `json:"location,omitempty"`
	Attach              string     `json:"attach,omitempty"`
	NotifyURL           string     `json:"notify_url"`
}

// shown is what every view of an order carries.
type shown struct {
	AppID            string `json:"appid"`
	MchID            string `json:"mchid"`
	OutOrderNo       string `json:"out_order_no"`
	ServiceID        string `json:"service_id"`
	State            string `json:"state"`
	StateDescription string `json:"state_description"`
	terms
	OrderID string `json:"order_id"`
	OpenID  string `json:"openid,omitempty"`
}

// order is the stored service order: what WeChat keeps of it, plus the
// sandbox's own bookkeeping under Sandbox, which no answer shows.
type order struct {
	shown
	TotalAmount    int64       `json:"total_amount"`
	NeedCollection bool        `json:"need_collection"`
	Collection     *collection `json:"collection,omitempty"`

	Sandbox bookkeeping `json:"sandbox"`
}

type bookkeeping struct {
	Package        string    `json:"package,omitempty"`
	PackageExpires time.Time `json:"package_expires"`
	QueryID        string    `json:"query_id"`
	// Created is the sandbox time of creation: the 30-day expiry runs
	// from it.
	Created time.Time `json:"created"`
	// Request is the create request as decoded and re-encoded, so that an
	// identical re-create is recognised (原参重入, SOURCES.md §2).
	Request json.RawMessage `json:"request"`
	// Scenario is the scenario that decides the deduction: the launch's,
	// else the create's.
	Scenario string `json:"scenario,omitempty"`
	// PaidAt is when the pending deduction succeeds; zero when none is
	// scheduled (not completed, or a scenario that keeps failing).
	PaidAt time.Time `json:"paid_at"`
	// PaidTransaction is the transaction_id the scheduled deduction will
	// carry, fixed in advance so that every read shows the same one.
	PaidTransaction string `json:"paid_transaction,omitempty"`
	// PaidNotify is the PAYSCORE.USER_PAID notification waiting for the
	// deduction, so that cancel, modify, pay and sync can adjust it.
	PaidNotify string `json:"paid_notify,omitempty"`
}

// view is what an answer or a notification shows of an order.
type view struct {
	shown
	TotalAmount *int64 `json:"total_amount,omitempty"`
	Package     string `json:"package,omitempty"`
	// MiniprogramAppID is the 支付分 mini-program's appId, which the
	// merchant's App.onShow compares with referrerInfo.appId when the user
	// comes back: create answers it (the 小程序调起支付分 guide's onShow
	// sample: "miniprogram_appid 由【创建订单】返回"), and query [S].
	MiniprogramAppID string      `json:"miniprogram_appid,omitempty"`
	NeedCollection   *bool       `json:"need_collection,omitempty"`
	Collection       *collection `json:"collection,omitempty"`
}

// full is the order as query, modify, sync and notifications show it.
func (o *order) full() *view {
	total, need := o.TotalAmount, o.NeedCollection
	return &view{shown: o.shown, TotalAmount: &total, NeedCollection: &need, Collection: o.Collection}
}

// created is the order as create answers it: with its package, without
// amounts or collection (SOURCES.md §2).
func (o *order) created() *view {
	v := &view{shown: o.shown, MiniprogramAppID: AppID}
	if o.State == stateCreated {
		v.Package = o.Sandbox.Package
	}
	return v
}

// queried is the order as query answers it: full, with the mini-program
// appId as create gave it.
func (o *order) queried() *view {
	v := o.full()
	v.MiniprogramAppID = AppID
	return v
}

// completed is the order as complete answers it: amounts, no collection
// details (the official complete page lists none).
func (o *order) completed() *view {
	v := o.full()
	v.Collection = nil
	return v
}

// ref is the short answer of cancel and pay.
type ref struct {
	AppID      string `json:"appid"`
	MchID      string `json:"mchid"`
	OutOrderNo string `json:"out_order_no"`
	ServiceID  string `json:"service_id"`
	OrderID    string `json:"order_id"`
}

func (o *order) ref() ref {
	return ref{AppID: o.AppID, MchID: o.MchID, OutOrderNo: o.OutOrderNo, ServiceID: o.ServiceID, OrderID: o.OrderID}
}

// paying reports whether the order waits for its deduction: DOING,
// MCH_COMPLETE, collection USER_PAYING.
func (o *order) paying() bool {
	return o.State == stateDoing && o.StateDescription == descMchComplete && o.Collection != nil && o.Collection.State == collectionPaying
}

// advance applies what the clock has made true by now: a CREATED order
// expires after 30 days, and a scheduled deduction succeeds. Stored
// records are brought up to date lazily, when read or changed, so that no
// timer is needed; a notification of the deduction is queued in advance.
func (o *order) advance(now time.Time) {
	switch {
	case o.State == stateCreated && !now.Before(o.Sandbox.Created.Add(expireAfter)):
		o.State, o.StateDescription = stateExpired, ""
	case o.paying() && !o.Sandbox.PaidAt.IsZero() && !now.Before(o.Sandbox.PaidAt):
		o.settle(paidTypeNewton, o.Sandbox.PaidAt.In(beijing).Format(v3Time), o.Sandbox.PaidTransaction)
	}
}

// settle records the collection as paid: DONE, USER_PAID, one detail.
func (o *order) settle(paidType, paidTime, transactionID string) {
	c := o.Collection
	c.State, c.PaidAmount, c.PayingAmount = collectionPaid, c.TotalAmount, 0
	c.Details = []detail{{Seq: 1, Amount: c.TotalAmount, PaidType: paidType, PaidTime: paidTime, TransactionID: transactionID}}
	o.State, o.StateDescription = stateDone, ""
	o.Sandbox.PaidAt, o.Sandbox.PaidTransaction = time.Time{}, ""
}

// schedulePayment makes the deduction succeed at at.
func (o *order) schedulePayment(at time.Time) {
	o.Sandbox.PaidAt, o.Sandbox.PaidTransaction = at, newTransactionID(at)
}

// complete ends the service with the amounts given.
func (o *order) complete(total int64) {
	o.TotalAmount = total
	if total == 0 {
		// Nothing to collect: done at once [I].
		o.State, o.StateDescription, o.NeedCollection = stateDone, "", false
		return
	}
	o.State, o.StateDescription, o.NeedCollection = stateDoing, descMchComplete, true
	o.Collection = &collection{State: collectionPaying, TotalAmount: total, PayingAmount: total}
}

func sum[T any](xs []T, amount func(T) *int64) int64 {
	var s int64
	for _, x := range xs {
		if a := amount(x); a != nil {
			s += *a
		}
	}
	return s
}

// totalOf is Σ post_payments.amount − Σ post_discounts.amount, the
// total_amount rule (SOURCES.md §2).
func totalOf(ps []payment, ds []discount) int64 {
	return sum(ps, func(p payment) *int64 { return p.Amount }) - sum(ds, func(d discount) *int64 { return d.Amount })
}

// deposit reports whether the risk fund makes the order 先免 (deposit
// waived), where the total may not exceed it (SOURCES.md §2; which names
// are 先免 is inferred from the official enum descriptions [I]).
func (r riskFund) deposit() bool {
	return r.Name == "DEPOSIT" || r.Name == "ADVANCE" || r.Name == "CASH_DEPOSIT"
}

// newPackage mints a package: 48 random bytes in base64, the look of the
// documented example "AAQTnZoAAAABAAAAAAD8m2b8…" (SOURCES.md §2, §10).
func newPackage() string {
	var b [48]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// newQueryID mints the query_id the in-page back button returns (seed
// 003 §1.3: string(64)).
func newQueryID() string { return wxsign.NonceStr(40) }

// newOrderID mints WeChat's order_id: 20 digits, like "15646546545165651651".
func newOrderID(now time.Time) string {
	return "1" + now.In(beijing).Format("060102") + digits(13)
}

// newTransactionID mints a deduction's transaction_id: "42" and 26 more
// digits, the shape of WeChat Pay transaction ids [I].
func newTransactionID(at time.Time) string {
	return "42000" + digits(5) + at.In(beijing).Format("20060102") + digits(10)
}

func digits(n int) string {
	const alphabet = "0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%10]
	}
	return string(b)
}
