package scenario_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// FuzzLoad: whatever a --scenarios-dir file holds, Load either returns a
// catalogue of scenarios the scenario schema accepts, or an error naming the
// file (or, for what spans files, its folder) — never a panic, never a hang,
// and never a catalogue with a scenario it did not check.
func FuzzLoad(f *testing.F) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"id: embedpay.paid\nproduct: embedpay\ntitle: t\ndescription: d\ndefault: true\nmode: auto\nuser:\n  action: pay\n  after: 2s\n",
		"id: embedpay.x\nproduct: embedpay\ntitle: t\ndefault: true\nmagic:\n  - field: value\n    equals: \"101\"\nuser: {action: pay, after: 1.5}\nnotify: {delay: 1s, faults: [duplicate], fail_next: 2}\n",
		"id: a\nproduct: issuer\n",
		"&a [*a]",
		"id: !!binary aGk=\n",
		"- 1\n- 2\n",
		"id: embedpay.t\nproduct: embedpay\ntitle: t\ndefault: true\ntimeline:\n  - after: 0s\n    set: {status: 1}\nparams: {x: [1, {y: null}]}\n",
		"{",
		"",
	} {
		f.Add([]byte(s))
	}
	const file = "embedpay/fuzz.yaml"
	f.Fuzz(func(t *testing.T, src []byte) {
		cat, err := scenario.Load(fstest.MapFS{file: {Data: src}}, set)
		if err != nil {
			if !strings.Contains(err.Error(), "embedpay/") {
				t.Fatalf("the error names neither the file nor its folder: %v", err)
			}
			return
		}
		list := cat.List("")
		if len(list) != 1 || list[0].Product != sandbox.ProductEmbedPay || list[0].ID == "" {
			t.Fatalf("one file loaded as %+v", list)
		}
		if d := cat.Default(sandbox.ProductEmbedPay); d == nil || d.ID != list[0].ID {
			t.Fatalf("the only embedpay scenario is not the default: %+v", d)
		}
	})
}
