package openapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/openapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json")

const committed = "../../../docs/openapi.json"

// The committed document is the one the server serves: a change to
// source.json or to a schema must come with `go test ./server/internal/openapi -update`.
func TestCommittedDocument(t *testing.T) {
	got, err := openapi.Build(schemas.FS, sandbox.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(committed, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/openapi.json is not what openapi.Build gives; run go test ./server/internal/openapi -update")
	}
}

func build(t *testing.T) map[string]any {
	t.Helper()
	raw, err := openapi.Build(schemas.FS, sandbox.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// Every reference resolves and every schema compiles (draft 2020-12, the
// dialect of OpenAPI 3.1); every operation has a unique operationId.
func TestDocumentIsWhole(t *testing.T) {
	doc := build(t)
	if doc["openapi"] != "3.1.0" || doc["info"].(map[string]any)["version"] != sandbox.APIVersion {
		t.Errorf("openapi %v, info.version %v", doc["openapi"], doc["info"].(map[string]any)["version"])
	}
	raw, _ := json.Marshal(doc)
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource("mem:///openapi.json", bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	comps := doc["components"].(map[string]any)["schemas"].(map[string]any)
	keys := make([]string, 0, len(comps))
	for k := range comps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := c.Compile("mem:///openapi.json#/components/schemas/" + k); err != nil {
			t.Errorf("components/schemas/%s: %v", k, err)
		}
	}
	if !strings.Contains(string(raw), `"#/components/schemas/admin.merchant-create"`) {
		t.Errorf("the request schemas of the admin API are not bundled from schemas/")
	}
	ids := map[string]string{}
	for p, item := range doc["paths"].(map[string]any) {
		for m, o := range item.(map[string]any) {
			id, _ := o.(map[string]any)["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s has no operationId", m, p)
			} else if other, dup := ids[id]; dup {
				t.Errorf("operationId %s on %s %s and %s", id, m, p, other)
			}
			ids[id] = m + " " + p
		}
	}
}
