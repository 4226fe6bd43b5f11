package wxpayv3

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// v3 error codes of the HTTP status table (SOURCES.md §1).
const (
	CodeParamError         = "PARAM_ERROR"
	CodeInvalidRequest     = "INVALID_REQUEST"
	CodeSignError          = "SIGN_ERROR"
	CodeNoAuth             = "NO_AUTH"
	CodeOrderNotExist      = "ORDER_NOT_EXIST"
	CodeRateLimitExceeded  = "RATELIMIT_EXCEEDED"
	CodeSystemError        = "SYSTEM_ERROR"
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
)

// SignErrorMessage is the message of the real 401 (SOURCES.md §1, community).
const SignErrorMessage = "签名错误,请检查后再试"

// messages are the real messages of the codes an error may carry without
// one of its own (the API faults): the status table of
// https://pay.weixin.qq.com/wiki/doc/apiv3_partner/wechatpay/wechatpay2_1.shtml;
// SERVICE_UNAVAILABLE's text is not published [I].
var messages = map[string]string{
	CodeRateLimitExceeded:  "请求未受理,请降低频率后重试",
	CodeSystemError:        "系统异常,请稍后重试",
	CodeServiceUnavailable: "服务不可用,请稍后重试",
}

// Where a problem is, as v3's detail.location names it.
const (
	LocationBody          = "body"
	LocationQuery         = "query"
	LocationURI           = "uri" // [I] a path parameter; v3 examples only show body and query
	LocationAuthorization = "authorization"
)

// ErrorBody is the v3 error body. Violations and Diagnostics are the
// sandbox's extensions: every problem, where the real API shows one, and
// what the sandbox expected to be signed.
type ErrorBody struct {
	Code        string              `json:"code"`
	Message     string              `json:"message"`
	Detail      *ErrorDetail        `json:"detail,omitempty"`
	Violations  []sandbox.Violation `json:"violations,omitempty"`
	Diagnostics string              `json:"diagnostics,omitempty"`
}

// ErrorDetail is v3's detail: the first problem.
type ErrorDetail struct {
	Field    string `json:"field,omitempty"`
	Value    any    `json:"value,omitempty"`
	Issue    string `json:"issue,omitempty"`
	Location string `json:"location,omitempty"`
}

const keyLocation = "mpsandbox.wxpayv3.location"

// SetLocation says where the violations of the error the handler is about
// to return are: LocationQuery, LocationURI, … By default they are in the
// query string of a GET and in the body otherwise.
func SetLocation(c *gin.Context, location string) { c.Set(keyLocation, location) }

func location(c *gin.Context) string {
	if l := c.GetString(keyLocation); l != "" {
		return l
	}
	if c.Request.Method == http.MethodGet {
		return LocationQuery
	}
	return LocationBody
}

// Render is the httpapi.Renderer of v3 endpoints: the status and code of
// SOURCES.md §1's table, e.Upstream when the product named the real code,
// the first violation as detail and all of them as violations.
func Render(c *gin.Context, e *sandbox.Error) {
	status, code := statusCode(e)
	body := ErrorBody{Code: code, Message: e.Message, Violations: e.Fields, Diagnostics: e.Diagnostics}
	if body.Message == "" {
		body.Message = messages[code]
	}
	if body.Message == "" {
		body.Message = http.StatusText(status)
	}
	loc := location(c)
	if code == CodeSignError {
		loc = LocationAuthorization
		// Whatever went wrong, the real body keeps its one message
		// (SOURCES.md §1); the sandbox's explanation goes in detail.issue.
		body.Message = SignErrorMessage
	}
	if len(e.Fields) > 0 {
		f := e.Fields[0]
		field := f.Path
		if loc == LocationAuthorization {
			// The real 401 names the header field bare: "signature".
			field = strings.TrimPrefix(field, "/")
			if field == "" {
				field = "Authorization"
			}
		}
		body.Detail = &ErrorDetail{Field: field, Issue: f.Message, Location: loc}
	} else if code == CodeSignError {
		body.Detail = &ErrorDetail{Field: "signature", Issue: e.Message, Location: loc}
	}
	c.Header("Request-ID", httpapi.RequestID(c))
	c.PureJSON(status, body)
}

// statusCode maps an error to v3's status and code.
func statusCode(e *sandbox.Error) (int, string) {
	status := httpapi.Status(e)
	if e.Code == sandbox.CodeConflict && e.Status == 0 {
		// v3 has no 409: a state that forbids the request is a 400.
		status = http.StatusBadRequest
	}
	if e.Upstream != "" {
		return status, e.Upstream
	}
	switch e.Code {
	case sandbox.CodeInvalid, sandbox.CodeTooLarge:
		return status, CodeParamError
	case sandbox.CodeState, sandbox.CodeConflict, sandbox.CodeUnsupported:
		return status, CodeInvalidRequest
	case sandbox.CodeUnauthorized:
		return status, CodeSignError
	case sandbox.CodeForbidden:
		return status, CodeNoAuth
	case sandbox.CodeNotFound:
		return status, CodeOrderNotExist
	case sandbox.CodeRateLimited:
		return status, CodeRateLimitExceeded
	case sandbox.CodeUnavailable:
		return status, CodeServiceUnavailable
	}
	return status, CodeSystemError
}
