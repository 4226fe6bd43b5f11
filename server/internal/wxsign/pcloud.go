package wxsign

import (
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// pcloudSecretParam is the name under which P云 appends the app secret.
const pcloudSecretParam = "app_secret"

// PCloudStringToSign returns the P云 form/query string-to-sign (SOURCES.md
// §8): non-empty parameters except sign, sorted by name in ASCII order,
// joined as k=v&…, followed by "&app_secret=<secret>". Unlike v2, sign_type
// is signed like any other parameter. It contains the secret: never log it.
func PCloudStringToSign(params map[string]string, appSecret string) string {
	return string(appendParamString(nil, params, pcloudSecretParam, appSecret))
}

// PCloudSign returns the P云 signature of form or query params: the
// upper-case hex MD5 of PCloudStringToSign.
func PCloudSign(params map[string]string, appSecret string) string {
	var stack [512]byte
	return md5UpperHex(appendParamString(stack[:0], params, pcloudSecretParam, appSecret))
}

// PCloudVerify checks the sign of form or query params. P云 compares the
// 32 hex digits case-insensitively ("32位不区分大小写"). A mismatch is a
// CodeUnauthorized *sandbox.Error whose Diagnostics is the expected
// string-to-sign with the secret masked ("&app_secret=***").
func PCloudVerify(params map[string]string, appSecret, sign string) error {
	if pcloudEqual(PCloudSign(params, appSecret), sign) {
		return nil
	}
	return pcloudMismatch(sign, "the form/query parameters: non-empty ones except sign, sorted by ASCII name, "+
		"joined k=v&…, then &app_secret=<secret>", paramDiagnostics(params, pcloudSecretParam, appSecret))
}

// PCloudSignJSON returns the P云 signature of a JSON body, sent in the
// Authorization header: the upper-case hex MD5 of "<body>&app_secret=<secret>",
// over the body's exact bytes.
func PCloudSignJSON(body []byte, appSecret string) string {
	var stack [512]byte
	msg := append(stack[:0], body...)
	msg = append(msg, '&')
	msg = append(msg, pcloudSecretParam...)
	msg = append(msg, '=')
	return md5UpperHex(append(msg, appSecret...))
}

// PCloudVerifyJSON checks the Authorization signature of a P云 JSON body,
// with the same error shape as PCloudVerify.
func PCloudVerifyJSON(body []byte, appSecret, sign string) error {
	if pcloudEqual(PCloudSignJSON(body, appSecret), sign) {
		return nil
	}
	diag := Mask(string(body), appSecret) + "&" + pcloudSecretParam + "=" + maskText
	return pcloudMismatch(sign, "the exact request body followed by &app_secret=<secret>", diag)
}

func pcloudEqual(want, got string) bool {
	if len(got) == len(want) {
		return equalSign(want, strings.ToUpper(got))
	}
	return false
}

func pcloudMismatch(sign, what, diagnostics string) *sandbox.Error {
	msg := "sign is missing"
	if sign != "" {
		msg = "sign does not match the MD5 of the string-to-sign in diagnostics (" + what + ")"
	}
	return &sandbox.Error{Code: sandbox.CodeUnauthorized, Message: msg, Diagnostics: diagnostics}
}
