package repayment

import (
	"testing"

	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
)

func TestEveryCatalogueScenarioIsPlayable(t *testing.T) {
	set, err := schemaSet()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := scenario.Load(scenarios.FS, set)
	if err != nil {
		t.Fatal(err)
	}
	list := cat.List(sandbox.ProductRepayment)
	if len(list) < 13 {
		t.Fatalf("got %d repayment scenarios, want the 13 of scenarios/repayment", len(list))
	}
	for _, sc := range list {
		if sc.Mode != sandbox.ModeManual && !isAction(sc.User.Action) {
			t.Errorf("%s: action %q", sc.ID, sc.User.Action)
		}
		if len(sc.Timeline) > 0 {
			t.Errorf("%s: repayment plays no timeline", sc.ID)
		}
		if _, err := parkingParamsOf(sc); err != nil {
			t.Error(err)
		}
		// Each scenario but the default is reachable by its magic prefix.
		for _, m := range sc.Magic {
			got, err := cat.Pick(sandbox.ProductRepayment, "", map[string]string{m.Field: m.Prefix + "0001"}, nil)
			if err != nil || got.ID != sc.ID {
				t.Errorf("%s: %s prefix %q picks %v (%v)", sc.ID, m.Field, m.Prefix, got, err)
			}
		}
	}
	if d := cat.Default(sandbox.ProductRepayment); d == nil || d.ID != "repayment.repaid" || d.User.Action != ActionRepay {
		t.Fatalf("default: got %+v, want repayment.repaid", d)
	}
}
