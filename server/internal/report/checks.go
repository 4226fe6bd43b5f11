package report

import (
	"fmt"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// checkDef is one check: which products it applies to, its rule and source
// (per product where they differ), and how it is evaluated.
type checkDef struct {
	id, title string
	// products are those the check applies to; nil is every product.
	products []string
	// inferred marks a rule the sandbox derived rather than read.
	inferred bool
	rule     func(product string) string
	source   func(product string) string
	eval     func(f *facts, product string) Check
}

func same(s string) func(string) string { return func(string) string { return s } }

func each(m map[string]string) func(string) string { return func(p string) string { return m[p] } }

var (
	ps, rp, ep, is = sandbox.ProductPayScore, sandbox.ProductRepayment, sandbox.ProductEmbedPay, sandbox.ProductIssuer
	withNotify     = []string{ps, ep}
	// withParkingNotify adds repayment's parking notifications
	// (TRANSACTION.*, VEHICLE.ENTRANCE_STATE_CHANGE); its catalogue has no
	// notification-fault scenario, so only the acknowledgement is checked.
	withParkingNotify = []string{ps, rp, ep}
)

// Public sources the checks cite.
const (
	srcV3Sign      = "WeChat Pay API v3 signing: https://wechatpay-api.gitbook.io/wechatpay-api-v3/wei-xin-zhi-fu-api-v3-jie-kou-gui-fan; wechatpay-apiv3/wechatpay-go: core/auth/credentials/wechat_pay_credential.go"
	srcV3Timestamp = "wechatpay-apiv3/wechatpay-go: core/auth/validators/wechat_pay_validator.go (|now − timestamp| < 300 s)"
	srcScoreSign   = "支付分 extraData sign (HMAC-SHA256 with the API v2 key): https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter6_1_12.shtml; https://developers.weixin.qq.com/community/develop/doc/000e6a0808cf58836f20c488861c13"
	srcQueryState  = "用户状态查询, v2 HMAC-SHA256 sign with the API v2 key: https://pay.weixin.qq.com/doc/v2/merchant/4011986415"
	srcPCloudSign  = "P云 sign (MD5 of the sorted parameters and app_secret): zuichun/4pyun-doc: openapi/README.md"
	srcPaySign     = "wx.requestPayment paySign (RSA, or MD5/HMAC-SHA256 with the API v2 key): wechatpay-apiv3/wechatpay-go: services/payments/jsapi/api_jsapi_request_payment.go"
	srcV3Notify    = "WeChat Pay notifications: https://pay.weixin.qq.com/docs/merchant/apis/weixin-pay-score/confirm-notification.html; wechatpay-apiv3/wechatpay-go: core/notify/notify.go"
	srcPCloudNote  = "P云 trade-notify: zuichun/4pyun-doc: openapi/api/trade-notify.md"
	srcScoreReturn = "支付分 返回商家侧小程序 (query_id only after the in-page back button): https://pay.weixin.qq.com/doc/v3/partner/4012090600"
	srcPCloudBack  = "P云 半屏小程序 return (status 1 success, -1 failure, 0 paying): zuichun/4pyun-doc: openapi/guideline/payment-sapp.md"
	srcRepayBack   = "微信垫资还款 (the mini-program returns nothing; query the user state again): https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter8_8_10.shtml"
	srcIssuerBack  = "issuer-plugin README, 回调通知 (getActiveResult, getSignProResult, getSignCarServiceResule after the plugin returns); plugin wx06bc6021dc900553, not public"
	srcScoreClient = "wx.openBusinessView from base library 2.6.0 and WeChat 7.0.3: https://pay.weixin.qq.com/doc/v3/partner/4012090600; wx.navigateToMiniProgram from 1.3.0: https://developers.weixin.qq.com/miniprogram/dev/api/navigate/wx.navigateToMiniProgram.html"
	srcEmbedClient = "wx.openEmbeddedMiniProgram from base library 2.20.1: https://developers.weixin.qq.com/miniprogram/dev/framework/open-ability/openEmbeddedMiniProgram.html"
	srcV3Errors    = "WeChat Pay v3 HTTP status codes: https://pay.weixin.qq.com/wiki/doc/apiv3_partner/wechatpay/wechatpay2_1.shtml; wechatpay-apiv3/wechatpay-go: core/error.go"
	srcScenarios   = "the sandbox's scenario catalogue (GET /sandbox/v1/scenarios?product=…)"
	srcParking     = "微信支付分停车服务 订单支付结果通知 (TRANSACTION.SUCCESS, TRANSACTION.FAIL, TRANSACTION.PAY_BACK) and 查询订单 (bank_type BPA, user_repaid): https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter8_8_6.shtml, chapter8_8_5.shtml; 停车入场状态变更通知: chapter8_8_4.shtml"
)

var checks = []checkDef{
	{
		id: "signing.verified", title: "Requests signed correctly the first time",
		products: []string{ps, rp, ep, is},
		rule: each(map[string]string{
			ps: "Every v3 request carries an Authorization signature over METHOD\\nURI\\nTIMESTAMP\\nNONCE\\nBODY\\n with the merchant API key, and the 支付分 extraData a sign the API v2 key verifies; a wrong one is 401 SIGN_ERROR or a failed jump.",
			rp: "用户状态查询 is signed with HMAC-SHA256 under the API v2 key and the v3 vehicle APIs with the v3 Authorization signature; a wrong one is 签名错误 / 401 SIGN_ERROR.",
			ep: "Every P云 gateway request carries sign = MD5 of the sorted non-empty parameters with &app_secret=…; a wrong one is refused.",
			is: "wx.requestPayment's paySign must verify (RSA with the merchant key, or the v2 rule with the API v2 key), or the payment sheet does not open.",
		}),
		source: each(map[string]string{ps: srcV3Sign + "; " + srcScoreSign, rp: srcQueryState + "; " + srcV3Sign, ep: srcPCloudSign, is: srcPaySign}),
		eval:   evalSigned,
	},
	{
		id: "signing.key", title: "No v2 signature made with the API v3 key",
		products: []string{ps, rp, is},
		rule:     same("A v2-style sign (HMAC-SHA256 or MD5 with &key=…) takes the API v2 key; signing it with the API v3 key is the commonest mistake and is refused."),
		source:   each(map[string]string{ps: srcScoreSign, rp: srcQueryState, is: srcPaySign}),
		eval:     evalKey,
	},
	{
		id: "signing.timestamp", title: "Request timestamps within 5 minutes",
		products: []string{ps, rp},
		rule:     same("A v3 request's Authorization timestamp must be less than 300 s from WeChat Pay's clock."),
		source:   same(srcV3Timestamp),
		eval:     evalTimestamp,
	},
	{
		id: "notify.acknowledged", title: "Valid notifications acknowledged within the deadline",
		products: withParkingNotify,
		rule: each(map[string]string{
			ps: "Answer a notification whose signature verifies with 200 or 204 within 5 s; anything else is a failure and WeChat Pay retries.",
			rp: "Answer a parking notification (TRANSACTION.SUCCESS, TRANSACTION.FAIL, TRANSACTION.PAY_BACK, VEHICLE.ENTRANCE_STATE_CHANGE) whose signature verifies with 200 or 204 within 5 s; anything else is a failure and WeChat Pay retries.",
			ep: "Answer a trade-notify whose sign verifies with {\"code\":\"1001\"}; anything else makes P云 notify again. The 5 s deadline is WeChat Pay's, applied here too [inferred].",
		}),
		source: each(map[string]string{ps: srcV3Notify, rp: srcParking + "; " + srcV3Notify, ep: srcPCloudNote}),
		eval:   evalAcknowledged,
	},
	{
		id: "notify.bad_signature", title: "Notifications with a bad signature refused",
		products: withNotify,
		rule: each(map[string]string{
			ps: "Verify Wechatpay-Signature before trusting a notification; acknowledging one whose signature does not verify means anyone can forge a payment — a security hole.",
			ep: "Verify the trade-notify sign with the app_secret before trusting it; acknowledging one whose sign does not verify means anyone can forge a payment — a security hole.",
		}),
		source: each(map[string]string{ps: srcV3Notify, ep: srcPCloudNote}),
		eval:   evalBadSignature,
	},
	{
		id: "notify.duplicate", title: "The same answer to a duplicate notification",
		products: withNotify,
		rule:     same("The same notification may arrive more than once; the receiver must be idempotent and answer a duplicate as it answered the original."),
		source:   each(map[string]string{ps: srcV3Notify, ep: srcPCloudNote}),
		eval:     evalDuplicate,
	},
	{
		id: "notify.out_of_order", title: "A stale notification does not overwrite the final state",
		products: withNotify, inferred: true,
		rule: each(map[string]string{
			ps: "A PAYSCORE.USER_CONFIRM that arrives again after PAYSCORE.USER_PAID (a late retry) must not move the DONE order back: acknowledge it and query the order for the truth.",
			ep: "A status-0 (paying) trade-notify that arrives after the final one must not undo it: acknowledge it and query the trade (trade/query) for the truth.",
		}),
		source: each(map[string]string{ps: srcV3Notify, ep: srcPCloudNote}),
		eval:   evalOutOfOrder,
	},
	{
		id: "notify.late", title: "No waiting for a late notification",
		products: withNotify, inferred: true,
		rule:   same("When the notification has not come by the time the user is back, query the order or trade instead of waiting for it."),
		source: each(map[string]string{ps: srcV3Notify + "; " + srcScoreReturn, ep: srcPCloudNote + "; " + srcPCloudBack}),
		eval:   evalLate,
	},
	{
		id: "return.ambiguous", title: "An inconclusive return followed by a query",
		products: []string{ps, ep},
		rule: each(map[string]string{
			ps: "A return from 支付分 carries query_id only when the user tapped the in-page back button; without it (the top-left back icon) the merchant must query the order by out_order_no.",
			ep: "A return with status 0 (paying) is not an outcome: query the trade (trade/query) before telling the user anything.",
		}),
		source: each(map[string]string{ps: srcScoreReturn, ep: srcPCloudBack}),
		eval:   evalAmbiguous,
	},
	{
		id: "return.queried", title: "Every return followed by a query before fulfilling",
		products: []string{ps, rp, ep, is},
		rule: each(map[string]string{
			ps: "The return only says the user came back: query the order (GET /v3/payscore/serviceorder) before acting on it, and before completing it.",
			rp: "The repayment mini-program returns nothing: query the user state again (querystate, services/find or the transaction) after the user is back.",
			ep: "The return's extraData comes from the client and can be forged: confirm it with trade/query (or the notification) before fulfilling [inferred].",
			is: "The plugin's outcome is read from its getters (getActiveResult, getSignProResult, getSignCarServiceResule) after it returns.",
		}),
		source: each(map[string]string{ps: srcScoreReturn, rp: srcRepayBack, ep: srcPCloudBack, is: srcIssuerBack}),
		eval:   evalQueried,
	},
	{
		id: "parking.repaid_queried", title: "A repaid advance confirmed by a query that shows user_repaid Y",
		products: []string{rp},
		rule: same("A parking deduction WeChat advanced (垫资: SUCCESS with bank_type BPA, user_repaid N) is the user's debt until repaid; " +
			"when TRANSACTION.PAY_BACK comes (or the user is back from the repayment mini-program), query the transaction " +
			"(GET /v3/vehicle/transactions/out-trade-no/{out_trade_no}) and clear the debt once it answers user_repaid Y."),
		source: same(srcParking + "; " + srcRepayBack),
		eval:   evalRepaidQueried,
	},
	{
		id: "client.min_version", title: "Jumps below the minimum versions refused and handled",
		products: []string{ps, ep}, inferred: true,
		rule:   same("A jump from a base library or WeChat version below the minimum fails; the code must check (if (wx.openBusinessView) …) and ask the user to upgrade, not retry. A run of 3 or more identical refused calls is read as a retry loop [inferred]."),
		source: each(map[string]string{ps: srcScoreClient, ep: srcEmbedClient}),
		eval:   evalClient,
	},
	{
		id: "api.retried", title: "A request that failed with a 5xx, a 429 or no answer is sent again",
		products: apiFaultProducts,
		rule:     same("5xx answers (SYSTEM_ERROR, SERVICE_UNAVAILABLE) are to be retried with the same parameters; a 429 (RATELIMIT_EXCEEDED, FREQUENCY_LIMITED) was not processed and is retried later; a request with no answer has an unknown outcome and is sent again."),
		source:   same(srcV3Errors),
		eval:     evalRetried,
	},
	{
		id: "coverage.scenarios", title: "Scenarios and faults the suite exercised",
		rule:   same("Before going live, a suite runs every outcome the real system can produce: failure, cancel, paying → paid, timeout, and each notification fault."),
		source: same(srcScenarios),
		eval:   evalCoverage,
	},
}

// says is what a check says for each verdict: what was (not) found, and
// how to exercise or fix it.
type says struct {
	none, exercise, failed, fix, passed string
}

// judge sets the common verdict — nothing seen is not_exercised, any bad
// entry is failed, else passed — and what goes with it.
func judge(c *Check, seen, bad int, s says) {
	switch {
	case seen == 0:
		c.Verdict, c.Summary, c.Fix = NotExercised, s.none, s.exercise
	case bad > 0:
		c.Verdict, c.Summary, c.Fix = Failed, s.failed, s.fix
	default:
		c.Verdict, c.Summary = Passed, s.passed
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func quoteList(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
