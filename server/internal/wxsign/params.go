package wxsign

import (
	"slices"
)

// signParam is the parameter both WeChat Pay v2 and P云 leave out of their
// own string-to-sign.
const signParam = "sign"

// appendParamString appends the "sorted form" string-to-sign shared by
// WeChat Pay v2 and P云: every parameter with a non-empty value except sign,
// sorted by name in byte (ASCII) order, joined as k=v&k=v, then
// "&<secretName>=<secret>". Values are taken as they are, not URL-encoded,
// as both upstreams' examples show.
func appendParamString(dst []byte, params map[string]string, secretName, secret string) []byte {
	var stack [24]string
	keys := stack[:0]
	size := len(secretName) + len(secret) + 2
	for k, v := range params {
		if v == "" || k == signParam {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	slices.Sort(keys)
	dst = slices.Grow(dst, size)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = append(dst, params[k]...)
	}
	dst = append(dst, '&')
	dst = append(dst, secretName...)
	dst = append(dst, '=')
	return append(dst, secret...)
}

// paramDiagnostics is the string-to-sign with the secret masked: the secret
// slot shows "***" and any copy of the secret elsewhere (a merchant who put
// the key in a parameter) is masked too.
func paramDiagnostics(params map[string]string, secretName, secret string) string {
	return Mask(string(appendParamString(nil, params, secretName, maskText)), secret)
}
