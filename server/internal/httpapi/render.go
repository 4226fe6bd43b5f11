// Package httpapi holds what every HTTP route shares: the gin engine's
// middleware (request id, body limit, recovery, access log, journal), the one
// handler wrapper, strict JSON decoding, admin access control, and the house
// error envelope. Each route group names the dialect its errors are
// rendered in; products supply the upstream dialects.
package httpapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Renderer writes an error in one dialect: the upstream's envelope on a
// simulated endpoint, errMsg on the mini-program contract, the house
// envelope on the admin API.
type Renderer func(c *gin.Context, e *sandbox.Error)

const (
	keyRenderer  = "mpsandbox.renderer"
	keyRequestID = "mpsandbox.request_id"
	keyBody      = "mpsandbox.body"
	keyExchange  = "mpsandbox.exchange"
	keyScope     = "mpsandbox.scope"
)

// UseRenderer makes r the dialect of every error in the group.
func UseRenderer(r Renderer) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(keyRenderer, r)
		c.Next()
	}
}

// Handle adapts a handler that returns an error: a non-nil error is rendered
// in the group's dialect. It is the one way handlers report failure.
func Handle(h func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			Fail(c, err)
		}
	}
}

// Fail renders err in the group's dialect and stops the chain.
func Fail(c *gin.Context, err error) {
	if errors.Is(err, ErrNoAnswer) {
		c.Abort()
		return
	}
	e := sandbox.AsError(err)
	if x := exchange(c); x != nil {
		x.Violations = append(x.Violations, e.Fields...)
		if e.Diagnostics != "" {
			x.Diagnostics = e.Diagnostics
		}
		x.Error = e.Error()
		// A request refused for its credentials did not prove that it
		// belongs to the merchant it names.
		x.Unverified = x.Unverified || e.Code == sandbox.CodeUnauthorized
	}
	if e.Code == sandbox.CodeInternal && e.Err != nil {
		_ = c.Error(e.Err) // the access log shows it
	}
	e = e.Bounded() // the journal keeps the whole (within its own budget)
	r, _ := c.Get(keyRenderer)
	render, ok := r.(Renderer)
	if !ok {
		render = RenderAdmin
	}
	render(c, e)
	c.Abort()
}

// Status maps an error code to the HTTP status most dialects use; e.Status
// overrides it.
func Status(e *sandbox.Error) int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Code {
	case sandbox.CodeInvalid, sandbox.CodeState:
		return http.StatusBadRequest
	case sandbox.CodeUnauthorized:
		return http.StatusUnauthorized
	case sandbox.CodeForbidden:
		return http.StatusForbidden
	case sandbox.CodeNotFound:
		return http.StatusNotFound
	case sandbox.CodeConflict:
		return http.StatusConflict
	case sandbox.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case sandbox.CodeUnsupported:
		return http.StatusUnsupportedMediaType
	case sandbox.CodeRateLimited:
		return http.StatusTooManyRequests
	case sandbox.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// AdminError is the house error envelope of /sandbox/v1.
type AdminError struct {
	Error AdminErrorBody `json:"error"`
}

// AdminErrorBody is the content of the house envelope.
type AdminErrorBody struct {
	Code        string       `json:"code"`
	Message     string       `json:"message"`
	Fields      []AdminField `json:"fields,omitempty"`
	Diagnostics string       `json:"diagnostics,omitempty"`
	RequestID   string       `json:"request_id"`
}

// AdminField is one violation in the house envelope.
type AdminField struct {
	Path  string `json:"path"`
	Issue string `json:"issue"`
}

// RenderAdmin renders the house envelope.
func RenderAdmin(c *gin.Context, e *sandbox.Error) {
	body := AdminError{Error: AdminErrorBody{
		Code:        string(e.Code),
		Message:     e.Message,
		Diagnostics: e.Diagnostics,
		RequestID:   RequestID(c),
	}}
	for _, f := range e.Fields {
		body.Error.Fields = append(body.Error.Fields, AdminField{Path: f.Path, Issue: f.Message})
	}
	// PureJSON, not JSON: a string-to-sign in diagnostics keeps its & and <
	// as sent (json.Marshal writes \u0026), so that it can be diffed. Every
	// error renderer does the same.
	c.PureJSON(Status(e), body)
}
