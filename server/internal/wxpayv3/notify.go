package wxpayv3

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"math/big"
	"net/http"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// ResourceTypeEncrypted is the resource_type of every v3 notification.
const ResourceTypeEncrypted = "encrypt-resource"

// beijing is the zone of v3 times: "2015-05-20T13:29:35+08:00".
var beijing = time.FixedZone("CST", 8*60*60)

// FormatTime writes t as v3 does: RFC 3339 in +08:00.
func FormatTime(t time.Time) string { return t.In(beijing).Format(time.RFC3339) }

// Event is what a product stores in Notification.Payload for a v3
// notification: the envelope's fields and the resource in plain text. The
// resource is encrypted afresh at each attempt, as WeChat Pay's nonces
// differ from one delivery to the next [I].
type Event struct {
	ID             string          `json:"id"`
	CreateTime     string          `json:"create_time"`
	EventType      string          `json:"event_type"`
	Summary        string          `json:"summary"`
	OriginalType   string          `json:"original_type"`
	AssociatedData string          `json:"associated_data"`
	Resource       json.RawMessage `json:"resource"`
	// Stale, with Faults.Duplicate, is the out-of-order fault: once the
	// merchant acknowledged this event, the notification is sent again as
	// this earlier one.
	Stale *Event `json:"stale,omitempty"`
}

// NewEvent returns an event created at at (the merchant's sandbox time)
// with an id like the real "EV-2018022511223320873", the same for every
// attempt.
func NewEvent(at time.Time, eventType, summary, originalType, associatedData string, resource json.RawMessage) Event {
	n, _ := rand.Int(rand.Reader, big.NewInt(10_000_000))
	id := "EV-" + at.In(beijing).Format("20060102150405") + pad7(n.Int64())
	return Event{ID: id, CreateTime: FormatTime(at), EventType: eventType, Summary: summary,
		OriginalType: originalType, AssociatedData: associatedData, Resource: resource}
}

func pad7(n int64) string {
	b := []byte("0000000")
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b)
}

// Envelope is the body of a v3 notification (SOURCES.md §1).
type Envelope struct {
	ID           string            `json:"id"`
	CreateTime   string            `json:"create_time"`
	ResourceType string            `json:"resource_type"`
	EventType    string            `json:"event_type"`
	Summary      string            `json:"summary"`
	Resource     EncryptedResource `json:"resource"`
}

// BuildNotify builds one attempt of a v3 notification whose Payload is an
// Event: the envelope with the resource encrypted under the merchant's
// API v3 key, signed with the platform key of the merchant's key mode (see
// notifySigner). Faults.BadSignature signs something else.
func (a *API) BuildNotify(_ context.Context, m *sandbox.Merchant, n *sandbox.Notification) (*sandbox.OutboundRequest, error) {
	// The worker's merchant may be a few seconds old; the key mode is
	// the merchant's as it is now.
	if cur, ok := a.merchants.Get(m.MchID); ok {
		m = cur
	}
	var ev Event
	if err := json.Unmarshal(n.Payload, &ev); err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "notification " + n.ID + " payload is not a v3 event", Err: err}
	}
	if ev.Stale != nil && !n.Faults.Duplicate {
		ev = *ev.Stale
	}
	res, err := encrypt(m.APIv3Key, ev.AssociatedData, ev.Resource)
	if err != nil {
		return nil, err
	}
	res.OriginalType = ev.OriginalType
	body, err := json.Marshal(Envelope{ID: ev.ID, CreateTime: ev.CreateTime, ResourceType: ResourceTypeEncrypted,
		EventType: ev.EventType, Summary: ev.Summary, Resource: res})
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode the notification", Err: err}
	}
	s, err := a.notifySigner(m)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if err := a.sign(h, s, body, n.Faults.BadSignature); err != nil {
		return nil, err
	}
	h.Set("Content-Type", "application/json")
	h.Set(wxsign.HeaderSignatureType, wxsign.AuthScheme)
	return &sandbox.OutboundRequest{Method: http.MethodPost, URL: n.URL, Header: h, Body: body}, nil
}

// SwitchShare is the share of the notifications the public key signs while
// a merchant switches to it [I]: WeChat Pay ramps it from 0.1 % to 100 %
// over about 7 days (staff answers in the developers community); the
// sandbox holds it at one half, so that a receiver meets both keys at once.
const SwitchShare = 0.5

// notifySigner picks the key of a notification attempt: the certificate in
// certificate mode, the public key in public-key mode, either at random
// while switching — the receiver must pick the key by Wechatpay-Serial
// (https://pay.weixin.qq.com/doc/v3/merchant/4012154180).
func (a *API) notifySigner(m *sandbox.Merchant) (signer, error) {
	keys := a.keys.get(m)
	switch m.KeyMode() {
	case sandbox.PlatformKeyModeCertificate:
		return keys.byCertificate()
	case sandbox.PlatformKeyModeSwitching:
		if a.rand() >= SwitchShare {
			return keys.byCertificate()
		}
	}
	return keys.byPublicKey()
}

// Acknowledged reports whether the merchant acknowledged a notification:
// 200 or 204; anything else is a failure (SOURCES.md §1).
func Acknowledged(status int, _ []byte) bool {
	return status == http.StatusOK || status == http.StatusNoContent
}

// Schedule is v3's retry schedule: the delays before the 2nd, 3rd, …
// attempts, 15/15/30/180/1800/1800/1800/1800/3600 s (SOURCES.md §1).
func Schedule() []time.Duration {
	secs := [...]int{15, 15, 30, 180, 1800, 1800, 1800, 1800, 3600}
	out := make([]time.Duration, len(secs))
	for i, s := range secs {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}
