package wxsign

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// AuthScheme is the scheme of the v3 Authorization header: "WECHATPAY2-" and
// the SDK signer's algorithm.
const AuthScheme = "WECHATPAY2-SHA256-RSA2048"

// Authorization is the v3 request Authorization header.
type Authorization struct {
	MchID     string
	NonceStr  string
	Timestamp string // Unix seconds, decimal
	SerialNo  string // the merchant API certificate serial
	Signature string // base64 SHA256withRSA of V3RequestMessage
}

// The header's fields in the order the Go SDK writes them
// (core/consts.HeaderAuthorizationFormat).
var authFields = [...]string{"mchid", "nonce_str", "timestamp", "serial_no", "signature"}

func (a *Authorization) field(i int) *string {
	return [...]*string{&a.MchID, &a.NonceStr, &a.Timestamp, &a.SerialNo, &a.Signature}[i]
}

// FormatAuthorization writes the header as the official Go SDK does:
// WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…".
func FormatAuthorization(a Authorization) string {
	var b strings.Builder
	b.Grow(len(AuthScheme) + 64 + len(a.MchID) + len(a.NonceStr) + len(a.Timestamp) + len(a.SerialNo) + len(a.Signature))
	b.WriteString(AuthScheme)
	for i, name := range authFields {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(*a.field(i))
		b.WriteByte('"')
	}
	return b.String()
}

// ParseAuthorization reads a v3 Authorization header. Fields may come in any
// order with spaces around commas (SDKs differ); values must be in double
// quotes; unknown fields are ignored. It returns one violation per missing,
// empty, duplicate or garbled field, at "/<field>" (the field as v3's error
// detail names it, location "authorization"), and header-level problems
// (missing header, wrong scheme, stray text) at "". The timestamp window and
// the signature itself are the caller's to check.
func ParseAuthorization(header string) (Authorization, []sandbox.Violation) {
	var a Authorization
	header = strings.TrimSpace(header)
	if header == "" {
		return a, []sandbox.Violation{{Message: "Authorization header is missing: expected " + authExample}}
	}
	var vs []sandbox.Violation
	rest := header
	if i := strings.IndexAny(header, " \t"); i >= 0 && !strings.Contains(header[:i], "=") {
		// RFC 9110 makes the scheme case-insensitive.
		if scheme := header[:i]; !strings.EqualFold(scheme, AuthScheme) {
			vs = append(vs, sandbox.Violation{Message: "scheme " + quoteShort(scheme) + " is not " + AuthScheme})
		}
		rest = header[i+1:]
	} else if !strings.Contains(header, "=") {
		return a, []sandbox.Violation{{Message: "Authorization has no fields: expected " + authExample}}
	} else {
		vs = append(vs, sandbox.Violation{Message: "scheme is missing: the header starts with " + AuthScheme})
	}

	var problem [len(authFields)]string
	var seen [len(authFields)]bool
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		name, value, quoted, garbled, next := nextAuthParam(rest)
		rest = next
		i := authFieldIndex(name)
		if i < 0 {
			if garbled != "" {
				vs = append(vs, sandbox.Violation{Message: "unexpected text " + quoteShort(name) + ": " + garbled})
			}
			continue // unknown fields are tolerated [I]: WeChat may add some
		}
		switch {
		case seen[i]:
			if problem[i] == "" {
				problem[i] = name + " appears more than once"
			}
			continue
		case garbled != "":
			problem[i] = garbled
		case !quoted:
			problem[i] = name + ` must be in double quotes: ` + name + `="…"`
		}
		seen[i] = true
		*a.field(i) = value
	}

	for i, name := range authFields {
		msg := problem[i]
		v := *a.field(i)
		switch {
		case msg != "":
		case !seen[i]:
			msg = name + " is missing"
		case v == "":
			msg = name + " is empty"
		case name == "timestamp" && !isDigits(v):
			msg = "timestamp must be Unix seconds in decimal digits, got " + quoteShort(v)
		case name == "signature" && !isBase64(v):
			msg = "signature is not standard base64 (RFC 4648 §4, with padding)"
		default:
			continue
		}
		vs = append(vs, sandbox.Violation{Path: "/" + name, Message: msg})
	}
	return a, vs
}

const authExample = AuthScheme + ` mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`

// nextAuthParam reads one name="value" from s and returns what follows the
// next comma. garbled describes a broken pair.
func nextAuthParam(s string) (name, value string, quoted bool, garbled, rest string) {
	eq := strings.IndexAny(s, "=,")
	if eq < 0 || s[eq] == ',' {
		end := len(s)
		if eq >= 0 {
			end = eq
		}
		name = strings.TrimSpace(s[:end])
		return name, "", false, name + ` has no value: expected ` + name + `="…"`, s[end:]
	}
	name = strings.TrimSpace(s[:eq])
	s = strings.TrimLeft(s[eq+1:], " \t")
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		return name, strings.TrimSpace(s[:end]), false, "", s[end:]
	}
	end := strings.IndexByte(s[1:], '"')
	if end < 0 {
		return name, s[1:], true, name + " has no closing quote", ""
	}
	value, s = s[1:1+end], s[2+end:]
	after := strings.TrimLeft(s, " \t")
	if after != "" && after[0] != ',' {
		comma := strings.IndexByte(after, ',')
		if comma < 0 {
			comma = len(after)
		}
		return name, value, true, name + ` is followed by ` + quoteShort(after[:comma]) + ` instead of a comma`, after[comma:]
	}
	return name, value, true, "", after
}

func authFieldIndex(name string) int {
	for i, f := range authFields {
		if f == name {
			return i
		}
	}
	return -1
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

// quoteShort quotes s for a message, cut to a length that keeps a garbled
// signature from flooding the error.
func quoteShort(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}
