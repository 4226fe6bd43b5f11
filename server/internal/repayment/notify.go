package repayment

import (
	"context"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv3"
)

// Scenario notification faults the parking notifications play
// (scenario.schema.json notify.faults).
const (
	faultBadSignature = "bad_signature"
	faultDuplicate    = "duplicate"
	faultDrop         = "drop"
)

// BuildNotify builds one attempt of a parking notification
// (VEHICLE.ENTRANCE_STATE_CHANGE, TRANSACTION.*): the v3 envelope, the
// resource encrypted under the API v3 key, signed per the merchant's
// platform key mode.
func (p *Product) BuildNotify(ctx context.Context, m *sandbox.Merchant, n *sandbox.Notification) (*sandbox.OutboundRequest, error) {
	return p.v3.BuildNotify(ctx, m, n)
}

// Acknowledged is 200 or 204, as for every v3 notification.
func (p *Product) Acknowledged(status int, body []byte) bool {
	return wxpayv3.Acknowledged(status, body)
}

// Schedule is v3's retry schedule. The entrance notification's own
// documented schedule (15s/15s/30s/3m/10m/20m/30m×3/60m/3h×3/6h×2,
// wechatpay.im) is longer; the sandbox uses one schedule per product [I].
func (p *Product) Schedule() []time.Duration { return wxpayv3.Schedule() }

// Faults are those a parking notification plays.
func (p *Product) Faults() []string { return []string{faultBadSignature, faultDuplicate, faultDrop} }
