package wxpayv3

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// nonceLength is the length of Wechatpay-Nonce: 32 characters, as the
// real headers carry [I: observed length, not documented].
const nonceLength = 32

// Middleware is what every v3 route group needs, in order: the v3 error
// dialect, the journal (under product), and authentication.
func (a *API) Middleware(j sandbox.Journal, product string) []gin.HandlerFunc {
	return []gin.HandlerFunc{httpapi.UseRenderer(Render), httpapi.Journaled(j, product), a.Authenticate()}
}

// JSON answers status with v as JSON, signed with the platform key.
func (a *API) JSON(c *gin.Context, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return &sandbox.Error{Code: sandbox.CodeInternal, Message: "encode the answer", Err: err}
	}
	return a.Write(c, status, body)
}

// NoContent answers 204, signed: the SDKs verify a 204 too, over
// "TS\nNONCE\n\n" (SOURCES.md §1).
func (a *API) NoContent(c *gin.Context) error { return a.Write(c, http.StatusNoContent, nil) }

// Write answers status with body (JSON text; empty for 204) and the
// Request-ID and Wechatpay-Timestamp, -Nonce, -Serial and -Signature
// headers, signed once with the platform key answerSigner picks.
func (a *API) Write(c *gin.Context, status int, body []byte) error {
	m := Merchant(c)
	if m == nil {
		return sandbox.Errorf(sandbox.CodeInternal, "wxpayv3.Write outside an authenticated v3 group")
	}
	s, err := answerSigner(m, a.keys.get(m), c.GetHeader(wxsign.HeaderSerial))
	if err != nil {
		return err
	}
	h := c.Writer.Header()
	if err := a.sign(h, s, body, httpapi.SignatureSpoiled(c)); err != nil {
		return err
	}
	h.Set("Request-ID", httpapi.RequestID(c))
	if status == http.StatusNoContent {
		c.Status(status)
		c.Writer.WriteHeaderNow()
		return nil
	}
	c.Data(status, "application/json; charset=utf-8", body)
	return nil
}

// answerSigner picks the key of an answer from the request's
// Wechatpay-Serial, as WeChat Pay does (FAQ
// https://pay.weixin.qq.com/doc/v3/partner/4013038589): the merchant's
// PUB_KEY_ID gets the public key, unless the merchant has not started the
// switch (certificate mode); anything else — no header, the certificate's
// serial, an unknown serial [I] — gets the certificate.
func answerSigner(m *sandbox.Merchant, keys *merchantKeys, asked string) (signer, error) {
	if asked == m.PlatformPublicKeyID && m.KeyMode() != sandbox.PlatformKeyModeCertificate {
		return keys.byPublicKey()
	}
	return keys.byCertificate()
}

// sign sets the four Wechatpay-* headers for body. bad signs something
// else, so that the signature is well formed and does not verify.
func (a *API) sign(h http.Header, s signer, body []byte, bad bool) error {
	signed := string(body)
	if bad {
		signed += " "
	}
	ts := strconv.FormatInt(a.wall().Unix(), 10)
	return wxsign.SetV3ResponseHeaders(h, s.key, s.serial, ts, wxsign.NonceStr(nonceLength), signed)
}
