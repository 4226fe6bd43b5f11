package wxsign

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"strings"
)

const (
	upperHex     = "0123456789ABCDEF"
	alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// maskText replaces secrets in diagnostics.
	maskText = "***"
)

// NonceStr returns n random alphanumeric characters from crypto/rand, the
// alphabet WeChat Pay uses for nonce_str, Wechatpay-Nonce and nonceStr.
func NonceStr(n int) string {
	if n <= 0 {
		return ""
	}
	out := make([]byte, 0, n)
	// 248 = 4*62: bytes at or above it are rejected so every character is
	// equally likely; a quarter more bytes than needed almost always suffices.
	buf := make([]byte, n+n/4+4)
	for len(out) < n {
		rand.Read(buf) // never fails since Go 1.24
		for _, b := range buf {
			if b < 248 {
				out = append(out, alphanumeric[b%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// Mask returns s with every occurrence of secret replaced by "***", so that
// diagnostics and journal entries never carry a key. An empty secret leaves
// s unchanged.
func Mask(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, maskText)
}

// appendUpperHex appends the upper-case hex of b to dst.
func appendUpperHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, upperHex[c>>4], upperHex[c&0x0f])
	}
	return dst
}

// md5UpperHex returns the upper-case hex MD5 of msg, the digest form of
// both WeChat Pay v2 and P云.
func md5UpperHex(msg []byte) string {
	sum := md5.Sum(msg)
	var out [2 * md5.Size]byte
	return string(appendUpperHex(out[:0], sum[:]))
}

// equalSign compares a computed signature with a received one in constant
// time, so that the sandbox does not teach timing attacks by example.
func equalSign(want, got string) bool {
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// Spoil changes a signature's last character — a hex digit or a base64
// one — so that it stays well formed and does not verify: what a
// bad-signature fault sends.
func Spoil(sign string) string {
	if sign == "" {
		return "0"
	}
	b := []byte(sign)
	if b[len(b)-1] == '0' {
		b[len(b)-1] = '1'
	} else {
		b[len(b)-1] = '0'
	}
	return string(b)
}
