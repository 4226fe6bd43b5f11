package payscore

import (
	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Partner (服务商) mode: a service provider creates and runs pay-score
// orders for its sub-merchants (子商户) at /v3/payscore/partner/serviceorder…
// (https://pay.weixin.qq.com/doc/v3/partner/4012692136; request and answer
// fields as the wechatpay-im/website repository lists them under
// openapi/v3/payscore/partner/). It is a thin layer over the direct mode:
// the same handlers, order machine, jump and notifications, with
//
//   - the partner bodies' schemas: sub_mchid in every request, appid (the
//     provider's) only in create, sub_appid and sub_openid optional;
//   - the provider named by the Authorization header's mchid (no sp_mchid in
//     any request) and answers carrying mchid (the provider), sub_mchid,
//     appid and sub_appid;
//   - a sub_mchid that is not one of the provider's sub-merchants refused.

// keyPartner marks a request that came in at a partner path.
const keyPartner = "mpsandbox.payscore.partner"

// partnerSchemas are the partner-mode schemas of the request bodies.
var partnerSchemas = map[string]string{
	schemaCreate:   "payscore/partner-create.request",
	schemaQuery:    "payscore/partner-query.request",
	schemaCancel:   "payscore/partner-cancel.request",
	schemaModify:   "payscore/partner-modify.request",
	schemaComplete: "payscore/partner-complete.request",
	schemaPay:      "payscore/partner-pay.request",
	schemaSync:     "payscore/partner-sync.request",
}

// Partner-mode answers' schemas (tests and the schema listing).
const (
	schemaPartnerCreateResponse = "payscore/partner-create.response"
	schemaPartnerOrder          = "payscore/partner-order"
)

// partner reports whether the request came in at a partner path.
func partner(c *gin.Context) bool { return c.GetBool(keyPartner) }

// bodySchema is the schema of the request body (or query) named by its
// direct-mode name, in the mode of the request.
func bodySchema(c *gin.Context, direct string) string {
	if partner(c) {
		return partnerSchemas[direct]
	}
	return direct
}

// checkSub refuses, on a partner path, a sub_mchid that is not one of the
// provider's sub-merchants.
func checkSub(c *gin.Context, m *sandbox.Merchant, subMchID string) error {
	if !partner(c) {
		return nil
	}
	_, err := m.RequireSub(subMchID)
	return err
}

// warnSubAppID warns when create's sub_appid is not the one the
// sub-merchant was registered with: a warning, since the sandbox may not
// know all of a sub-merchant's mini-programs [I].
func warnSubAppID(c *gin.Context, m *sandbox.Merchant, req *createRequest) {
	if v, ok := m.ForeignSubAppID(req.SubMchID, req.SubAppID); ok {
		httpapi.Warn(c, v)
	}
}

// registerPartner mounts the partner-mode service-order API.
func (p *Product) registerPartner(r gin.IRouter) {
	mark := func(c *gin.Context) { c.Set(keyPartner, true) }
	p.mountOrders(r.Group("/v3/payscore/partner/serviceorder", append([]gin.HandlerFunc{mark}, p.v3.Middleware(p.d.Journal, sandbox.ProductPayScore)...)...))
}
