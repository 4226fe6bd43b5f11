package embedpay

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// P云's codes and messages (SOURCES.md §8; trade-prepare.md and
// trade-query.md "请求返回结果示例").
const (
	codeOK       = "1001"
	codeParam    = "400"
	codeFailure  = "500"
	msgParam     = "请求参数错误"
	msgDuplicate = "订单号已存在"
	msgNotFound  = "未查询到订单记录"
	// msgQueryNeedsKey is the query's answer when neither pay_serial nor
	// pay_order is given: a Java exception text, copied as P云 sends it.
	msgQueryNeedsKey = "处理异常:java.lang.IllegalArgumentException: `pay_serial`/`merchant`+`order` Required!"
	// msgProcessing prefixes P云's other failures ("处理异常:…").
	msgProcessing = "处理异常:"
	// msgSign is the answer to a bad sign [I]: P云 publishes no example.
	msgSign = "签名验证失败"
	// msgUnknownApp is the answer to an app_id P云 does not know [I].
	msgUnknownApp = "应用不存在"
)

// dataNode is the data_node every answer carries, in P云's format
// ("CN-South/HS3-1").
const dataNode = "CN-South/HS3-1"

// upstream is what P云 itself answers for an error: its code and message.
// It travels as the *sandbox.Error's Err; the Error's Message is the hint.
type upstream struct{ code, message string }

func (u *upstream) Error() string { return u.code + " " + u.message }

// failure returns an error P云 answers with code and message; hint says
// what is wrong, fields name each problem.
func failure(code sandbox.Code, upCode, upMessage, hint string, fields ...sandbox.Violation) *sandbox.Error {
	return &sandbox.Error{Code: code, Upstream: upCode, Message: hint, Fields: fields, Err: &upstream{upCode, upMessage}}
}

// errorBody is P云's error shape (common/pcloud-error): code, message,
// hint, seqno, data_node, path, plus every violation.
type errorBody struct {
	Code        string              `json:"code"`
	Message     string              `json:"message"`
	Hint        string              `json:"hint,omitempty"`
	Seqno       string              `json:"seqno"`
	DataNode    string              `json:"data_node"`
	Path        string              `json:"path"`
	Violations  []sandbox.Violation `json:"violations,omitempty"`
	Diagnostics string              `json:"diagnostics,omitempty"`
}

// renderPCloud renders an error in P云's shape. P云's gateway answers its
// errors in the body's code; the HTTP status is 200 [I]: its documents show
// bodies only and describe code as the request's status.
func renderPCloud(c *gin.Context, e *sandbox.Error) {
	body := errorBody{
		Hint:        e.Message,
		Seqno:       newSeqno(),
		DataNode:    dataNode,
		Path:        c.Request.Method + " " + c.Request.URL.Path,
		Violations:  e.Fields,
		Diagnostics: e.Diagnostics,
	}
	var up *upstream
	switch {
	case errors.As(e.Err, &up):
		body.Code, body.Message = up.code, up.message
	case e.Code == sandbox.CodeInvalid || e.Code == sandbox.CodeTooLarge || e.Code == sandbox.CodeUnsupported:
		body.Code, body.Message = codeParam, msgParam
	case e.Code == sandbox.CodeUnauthorized:
		body.Code, body.Message = codeParam, msgSign
	default:
		body.Code, body.Message = codeFailure, msgProcessing+e.Message
	}
	if body.Hint == "" && len(e.Fields) > 0 {
		body.Hint = hintOf(e.Fields, requiredPrepare)
	}
	c.PureJSON(http.StatusOK, body)
}

// requiredPrepare and requiredQuery are how P云 says a parameter is missing:
// trade-prepare.md shows "`merchant` Required!", trade-query.md
// "参数`merchant`未传递" — each endpoint keeps its own wording.
func requiredPrepare(field string) string { return "`" + field + "` Required!" }
func requiredQuery(field string) string   { return "参数`" + field + "`未传递" }

// hintOf writes every violation into one hint, a missing parameter in the
// endpoint's wording, others as "`field` message".
func hintOf(vs []sandbox.Violation, required func(string) string) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString("; ")
		}
		field := strings.TrimPrefix(v.Path, "/")
		switch {
		case v.Message == "is required":
			b.WriteString(required(field))
		case field == "":
			b.WriteString(v.Message)
		default:
			b.WriteString("`" + field + "` " + v.Message)
		}
	}
	return b.String()
}

// newSeqno is P云's per-request log id: 16 hex digits.
func newSeqno() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Register mounts P云's gateway at the real paths. trade/query is a GET in
// trade-query.md and a POST form in practice (issue 4): both are served.
func (p *Product) Register(r gin.IRouter) {
	g := r.Group("/gate/1.0/payment/trade", httpapi.UseRenderer(renderPCloud), httpapi.Journaled(p.d.Journal, sandbox.ProductEmbedPay))
	g.POST("/prepare", httpapi.Handle(p.handlePrepare))
	g.POST("/query", httpapi.Handle(p.handleQuery))
	g.GET("/query", httpapi.Handle(p.handleQuery))
}
