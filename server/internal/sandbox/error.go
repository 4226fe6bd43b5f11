// Package sandbox holds mpsandbox's domain: merchants, sessions, product
// records, notifications, journal exchanges, the clock, the one error type,
// and the interfaces the adapters (store, schema, scenario, notify, journal)
// implement. It imports no adapter; every adapter imports it.
package sandbox

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Code classifies an Error. Renderers turn it into a status and a body in the
// caller's own format (the upstream's envelope, errMsg, or the house envelope).
type Code string

// The error codes. They are deliberately few: the upstream's own code, where
// it matters, travels in Error.Upstream.
const (
	CodeInvalid      Code = "invalid"       // 400: the request is malformed or breaks a rule
	CodeUnauthorized Code = "unauthorized"  // 401: missing or bad credentials or signature
	CodeForbidden    Code = "forbidden"     // 403: authenticated but not allowed
	CodeNotFound     Code = "not_found"     // 404
	CodeConflict     Code = "conflict"      // 409: state does not allow it, or a concurrent change won
	CodeTooLarge     Code = "too_large"     // 413
	CodeUnavailable  Code = "unavailable"   // 503: store closed, shutting down
	CodeInternal     Code = "internal"      // 500: a bug; never expected
	CodeUnsupported  Code = "unsupported"   // 415/405: wrong media type or method
	CodeRateLimited  Code = "rate_limited"  // 429
	CodeState        Code = "invalid_state" // 400 in the upstreams: the object's state forbids the operation
)

// Violation is one problem with an input, located by a JSON pointer (or, for
// forms and query strings, "/<field>").
type Violation struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is mpsandbox's one error type. Handlers return it; one renderer per
// dialect turns it into the caller's format.
type Error struct {
	Code    Code
	Message string
	// Fields lists every violation, each with its path.
	Fields []Violation
	// Upstream is the simulated system's own error code (v3 "SIGN_ERROR",
	// P云 "500", …) when it differs from what Code would map to.
	Upstream string
	// Status overrides the HTTP status the dialect would choose; 0 keeps it.
	Status int
	// Diagnostics explains a signature mismatch: the expected string-to-sign
	// with secrets masked. It is journalled and rendered where the dialect
	// has room for it.
	Diagnostics string
	Err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, f := range e.Fields {
		b.WriteString("; ")
		if f.Path != "" {
			b.WriteString(f.Path)
			b.WriteString(": ")
		}
		b.WriteString(f.Message)
	}
	if e.Err != nil && e.Message == "" {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Bounds of an answered error: a request of a megabyte must not come back
// three times over in its own error (the diagnostics quote the body, and
// the message quotes it again).
const (
	maxErrorText        = 4 << 10
	maxErrorDiagnostics = 16 << 10
)

// Bounded returns e with its message, each violation's message and its
// diagnostics cut to bounded sizes, each cut marked; e itself is not
// changed. Every violation is kept.
func (e *Error) Bounded() *Error {
	if len(e.Message) <= maxErrorText && len(e.Diagnostics) <= maxErrorDiagnostics && !longField(e.Fields) {
		return e
	}
	c := *e
	c.Message = Cut(e.Message, maxErrorText)
	c.Diagnostics = Cut(e.Diagnostics, maxErrorDiagnostics)
	c.Fields = make([]Violation, len(e.Fields))
	for i, f := range e.Fields {
		c.Fields[i] = Violation{Path: Cut(f.Path, maxErrorText), Message: Cut(f.Message, maxErrorText)}
	}
	return &c
}

func longField(vs []Violation) bool {
	for _, v := range vs {
		if len(v.Path) > maxErrorText || len(v.Message) > maxErrorText {
			return true
		}
	}
	return false
}

// Cut shortens s to at most max bytes, on a UTF-8 boundary, and says so at
// the end so that nobody mistakes a cut text for what was sent.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…[cut: " + strconv.Itoa(len(s)) + " bytes in all]"
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a CodeInvalid error listing every violation.
func Invalid(message string, fields ...Violation) *Error {
	return &Error{Code: CodeInvalid, Message: message, Fields: fields}
}

// AsError returns err as an *Error; anything else becomes CodeInternal
// wrapping it, so that renderers only ever see *Error.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// ErrorCode returns the Code of err, CodeInternal for foreign errors and ""
// for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	return AsError(err).Code
}

// IsCode reports whether err is an *Error with the code.
func IsCode(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
