package embedpay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// retrySchedule is the delays before the 2nd, 3rd, … trade-notify
// attempts. P云 only says it notifies "多次" until it gets 1001
// (trade-notify.md); the WeChat Pay schedule it relays is the model [I]
// (SOURCES.md §1).
func retrySchedule() []time.Duration {
	return []time.Duration{
		15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute,
		30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, time.Hour,
	}
}

// notifyPayload is what a trade-notify row remembers; BuildNotify turns it
// into the signed form at each attempt, with the merchant's current secret.
type notifyPayload struct {
	AppID     string `json:"app_id"`
	Merchant  string `json:"merchant"`
	PayOrder  string `json:"pay_order"`
	Channel   string `json:"channel"`
	PaySerial string `json:"pay_serial"`
	Value     int64  `json:"value"`
	Status    int    `json:"status"`
	TradeTime int64  `json:"trade_time"` // ms
	// Stale, with Faults.Duplicate, is the out-of-order fault: once the
	// merchant acknowledged the real status, the worker sends the row again
	// and this older status goes instead.
	Stale *stalePayload `json:"stale,omitempty"`
}

type stalePayload struct {
	Status    int   `json:"status"`
	TradeTime int64 `json:"trade_time"`
}

// notifications queues one trade-notify per point of the timeline, each due
// when its status takes effect plus the scenario's delay, and puts the
// scenario's faults on the last (final) one.
func (p *Product) notifications(mchid string, t *trade, pl plan) ([]*sandbox.Notification, error) {
	ns := make([]*sandbox.Notification, 0, len(pl.points)+1)
	faults := pl.faults
	for i, pt := range pl.points {
		// The user is back at the first point: "late" holds every
		// notification well past that moment.
		due := pt.At.Add(pl.delay)
		if faults.HasFault(FaultLate) {
			due = pt.At.Add(max(pl.delay, lateDelay))
		}
		payload := notifyPayload{
			AppID: t.AppID, Merchant: t.Merchant, PayOrder: t.PayOrder, Channel: t.PaidChannel, PaySerial: t.PaySerial,
			Value: t.Value, Status: pt.Status, TradeTime: pt.At.UnixMilli(),
		}
		n := &sandbox.Notification{
			ID: httpapi.NewID("ntf_"), MchID: mchid, Product: sandbox.ProductEmbedPay, Event: EventTradeNotify,
			Ref: t.PayOrder, URL: t.NotifyURL, State: sandbox.NotifyPending, DueAt: due, FailNext: pl.failNext,
		}
		if faults.HasFault(FaultDrop) {
			n.State = sandbox.NotifyDropped // visible in the admin API, never sent
		}
		last := i == len(pl.points)-1
		var dup *sandbox.Notification
		if last {
			n.Faults.BadSignature = faults.HasFault(FaultBadSignature)
			switch {
			case faults.HasFault(FaultOutOfOrder):
				n.Faults.Duplicate = true
				payload.Stale = &stalePayload{Status: StatusPaying, TradeTime: staleTime(pl.points).UnixMilli()}
				if faults.HasFault(FaultDuplicate) {
					// The duplicate flag is taken: the duplicate is a second row.
					c := *n
					c.ID = httpapi.NewID("ntf_")
					c.DueAt = due.Add(time.Second)
					c.Faults = sandbox.Faults{}
					dup = &c
				}
			case faults.HasFault(FaultDuplicate):
				n.Faults.Duplicate = true
			}
		}
		raw, err := json.Marshal(payload)
		if err != nil {
			return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode trade-notify payload", Err: err}
		}
		n.Payload = raw
		ns = append(ns, n)
		if dup != nil {
			payload.Stale = nil
			if dup.Payload, err = json.Marshal(payload); err != nil {
				return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode trade-notify payload", Err: err}
			}
			ns = append(ns, dup)
		}
	}
	return ns, nil
}

// staleTime is when the trade was last "paying" before its final status:
// its own status-0 point, or a second before the first point when it went
// final at once [I].
func staleTime(points []point) time.Time {
	for i := len(points) - 2; i >= 0; i-- {
		if points[i].Status == StatusPaying {
			return points[i].At
		}
	}
	return points[0].At.Add(-time.Second)
}

// payMode is trade-notify's pay_mode and pay_mode_desc for a channel [I]:
// the documents give the field ("到账方式", e.g. 微信、支付宝) but no codes.
func payMode(channel string) (mode, desc string) {
	switch channel {
	case ChannelAlipay, ChannelAlipayApp:
		return "2", "支付宝"
	default:
		return "1", "微信"
	}
}

// fee is the trade's fee in fen: 0.6 %, rounded down [I], the usual WeChat
// Pay and Alipay merchant rate.
func fee(value int64) int64 { return value * 6 / 1000 }

// notifyParams returns the trade-notify form of a payload, signed with the
// app secret (SOURCES.md §8). status is given apart so that a stale copy can
// be built from the same payload.
func notifyParams(pl *notifyPayload, status int, tradeTime int64, secret string) map[string]string {
	mode, desc := payMode(pl.Channel)
	params := map[string]string{
		"app_id": pl.AppID, "merchant": pl.Merchant, "pay_order": pl.PayOrder, "channel": pl.Channel,
		"pay_serial": pl.PaySerial, "value": strconv.FormatInt(pl.Value, 10), "status": strconv.Itoa(status),
		"trade_time": strconv.FormatInt(tradeTime, 10), "pay_mode": mode, "pay_mode_desc": desc,
		"fee": strconv.FormatInt(fee(pl.Value), 10),
	}
	params["sign"] = wxsign.PCloudSign(params, secret)
	return params
}

// BuildNotify builds one trade-notify attempt: a form POST signed with MD5
// and the merchant's app secret. The bad-signature fault spoils the first
// attempt only, so that a merchant who rightly refuses it still gets the
// genuine one on the retry — and one who accepts it is caught in the journal.
func (p *Product) BuildNotify(_ context.Context, m *sandbox.Merchant, n *sandbox.Notification) (*sandbox.OutboundRequest, error) {
	var pl notifyPayload
	if err := json.Unmarshal(n.Payload, &pl); err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "decode trade-notify payload", Err: err}
	}
	status, tradeTime := pl.Status, pl.TradeTime
	if pl.Stale != nil && !n.Faults.Duplicate {
		status, tradeTime = pl.Stale.Status, pl.Stale.TradeTime
	}
	params := notifyParams(&pl, status, tradeTime, m.PCloudAppSecret)
	if n.Faults.BadSignature && n.Attempts == 0 {
		params["sign"] = wxsign.Spoil(params["sign"])
	}
	return &sandbox.OutboundRequest{
		Method: http.MethodPost,
		URL:    n.URL,
		Header: http.Header{"Content-Type": {formType + "; charset=UTF-8"}},
		Body:   []byte(encodeForm(params)),
	}, nil
}

func encodeForm(params map[string]string) string {
	v := make(url.Values, len(params))
	for k, s := range params {
		v[k] = []string{s}
	}
	return v.Encode()
}

// Acknowledged: only a 2xx whose body is the JSON object of
// embedpay/trade-notify.ack — "code": "1001", a string — stops the
// notifications; "若通知未能返回`1001`不成功则会重复通知多次" (trade-notify.md).
func (p *Product) Acknowledged(status int, body []byte) bool {
	if status < 200 || status > 299 {
		return false
	}
	vs, err := p.d.Validator.ValidateJSON(SchemaNotifyAck, body)
	return err == nil && len(vs) == 0
}

// Schedule returns P云's retry delays on the sandbox clock.
func (p *Product) Schedule() []time.Duration { return p.schedule }

// Faults are every notify fault: P云's notifications play them all.
func (p *Product) Faults() []string {
	return []string{FaultDuplicate, FaultOutOfOrder, FaultBadSignature, FaultDrop, FaultLate}
}
