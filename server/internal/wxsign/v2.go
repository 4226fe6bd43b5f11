package wxsign

import (
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// WeChat Pay API v2 sign_type values.
const (
	SignTypeMD5        = "MD5"
	SignTypeHMACSHA256 = "HMAC-SHA256"
)

// v2KeyParam is the name under which v2 appends the API key.
const v2KeyParam = "key"

// V2StringToSign returns the WeChat Pay API v2 string-to-sign (SOURCES.md §2):
// non-empty parameters except sign, sorted by name in ASCII order, joined as
// k=v&…, followed by "&key=<key>". It contains the key: never log it.
func V2StringToSign(params map[string]string, key string) string {
	return string(appendParamString(nil, params, v2KeyParam, key))
}

// V2Sign returns the API v2 signature of params: the upper-case hex MD5 of
// the string-to-sign, or its HMAC-SHA256 keyed with the same API key. An
// empty signType means MD5, v2's default when sign_type is absent. Any other
// type is a CodeInvalid *sandbox.Error.
func V2Sign(params map[string]string, key, signType string) (string, error) {
	switch signType {
	case SignTypeMD5, "":
		var stack [512]byte // most v2 strings fit: no allocation but the result
		return md5UpperHex(appendParamString(stack[:0], params, v2KeyParam, key)), nil
	case SignTypeHMACSHA256:
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(appendParamString(nil, params, v2KeyParam, key))
		var sum [sha256.Size]byte
		var out [2 * sha256.Size]byte
		return string(appendUpperHex(out[:0], mac.Sum(sum[:0]))), nil
	default:
		return "", unsupportedSignType(signType)
	}
}

// V2Verify checks sign against params. A mismatch is a CodeUnauthorized
// *sandbox.Error whose Diagnostics is the expected string-to-sign with the
// key masked ("&key=***"); an unsupported signType is CodeInvalid.
//
// The comparison is case-sensitive: the v2 rule ends with "convert to upper
// case", so a lower-case digest is the merchant's bug worth showing. Whether
// WeChat itself accepts lower case is not documented [I].
func V2Verify(params map[string]string, key, signType, sign string) error {
	want, err := V2Sign(params, key, signType)
	if err != nil {
		return err
	}
	if equalSign(want, sign) {
		return nil
	}
	if signType == "" {
		signType = SignTypeMD5
	}
	var msg string
	switch {
	case sign == "":
		msg = "sign is missing"
	case strings.EqualFold(want, sign):
		msg = "sign is not in upper case: the v2 rule ends by converting the " + signType + " hex digest to upper case"
	default:
		msg = "sign does not match the upper-case hex " + signType + " of the string-to-sign in diagnostics " +
			"(non-empty parameters except sign, sorted by ASCII name, then &key=<API v2 key>)"
	}
	return &sandbox.Error{
		Code:        sandbox.CodeUnauthorized,
		Message:     msg,
		Diagnostics: paramDiagnostics(params, v2KeyParam, key),
	}
}

func unsupportedSignType(signType string) *sandbox.Error {
	return &sandbox.Error{
		Code:    sandbox.CodeInvalid,
		Message: "unsupported sign_type",
		Fields: []sandbox.Violation{{
			Path:    "/sign_type",
			Message: "sign_type " + strconv.Quote(signType) + " is not " + SignTypeMD5 + " or " + SignTypeHMACSHA256,
		}},
	}
}
