package schema_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

func compileEmbedded(tb testing.TB) *schema.Set {
	tb.Helper()
	s, err := schema.Compile(schemas.FS)
	if err != nil {
		tb.Fatalf("Compile(schemas.FS): %v", err)
	}
	return s
}

// schemaFile is a minimal valid schema file for name with the given body
// keywords (without the braces).
func schemaFile(name, body string) *fstest.MapFile {
	src := `{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://mpsandbox.dev/schemas/` +
		name + `.schema.json"`
	if body != "" {
		src += ", " + body
	}
	return &fstest.MapFile{Data: []byte(src + "}")}
}

func TestCanCompileEmbeddedSchemas(t *testing.T) {
	s := compileEmbedded(t)
	names := s.Names()
	for _, want := range []string{
		"scenario", "common/errmsg-result", "common/onshow-options", "common/v3-error", "common/v2-error",
		"common/pcloud-error", "common/admin-error", "common/violation", "miniprogram/call", "admin/merchant-create",
		"fixtures/openid", "fixtures/mobile", "fixtures/plate-num", "fixtures/obu", "fixtures/card",
	} {
		src, ok := s.Source(want)
		if !ok {
			t.Errorf("Source(%q) missing; names: %v", want, names)
			continue
		}
		var head struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(src, &head); err != nil || head.ID != schema.BaseURL+want+schema.Suffix {
			t.Errorf("Source(%q) $id = %q (err %v), want %q", want, head.ID, err, schema.BaseURL+want+schema.Suffix)
		}
	}
	if !sortedUnique(names) {
		t.Errorf("Names() = %v, want sorted and unique", names)
	}
	if _, ok := s.Source("nope"); ok {
		t.Error(`Source("nope") found a schema`)
	}
}

func sortedUnique(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

func TestCompileRejectsBrokenSchemas(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		want []string // substrings of the error
	}{
		{
			name: "invalid JSON",
			fsys: fstest.MapFS{"a.schema.json": {Data: []byte(`{"$schema": `)}},
			want: []string{"schemas/a.schema.json: invalid JSON"},
		},
		{
			name: "$id does not match the path",
			fsys: fstest.MapFS{"a/b.schema.json": schemaFile("a/c", "")},
			want: []string{"schemas/a/b.schema.json: $id is", "a/b.schema.json"},
		},
		{
			name: "another draft",
			fsys: fstest.MapFS{"a.schema.json": {Data: []byte(
				`{"$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://mpsandbox.dev/schemas/a.schema.json"}`)}},
			want: []string{"schemas/a.schema.json: $schema is"},
		},
		{
			name: "keyword of the wrong type",
			fsys: fstest.MapFS{"a.schema.json": schemaFile("a", `"type": 5`)},
			want: []string{"schemas/a.schema.json:", "/type"},
		},
		{
			name: "reference to a schema outside the set",
			fsys: fstest.MapFS{"a.schema.json": schemaFile("a", `"$ref": "missing.schema.json"`)},
			want: []string{"schemas/a.schema.json:", "missing.schema.json"},
		},
		{
			name: "every broken file is named",
			fsys: fstest.MapFS{
				"a.schema.json": schemaFile("a", `"minLength": "x"`),
				"b.schema.json": schemaFile("b", `"type": "object"`),
				"c.schema.json": {Data: []byte(`[`)},
			},
			want: []string{"schemas/a.schema.json:", "schemas/c.schema.json:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := schema.Compile(tt.fsys)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadCompilesOnFirstUse(t *testing.T) {
	fsys := fstest.MapFS{
		"good.schema.json":   schemaFile("good", `"type": "string"`),
		"broken.schema.json": schemaFile("broken", `"minLength": "x"`),
	}
	s, err := schema.Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v, want the header checks only", err)
	}
	if got, err := s.ValidateJSON("good", []byte(`1`)); err != nil || len(got) != 1 {
		t.Errorf("good: %v, %v; want one violation", got, err)
	}
	for i := 0; i < 2; i++ { // the failure is kept, not retried
		_, err := s.ValidateJSON("broken", []byte(`"x"`))
		if !sandbox.IsCode(err, sandbox.CodeInternal) || !strings.Contains(err.Error(), `schema "broken" does not compile`) {
			t.Errorf("broken: err = %v, want CodeInternal naming the schema", err)
		}
	}
	if _, err := schema.Load(fstest.MapFS{"a.schema.json": schemaFile("b", "")}); err == nil ||
		!strings.Contains(err.Error(), "schemas/a.schema.json: $id is") {
		t.Errorf("Load with a wrong $id: err = %v, want it named", err)
	}
}

func TestLoadIsSafeForConcurrentUse(t *testing.T) {
	s, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	names := s.Names()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, name := range names {
				if _, err := s.ValidateJSON(name, []byte(`{}`)); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestCompileIgnoresOtherFiles(t *testing.T) {
	s, err := schema.Compile(fstest.MapFS{
		"schemas.go":           {Data: []byte("package schemas")},
		"x/a.schema.json":      schemaFile("x/a", `"type": "string"`),
		"x/notes.json":         {Data: []byte(`not json`)},
		"x/y/deep.schema.json": schemaFile("x/y/deep", `"$ref": "../a.schema.json"`),
	})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if got, want := s.Names(), []string{"x/a", "x/y/deep"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	got, err := s.ValidateJSON("x/y/deep", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []sandbox.Violation{{Path: "", Message: "expected string, but got number"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("violations = %v, want %v", got, want)
	}
}

const validCall = `{"caller": {"appId": "wx0123456789abcdef", "platform": "ios", "wechatVersion": "8.0.50",
	"sdkVersion": "3.4.0", "envVersion": "develop", "appJson": {"plugins": {}}, "scenario": "payscore.confirm"},
	"args": {"businessType": "wxpayScoreUse", "extraData": {"mch_id": "1230000109"}}}`

func TestValidate(t *testing.T) {
	s := compileEmbedded(t)
	tests := []struct {
		name   string
		schema string
		doc    string
		want   []sandbox.Violation
	}{
		{name: "valid call", schema: "miniprogram/call", doc: validCall},
		{
			name: "missing properties are reported at their own path", schema: "miniprogram/call", doc: `{"caller": {}}`,
			want: []sandbox.Violation{{Path: "/args", Message: "is required"}, {Path: "/caller/appId", Message: "is required"}},
		},
		{
			name: "every violation, sorted by path", schema: "miniprogram/call",
			doc: `{"caller": {"appId": 1, "foo": 2, "platform": "symbian"}, "args": [], "bar": true}`,
			want: []sandbox.Violation{
				{Path: "/args", Message: "expected object, but got array"},
				{Path: "/bar", Message: `additional property "bar" is not allowed`},
				{Path: "/caller/appId", Message: "expected string, but got number"},
				{Path: "/caller/foo", Message: `additional property "foo" is not allowed`},
				{Path: "/caller/platform", Message: `value must be one of "ios", "android", "ohos", "devtools", "windows", "mac", "alipay"`},
			},
		},
		{
			name: "property names are escaped as JSON pointer tokens", schema: "miniprogram/call",
			doc: `{"caller": {"appId": "wx0123456789abcdef", "a/b~c": 1, "车牌 号": 2}, "args": {}}`,
			want: []sandbox.Violation{
				{Path: "/caller/a~1b~0c", Message: `additional property "a/b~c" is not allowed`},
				{Path: "/caller/车牌 号", Message: `additional property "车牌 号" is not allowed`},
			},
		},
		{
			name: "pattern", schema: "miniprogram/call", doc: `{"caller": {"appId": "wxNOPE"}, "args": {}}`,
			want: []sandbox.Violation{{Path: "/caller/appId", Message: `must match the pattern ^(wx[0-9a-f]{16}|20[0-9]{14})$`}},
		},
		{
			name: "reference to another file", schema: "admin/merchant-create", doc: `{"mchid": "12", "appid": "wx0123456789abcdef"}`,
			want: []sandbox.Violation{{Path: "/mchid", Message: `must match the pattern ^[1-9][0-9]{7,11}$`}},
		},
		{
			name: "anyOf of required properties", schema: "scenario",
			doc:  `{"id": "issuer.x", "product": "issuer", "title": "t", "mode": "manual", "magic": [{"field": "a"}]}`,
			want: []sandbox.Violation{{Path: "/magic/0", Message: `needs one of "equals" or "prefix"`}},
		},
		{
			name: "false schema and if-then", schema: "scenario",
			doc: `{"id": "payscore.x", "product": "payscore", "title": "t", "user": {"action": "pay"},
				"magic": [{"field": "a", "equals": "1", "prefix": "2"}]}`,
			want: []sandbox.Violation{
				{Path: "/magic/0/prefix", Message: "is not allowed here"},
				{Path: "/user/action", Message: `value must be one of "confirm", "confirm_back_icon", "cancel", "expired"`},
			},
		},
		{
			name: "counts", schema: "scenario",
			doc:  `{"id": "embedpay.x", "product": "embedpay", "title": "t", "mode": "manual", "timeline": [{"after": "1s", "set": {}}]}`,
			want: []sandbox.Violation{{Path: "/timeline/0/set", Message: "must have at least 1 properties, but has 0"}},
		},
		{
			name: "not", schema: "common/pcloud-error", doc: `{"code": "1001", "message": "ok"}`,
			want: []sandbox.Violation{{Path: "/code", Message: "is not allowed here"}},
		},
		{
			name: "else branch", schema: "common/v2-error", doc: `{"return_code": "SUCCESS", "result_code": "SUCCESS"}`,
			want: []sandbox.Violation{{Path: "/err_code", Message: "is required"}, {Path: "/result_code", Message: `value must be "FAIL"`}},
		},
		{
			name: "root type", schema: "common/admin-error", doc: `"oops"`,
			want: []sandbox.Violation{{Path: "", Message: "expected object, but got string"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ValidateJSON(tt.schema, []byte(tt.doc))
			if err != nil {
				t.Fatalf("ValidateJSON: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ValidateJSON violations:\ngot  %q\nwant %q", got, tt.want)
			}
			// Validate on the decoded document agrees.
			doc, v := schema.Decode([]byte(tt.doc))
			if v != nil {
				t.Fatalf("Decode: %v", v)
			}
			got, err = s.Validate(tt.schema, doc)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate violations:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestValidateAlternatives(t *testing.T) {
	s, err := schema.Compile(fstest.MapFS{
		"any.schema.json": schemaFile("any", `"anyOf": [{"type": "string"}, {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}]`),
		"one.schema.json": schemaFile("one", `"oneOf": [{"type": "number"}, {"minimum": 0}]`),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, schema, doc, want string
	}{
		{"no branch matches", "any", `5`, "must match one of the alternatives: expected string, but got number; or expected object, but got number"},
		{"deeper leaves are relative", "any", `{"a": "x"}`, "must match one of the alternatives: expected string, but got object; or /a expected integer, but got string"},
		{"two branches match", "one", `5`, "must match exactly one alternative, but it matches schemas at indexes 0 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ValidateJSON(tt.schema, []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if want := []sandbox.Violation{{Path: "", Message: tt.want}}; !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestValidateOrderIsStable(t *testing.T) {
	s := compileEmbedded(t)
	doc := []byte(`{"caller": {"appId": "x", "a": 1, "b": 2, "c": 3, "d": 4}, "e": 1, "f": 2, "g": 3}`)
	first, _ := s.ValidateJSON("miniprogram/call", doc)
	if len(first) != 9 {
		t.Fatalf("got %d violations, want 9: %v", len(first), first)
	}
	for i := 0; i < 50; i++ {
		got, _ := s.ValidateJSON("miniprogram/call", doc)
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d: %v, want %v", i, got, first)
		}
	}
}

func TestValidateJSONMalformed(t *testing.T) {
	s := compileEmbedded(t)
	tests := []struct {
		name, doc, want string
	}{
		{"empty", ``, "invalid JSON: the body is empty"},
		{"whitespace only", " \n", "invalid JSON: the body is empty"},
		{"syntax", `{"caller": x}`, "invalid JSON at byte offset 11: invalid character 'x' looking for beginning of value"},
		{"truncated", `{"caller": {`, "invalid JSON at byte offset 12: unexpected end of input"},
		{"trailing data", "{} \n {}", "invalid JSON at byte offset 5: unexpected data after the document"},
		{"trailing garbage", `{}}`, "invalid JSON at byte offset 2: unexpected data after the document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ValidateJSON("miniprogram/call", []byte(tt.doc))
			if err != nil {
				t.Fatalf("ValidateJSON: %v, want violations", err)
			}
			if want := []sandbox.Violation{{Path: "", Message: tt.want}}; !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// TestDecodeMembersKeepsEachMemberAsSent: the members are the bytes the
// caller sent (spacing, key order and number spelling inside a value
// kept), the document is Decode's, and whatever is not a well-formed
// object gets exactly Decode's answer and no members.
func TestDecodeMembersKeepsEachMemberAsSent(t *testing.T) {
	raw := []byte(` { "args" : { "z": 1.50, "a" : [1, 2] } ,"caller":{"appId":"wx1"}, "n": 7 ,"args":{"b" : true}} `)
	doc, members, bad := schema.DecodeMembers(raw)
	if bad != nil {
		t.Fatalf("violation %v", bad)
	}
	wantMembers := map[string][]byte{"args": []byte(`{"b" : true}`), "caller": []byte(`{"appId":"wx1"}`), "n": []byte(`7`)}
	if !reflect.DeepEqual(members, wantMembers) {
		t.Errorf("members %q, want %q (a repeated key keeps its last value)", members, wantMembers)
	}
	whole, _ := schema.Decode(raw)
	if !reflect.DeepEqual(doc, whole) {
		t.Errorf("document %#v, Decode gives %#v", doc, whole)
	}
	// Every member's bytes decode to the document's value, whatever the
	// value, its spacing or its escapes.
	for _, in := range []string{`{}`, ` {"n":7}`, `{"n":-1.5e3,"t":true,"f":false,"z":null}`, "{\"a\\u0062\":1,\"c\":\"x\\\"y}\"}",
		`{"o":{"s":"]}\\","a":[{},[],"{"]},"e":[] }`, "{\n\t\"k\"\r\n:\n\"v\"\n}"} {
		doc, members, bad := schema.DecodeMembers([]byte(in))
		obj, _ := doc.(map[string]any)
		if bad != nil || len(members) != len(obj) {
			t.Errorf("DecodeMembers(%q) = %#v, %q, %v", in, doc, members, bad)
			continue
		}
		for k, v := range obj {
			got, bad := schema.Decode(members[k])
			if bad != nil || !reflect.DeepEqual(got, v) {
				t.Errorf("DecodeMembers(%q): member %q is %q, decoding to %#v (%v); the document has %#v", in, k, members[k], got, bad, v)
			}
		}
	}
	for _, in := range []string{``, ` `, `[1,2]`, `"s"`, `{"caller": x}`, `{"caller": {`, `{"a" 1}`, `{1:2}`, "{} \n {}", `{}}`, `{"a":1,}`} {
		doc, members, bad := schema.DecodeMembers([]byte(in))
		wantDoc, wantBad := schema.Decode([]byte(in))
		if members != nil || !reflect.DeepEqual(doc, wantDoc) || !reflect.DeepEqual(bad, wantBad) {
			t.Errorf("DecodeMembers(%q) = %#v, %q, %v; want Decode's %#v, %v and no members", in, doc, members, bad, wantDoc, wantBad)
		}
	}
}

func TestValidateKeepsLargeIntegers(t *testing.T) {
	s, err := schema.Compile(fstest.MapFS{"n.schema.json": schemaFile("n", `"type": "integer", "maximum": 9007199254740992`)})
	if err != nil {
		t.Fatal(err)
	}
	// 2^53+1 rounds to 2^53 as a float64 and would pass.
	got, err := s.ValidateJSON("n", []byte(`9007199254740993`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "" || !strings.Contains(got[0].Message, "9007199254740993") {
		t.Errorf("got %q, want one violation naming 9007199254740993", got)
	}
}

func TestValidateGoValues(t *testing.T) {
	s := compileEmbedded(t)
	type caller struct {
		AppID string `json:"appId"`
	}
	tests := []struct {
		name string
		doc  any
		want []sandbox.Violation
	}{
		{name: "struct", doc: struct {
			Caller caller         `json:"caller"`
			Args   map[string]int `json:"args"`
		}{caller{"wx0123456789abcdef"}, map[string]int{"a": 1}}},
		{name: "raw message", doc: json.RawMessage(`{"caller": {"appId": "wx0123456789abcdef"}}`),
			want: []sandbox.Violation{{Path: "/args", Message: "is required"}}},
		{name: "typed map", doc: map[string]map[string]string{"caller": {"appId": "wx0123456789abcdef"}, "args": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Validate("miniprogram/call", tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnknownSchemaIsInternal(t *testing.T) {
	s := compileEmbedded(t)
	for _, call := range []func() error{
		func() error { _, err := s.Validate("nope", map[string]any{}); return err },
		func() error { _, err := s.ValidateJSON("nope", []byte(`{}`)); return err },
	} {
		err := call()
		if !sandbox.IsCode(err, sandbox.CodeInternal) || !strings.Contains(err.Error(), `"nope"`) {
			t.Errorf("err = %v, want a CodeInternal *sandbox.Error naming the schema", err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	for b.Loop() {
		if _, err := schema.Compile(schemas.FS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := schema.Load(schemas.FS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	s := compileEmbedded(b)
	raw := []byte(validCall)
	b.Run("ValidateJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, err := s.ValidateJSON("miniprogram/call", raw); err != nil || v != nil {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("Validate", func(b *testing.B) {
		doc, _ := schema.Decode(raw)
		b.ReportAllocs()
		for b.Loop() {
			if v, err := s.Validate("miniprogram/call", doc); err != nil || v != nil {
				b.Fatal(v, err)
			}
		}
	})
}

// FuzzDecodeMembers: on any input DecodeMembers answers as Decode does,
// and each member it returns decodes to the document's value.
func FuzzDecodeMembers(f *testing.F) {
	for _, seed := range []string{`{"caller":{"appId":"wx1"},"args":{"path":"a?b=1"}}`, ` {"n":7}`, `{"a\u0062":[1,{"x":"}"}],"c":"\\"}`, `[1]`, `{"a":}`, `7`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		doc, members, bad := schema.DecodeMembers(raw)
		wantDoc, wantBad := schema.Decode(raw)
		if !reflect.DeepEqual(doc, wantDoc) || !reflect.DeepEqual(bad, wantBad) {
			t.Fatalf("DecodeMembers(%q) = %#v, %v; Decode gives %#v, %v", raw, doc, bad, wantDoc, wantBad)
		}
		obj, isObject := doc.(map[string]any)
		if isObject != (members != nil) || len(members) != len(obj) {
			t.Fatalf("DecodeMembers(%q): members %q for the document %#v", raw, members, doc)
		}
		for k, v := range obj {
			if got, bad := schema.Decode(members[k]); bad != nil || !reflect.DeepEqual(got, v) {
				t.Fatalf("DecodeMembers(%q): member %q is %q, decoding to %#v (%v); the document has %#v", raw, k, members[k], got, bad, v)
			}
		}
	})
}
