package schema_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// exampleBlock is a documented body: an HTML comment naming its schema,
// then a fenced JSON block.
var exampleBlock = regexp.MustCompile("(?s)<!-- schema: ([a-z0-9/._-]+) -->\\s*```json\\n(.*?)\\n```")

// TestDocExamplesMatchTheirSchemas validates every example body of the
// README and the product pages that names its schema, so that a documented
// body is one the sandbox accepts.
func TestDocExamplesMatchTheirSchemas(t *testing.T) {
	set, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob("../../../docs/products/*.md")
	docs = append(docs, "../../../README.md")
	found := 0
	for _, path := range docs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range exampleBlock.FindAllStringSubmatch(string(raw), -1) {
			found++
			vs, err := set.ValidateJSON(m[1], []byte(m[2]))
			if err != nil {
				t.Errorf("%s: %s: %v", path, m[1], err)
			}
			for _, v := range vs {
				t.Errorf("%s: the %s example breaks its schema at %q: %s", path, m[1], v.Path, v.Message)
			}
		}
	}
	if found < 6 {
		t.Errorf("found %d example bodies, want at least the six of payscore.md", found)
	}
}
