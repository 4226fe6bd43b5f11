package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The router's routes under /sandbox/v1, /miniprogram/v1 and the probes are
// the OpenAPI document's: every route is in the document and every documented
// operation is a route.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := start(t)
	doc := openAPI(t, s)
	type route struct{ method, path string }
	var routes []route
	for _, r := range s.engine.Routes() {
		if r.Method == http.MethodHead || !inScope(r.Path) {
			continue
		}
		routes = append(routes, route{r.Method, r.Path})
	}
	if len(routes) < 30 {
		t.Fatalf("only %d routes in scope: the walk is broken", len(routes))
	}
	paths := doc["paths"].(map[string]any)
	param := regexp.MustCompile(`\{[^}]+\}`)
	// ginPattern matches the paths a gin route serves.
	ginPattern := func(p string) *regexp.Regexp {
		parts := strings.Split(p, "/")
		for i, s := range parts {
			switch {
			case strings.HasPrefix(s, ":"):
				parts[i] = "[^/]+"
			case strings.HasPrefix(s, "*"):
				parts[i] = ".+"
			default:
				parts[i] = regexp.QuoteMeta(s)
			}
		}
		return regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
	}
	// A documented path, its parameters filled in as a client fills them.
	sample := func(p string) string { return param.ReplaceAllString(p, "x") }

	for _, r := range routes {
		re := ginPattern(r.path)
		found := false
		for p, item := range paths {
			if _, ok := item.(map[string]any)[strings.ToLower(r.method)]; ok && re.MatchString(sample(p)) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s %s is served but not in the OpenAPI document", r.method, r.path)
		}
	}
	for p, item := range paths {
		for m := range item.(map[string]any) {
			served := false
			for _, r := range routes {
				if strings.EqualFold(r.method, m) && ginPattern(r.path).MatchString(sample(p)) {
					served = true
					break
				}
			}
			if !served {
				t.Errorf("%s %s is in the OpenAPI document but no route serves it", strings.ToUpper(m), p)
			}
		}
	}
}

func inScope(p string) bool {
	return strings.HasPrefix(p, "/sandbox/v1/") || strings.HasPrefix(p, "/miniprogram/v1/") ||
		p == "/healthz" || p == "/readyz" || p == "/version"
}

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openAPI fetches the document the server serves.
func openAPI(t *testing.T, s *Server) map[string]any {
	t.Helper()
	resp, err := http.Get(s.URL + "/sandbox/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sandbox/v1/openapi.json: %d, %v", resp.StatusCode, err)
	}
	return doc
}

// Real answers of a short session — a merchant, a vehicle user, a jump to
// the repayment mini-program, its return, the journal, refusals — each
// match the document's schema for their operation and status.
func TestOpenAPIMatchesRealAnswers(t *testing.T) {
	s := start(t)
	doc := openAPI(t, s)
	raw, _ := json.Marshal(doc)
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource("mem:///openapi.json", bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	// check sends a request and validates the answer against the schema of
	// (template, method, status) — the status's own response, else default.
	check := func(method, template, path string, body any, wantStatus int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			rd = bytes.NewReader(j)
		}
		req, _ := http.NewRequest(method, s.URL+path, rd)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, got)
		}
		responses := doc["paths"].(map[string]any)[template].(map[string]any)[strings.ToLower(method)].(map[string]any)["responses"].(map[string]any)
		key := strconv.Itoa(wantStatus)
		if _, ok := responses[key]; !ok {
			key = "default"
		}
		ptr := "mem:///openapi.json#/paths/" + strings.ReplaceAll(strings.ReplaceAll(template, "~", "~0"), "/", "~1") +
			"/" + strings.ToLower(method) + "/responses/" + key
		if r, ok := responses[key].(map[string]any)["$ref"].(string); ok {
			ptr = "mem:///openapi.json" + r
		}
		sch, err := c.Compile(ptr + "/content/application~1json/schema")
		if err != nil {
			t.Fatalf("%s %s: the document's schema for %s: %v", method, template, key, err)
		}
		var v any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, got)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s %s (%d) does not match the document: %v\n%s", method, path, wantStatus, err, got)
		}
		out, _ := v.(map[string]any)
		return out
	}
	const demo = "1230000109"
	check("GET", "/healthz", "/healthz", nil, 200)
	check("GET", "/version", "/version", nil, 200)
	check("GET", "/sandbox/v1/merchants", "/sandbox/v1/merchants", nil, 200)
	created := check("POST", "/sandbox/v1/merchants", "/sandbox/v1/merchants", map[string]any{"name": "openapi"}, 201)
	mchid := created["mchid"].(string)
	check("GET", "/sandbox/v1/merchants/{mchid}", "/sandbox/v1/merchants/"+mchid, nil, 200)
	check("PATCH", "/sandbox/v1/merchants/{mchid}", "/sandbox/v1/merchants/"+mchid, map[string]any{"notify_hosts": []string{"localhost:9000"}}, 200)
	check("POST", "/sandbox/v1/merchants/{mchid}/token", "/sandbox/v1/merchants/"+mchid+"/token", map[string]any{}, 200)
	check("GET", "/sandbox/v1/merchants/{mchid}", "/sandbox/v1/merchants/1999999999", nil, 404)
	check("PATCH", "/sandbox/v1/merchants/{mchid}", "/sandbox/v1/merchants/"+mchid, map[string]any{"bogus": 1}, 400)
	check("GET", "/sandbox/v1/merchants/{mchid}/credentials", "/sandbox/v1/merchants/"+demo+"/credentials", nil, 200)
	check("PUT", "/sandbox/v1/merchants/{mchid}/scenarios/{product}", "/sandbox/v1/merchants/"+demo+"/scenarios/embedpay", map[string]any{"id": "embedpay.failed", "once": true}, 200)
	check("GET", "/sandbox/v1/merchants/{mchid}/scenarios", "/sandbox/v1/merchants/"+demo+"/scenarios", nil, 200)
	check("DELETE", "/sandbox/v1/merchants/{mchid}/scenarios/{product}", "/sandbox/v1/merchants/"+demo+"/scenarios/embedpay", nil, 200)
	check("GET", "/sandbox/v1/scenarios", "/sandbox/v1/scenarios", nil, 200)
	check("GET", "/sandbox/v1/scenarios/{id}", "/sandbox/v1/scenarios/embedpay.paid", nil, 200)

	user := check("POST", "/sandbox/v1/vehicle-users", "/sandbox/v1/vehicle-users", map[string]any{"mchid": demo, "user_state": "OVERDUE"}, 201)
	check("GET", "/sandbox/v1/vehicle-users", "/sandbox/v1/vehicle-users?mchid="+demo, nil, 200)
	appid := check("GET", "/sandbox/v1/merchants/{mchid}", "/sandbox/v1/merchants/"+demo, nil, 200)["appid"]
	launch := check("POST", "/miniprogram/v1/navigateToMiniProgram", "/miniprogram/v1/navigateToMiniProgram", map[string]any{
		"caller": map[string]any{"appId": appid, "platform": "android", "sdkVersion": "3.4.0"},
		"args": map[string]any{"appId": "wx5e73c65404eee268", "path": "pages/invest_list/invest_list",
			"extraData": map[string]any{"appid": "wx5e73c65404eee268", "mchid": demo, "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "openid": user["openid"]}},
	}, 200)
	id := launch["session_id"].(string)
	check("GET", "/miniprogram/v1/sessions/{id}", "/miniprogram/v1/sessions/"+id, nil, 200)
	check("GET", "/miniprogram/v1/sessions/{id}/return", "/miniprogram/v1/sessions/"+id+"/return", nil, 202)
	check("POST", "/sandbox/v1/clock/advance", "/sandbox/v1/clock/advance", map[string]any{"mchid": demo, "by": "3s"}, 200)
	check("GET", "/miniprogram/v1/sessions/{id}/return", "/miniprogram/v1/sessions/"+id+"/return?wait=10s", nil, 200)
	check("GET", "/miniprogram/v1/sessions/{id}/plugin/{getter}", "/miniprogram/v1/sessions/"+id+"/plugin/getActiveResult", nil, 404)
	check("POST", "/miniprogram/v1/openBusinessView", "/miniprogram/v1/openBusinessView", map[string]any{"caller": map[string]any{"appId": appid}, "args": map[string]any{}}, 400)
	check("GET", "/sandbox/v1/sessions", "/sandbox/v1/sessions", nil, 200)
	check("GET", "/sandbox/v1/sessions/{id}", "/sandbox/v1/sessions/"+id, nil, 200)
	check("POST", "/sandbox/v1/sessions/{id}/resolve", "/sandbox/v1/sessions/"+id+"/resolve", map[string]any{"action": "pay"}, 409)
	overdue := check("POST", "/sandbox/v1/vehicle-users", "/sandbox/v1/vehicle-users", map[string]any{"mchid": demo, "user_state": "OVERDUE"}, 201)
	check("POST", "/sandbox/v1/vehicle-users/{openid}/repay", "/sandbox/v1/vehicle-users/"+overdue["openid"].(string)+"/repay", map[string]any{"mchid": demo, "action": "fail"}, 200)
	check("POST", "/sandbox/v1/vehicle-users/{openid}/repay", "/sandbox/v1/vehicle-users/"+overdue["openid"].(string)+"/repay", map[string]any{"mchid": demo}, 200)
	check("POST", "/sandbox/v1/vehicle-users/{openid}/repay", "/sandbox/v1/vehicle-users/nobody/repay", map[string]any{"mchid": demo}, 404)
	check("GET", "/sandbox/v1/parking", "/sandbox/v1/parking?mchid="+demo, nil, 200)
	check("GET", "/sandbox/v1/parking", "/sandbox/v1/parking", nil, 400)

	journal := check("GET", "/sandbox/v1/journal", "/sandbox/v1/journal?limit=5", nil, 200)
	first := journal["exchanges"].([]any)[0].(map[string]any)["id"]
	check("GET", "/sandbox/v1/journal/{id}", fmt.Sprintf("/sandbox/v1/journal/%v", first), nil, 200)
	check("GET", "/sandbox/v1/notifications", "/sandbox/v1/notifications", nil, 200)
	check("GET", "/sandbox/v1/notifications/{id}", "/sandbox/v1/notifications/nope", nil, 404)
	check("GET", "/sandbox/v1/clock", "/sandbox/v1/clock", nil, 200)
	check("GET", "/sandbox/v1/clock", "/sandbox/v1/clock?mchid="+demo, nil, 200)
	check("GET", "/sandbox/v1/schemas", "/sandbox/v1/schemas", nil, 200)
	check("POST", "/sandbox/v1/validate/{name}", "/sandbox/v1/validate/admin/clock-advance", map[string]any{"by": 3}, 200)
	report := check("GET", "/sandbox/v1/merchants/{mchid}/report", "/sandbox/v1/merchants/"+demo+"/report?since=1h", nil, 200)
	if entries, _ := report["entries"].(float64); entries == 0 {
		t.Errorf("the demo merchant's report read no journal entry: %v", report)
	}
	check("GET", "/sandbox/v1/merchants/{mchid}/report", "/sandbox/v1/merchants/"+demo+"/report?since=yesterday", nil, 400)
}
