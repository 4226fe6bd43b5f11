package httpapi

import (
	"mime"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// HeaderWarning carries each warning of an answer, one header each:
// "<path>: <message>". A header, not the body: signatures cover bodies,
// and clients parse bodies strictly and headers not at all.
const HeaderWarning = "X-Sandbox-Warning"

const (
	// maxWarnings bounds the warnings of one request.
	maxWarnings = 8
	// maxWarningHeader bounds one X-Sandbox-Warning value, in bytes: the
	// journal keeps the whole message.
	maxWarningHeader = 512
)

// Warn notes something the sandbox let through that the real system may
// not: a rule it only inferred, a deviation the real system tolerates. The
// request goes on; the warning is in the journal entry and in an
// X-Sandbox-Warning header of the answer, so call it before the answer
// is written. Non-ASCII text is sent as an RFC 2047 encoded word.
func Warn(c *gin.Context, w sandbox.Violation) {
	x := Exchange(c)
	if len(x.Warnings) >= maxWarnings {
		return
	}
	x.Warnings = append(x.Warnings, w)
	v := w.Message
	if w.Path != "" {
		v = w.Path + ": " + v
	}
	v = strings.ToValidUTF8(strings.Join(strings.Fields(v), " "), "?")
	if len(v) > maxWarningHeader {
		v = strings.ToValidUTF8(v[:maxWarningHeader], "") // on a rune boundary
	}
	c.Writer.Header().Add(HeaderWarning, mime.QEncoding.Encode("utf-8", v))
}
