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
// headers, signed once with the platform private key of the request's
// merchant. Wechatpay-Serial is the platform public-key ID, unless the
// client asked, by its Wechatpay-Serial header, for the platform
// certificate's serial (certificate mode) and the certificate holds the
// same key.
func (a *API) Write(c *gin.Context, status int, body []byte) error {
	m := Merchant(c)
	if m == nil {
		return sandbox.Errorf(sandbox.CodeInternal, "wxpayv3.Write outside an authenticated v3 group")
	}
	keys := a.keys.get(m)
	serial := m.PlatformPublicKeyID
	if keys.certSameKey && c.GetHeader(wxsign.HeaderSerial) == m.PlatformSerialNo {
		serial = m.PlatformSerialNo
	}
	h := c.Writer.Header()
	if err := a.sign(h, keys, serial, body, false); err != nil {
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

// sign sets the four Wechatpay-* headers for body. bad signs something
// else, so that the signature is well formed and does not verify.
func (a *API) sign(h http.Header, keys *merchantKeys, serial string, body []byte, bad bool) error {
	priv, err := keys.signer()
	if err != nil {
		return err
	}
	signed := string(body)
	if bad {
		signed += " "
	}
	ts := strconv.FormatInt(a.wall().Unix(), 10)
	if err := wxsign.SetV3ResponseHeaders(h, priv, serial, ts, wxsign.NonceStr(nonceLength), signed); err != nil {
		return err
	}
	return nil
}
