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

	// The parking page offers every repayment scenario with parking params
	// (an outcome of 创建停车入场 or 扣费受理), each named in both languages.
	var scs struct {
		Scenarios []struct {
			ID     string         `json:"id"`
			Params map[string]any `json:"params"`
		} `json:"scenarios"`
	}
	status, body = s.do(t, http.MethodGet, "/sandbox/v1/scenarios?product="+sandbox.ProductRepayment, "", nil)
	if err := json.Unmarshal(body, &scs); status != http.StatusOK || err != nil {
		t.Fatalf("GET /sandbox/v1/scenarios?product=repayment: %d %v %s", status, err, body)
	}
	var parking []string
	for _, sc := range scs.Scenarios {
		_, deduction := sc.Params["deduction"]
		_, block := sc.Params["block_reason"]
		if deduction || block {
			parking = append(parking, sc.ID)
		}
	}
	if got, want := sorted(jsList(t, asset(t, "app.js"), "PARKING_OUTCOMES")), sorted(parking); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("app.js's PARKING_OUTCOMES are %q, the catalogue's parking scenarios %q", got, want)
	}
	for _, id := range parking {
		words("parking.outcome." + id)
	}
}
