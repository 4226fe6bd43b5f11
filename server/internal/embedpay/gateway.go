package embedpay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Schema names of the gateway's bodies.
const (
	SchemaPrepareRequest  = "embedpay/trade-prepare.request"
	SchemaPrepareResponse = "embedpay/trade-prepare.response"
	SchemaQueryRequest    = "embedpay/trade-query.request"
	SchemaQueryResponse   = "embedpay/trade-query.response"
	SchemaExtraParking    = "embedpay/extra-parking"
	SchemaNotifyRequest   = "embedpay/trade-notify.request"
	SchemaNotifyAck       = "embedpay/trade-notify.ack"
	SchemaOpenArgs        = "embedpay/open-embedded.args"
	SchemaReturn          = "embedpay/return"
)

// payURLPrefix is the H5 cashier link every prepared trade gets
// (trade-prepare.md "pay_url"); the sandbox does not serve it.
const payURLPrefix = "https://app.4pyun.com/payment/trade/create?pay_id="

// prepareResponse is trade/prepare's success (SOURCES.md §8), in P云's order.
type prepareResponse struct {
	Code     string `json:"code"`
	Seqno    string `json:"seqno"`
	DataNode string `json:"data_node"`
	PayURL   string `json:"pay_url"`
	PayID    string `json:"pay_id"`
}

// handlePrepare handles "POST /gate/1.0/payment/trade/prepare".
func (p *Product) handlePrepare(c *gin.Context) error {
	ctx := c.Request.Context()
	params, vs, err := p.readParams(c, SchemaPrepareRequest)
	if err != nil {
		return err
	}
	more, err := p.checkExtra(params)
	if err != nil {
		return err
	}
	vs = append(vs, more...)
	m, authVs, diag := p.authenticate(params)
	vs = append(vs, authVs...)
	x := httpapi.Exchange(c)
	if m == nil {
		return paramError(vs, diag, requiredPrepare)
	}
	x.MchID = m.MchID
	now := p.d.Clock.Now(m.MchID)
	expire := now.Add(defaultExpiry)
	if s := params["expire_time"]; s != "" && !slices.ContainsFunc(vs, func(v sandbox.Violation) bool { return v.Path == "/expire_time" }) {
		at, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case err != nil:
			vs = append(vs, sandbox.Violation{Path: "/expire_time", Message: fmt.Sprintf("%s; got %q", fieldRules["expire_time"], s)})
		case !at.After(now):
			vs = append(vs, sandbox.Violation{Path: "/expire_time", Message: fmt.Sprintf(
				"%s is not in the future: the sandbox clock of merchant %s reads %s", s, m.MchID, now.UTC().Format(time.RFC3339Nano))})
		default:
			expire = at
		}
	}
	if u := params["notify_url"]; u != "" && !slices.ContainsFunc(vs, func(v sandbox.Violation) bool { return v.Path == "/notify_url" }) {
		vs = append(vs, p.d.NotifyTargets.NotifyURLViolations(m, "/notify_url", u)...)
	}
	explicit := c.GetHeader("X-Sandbox-Scenario")
	if explicit != "" {
		if sc, ok := p.d.Scenarios.Get(explicit); !ok || sc.Product != sandbox.ProductEmbedPay {
			vs = append(vs, sandbox.Violation{Path: "/X-Sandbox-Scenario", Message: fmt.Sprintf(
				"%q is not an embedpay scenario (GET /sandbox/v1/scenarios?product=embedpay lists them)", explicit)})
		}
	}
	if len(vs) > 0 {
		return paramError(vs, diag, requiredPrepare)
	}
	value, _ := strconv.ParseInt(params["value"], 10, 64) // the schema's pattern guarantees digits
	t := &trade{
		AppID: params["app_id"], Merchant: params["merchant"], PayOrder: params["pay_order"],
		Subject: params["subject"], Body: params["body"], Value: value, Payer: params["payer"],
		DeductMode: params["deduct_mode"], CallbackURL: params["callback_url"], NotifyURL: params["notify_url"],
		TradeScene: params["trade_scene"], Channel: params["channel"], Scenario: explicit,
		CreatedAt: now, ExpireAt: expire,
	}
	if e := params["extra"]; e != "" {
		t.Extra = json.RawMessage(e)
	}
	if err := p.create(ctx, m, t); err != nil {
		return err
	}
	x.Scenario = explicit
	if explicit != "" {
		c.Header("X-Sandbox-Scenario", explicit)
	}
	c.JSON(http.StatusOK, prepareResponse{
		Code: codeOK, Seqno: newSeqno(), DataNode: dataNode, PayURL: payURLPrefix + t.PayID, PayID: t.PayID,
	})
	return nil
}

// create stores a new trade under a fresh pay_id. pay_order is the record
// key, so the store refuses a second trade with it — at once, or when two
// prepares race — and P云's "订单号已存在" follows.
func (p *Product) create(ctx context.Context, m *sandbox.Merchant, t *trade) error {
	for try := 0; ; try++ {
		t.PayID = newPayID()
		rec := &sandbox.Record{Kind: KindTrade, MchID: m.MchID, Key: t.PayOrder}
		if err := t.encode(rec); err != nil {
			return err
		}
		err := p.d.Store.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{rec}})
		if !sandbox.IsCode(err, sandbox.CodeConflict) {
			return err
		}
		if _, gerr := p.d.Store.GetRecord(ctx, KindTrade, m.MchID, t.PayOrder); gerr == nil || try == 2 {
			return failure(sandbox.CodeConflict, codeFailure, msgDuplicate, fmt.Sprintf(
				"pay_order %q was already prepared by app_id %s; pay_order is unique per app_id", t.PayOrder, t.AppID),
				sandbox.Violation{Path: "/pay_order", Message: "already exists"})
		}
		// Another trade holds the new pay_id (22 random digits): draw again.
	}
}

// checkExtra checks extra, a JSON text: an object, required with
// deduct_mode ("无感支付场景必须传递extra"), and for PARKING the fields of
// appendix.md I.I.
func (p *Product) checkExtra(params map[string]string) ([]sandbox.Violation, error) {
	raw, ok := params["extra"]
	if !ok || raw == "" {
		if params["deduct_mode"] != "" {
			return []sandbox.Violation{{Path: "/extra", Message: "is required with deduct_mode (无感支付场景必须传递extra, trade-prepare.md)"}}, nil
		}
		return nil, nil
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(raw), &obj); err != nil || obj == nil {
		return []sandbox.Violation{{Path: "/extra", Message: "must be a JSON object written as a string, e.g. {\"plate\":\"粤B12345\",…}"}}, nil
	}
	if params["trade_scene"] != "PARKING" {
		return nil, nil
	}
	vs, err := p.d.Validator.ValidateJSON(SchemaExtraParking, []byte(raw))
	if err != nil {
		return nil, err
	}
	for i := range vs {
		vs[i].Path = "/extra" + vs[i].Path
	}
	return vs, nil
}

// queryResponse is trade/query's success. value and status are JSON numbers
// and trade_time an ISO UTC time, as trade-query.md's example shows, although
// its table types them as strings.
type queryResponse struct {
	Code      string `json:"code"`
	Seqno     string `json:"seqno"`
	DataNode  string `json:"data_node"`
	Merchant  string `json:"merchant"`
	PayOrder  string `json:"pay_order"`
	Channel   string `json:"channel,omitempty"`
	PaySerial string `json:"pay_serial,omitempty"`
	Value     int64  `json:"value"`
	Status    int    `json:"status"`
	TradeTime string `json:"trade_time,omitempty"`
	Payer     string `json:"payer,omitempty"`
}

// queryTimeLayout is trade/query's trade_time ("2020-12-31T16:00:15Z").
const queryTimeLayout = "2006-01-02T15:04:05Z"

// handleQuery handles "GET|POST /gate/1.0/payment/trade/query": the trade's
// status at this moment on the merchant's clock.
func (p *Product) handleQuery(c *gin.Context) error {
	ctx := c.Request.Context()
	params, vs, err := p.readParams(c, SchemaQueryRequest)
	if err != nil {
		return err
	}
	m, authVs, diag := p.authenticate(params)
	vs = append(vs, authVs...)
	noKey := params["pay_order"] == "" && params["pay_serial"] == ""
	if len(vs) > 0 || m == nil {
		if noKey {
			vs = append(vs, sandbox.Violation{Path: "/pay_order", Message: "pay_order or pay_serial is required"})
		}
		return paramError(vs, diag, requiredQuery)
	}
	x := httpapi.Exchange(c)
	x.MchID = m.MchID
	if noKey {
		return failure(sandbox.CodeInvalid, codeFailure, msgQueryNeedsKey, "give pay_order (yours) or pay_serial (P云's)",
			sandbox.Violation{Path: "/pay_order", Message: "pay_order or pay_serial is required"})
	}
	t, err := p.find(ctx, m, params["pay_order"], params["pay_serial"])
	if err != nil {
		return err
	}
	now := p.d.Clock.Now(m.MchID)
	status, since, started := t.statusAt(now)
	out := queryResponse{
		Code: codeOK, Seqno: newSeqno(), DataNode: dataNode, Merchant: t.Merchant, PayOrder: t.PayOrder,
		Value: t.Value, Status: status, Payer: t.Payer,
	}
	if started {
		out.Channel, out.PaySerial, out.TradeTime = t.PaidChannel, t.PaySerial, since.UTC().Format(queryTimeLayout)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// find looks a trade of the merchant up by pay_order, pay_serial or both
// (which must name the same trade).
func (p *Product) find(ctx context.Context, m *sandbox.Merchant, payOrder, paySerial string) (*trade, error) {
	notFound := failure(sandbox.CodeNotFound, codeFailure, msgNotFound, fmt.Sprintf(
		"no trade of app_id %s has pay_order %q / pay_serial %q", m.PCloudAppID, payOrder, paySerial))
	var rec *sandbox.Record
	var err error
	if payOrder != "" {
		rec, err = p.d.Store.GetRecord(ctx, KindTrade, m.MchID, payOrder)
	} else {
		rec, err = p.d.Store.FindRecord(ctx, KindTrade, m.MchID, paySerial)
	}
	if sandbox.IsCode(err, sandbox.CodeNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	t, err := sandbox.Decode[trade](rec)
	if err != nil {
		return nil, err
	}
	// pay_id shares the alias space: only the trade's own pay_serial counts.
	if paySerial != "" && t.PaySerial != paySerial {
		return nil, notFound
	}
	return t, nil
}

// digits returns n random decimal digits.
func digits(n int) string {
	b := make([]byte, 0, n)
	var r [8]byte
	for len(b) < n {
		_, _ = rand.Read(r[:])
		// 10^18 < 2^63: 18 digits per draw, uniform enough for ids.
		s := strconv.FormatUint(binary.BigEndian.Uint64(r[:])%1_000_000_000_000_000_000, 10)
		for i := len(s); i < 18; i++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	return string(b[:n])
}

// newPayID mints a pay_id in P云's shape: 24 digits ("621722601479223111111111").
func newPayID() string { return "62" + digits(22) }

// cst is China Standard Time, in which P云 stamps its serials.
var cst = time.FixedZone("CST", 8*3600)

// newPaySerial mints a pay_serial in P云's shape: the time in CST then 12
// digits, 26 in all ("20220721102644066066610031", trade-refund.md).
func newPaySerial(at time.Time) string { return at.In(cst).Format("20060102150405") + digits(12) }
