package wxsign

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The headers of a signed v3 response or notification (SOURCES.md §1).
const (
	HeaderTimestamp     = "Wechatpay-Timestamp"
	HeaderNonce         = "Wechatpay-Nonce"
	HeaderSerial        = "Wechatpay-Serial"
	HeaderSignature     = "Wechatpay-Signature"
	HeaderSignatureType = "Wechatpay-Signature-Type"
)

// V3RequestMessage returns the message a v3 request's signature covers:
// "METHOD\nURI\nTIMESTAMP\nNONCE\nBODY\n", where URI is the path with its
// query and BODY is empty for GET. The host is not part of it, which is why
// a merchant's SDK can be pointed at the sandbox without re-signing.
func V3RequestMessage(method, uri, timestamp, nonce, body string) string {
	return lines(method, uri, timestamp, nonce, body)
}

// V3ResponseMessage returns the message a v3 response's or notification's
// Wechatpay-Signature covers: "TIMESTAMP\nNONCE\nBODY\n". A 204 has an empty
// body and is still signed.
func V3ResponseMessage(timestamp, nonce, body string) string {
	return lines(timestamp, nonce, body)
}

// RSASign returns base64(SHA256withRSA(message)) with PKCS#1 v1.5 padding,
// the signature of v3 requests, responses, notifications and the RSA
// paySign.
func RSASign(priv *rsa.PrivateKey, message string) (string, error) {
	if priv == nil {
		return "", sandbox.Errorf(sandbox.CodeInternal, "RSA sign: no private key")
	}
	sum := sha256.Sum256([]byte(message))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", &sandbox.Error{Code: sandbox.CodeInternal, Message: "RSA sign: " + err.Error(), Err: err}
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// RSAVerify checks a base64 SHA256withRSA (PKCS#1 v1.5) signature of
// message. A failure is a CodeUnauthorized *sandbox.Error whose Diagnostics
// is message itself, the exact bytes the sandbox expected to be signed (v3
// messages hold no secret).
func RSAVerify(pub *rsa.PublicKey, message, signature string) error {
	if pub == nil {
		return sandbox.Errorf(sandbox.CodeInternal, "RSA verify: no public key")
	}
	var msg string
	sig, err := base64.StdEncoding.DecodeString(signature)
	switch {
	case signature == "":
		msg = "signature is missing"
	case err != nil:
		msg = "signature is not standard base64: " + err.Error()
	case len(sig) != pub.Size():
		msg = "signature is " + strconv.Itoa(len(sig)) + " bytes, a signature by the registered " +
			strconv.Itoa(pub.N.BitLen()) + "-bit key has " + strconv.Itoa(pub.Size())
	default:
		sum := sha256.Sum256([]byte(message))
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil {
			return nil
		}
		msg = "signature does not verify: expected SHA256withRSA (PKCS#1 v1.5) of the message in diagnostics " +
			"by the private key whose public key is registered"
	}
	return &sandbox.Error{Code: sandbox.CodeUnauthorized, Message: msg, Diagnostics: message}
}

// SetV3ResponseHeaders signs a v3 response or notification body with the
// platform key and sets Wechatpay-Timestamp, -Nonce, -Serial and -Signature
// on h. serial is what the merchant's SDK checks the signature against: the
// platform public-key ID ("PUB_KEY_ID_…") or certificate serial.
func SetV3ResponseHeaders(h http.Header, priv *rsa.PrivateKey, serial, timestamp, nonce, body string) error {
	sig, err := RSASign(priv, V3ResponseMessage(timestamp, nonce, body))
	if err != nil {
		return err
	}
	// Direct map writes: the names are already canonical, and this runs on
	// every signed response.
	h[HeaderTimestamp] = []string{timestamp}
	h[HeaderNonce] = []string{nonce}
	h[HeaderSerial] = []string{serial}
	h[HeaderSignature] = []string{sig}
	return nil
}

// PaySignMessage returns the message of the RSA paySign of
// wx.requestPayment (SOURCES.md §5): "appId\ntimeStamp\nnonceStr\npackage\n".
func PaySignMessage(appID, timeStamp, nonceStr, pkg string) string {
	return lines(appID, timeStamp, nonceStr, pkg)
}

// lines joins parts, each followed by "\n": the shape of every WeChat Pay
// v3 signature message.
func lines(parts ...string) string {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.WriteString(p)
		b.WriteByte('\n')
	}
	return b.String()
}

// PaySignRSA returns the paySign of wx.requestPayment with signType "RSA":
// SHA256withRSA over PaySignMessage with the merchant's private key. Verify
// one with RSAVerify(pub, PaySignMessage(…), paySign).
func PaySignRSA(priv *rsa.PrivateKey, appID, timeStamp, nonceStr, pkg string) (string, error) {
	return RSASign(priv, PaySignMessage(appID, timeStamp, nonceStr, pkg))
}
