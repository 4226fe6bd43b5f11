package embedpay

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

const formType = "application/x-www-form-urlencoded"

// readForm returns the request's parameters: the URL query, overridden by
// an urlencoded body ("HTTP POST FORM 表单提交", SOURCES.md §8). A body in
// another media type, a malformed one, a parameter given twice or a value
// that is not UTF-8 is refused, each problem named.
func readForm(c *gin.Context) (map[string]string, error) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return nil, sandbox.Invalid("the query string does not parse", sandbox.Violation{Path: "", Message: "query string: " + err.Error()})
	}
	values := map[string][]string(q)
	if body := httpapi.Body(c); len(body) > 0 && c.Request.Method != http.MethodGet {
		if ct := c.GetHeader("Content-Type"); ct != "" {
			if mt, _, _ := mime.ParseMediaType(ct); mt != formType {
				return nil, &sandbox.Error{Code: sandbox.CodeUnsupported, Message: fmt.Sprintf(
					"Content-Type is %q: P云 takes a form, %s, signed with MD5 (SOURCES.md §8)", ct, formType)}
			}
		}
		b, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, sandbox.Invalid("the form body does not parse", sandbox.Violation{Path: "", Message: "form body: " + err.Error()})
		}
		for k, v := range b {
			values[k] = v
		}
	}
	params := make(map[string]string, len(values))
	var vs []sandbox.Violation
	for k, v := range values {
		switch {
		case len(v) > 1:
			vs = append(vs, sandbox.Violation{Path: "/" + k, Message: fmt.Sprintf("is given %d times; P云 signs a single value", len(v))})
		case !utf8.ValidString(k) || !utf8.ValidString(v[0]):
			vs = append(vs, sandbox.Violation{Path: "/" + strings.ToValidUTF8(k, "\uFFFD"), Message: "is not valid UTF-8"})
		default:
			params[k] = v[0]
		}
	}
	if len(vs) > 0 {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
		return nil, sandbox.Invalid("bad parameters", vs...)
	}
	return params, nil
}

// fieldRules explain a pattern a parameter failed better than the pattern
// itself does.
var fieldRules = map[string]string{
	"value":       "must be a positive whole number of fen (分), digits only, e.g. \"100\" for ¥1.00",
	"expire_time": "must be a UTC time like \"2021-09-02T09:36:46.020Z\" (yyyy-MM-dd'T'HH:mm:ss.SSS'Z', milliseconds optional)",
	"notify_url":  "must be an http:// or https:// URL",
	"pay_order":   "must be 1 to 64 letters, digits or _-|*",
	"pay_serial":  "must be P云's pay_serial: digits only",
	"timestamp":   "must be the time in milliseconds since 1970, digits only",
	"sign":        "must be 32 hex digits (MD5)",
	"app_id":      "must be the app_id P云 issued (GET /sandbox/v1/merchants/{mchid}/credentials: pcloud_app_id)",
}

// readParams reads the request's parameters and checks them against the
// schema; a request that does not parse is an error, what the schema finds
// is returned for the handler to add its own checks to.
func (p *Product) readParams(c *gin.Context, schemaName string) (map[string]string, []sandbox.Violation, error) {
	params, err := readForm(c)
	if err != nil {
		return nil, nil, err
	}
	vs, err := p.validateForm(schemaName, params)
	return params, vs, err
}

// validateForm checks params against the schema and rewrites pattern
// failures into plain rules that quote the value.
func (p *Product) validateForm(schemaName string, params map[string]string) ([]sandbox.Violation, error) {
	doc := make(map[string]any, len(params))
	for k, v := range params {
		doc[k] = v
	}
	vs, err := p.d.Validator.Validate(schemaName, doc)
	if err != nil {
		return nil, err
	}
	for i, v := range vs {
		field := strings.TrimPrefix(v.Path, "/")
		if rule, ok := fieldRules[field]; ok && strings.HasPrefix(v.Message, "must match the pattern") {
			vs[i].Message = fmt.Sprintf("%s; got %q", rule, params[field])
		}
	}
	return vs, nil
}

// authenticate finds the merchant by app_id and checks the sign and the
// merchant number, returning the merchant (nil when app_id is unknown) and
// every problem. A sign problem carries the expected string-to-sign, secret
// masked, in diagnostics.
func (p *Product) authenticate(params map[string]string) (*sandbox.Merchant, []sandbox.Violation, string) {
	appID := params["app_id"]
	if appID == "" {
		return nil, nil, "" // the schema reports it
	}
	m, ok := p.d.Merchants.ByPCloudAppID(appID)
	if !ok {
		return nil, []sandbox.Violation{{Path: "/app_id", Message: fmt.Sprintf(
			"%q is not a sandbox merchant's P云 app_id (GET /sandbox/v1/merchants/{mchid}/credentials: pcloud_app_id)", appID)}}, ""
	}
	var vs []sandbox.Violation
	var diag string
	// A sign that is not 32 hex digits is the schema's to report.
	if sign := params["sign"]; len(sign) == 32 {
		if err := wxsign.PCloudVerify(params, m.PCloudAppSecret, sign); err != nil {
			e := sandbox.AsError(err)
			vs = append(vs, sandbox.Violation{Path: "/sign", Message: e.Message})
			diag = e.Diagnostics
		}
	}
	if mch, ok := params["merchant"]; ok && mch != m.PCloudMerchant {
		vs = append(vs, sandbox.Violation{Path: "/merchant", Message: fmt.Sprintf(
			"%q is not the P云 merchant of app_id %s; its merchant is %q (pcloud_merchant)", mch, appID, m.PCloudMerchant)})
	}
	return m, vs, diag
}

// paramError is the answer to bad parameters: P云's 400 with every problem
// in the hint, in the endpoint's wording. A sign mismatch alone is
// "签名验证失败", an unknown app_id alone "应用不存在" [I].
func paramError(vs []sandbox.Violation, diag string, required func(string) string) *sandbox.Error {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
	msg, code := msgParam, sandbox.CodeInvalid
	if len(vs) == 1 {
		switch {
		case vs[0].Path == "/sign" && diag != "":
			msg, code = msgSign, sandbox.CodeUnauthorized
		case vs[0].Path == "/app_id" && strings.Contains(vs[0].Message, "is not a sandbox merchant"):
			msg, code = msgUnknownApp, sandbox.CodeUnauthorized
		}
	}
	e := failure(code, codeParam, msg, hintOf(vs, required), vs...)
	e.Diagnostics = diag
	return e
}
