package repayment

import (
	"crypto/sha256"
	"encoding/base64"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Partner (服务商) mode of the parking APIs: the same paths as the direct
// mode, with sub_mchid in the body (创建停车入场, 扣费受理) or the query
// (services/find, the transaction query) and sub_appid optional in 扣费受理
// (https://pay.weixin.qq.com/wiki/doc/apiv3_partner/apis/chapter8_8_2.shtml
// to chapter8_8_6.shtml; wechatpay-go services/wexinpayscoreparking, whose
// requests carry SubMchid). No request names the provider: it is the
// Authorization header's mchid. The direct machine does the rest; answers
// and notifications add sub_mchid, sub_appid and payer.sub_openid. The
// provider's out_parking_no and out_trade_no are unique per provider [I:
// the real service may number them per sub-merchant].

// partnerOf checks a request's partner fields: a sub_mchid must be one of
// the provider's sub-merchants, a sub_appid comes only with a sub_mchid;
// a sub_appid other than the one the sub-merchant was registered with is a
// warning, since the sandbox may not know all of a sub-merchant's
// mini-programs [I].
func partnerOf(c *gin.Context, m *sandbox.Merchant, subMchID, subAppID string) error {
	if subMchID == "" {
		if subAppID != "" {
			return sandbox.Invalid("参数错误", sandbox.Violation{Path: "/sub_appid", Message: "comes only with sub_mchid: a service provider (服务商) names the sub-merchant it acts for"})
		}
		return nil
	}
	if _, err := m.RequireSub(subMchID); err != nil {
		return err
	}
	if v, ok := m.ForeignSubAppID(subMchID, subAppID); ok {
		httpapi.Warn(c, v)
	}
	return nil
}

// subOpenID is the user's openid under the sub-merchant's sub_appid:
// stable per app and user, as a WeChat openid is [I]; "" without a
// sub_appid.
func subOpenID(subAppID, openid string) string {
	if subAppID == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("sub_openid\x00" + subAppID + "\x00" + openid))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}
