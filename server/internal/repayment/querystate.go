package repayment

import (
	"encoding/json"
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// Values of the v2 user-state query (SOURCES.md §3).
const (
	// pathAbnormal is where an abnormal user is sent: the 车主服务
	// mini-program's entry, the example SOURCES.md §3 gives; the query
	// returns path only when the state is not NORMAL.
	pathAbnormal = "/pages/route/index"
	// sceneHighway is the trade_scene whose answers carry channel_type
	// ("仅在HIGHWAY高速场景下进行返回", the SDK models of plate_number_info).
	sceneHighway = "HIGHWAY"
	// channelETC is the channel_type given [I]: the models list MTC, ETC
	// and "ETC;MTC" without saying which a user has.
	channelETC = "ETC"
	// commonUse is common_use_flag's value: in version 3.0, for a 免密
	// (PROACTIVE) user's common plate (the SDK models).
	commonUse  = "COMMON_USE"
	version3   = "3.0"
	errAppID   = "APPID_MCHID_NOT_MATCH" // [I] v2's err_code for this in the pay APIs
	errAppIDCN = "appid和mch_id不匹配"
)

// plateNumberInfo is the JSON text in plate_number_info
// (`{"plate_number_info":[{plate_number, channel_type, common_use_flag}]}`,
// SOURCES.md §3).
type plateNumberInfo struct {
	PlateNumberInfo []plateInfo `json:"plate_number_info"`
}

type plateInfo struct {
	PlateNumber   string `json:"plate_number"`
	ChannelType   string `json:"channel_type,omitempty"`
	CommonUseFlag string `json:"common_use_flag,omitempty"`
}

// handleQueryState handles "POST /vehicle/pay/querystate": the v2 XML user
// state query, HMAC-SHA256 signed both ways. A body that is not XML, an
// unknown mch_id or a malformed parameter is return_code FAIL
// "参数格式校验错误" (or "XML格式错误"); a sign that does not verify is
// "签名错误" with the expected string-to-sign in sandbox_diagnostics; an
// appid that is not the merchant's is a signed result_code FAIL. A user the
// service does not know — an openid or plate that never authorised — is
// UNAUTHORIZED [I], as WeChat knows no authorisation of it.
func (p *Product) handleQueryState(c *gin.Context) error {
	params, err := wxpayv2.Read(c)
	if err != nil {
		return err
	}
	vs, err := p.d.Validator.Validate(schemaQueryState, wxpayv2.AsDocument(params))
	if err != nil {
		return err
	}
	m, ok := p.d.Merchants.Get(params["mch_id"])
	if !ok {
		if params["mch_id"] != "" {
			vs = append(vs, sandbox.Violation{Path: "/mch_id", Message: fmt.Sprintf(
				"%q is not a merchant of this sandbox (GET /sandbox/v1/merchants lists them)", params["mch_id"])})
		}
		return sandbox.Invalid("the request's parameters are malformed", vs...)
	}
	httpapi.Exchange(c).MchID = m.MchID
	if err := wxpayv2.Verify(params, m.APIv2Key, params["sign_type"]); err != nil {
		e := sandbox.AsError(err)
		if e.Code != sandbox.CodeUnauthorized {
			// An unknown sign_type: the schema has named it already.
			if len(vs) == 0 {
				return e
			}
			return sandbox.Invalid("the request's parameters are malformed", vs...)
		}
		// The signature is what the real answer names; the rest follows.
		fields := append([]sandbox.Violation{{Path: "/sign", Message: e.Message}}, vs...)
		return &sandbox.Error{Code: sandbox.CodeUnauthorized, Message: "the sign does not verify with merchant " + m.MchID +
			"'s API v2 key", Fields: fields, Diagnostics: e.Diagnostics}
	}
	wxpayv2.Authenticated(c, wxpayv2.Signer{AppID: params["appid"], MchID: m.MchID, Key: m.APIv2Key, SignType: wxsign.SignTypeHMACSHA256})
	if err := p.faults.Play(c, m.MchID); err != nil {
		return err
	}
	if len(vs) > 0 {
		return sandbox.Invalid("the request's parameters are malformed", vs...)
	}
	if params["appid"] != m.AppID {
		return wxpayv2.Business(errAppID, errAppIDCN, sandbox.Violation{Path: "/appid", Message: fmt.Sprintf(
			"%q is not merchant %s's appid %s", params["appid"], m.MchID, m.AppID)})
	}
	ctx := c.Request.Context()
	if err := p.ensureFixtures(ctx, m.MchID); err != nil {
		return err
	}
	// openid wins when both are given [I]: the answer lists the user's
	// plates, and the merchant looks for its plate among them.
	var u *user
	if openid := params["openid"]; openid != "" {
		_, u, err = p.getUser(ctx, m.MchID, openid)
	} else {
		_, u, err = p.findUser(ctx, m.MchID, plateAlias(params["plate_number"]))
	}
	if err != nil {
		return err
	}
	out, err := stateAnswer(u, params)
	if err != nil {
		return err
	}
	return wxpayv2.Respond(c, out)
}

// stateAnswer is the query's business fields for u (nil: unknown).
func stateAnswer(u *user, req map[string]string) (map[string]string, error) {
	out := map[string]string{}
	if u == nil {
		out["user_state"], out["path"] = StateUnauthorized, pathAbnormal
		if req["openid"] != "" {
			out["openid"] = req["openid"]
		}
		return out, nil
	}
	out["user_state"], out["openid"] = u.UserState, u.OpenID
	if u.UserState != StateNormal {
		out["path"] = pathAbnormal
	}
	if !u.authorized() {
		return out, nil
	}
	out["deduct_mode"] = u.DeductMode
	info := plateNumberInfo{PlateNumberInfo: make([]plateInfo, 0, len(u.Plates))}
	for i, pl := range u.Plates {
		pi := plateInfo{PlateNumber: pl.PlateNumber}
		if req["trade_scene"] == sceneHighway {
			pi.ChannelType = channelETC
		}
		if req["version"] == version3 && u.DeductMode == DeductProactive && i == 0 {
			pi.CommonUseFlag = commonUse // [I] the first plate is the common one
		}
		info.PlateNumberInfo = append(info.PlateNumberInfo, pi)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode plate_number_info", Err: err}
	}
	out["plate_number_info"] = string(b)
	return out, nil
}
