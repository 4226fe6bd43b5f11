// Package wxpayv2 is the WeChat Pay API v2 dialect every v2 endpoint shares:
// the <xml> request body read with a size limit and every problem named, the
// return_code / result_code / err_code answer, and HMAC-SHA256 (or MD5)
// signatures both ways through wxsign. It knows nothing of any product.
//
// v2 has two kinds of failure (SOURCES.md §3, the v2 common fields):
// return_code FAIL with a return_msg is a communication failure — the body
// is not XML, a parameter is malformed, the signature does not verify — and
// is never signed; return_code SUCCESS with result_code FAIL and an err_code
// is a business failure, answered signed like a success.
package wxpayv2

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// MaxBody is the largest v2 body read: real requests are a few hundred
// bytes, so 64 KiB bounds memory with room to spare [I].
const MaxBody = 64 << 10

// maxParams bounds how many elements a body may hold [I]: no v2 request
// has more than a few dozen.
const maxParams = 200

// The two values of return_code and result_code.
const (
	Success = "SUCCESS"
	Fail    = "FAIL"
)

// return_msg texts of communication failures. "签名错误" and "参数格式校验错误"
// are the v2 common-field examples ("签名失败 / 参数格式校验错误", SOURCES.md §3
// via the SDK models); "XML格式错误" is the description of v2's
// XML_FORMAT_ERROR; "OK" is what a success carries.
const (
	MsgOK          = "OK"
	MsgSignError   = "签名错误"
	MsgParamError  = "参数格式校验错误"
	MsgXMLError    = "XML格式错误"
	MsgSystemError = "系统错误" // [I] v2's SYSTEMERROR description
)

// CodeFrequencyLimited is v2's err_code for a call refused for its rate
// (a rate_limited API fault); MsgFrequencyLimited its err_code_des, "频率限制"
// in v2's common error table as the SDKs copy it [I: not on the querystate
// page].
const (
	CodeFrequencyLimited = "FREQUENCY_LIMITED"
	MsgFrequencyLimited  = "频率限制"
)

// CodeXMLFormatError marks an error whose body is not a v2 XML document, so
// that Render answers return_msg "XML格式错误".
const CodeXMLFormatError = "XML_FORMAT_ERROR"

// The sandbox's own elements in an answer: what was wrong, path by path,
// and the string-to-sign it expected (key masked). v2 parsers ignore
// elements they do not know.
const (
	FieldDetail      = "sandbox_detail"
	FieldDiagnostics = "sandbox_diagnostics"
)

// contentType is the answer's media type [I]: WeChat Pay's v2 host does
// not document one.
const contentType = "text/xml; charset=utf-8"

// ParseXML reads a v2 request body — one <xml> element whose children are
// leaf elements holding text or CDATA — into a map. Every problem comes
// back as a violation: an empty, oversized, non-UTF-8 or malformed body (at
// ""), a root other than <xml>, a DOCTYPE, a parameter holding elements or
// given twice (at "/<name>").
func ParseXML(body []byte) (map[string]string, []sandbox.Violation) {
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return nil, []sandbox.Violation{{Message: "the body is empty; a v2 request is <xml><name>value</name>…</xml>"}}
	case len(body) > MaxBody:
		return nil, []sandbox.Violation{{Message: fmt.Sprintf("the body is %d bytes, over the limit of %d", len(body), MaxBody)}}
	case !utf8.Valid(body):
		return nil, []sandbox.Violation{{Message: "the body is not valid UTF-8: v2 requests are UTF-8 XML"}}
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	params := map[string]string{}
	var vs []sandbox.Violation
	depth, roots := 0, 0
	var name string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, append(vs, sandbox.Violation{Message: "the body is not well-formed XML: " + err.Error()})
		}
		switch t := tok.(type) {
		case xml.Directive:
			// No entity is ever expanded: a DOCTYPE has no place in v2.
			return nil, []sandbox.Violation{{Message: "the body holds a <!DOCTYPE> or other directive; v2 requests are plain <xml>…</xml>"}}
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				roots++
				if t.Name.Local != "xml" {
					return nil, []sandbox.Violation{{Message: fmt.Sprintf("the root element is <%s>; v2 requests are <xml>…</xml>", t.Name.Local)}}
				}
				if roots > 1 {
					return nil, []sandbox.Violation{{Message: "the body holds more than one root element"}}
				}
			case 2:
				name = t.Name.Local
				text.Reset()
			case 3:
				vs = append(vs, sandbox.Violation{Path: "/" + name, Message: fmt.Sprintf(
					"holds the element <%s>; v2 parameters are text or CDATA only", t.Name.Local)})
			}
		case xml.CharData:
			if depth == 2 {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 2 {
				if _, dup := params[name]; dup {
					vs = append(vs, sandbox.Violation{Path: "/" + name, Message: "is given more than once"})
				} else if len(params) >= maxParams {
					return nil, append(vs, sandbox.Violation{Message: fmt.Sprintf("the body holds more than %d parameters", maxParams)})
				} else {
					params[name] = text.String()
				}
			}
			depth--
		}
	}
	if roots == 0 {
		return nil, []sandbox.Violation{{Message: "the body is not XML: it holds no <xml> element"}}
	}
	return params, vs
}

// EncodeXML writes params as v2 does: <xml>, one element per parameter in
// name order, each value in CDATA [I: real answers put strings in CDATA and
// some numbers bare; every v2 parser reads both].
func EncodeXML(params map[string]string) []byte {
	keys := make([]string, 0, len(params))
	size := len("<xml></xml>")
	for k, v := range params {
		keys = append(keys, k)
		size += 2*len(k) + len(v) + len("<></><![CDATA[]]>")
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, "<xml>"...)
	for _, k := range keys {
		b = append(b, '<')
		b = append(b, k...)
		b = append(b, "><![CDATA["...)
		// "]]>" cannot stand inside CDATA: close it and reopen.
		b = append(b, strings.ReplaceAll(params[k], "]]>", "]]]]><![CDATA[>")...)
		b = append(b, "]]></"...)
		b = append(b, k...)
		b = append(b, '>')
	}
	return append(b, "</xml>"...)
}

// Signer is what a verified request lets the answer carry and be signed
// with: the merchant's appid and mch_id, its API v2 key and the request's
// sign_type.
type Signer struct {
	AppID    string
	MchID    string
	Key      string
	SignType string
}

const keySigner = "mpsandbox.wxpayv2.signer"

// Authenticated says the request's signature verified: from here on,
// errors carrying an err_code (Error.Upstream) are business failures,
// answered signed.
func Authenticated(c *gin.Context, s Signer) { c.Set(keySigner, s) }

func signerOf(c *gin.Context) (Signer, bool) {
	v, ok := c.Get(keySigner)
	s, _ := v.(Signer)
	return s, ok
}

// Verify checks the request's sign with the key and sign type, returning a
// CodeUnauthorized error (rendered "签名错误") whose Diagnostics shows the
// expected string-to-sign with the key masked.
func Verify(params map[string]string, key, signType string) error {
	return wxsign.V2Verify(params, key, signType, params["sign"])
}

// Respond answers a verified request with a success: return_code and
// result_code SUCCESS, the signer's appid and mch_id, a fresh nonce_str and
// the sign over everything, plus params.
func Respond(c *gin.Context, params map[string]string) error {
	s, ok := signerOf(c)
	if !ok {
		return sandbox.Errorf(sandbox.CodeInternal, "wxpayv2.Respond before Authenticated")
	}
	params["return_code"], params["return_msg"], params["result_code"] = Success, MsgOK, Success
	return s.write(c, params)
}

// write completes params with the signer's fields, signs and sends them.
func (s Signer) write(c *gin.Context, params map[string]string) error {
	params["appid"], params["mch_id"], params["nonce_str"] = s.AppID, s.MchID, wxsign.NonceStr(32)
	delete(params, "sign")
	sign, err := wxsign.V2Sign(params, s.Key, s.SignType)
	if err != nil {
		return err
	}
	if httpapi.SignatureSpoiled(c) {
		sign = wxsign.Spoil(sign)
	}
	params["sign"] = sign
	c.Data(http.StatusOK, contentType, EncodeXML(params))
	return nil
}

// Business returns a business failure: rendered, once the request is
// Authenticated, as result_code FAIL with errCode and errCodeDes (the
// real err_code_des), signed; fields explain it in sandbox_detail.
func Business(errCode, errCodeDes string, fields ...sandbox.Violation) *sandbox.Error {
	return &sandbox.Error{Code: sandbox.CodeState, Upstream: errCode, Message: errCodeDes, Fields: fields}
}

// Render is the httpapi.Renderer of v2 endpoints. v2 answers every failure
// with HTTP 200 and the failure in the body [I: v2 documents bodies only and
// its SDKs read return_code whatever the status]. A bad signature is
// return_msg "签名错误"; an error with an err_code after Authenticated is a
// signed result_code FAIL; a body that is not XML is "XML格式错误"; anything
// else malformed is "参数格式校验错误". Every violation and the signature
// diagnostics go in the sandbox_* elements.
func Render(c *gin.Context, e *sandbox.Error) {
	if e.Code == sandbox.CodeRateLimited && e.Upstream == "" {
		r := *e
		r.Upstream, r.Message = CodeFrequencyLimited, MsgFrequencyLimited
		e = &r
	}
	params := map[string]string{}
	if d := detail(e); d != "" {
		params[FieldDetail] = d
	}
	if e.Diagnostics != "" {
		params[FieldDiagnostics] = e.Diagnostics
	}
	s, signed := signerOf(c)
	if e.Code != sandbox.CodeUnauthorized && signed && e.Upstream != "" && e.Upstream != CodeXMLFormatError {
		params["return_code"], params["return_msg"] = Success, MsgOK
		params["result_code"], params["err_code"], params["err_code_des"] = Fail, e.Upstream, e.Message
		if err := s.write(c, params); err == nil {
			return
		}
		clear(params) // the key cannot sign: fall back to an unsigned FAIL
	}
	params["return_code"] = Fail
	switch {
	case e.Code == sandbox.CodeUnauthorized:
		params["return_msg"] = MsgSignError
	case e.Upstream == CodeXMLFormatError:
		params["return_msg"] = MsgXMLError
	case e.Code == sandbox.CodeInternal || e.Code == sandbox.CodeUnavailable:
		params["return_msg"] = MsgSystemError
	case e.Upstream != "":
		params["return_msg"] = e.Message
	default:
		params["return_msg"] = MsgParamError
	}
	c.Data(http.StatusOK, contentType, EncodeXML(params))
}

// detail is the sandbox's explanation: the message — unless it is the
// err_code_des or return_msg of the answer already — then each violation.
func detail(e *sandbox.Error) string {
	var b strings.Builder
	if e.Upstream == "" || e.Upstream == CodeXMLFormatError || e.Code == sandbox.CodeUnauthorized {
		b.WriteString(e.Message)
	}
	for _, f := range e.Fields {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		if f.Path != "" {
			b.WriteString(f.Path)
			b.WriteString(": ")
		}
		b.WriteString(f.Message)
	}
	return b.String()
}

// Read parses the request body of a v2 endpoint and notes it in the
// journal; a body that is not v2 XML is an XML_FORMAT_ERROR naming every
// problem.
func Read(c *gin.Context) (map[string]string, error) {
	params, vs := ParseXML(httpapi.Body(c))
	if params == nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInvalid, Upstream: CodeXMLFormatError,
			Message: "the body is not a v2 XML request", Fields: vs}
	}
	if len(vs) > 0 {
		return nil, sandbox.Invalid("the body's parameters are malformed", vs...)
	}
	return params, nil
}

// AsDocument turns parameters into a JSON-like document for schema
// validation: every v2 value is a string.
func AsDocument(params map[string]string) map[string]any {
	doc := make(map[string]any, len(params))
	for k, v := range params {
		doc[k] = v
	}
	return doc
}
