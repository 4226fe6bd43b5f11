package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestProductRegistry: GET /sandbox/v1/products of the real binary, built
// from the products it registers, agrees with schemas/scenario.schema.json
// (the same products; each product's actions are its scenarios'
// user.action enum; its faults are notify faults) and with the page's
// dictionary (a name for each product, action and fault, in both
// languages).
func TestProductRegistry(t *testing.T) {
	s := startSandbox(t, "127.0.0.1:0")
	status, body := s.do(t, http.MethodGet, "/sandbox/v1/products", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /sandbox/v1/products: %d %s", status, body)
	}
	var reg struct {
		Products []struct {
			Name    string `json:"name"`
			Targets []struct {
				API string `json:"api"`
				Key string `json:"key"`
			} `json:"targets"`
			Actions   []string `json:"actions"`
			Faults    []string `json:"faults"`
			Scenarios []string `json:"scenarios"`
			Default   string   `json:"default"`
		} `json:"products"`
	}
	if err := json.Unmarshal(body, &reg); err != nil {
		t.Fatal(err)
	}
	sc := scenarioSchema(t)
	dict, err := dictionary()
	if err != nil {
		t.Fatal(err)
	}
	words := func(key string) {
		t.Helper()
		if dict["zh"][key] == "" || dict["en"][key] == "" {
			t.Errorf("the page's dictionary has no zh and en words for %q", key)
		}
	}
	var names []string
	for _, p := range reg.Products {
		names = append(names, p.Name)
		if len(p.Targets) == 0 || len(p.Scenarios) == 0 || !slices.Contains(p.Scenarios, p.Default) {
			t.Errorf("%s: targets %v, scenarios %v, default %q: want targets and scenarios, the default among them", p.Name, p.Targets, p.Scenarios, p.Default)
		}
		if got, want := sorted(p.Actions), sorted(sc.actions[p.Name]); !slices.Equal(got, want) {
			t.Errorf("%s: the product's actions are %q, scenario.schema.json's user.action enum %q", p.Name, got, want)
		}
		words("product." + p.Name)
		for _, a := range append(p.Actions, sandbox.ActionTimeout) {
			words("action." + p.Name + "." + a)
		}
		for _, f := range p.Faults {
			if !slices.Contains(sc.faults, f) {
				t.Errorf("%s: fault %q is not in scenario.schema.json's notify.faults", p.Name, f)
			}
			words("fault." + f)
		}
	}
	if got, want := sorted(names), sorted(sc.products); !slices.Equal(got, want) {
		t.Errorf("registered products %q, scenario.schema.json's products %q", got, want)
	}
}
