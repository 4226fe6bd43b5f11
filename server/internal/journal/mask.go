package journal

import (
	"net/url"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// masked replaces the value of a secret field.
const masked = "***"

// The name fragments that make a field secret are key, secret, private,
// token and password (secretAt). Signatures (sign, signature, paySign)
// contain none of them on purpose: a merchant debugging a signature mismatch
// needs to see the one it sent.

// isSecretName reports whether a field name contains a secret word, ignoring
// ASCII case.
func isSecretName(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] | 0x20 {
		case 'k', 's', 't', 'p':
			if secretAt(name, i) {
				return true
			}
		}
	}
	return false
}

// secretAt reports whether a secret word starts at s[i], ignoring ASCII case.
// Bodies are scanned byte by byte, so the first letter is tested with a
// switch before any word is compared.
func secretAt(s string, i int) bool {
	var w string
	switch s[i] | 0x20 { // ASCII lower case; other bytes never match below
	case 'k':
		w = "key"
	case 's':
		w = "secret"
	case 't':
		w = "token"
	case 'p':
		if len(s)-i >= 3 && s[i+1]|0x20 == 'r' {
			w = "private"
		} else {
			w = "password"
		}
	default:
		return false
	}
	if len(s)-i < len(w) {
		return false
	}
	for k := 1; k < len(w); k++ {
		if s[i+k]|0x20 != w[k] {
			return false
		}
	}
	return true
}

// Mask returns body with the values of secret fields replaced by "***":
// string fields of a JSON document, or fields of a form
// (a=1&b=2), whose name contains key, secret, private, token or password.
// Anything else, and any body that mentions no secret word at all, comes
// back unchanged without a copy, so that the common case costs one scan.
func Mask(body string) string {
	if !isSecretName(body) {
		return body
	}
	if i := skipSpace(body, 0); i < len(body) && (body[i] == '{' || body[i] == '[') {
		return maskJSON(body)
	}
	if strings.IndexByte(body, '=') >= 0 {
		return maskForm(body)
	}
	return body
}

// maskJSON masks the string values of secret keys in a JSON document. It is a
// scanner, not a parser, so that the body keeps its exact bytes (a merchant
// comparing what it sent with what it signed needs them) and so that a
// malformed document is masked as far as it can be read.
func maskJSON(s string) string {
	var b strings.Builder
	copied := 0 // s[:copied] is in b
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		end := stringEnd(s, i)
		if end < 0 {
			break
		}
		j := skipSpace(s, end+1)
		if j >= len(s) || s[j] != ':' {
			i = end // a value, not a key
			continue
		}
		j = skipSpace(s, j+1)
		if j >= len(s) || s[j] != '"' || !isSecretName(s[i+1:end]) {
			i = j - 1
			continue
		}
		vend := stringEnd(s, j)
		if vend < 0 {
			break
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[copied:j])
		b.WriteString(`"` + masked + `"`)
		copied = vend + 1
		i = vend
	}
	if copied == 0 {
		return s
	}
	b.WriteString(s[copied:])
	return b.String()
}

// stringEnd returns the index of the quote closing the JSON string that
// opens at s[start], or -1 when it is not closed.
func stringEnd(s string, start int) int {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

// maskForm masks the values of secret fields of a form or query string.
func maskForm(s string) string {
	var b strings.Builder
	copied := 0
	for start := 0; start < len(s); {
		end := strings.IndexByte(s[start:], '&')
		if end < 0 {
			end = len(s)
		} else {
			end += start
		}
		pair := s[start:end]
		if eq := strings.IndexByte(pair, '='); eq >= 0 && pair[eq+1:] != masked && isSecretName(formName(pair[:eq])) {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[copied : start+eq+1])
			b.WriteString(masked)
			copied = end
		}
		start = end + 1
	}
	if copied == 0 {
		return s
	}
	b.WriteString(s[copied:])
	return b.String()
}

// formName decodes a form field name, so that api%5Fkey is caught too.
func formName(name string) string {
	if strings.ContainsAny(name, "%+") {
		if n, err := url.QueryUnescape(name); err == nil {
			return n
		}
	}
	return name
}

// maskURL masks secret query parameters of a URL.
func maskURL(u string) string {
	q := strings.IndexByte(u, '?')
	if q < 0 || !isSecretName(u[q+1:]) {
		return u
	}
	return u[:q+1] + maskForm(u[q+1:])
}

// cut shortens s to at most max bytes, marking the cut.
var cut = sandbox.Cut
