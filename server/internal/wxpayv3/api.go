package wxpayv3

import (
	"math/rand/v2"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Options wire an API.
type Options struct {
	Merchants sandbox.Merchants
	// Clock is the sandbox clock: the request timestamp may be within
	// the window of the merchant's sandbox time as well as of the wall clock.
	Clock *sandbox.Clock
	// Wall is the wall clock signature timestamps are checked against and
	// stamped with (time.Now when nil): SDKs compare Wechatpay-Timestamp
	// with their host's time, never with the sandbox's.
	Wall func() time.Time
	// Rand draws in [0, 1) which key signs a notification of a switching
	// merchant (math/rand/v2's Float64 when nil); tests seed it. It must be
	// safe for concurrent use.
	Rand func() float64
}

// API is the v3 protocol layer. It is safe for concurrent use.
type API struct {
	merchants sandbox.Merchants
	clock     *sandbox.Clock
	wall      func() time.Time
	rand      func() float64
	keys      keyCache
	faults    *httpapi.FaultPlayer
}

// New returns the v3 protocol layer.
func New(o Options) *API {
	if o.Wall == nil {
		o.Wall = time.Now
	}
	if o.Clock == nil {
		o.Clock = sandbox.NewClock(1, o.Wall)
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return &API{merchants: o.Merchants, clock: o.Clock, wall: o.Wall, rand: o.Rand,
		keys: keyCache{m: map[string]*merchantKeys{}}, faults: httpapi.NewFaultPlayer(o.Merchants)}
}

const keyMerchant = "mpsandbox.wxpayv3.merchant"

// Merchant returns the merchant Authenticate found for the request, nil
// outside an authenticated group.
func Merchant(c *gin.Context) *sandbox.Merchant {
	v, _ := c.Get(keyMerchant)
	m, _ := v.(*sandbox.Merchant)
	return m
}
