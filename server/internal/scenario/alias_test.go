package scenario_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// TestAliasesCannotHangTheLoader: FuzzLoad found that a YAML alias to a
// value holding it made Load recurse forever. Cycles and alias bombs are
// refused promptly with the file and line; ordinary aliases still load.
func TestAliasesCannotHangTheLoader(t *testing.T) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		name := string(rune('b' + i))
		bomb += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
			", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"alias to itself", "&a [*a]", "refers to a value that holds it"},
		{"alias inside its anchor", "id: x\nparams: &p {self: *p}\n", "/params/self: alias *p"},
		{"alias bomb", bomb, "more than 10000 values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := scenario.Load(fstest.MapFS{"embedpay/a.yaml": {Data: []byte(tc.src)}}, set)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "embedpay/a.yaml") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error naming the file and %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load did not return within 10 s")
			}
		})
	}
	ok := "id: embedpay.alias\nproduct: embedpay\ntitle: &t Aliased\ndescription: *t\ndefault: true\nuser: {action: pay}\n"
	cat, err := scenario.Load(fstest.MapFS{"embedpay/ok.yaml": {Data: []byte(ok)}}, set)
	if err != nil {
		t.Fatalf("an ordinary alias: %v", err)
	}
	if sc, _ := cat.Get("embedpay.alias"); sc == nil || sc.Description != "Aliased" {
		t.Fatalf("got %+v, want the alias expanded", sc)
	}
}
