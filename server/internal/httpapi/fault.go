package httpapi

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// ErrNoAnswer is what a handler returns when the request must get no
// answer at all (a timeout fault took the connection): Fail renders
// nothing for it.
var ErrNoAnswer = errors.New("no answer: the connection is held, then closed")

const (
	keyNoAnswer = "mpsandbox.no_answer"
	keySpoil    = "mpsandbox.spoil_signature"
	// maxHeld bounds the connections one FaultPlayer holds at once; past
	// it a timeout closes the connection at once, which is no answer too.
	maxHeld = 64
)

// FaultPlayer plays the API faults scripted for merchants
// (sandbox.APIFault) on their calls to a simulated upstream. It is safe for
// concurrent use.
type FaultPlayer struct {
	merchants sandbox.Merchants
	held      atomic.Int64
	maxHeld   int64
}

// NewFaultPlayer returns a player of the merchants' faults.
func NewFaultPlayer(m sandbox.Merchants) *FaultPlayer {
	return &FaultPlayer{merchants: m, maxHeld: maxHeld}
}

// Held is how many connections timeouts hold now.
func (p *FaultPlayer) Held() int { return int(p.held.Load()) }

// Play uses up the merchant's fault for the request, if one applies, and
// plays it. Call it once the request is authenticated, so that nobody but
// the merchant uses its faults up. rate_limited, system_error and
// service_unavailable return the error the handler returns, unprocessed (the
// group's dialect renders it with the real code and message); timeout
// takes the connection, holds it and closes it, and returns ErrNoAnswer;
// bad_signature returns nil and spoils the signature of the answer
// (SignatureSpoiled).
func (p *FaultPlayer) Play(c *gin.Context, mchid string) error {
	f, err := p.merchants.TakeAPIFault(c.Request.Context(), mchid, c.Request.Method, c.Request.URL.Path)
	if err != nil || f == nil {
		return err
	}
	x := Exchange(c)
	about := fmt.Sprintf("API fault %s (%s on %s %s) scripted for merchant %s; %d more call(s)",
		f.ID, f.Kind, or(f.Method, "*"), f.Path, mchid, f.Remaining-1)
	switch f.Kind {
	case sandbox.FaultRateLimited:
		return &sandbox.Error{Code: sandbox.CodeRateLimited, Diagnostics: about}
	case sandbox.FaultSystemError:
		return &sandbox.Error{Code: sandbox.CodeInternal, Diagnostics: about}
	case sandbox.FaultServiceUnavailable:
		return &sandbox.Error{Code: sandbox.CodeUnavailable, Diagnostics: about}
	case sandbox.FaultBadSignature:
		c.Set(keySpoil, true)
		x.Diagnostics = about + ": the answer's signature does not verify"
		return nil
	case sandbox.FaultTimeout:
		x.Error = about + fmt.Sprintf(": no answer; the connection is closed after %s", f.Hold.D())
		p.hold(c, f.Hold.D())
		return ErrNoAnswer
	}
	return nil
}

// hold takes the connection from the server and closes it after d, with
// no goroutine waiting meanwhile: a timer closes it. A connection that
// cannot be taken (HTTP/2, a test recorder) is held by the handler until
// d or the client gives up.
func (p *FaultPlayer) hold(c *gin.Context, d time.Duration) {
	c.Set(keyNoAnswer, true)
	if p.held.Add(1) > p.maxHeld {
		d = 0
	}
	conn, _, err := c.Writer.Hijack()
	if err != nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.Request.Context().Done():
		}
		p.held.Add(-1)
		return
	}
	time.AfterFunc(d, func() {
		conn.Close()
		p.held.Add(-1)
	})
}

// SignatureSpoiled reports whether the answer must carry a signature that
// does not verify (a bad_signature fault).
func SignatureSpoiled(c *gin.Context) bool { return c.GetBool(keySpoil) }

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
