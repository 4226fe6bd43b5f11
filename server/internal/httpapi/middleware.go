package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// DefaultMaxBody is the largest request body accepted: every real payload is
// a few KiB, so 1 MiB is generous and bounds memory per request.
const DefaultMaxBody = 1 << 20

var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,64}$`)

// RequestIDs gives every request an id — the caller's X-Request-Id when it
// is sane, else a new one — and echoes it in the response.
func RequestIDs() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if !saneRequestID.MatchString(id) {
			id = NewID("req_")
		}
		c.Set(keyRequestID, id)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

// RequestID returns the request's id.
func RequestID(c *gin.Context) string { return c.GetString(keyRequestID) }

// NewID returns prefix + 24 random hex digits.
func NewID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Recovery turns a panic into a rendered internal error and a log line with
// the stack, so that no request ever sees a dropped connection.
func Recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic", "request_id", RequestID(c), "path", c.Request.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				Fail(c, &sandbox.Error{Code: sandbox.CodeInternal, Message: "internal error; the sandbox log has the details"})
			}
		}()
		c.Next()
	}
}

// AccessMessage is the message of the access log's lines.
const AccessMessage = "request"

// AccessLog writes one line per request.
func AccessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		// Typed attributes in one slice (no boxing of each value): the line
		// is written for every request.
		attrs := append(make([]slog.Attr, 0, 9),
			slog.String(LogRequestID, RequestID(c)), slog.String("method", c.Request.Method), slog.String("path", c.Request.URL.Path),
			slog.Int("status", c.Writer.Status()), slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000))
		attrs = subjectAttrs(c, attrs)
		if len(c.Errors) > 0 {
			attrs = append(attrs, slog.String("error", c.Errors.String()))
		}
		log.LogAttrs(context.Background(), slog.LevelInfo, AccessMessage, attrs...)
	}
}

// ReadBody reads the request body once, up to max bytes and within the
// time bt allows, and keeps it for Body. A larger body is refused with
// CodeTooLarge, a body too slow with 408. A request without a body (any
// GET from a well-behaved client) is passed on untouched.
func ReadBody(max int64, bt BodyTime) gin.HandlerFunc {
	bt = bt.withDefaults()
	return func(c *gin.Context) {
		if c.Request.Body == nil || c.Request.Body == http.NoBody {
			c.Next()
			return
		}
		if c.Request.ContentLength > max {
			Fail(c, sandbox.Errorf(sandbox.CodeTooLarge, "request body of %d bytes is over the limit of %d bytes", c.Request.ContentLength, max))
			return
		}
		tb := &timedBody{r: io.LimitReader(c.Request.Body, max+1), rc: http.NewResponseController(c.Writer), start: time.Now(), b: bt}
		b, err := io.ReadAll(tb)
		if isTimeout(err) {
			// The deadline stays, and the connection closes after the
			// answer: otherwise the server would wait for the rest of the
			// body before answering.
			c.Header("Connection", "close")
			Fail(c, &sandbox.Error{Code: sandbox.CodeInvalid, Status: http.StatusRequestTimeout, Message: fmt.Sprintf(
				"the request body came too slowly: %d bytes in %s; a body gets %s, then must keep up %d bytes a second, and at most %s in all",
				tb.n, time.Since(tb.start).Round(time.Millisecond), bt.Grace, bt.MinRate, bt.Max)})
			return
		}
		tb.done()
		if err != nil {
			Fail(c, sandbox.Errorf(sandbox.CodeInvalid, "reading the request body: %v", err))
			return
		}
		if int64(len(b)) > max {
			Fail(c, sandbox.Errorf(sandbox.CodeTooLarge, "request body is over the limit of %d bytes", max))
			return
		}
		c.Set(keyBody, b)
		c.Request.Body = io.NopCloser(bytes.NewReader(b))
		c.Next()
	}
}

// Body returns the request body read by ReadBody.
func Body(c *gin.Context) []byte {
	b, _ := c.Get(keyBody)
	body, _ := b.([]byte)
	return body
}

// captureWriter keeps the head of the response body for the journal.
type captureWriter struct {
	gin.ResponseWriter
	buf bytes.Buffer
	max int
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		if len(b) < room {
			room = len(b)
		}
		w.buf.Write(b[:room])
	}
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// journalBodyMax bounds the response head kept per exchange.
const journalBodyMax = 64 << 10

// Journaled records every exchange of the group in the journal, with what
// the handler noted on Exchange(c) (merchant, session, scenario, violations).
func Journaled(j sandbox.Journal, product string) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		x := &sandbox.Exchange{
			Time:      start,
			Direction: sandbox.DirectionIn,
			Product:   product,
			RequestID: RequestID(c),
			Method:    c.Request.Method,
			URL:       c.Request.URL.RequestURI(),
			Source:    c.RemoteIP(),
		}
		c.Set(keyExchange, x)
		w := &captureWriter{ResponseWriter: c.Writer, max: journalBodyMax}
		c.Writer = w
		c.Next()
		x.Status = w.Status()
		if c.GetBool(keyNoAnswer) {
			x.Status = 0
		}
		x.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		x.RequestBody = string(Body(c))
		x.ResponseBody = w.buf.String()
		j.Record(x)
	}
}

// Exchange returns the journal entry being built for this request, so that
// handlers can say which merchant, session and scenario it concerns. It is
// never nil: outside a journalled group a throwaway entry is returned.
func Exchange(c *gin.Context) *sandbox.Exchange {
	if x := exchange(c); x != nil {
		return x
	}
	x := &sandbox.Exchange{}
	c.Set(keyExchange, x)
	return x
}

func exchange(c *gin.Context) *sandbox.Exchange {
	v, ok := c.Get(keyExchange)
	if !ok {
		return nil
	}
	x, _ := v.(*sandbox.Exchange)
	return x
}

// Interruptible ends a long-lived request (an event stream, a long poll)
// when done closes — server shutdown — instead of letting it hold the
// graceful shutdown until its timeout. Ordinary requests are never
// interrupted: they finish.
func Interruptible(done <-chan struct{}) gin.HandlerFunc {
	return func(c *gin.Context) {
		if done == nil {
			c.Next()
			return
		}
		ctx, cancel := context.WithCancel(c.Request.Context())
		defer cancel()
		go func() {
			select {
			case <-done:
				cancel()
			case <-ctx.Done():
			}
		}()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
