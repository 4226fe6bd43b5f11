package wxpayv3

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// TimestampWindow is how far a request's timestamp may be from now: the
// SDKs apply the same 5 minutes to answers (SOURCES.md §1).
const TimestampWindow = 300 * time.Second

// Authenticate verifies the request's "Authorization: WECHATPAY2-SHA256-RSA2048
// mchid=…,nonce_str=…,timestamp=…,serial_no=…,signature=…" (SOURCES.md §1)
// and makes its merchant the request's (Merchant, httpapi.Exchange). An
// unknown mchid, a serial_no that is not the merchant's certificate serial,
// a timestamp 300 s or more away, or a signature that the merchant's
// registered public key does not verify is the real 401 SIGN_ERROR; every
// problem found is listed, and a bad signature shows the string-to-sign
// the sandbox expected. An authenticated call then meets the merchant's
// API fault for it, if one is scripted (httpapi.FaultPlayer).
func (a *API) Authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		m, err := a.authenticate(c)
		if err == nil {
			c.Set(keyMerchant, m)
			err = a.faults.Play(c, m.MchID)
		}
		if err != nil {
			httpapi.Fail(c, err)
			return
		}
		c.Next()
	}
}

func (a *API) authenticate(c *gin.Context) (*sandbox.Merchant, error) {
	auth, vs := wxsign.ParseAuthorization(c.GetHeader("Authorization"))
	if len(vs) > 0 {
		return nil, signError("the Authorization header is not "+wxsign.AuthScheme+` mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`, "", vs)
	}
	m, ok := a.merchants.Get(auth.MchID)
	if !ok {
		return nil, signError("unknown mchid", "", []sandbox.Violation{{Path: "/mchid",
			Message: fmt.Sprintf("mchid %q is not a merchant of this sandbox (GET /sandbox/v1/merchants lists them)", auth.MchID)}})
	}
	httpapi.Exchange(c).MchID = m.MchID
	if auth.SerialNo != m.MerchantSerialNo {
		vs = append(vs, sandbox.Violation{Path: "/serial_no", Message: fmt.Sprintf(
			"serial_no %q is not the serial of merchant %s's API certificate: expected %q (merchant_serial_no in the credentials)",
			auth.SerialNo, m.MchID, m.MerchantSerialNo)})
	}
	if v, ok := a.checkTimestamp(m.MchID, auth.Timestamp); !ok {
		vs = append(vs, v)
	}
	keys := a.keys.get(m)
	var diagnostics string
	// quotedMessage bounds the string-to-sign quoted in the violation:
	// diagnostics carry it (within their own bound); a body of a megabyte
	// must not come back twice over.
	const quotedMessage = 2 << 10
	var warning *sandbox.Violation
	if keys.merchantErr != nil {
		vs = append(vs, sandbox.Violation{Path: "/signature", Message: "the public key registered for merchant " + m.MchID +
			" does not parse, so no signature can verify: " + keys.merchantErr.Error()})
	} else {
		uri := requestURI(c)
		sign := func(uri string) string {
			return wxsign.V3RequestMessage(c.Request.Method, uri, auth.Timestamp, auth.NonceStr, string(httpapi.Body(c)))
		}
		msg := sign(uri)
		err := wxsign.RSAVerify(keys.merchantPub, msg, auth.Signature)
		if twin, ok := emptyQueryTwin(uri); err != nil && ok && wxsign.RSAVerify(keys.merchantPub, sign(twin), auth.Signature) == nil {
			err, warning = nil, &sandbox.Violation{Path: "/signature", Message: fmt.Sprintf(
				"the request went to %q and its signature covers %q: an empty query's \"?\" is accepted either way, but sign the URI as it is sent", uri, twin)}
		}
		if err != nil {
			diagnostics = msg
			vs = append(vs, sandbox.Violation{Path: "/signature", Message: sandbox.AsError(err).Message +
				"; expected string-to-sign (METHOD\\nURI\\nTIMESTAMP\\nNONCE\\nBODY\\n): " + strconv.Quote(sandbox.Cut(msg, quotedMessage))})
		}
	}
	if len(vs) > 0 {
		// The signature problem is what the real body names: put it first.
		for i, v := range vs {
			if v.Path == "/signature" && i > 0 {
				vs[0], vs[i] = vs[i], vs[0]
				break
			}
		}
		return nil, signError("the request signature does not verify", diagnostics, vs)
	}
	if warning != nil {
		httpapi.Warn(c, *warning)
	}
	return m, nil
}

// emptyQueryTwin is the other spelling of a URI without a query: "/x?" for
// "/x" and "/x" for "/x?". Clients differ on whether an empty query keeps
// its "?" in what they sign and in what they send; the sandbox accepts a
// signature over either, with a warning [I].
func emptyQueryTwin(uri string) (string, bool) {
	if q := strings.IndexByte(uri, '?'); q < 0 {
		return uri + "?", true
	} else if q == len(uri)-1 {
		return uri[:q], true
	}
	return "", false
}

// checkTimestamp accepts a timestamp within the window of the wall clock —
// what the merchant's SDK stamps with — or of the merchant's sandbox clock,
// so that a test that moved its sandbox clock may also sign on it [I].
func (a *API) checkTimestamp(mchid, ts string) (sandbox.Violation, bool) {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return sandbox.Violation{Path: "/timestamp", Message: fmt.Sprintf("timestamp %q is not Unix seconds: %v", ts, err)}, false
	}
	wall, sb := a.wall().Unix(), a.clock.Now(mchid).Unix()
	window := int64(TimestampWindow / time.Second)
	if abs(wall-sec) < window || abs(sb-sec) < window {
		return sandbox.Violation{}, true
	}
	return sandbox.Violation{Path: "/timestamp", Message: fmt.Sprintf(
		"timestamp %d is %d s away from now (%d): it must be less than %d s away, as WeChat Pay requires",
		sec, wall-sec, wall, window)}, false
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// requestURI is the path and query as the client sent them, which is what
// it signed (the host is not signed, SOURCES.md §1).
func requestURI(c *gin.Context) string {
	if c.Request.RequestURI != "" {
		return c.Request.RequestURI
	}
	return c.Request.URL.RequestURI()
}

func signError(message, diagnostics string, vs []sandbox.Violation) *sandbox.Error {
	return &sandbox.Error{Code: sandbox.CodeUnauthorized, Upstream: CodeSignError, Message: message, Fields: vs, Diagnostics: diagnostics}
}
