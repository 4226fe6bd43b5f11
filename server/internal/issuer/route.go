package issuer

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Login variants: the plugin guide's login URLs, told apart by which parameters they
// carry (the plugin guide APP跳转方式 and 小程序跳转方式 1-7).
const (
	loginApp           = "app"           // wechatSignNo: launched from the App
	loginNew           = "new"           // 新办: etcProductId, accountType, carType
	loginContinuation  = "continuation"  // 车辆续办
	loginReactivate    = "reactivate"    // 重新激活
	loginResumeSigning = "resumeSigning" // 恢复签约
	loginAftersale     = "aftersale"     // 车辆售后
	loginCredential    = "credential"    // type=1: 仅获取登录凭证
)

// handleTypes are the values of login's handleType (the plugin guide 跳转参数说明 4).
var handleTypes = [...]string{loginContinuation, loginAftersale, loginReactivate, loginResumeSigning}

// pages lists the plugin's pages in the plugin guide's order.
var pages = [...]string{PageLogin, PageSignGetAuth, PageActiveDes, PageSignProtocol, PageDeviceUpgrade, PageActiveAgain}

// pathURL is where a navigation's problems with the URL as a whole are
// reported; a parameter's are at pathURL + "?" + its name.
const pathURL = "/args/url"

// urlPrefix starts every URL of the plugin's pages.
const urlPrefix = "plugin://" + Alias + "/"

// visit is a parsed navigation to one of the plugin's pages.
type visit struct {
	page    string
	variant string            // login only
	query   map[string]string // one value per parameter
}

func (v visit) get(name string) string { return v.query[name] }

// schema is the name of the schema of the visit's query.
func (v visit) schema() string {
	name := v.page
	if v.page == PageLogin {
		name = "login-" + v.variant
	}
	return schemaQueryPrefix + kebab(name) + schemaQuerySuffix
}

// kebab turns a camelCase page or variant name into the schema file's
// kebab-case ("signGetAuth" → "sign-get-auth").
func kebab(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('-')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// paramPath is where a problem with a query parameter is reported.
func paramPath(name string) string { return pathURL + "?" + name }

// parseURL reads plugin://issuer-plugin/<page>?<query>. The violations say
// what stops the page from opening at all: no such page, an undecodable
// query, a parameter given twice, a handleType the plugin does not know.
func parseURL(raw string) (visit, []sandbox.Violation) {
	rest, ok := strings.CutPrefix(raw, urlPrefix)
	if !ok {
		return visit{}, []sandbox.Violation{{Path: pathURL, Message: fmt.Sprintf(
			"must start with %s, then one of the plugin's pages: %s", urlPrefix, strings.Join(pages[:], ", "))}}
	}
	page, rawQuery, _ := strings.Cut(rest, "?")
	rawQuery, _, _ = strings.Cut(rawQuery, "#")
	if !slices.Contains(pages[:], page) {
		// WeChat's own wording for a page that does not exist:
		// `navigateTo:fail page "…" is not found` [I: by convention].
		return visit{}, []sandbox.Violation{{Path: pathURL, Message: fmt.Sprintf(
			"page %q is not found; %s's pages are %s (the plugin guide)", urlPrefix+page, Alias, strings.Join(pages[:], ", "))}}
	}
	v := visit{page: page, query: map[string]string{}}
	q, err := url.ParseQuery(rawQuery)
	var vs []sandbox.Violation
	if err != nil {
		vs = append(vs, sandbox.Violation{Path: pathURL, Message: "the query is not URL-encoded: " + err.Error()})
	}
	for name, values := range q {
		v.query[name] = values[0]
		if len(values) > 1 {
			vs = append(vs, sandbox.Violation{Path: paramPath(name), Message: fmt.Sprintf(
				"is given %d times; the plugin reads one value", len(values))})
		}
	}
	if page == PageLogin {
		var bad *sandbox.Violation
		v.variant, bad = loginVariant(v.query)
		if bad != nil {
			vs = append(vs, *bad)
		}
	}
	return v, vs
}

// loginVariant tells the plugin guide's login URLs apart: handleType names its
// variant; without one, type=1 asks for the credential only, wechatSignNo
// comes from the App, and anything else is a new application [I: the plugin guide
// lists the URLs, not the rule].
func loginVariant(q map[string]string) (string, *sandbox.Violation) {
	if h, ok := q["handleType"]; ok {
		if !slices.Contains(handleTypes[:], h) {
			return "", &sandbox.Violation{Path: paramPath("handleType"), Message: fmt.Sprintf(
				"%q is not a handleType; the plugin takes %s (the plugin guide 跳转参数说明 4)", h, strings.Join(handleTypes[:], ", "))}
		}
		return h, nil
	}
	if _, ok := q["type"]; ok {
		return loginCredential, nil
	}
	if _, ok := q["wechatSignNo"]; ok {
		return loginApp, nil
	}
	return loginNew, nil
}

// checkQuery validates the visit's query against its page's schema and
// reports each problem at its parameter.
func (p *Product) checkQuery(v visit) ([]sandbox.Violation, error) {
	return p.checkQueryAgainst(v.schema(), v)
}

// checkQueryAgainst validates the visit's query against a schema and
// reports each problem at its parameter.
func (p *Product) checkQueryAgainst(schemaName string, v visit) ([]sandbox.Violation, error) {
	doc := make(map[string]any, len(v.query))
	for k, s := range v.query {
		doc[k] = s
	}
	vs, err := p.d.Validator.Validate(schemaName, doc)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		name := strings.TrimPrefix(vs[i].Path, "/")
		if name == "" {
			vs[i].Path = pathURL
			continue
		}
		vs[i].Path = paramPath(strings.NewReplacer("~1", "/", "~0", "~").Replace(name))
	}
	return vs, nil
}

// checkHost checks what the host's app.json must say: the plugin under its
// alias with the right provider and a version (the plugin guide 插件接入) — a
// development version only in a develop build, a warning [I] — and, for the
// payment, the functional pages (the plugin guide 支付接入 2).
func (p *Product) checkHost(c sandbox.Caller, payment bool) (vs, warnings []sandbox.Violation, err error) {
	raw := c.AppJSON
	if len(raw) == 0 {
		raw = json.RawMessage(`{}`)
	}
	if vs, err = p.d.Validator.ValidateJSON(SchemaAppJSON, raw); err != nil {
		return nil, nil, err
	}
	for i := range vs {
		vs[i].Path = "/caller/appJson" + vs[i].Path
	}
	var aj struct {
		Plugins map[string]struct {
			Version string `json:"version"`
		} `json:"plugins"`
		FunctionalPages json.RawMessage `json:"functionalPages"`
	}
	_ = json.Unmarshal(raw, &aj) // the schema reported what does not fit
	if ver := aj.Plugins[Alias].Version; c.EnvVersion == "release" && strings.HasPrefix(ver, "dev-") {
		warnings = append(warnings, sandbox.Violation{Path: "/caller/appJson/plugins/" + Alias + "/version", Message: fmt.Sprintf(
			"%s is a development version of the plugin, which only a develop build can use; a release build needs a released version like 1.0.0 (inferred rule: a warning, a refusal for a strict merchant)", ver)})
	}
	if payment && !functionalPagesOn(aj.FunctionalPages) {
		// Without functional pages WeChat cannot find the host's
		// beforeRequestPayment: SOURCES.md §5 "missing file ⇒
		// callMiniProgramFunction:fail File not found".
		vs = append(vs, sandbox.Violation{Path: "/caller/appJson/functionalPages", Message: `callMiniProgramFunction:fail File not found: ` +
			`app.json must set "functionalPages": true and the root must hold functional-pages/request-payment.js exporting beforeRequestPayment (the plugin guide 支付接入)`})
	}
	return vs, warnings, nil
}

// functionalPagesOn accepts "functionalPages": true and the
// {"independent": true} form a community answer on the payment page shows
// [I: not in SOURCES.md].
func functionalPagesOn(raw json.RawMessage) bool {
	var on bool
	if json.Unmarshal(raw, &on) == nil {
		return on
	}
	var obj struct {
		Independent bool `json:"independent"`
	}
	return json.Unmarshal(raw, &obj) == nil && obj.Independent
}

// sortViolations orders violations by path, so that an answer lists them
// the same way every time.
func sortViolations(vs []sandbox.Violation) {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
}

// signingPage reports whether the session is on a page whose outcome is a
// signature: signProtocol, signGetAuth, or the resumed signing.
func signingPage(s *sandbox.Session) bool {
	v, vs := parseURL(navigateURL(s.Args))
	if len(vs) > 0 {
		return false
	}
	return v.page == PageSignProtocol || v.page == PageSignGetAuth || v.variant == loginResumeSigning
}

// navigateURL reads args.url of a plugin/navigate call.
func navigateURL(args json.RawMessage) string {
	var a struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(args, &a)
	return a.URL
}
