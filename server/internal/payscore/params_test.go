package payscore

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// TestScenarioParams: the embedded catalogue's params parse, and a table of
// bad params each stops New naming the file.
func TestScenarioParams(t *testing.T) {
	set, err := schema.Compile(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	build := func(yaml string) (*Product, error) {
		fsys := fstest.MapFS{
			"payscore/confirm.yaml": {Data: []byte("id: payscore.confirm\nproduct: payscore\ntitle: t\ndefault: true\nuser: {action: confirm}\n")},
			"payscore/x.yaml":       {Data: []byte("id: payscore.x\nproduct: payscore\ntitle: x\nuser: {action: confirm}\n" + yaml)},
		}
		cat, err := scenario.Load(fsys, set)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return New(sandbox.Deps{Store: nilStore{}, Clock: sandbox.NewClock(1, nil), Merchants: noMerchants{}, Scenarios: cat, Validator: set})
	}
	for _, tc := range []struct {
		name, yaml string
		deduction  string
		paidAfter  time.Duration
	}{
		{"none", "", deductSuccess, 0},
		{"retry default", "params: {deduction: fail_then_success}\n", deductFailThenSuccess, time.Hour},
		{"seconds", "params: {deduction: success, paid_after: 90}\n", deductSuccess, 90 * time.Second},
		{"duration", "params: {deduction: fail_then_success, paid_after: 2h}\n", deductFailThenSuccess, 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := build(tc.yaml)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.params["payscore.x"]; got.deduction != tc.deduction || got.paidAfter != tc.paidAfter {
				t.Errorf("got %+v, want %s %v", got, tc.deduction, tc.paidAfter)
			}
		})
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown outcome", "params: {deduction: maybe}\n", "/deduction"},
		{"unknown param", "params: {deduct: success}\n", "deduct"},
		{"bad duration", "params: {paid_after: soon}\n", "/paid_after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x.yaml") {
				t.Errorf("got %v, want an error naming x.yaml and %s", err, tc.want)
			}
		})
	}
	t.Run("embedded catalogue", func(t *testing.T) {
		w := newWorld(t)
		if got := w.p.params["payscore.paid-after-retry"]; got.deduction != deductFailThenSuccess || got.paidAfter != time.Hour {
			t.Errorf("paid-after-retry: got %+v", got)
		}
		if got := w.p.params["payscore.unpaid"].deduction; got != deductFail {
			t.Errorf("unpaid: got %s", got)
		}
	})
}

type nilStore struct{ sandbox.Store }

type noMerchants struct{ sandbox.Merchants }
