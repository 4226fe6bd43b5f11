package httpapi

import (
	"log/slog"

	"github.com/gin-gonic/gin"
)

// The log attributes every component names its subjects by, so that one
// query finds a request, a merchant, a product or a session across the
// access log and the workers' lines.
const (
	LogRequestID = "request_id"
	LogMchID     = "mchid"
	LogProduct   = "product"
	LogSessionID = "session_id"
)

// ProductOf is the product the request's route journals under, or "".
func ProductOf(c *gin.Context) string {
	if x := exchange(c); x != nil {
		return x.Product
	}
	return ""
}

// subjectAttrs are the journalled request's merchant, product and session,
// as far as the handler learnt them, for the access log.
func subjectAttrs(c *gin.Context, attrs []slog.Attr) []slog.Attr {
	x := exchange(c)
	if x == nil {
		return attrs
	}
	for _, kv := range [...][2]string{{LogMchID, x.MchID}, {LogProduct, x.Product}, {LogSessionID, x.SessionID}} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	return attrs
}
