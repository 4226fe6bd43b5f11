package issuer

import (
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
)

// TestCanPlayEmbeddedScenarios checks every issuer scenario of the embedded
// catalogue: this product can play it, and its params decode.
func TestCanPlayEmbeddedScenarios(t *testing.T) {
	set := compiledSchemas(t)
	cat, err := scenario.Load(scenarios.FS, set)
	if err != nil {
		t.Fatal(err)
	}
	list := cat.List(sandbox.ProductIssuer)
	if len(list) < 8 {
		t.Fatalf("issuer scenarios got %d, want the catalogue of at least 8", len(list))
	}
	for _, sc := range list {
		t.Run(sc.ID, func(t *testing.T) {
			if _, err := checkScenario(set, sc); err != nil {
				t.Error(err)
			}
		})
	}
	if fd, ok := cat.Get("issuer.fixed-device"); ok {
		pr, _ := checkScenario(set, fd)
		if obu, card := deviceNumbers(pr, "m", "o"); obu != "3301000000000001" || card != "33010000000000000001" {
			t.Errorf("fixed-device numbers got %s %s, want the scenario's", obu, card)
		}
	} else {
		t.Error("issuer.fixed-device is missing")
	}
}

// TestCheckScenarioRefuses keeps a table of scenarios this product cannot
// play; each must be refused, naming the reason.
func TestCheckScenarioRefuses(t *testing.T) {
	set := compiledSchemas(t)
	auto := func(action string) sandbox.Scenario {
		return sandbox.Scenario{ID: "issuer.x", Product: sandbox.ProductIssuer, Mode: sandbox.ModeAuto, User: sandbox.UserStep{Action: action}}
	}
	for _, tc := range []struct {
		name     string
		sc       func() sandbox.Scenario
		contains string
	}{
		{"an unknown action", func() sandbox.Scenario { return auto("pay") }, `user.action "pay"`},
		{"no action in auto mode", func() sandbox.Scenario { return auto("") }, `user.action ""`},
		{"a timeline", func() sandbox.Scenario {
			sc := auto(ActionSuccess)
			sc.Timeline = []sandbox.Step{{After: sandbox.Duration(time.Second), Set: map[string]any{"state": 1}}}
			return sc
		}, "no timeline"},
		{"notification faults", func() sandbox.Scenario {
			sc := auto(ActionSuccess)
			sc.Notify.Faults = []string{"duplicate"}
			return sc
		}, "no server-side notifications"},
		{"an unknown page", func() sandbox.Scenario {
			sc := auto(ActionSuccess)
			sc.Params = map[string]any{"pages": map[string]any{"activate": "failure"}}
			return sc
		}, "params/pages/activate"},
		{"a page action it does not know", func() sandbox.Scenario {
			sc := auto(ActionSuccess)
			sc.Params = map[string]any{"pages": map[string]any{"activeDes": "explode"}}
			return sc
		}, "params/pages/activeDes"},
		{"an OBU of the wrong length", func() sandbox.Scenario {
			sc := auto(ActionSuccess)
			sc.Params = map[string]any{"obu": "12345"}
			return sc
		}, "params/obu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := tc.sc()
			_, err := checkScenario(set, &sc)
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error got %v, want one containing %q", err, tc.contains)
			}
		})
	}
}
