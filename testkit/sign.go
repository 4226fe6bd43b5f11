package testkit

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// Signers for tests that build a signed request by hand (a mini-program's
// extraData, a P云 form), written from the public documents rather than
// from the sandbox's code, so that a test checks the sandbox against the
// rule.

// paramString is the string both rules sign: the non-empty parameters but
// sign, sorted by name in ASCII order, joined k=v&…, then &<secretName>=<secret>.
func paramString(params map[string]string, secretName, secret string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + params[k] + "&")
	}
	b.WriteString(secretName + "=" + secret)
	return b.String()
}

// V2HMACSign is WeChat Pay's API v2 HMAC-SHA256 sign — the rule of the
// 支付分 confirm page's extraData (sign_type HMAC-SHA256) and of the v2 XML
// APIs: HMAC-SHA256, keyed with the API v2 key, of the parameter string
// followed by &key=<API v2 key>; upper-case hex
// (https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3).
func V2HMACSign(params map[string]string, apiV2Key string) string {
	mac := hmac.New(sha256.New, []byte(apiV2Key))
	mac.Write([]byte(paramString(params, "key", apiV2Key)))
	return strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
}

// PCloudSign is P云's MD5 sign of a form or query: the MD5 of the parameter
// string followed by &app_secret=<secret>; upper-case hex (P云 compares it
// case-insensitively) (4pyun-doc openapi/README.md, "签名算法").
func PCloudSign(params map[string]string, appSecret string) string {
	sum := md5.Sum([]byte(paramString(params, "app_secret", appSecret)))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
