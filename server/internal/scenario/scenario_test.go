package scenario_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

func validator(tb testing.TB) scenario.Schemas {
	tb.Helper()
	s, err := schema.Compile(schemas.FS)
	if err != nil {
		tb.Fatalf("schema.Compile: %v", err)
	}
	return s
}

func load(tb testing.TB, files map[string]string) (*scenario.Catalog, error) {
	tb.Helper()
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return scenario.Load(fsys, validator(tb))
}

func mustLoad(tb testing.TB, files map[string]string) *scenario.Catalog {
	tb.Helper()
	c, err := load(tb, files)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return c
}

func TestCanLoadEmbeddedScenarios(t *testing.T) {
	c, err := scenario.Load(scenarios.FS, validator(t))
	if err != nil {
		t.Fatalf("Load(scenarios.FS): %v", err)
	}
	defaults := map[string]string{
		sandbox.ProductPayScore:  "payscore.confirm",
		sandbox.ProductEmbedPay:  "embedpay.paid",
		sandbox.ProductRepayment: "repayment.repaid",
		sandbox.ProductIssuer:    "issuer.success",
	}
	for _, p := range []string{sandbox.ProductPayScore, sandbox.ProductRepayment, sandbox.ProductEmbedPay, sandbox.ProductIssuer} {
		d := c.Default(p)
		if d == nil || d.ID != defaults[p] {
			t.Errorf("Default(%q) = %v, want %s", p, d, defaults[p])
			continue
		}
		if d.Mode != sandbox.ModeAuto || d.User.Action == "" {
			t.Errorf("default %s: mode %q action %q, want an auto scenario with an action", d.ID, d.Mode, d.User.Action)
		}
		manual := 0
		for _, sc := range c.List(p) {
			if sc.Product != p || !strings.HasPrefix(sc.ID, p+".") {
				t.Errorf("List(%q) holds %s of product %q", p, sc.ID, sc.Product)
			}
			if sc.File != "scenarios/"+p+"/"+strings.TrimPrefix(sc.ID, p+".")+".yaml" {
				t.Errorf("%s: File = %q, want it named after the id", sc.ID, sc.File)
			}
			if sc.Title == "" || sc.Description == "" {
				t.Errorf("%s: want a title and a description", sc.ID)
			}
			if sc.Mode == sandbox.ModeManual {
				manual++
			}
		}
		if manual == 0 {
			t.Errorf("product %q has no manual scenario", p)
		}
	}
	paid, _ := c.Get("embedpay.paid")
	if got := paid.User.After.D(); got != 2*time.Second {
		t.Errorf("embedpay.paid user.after = %v, want 2s", got)
	}
	if len(paid.Timeline) != 1 || paid.Timeline[0].Set["status"] != float64(1) {
		t.Errorf("embedpay.paid timeline = %+v, want status 1", paid.Timeline)
	}
}

const payscoreDefault = `id: payscore.confirm
product: payscore
title: confirm
default: true
user:
  action: confirm
`

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each must appear in the error
	}{
		{
			name:  "yaml syntax error",
			files: map[string]string{"payscore/a.yaml": "id: payscore.a\nuser:\n\t- confirm\n"},
			want:  []string{"scenarios/payscore/a.yaml:3: invalid YAML: found character that cannot start any token"},
		},
		{
			name:  "empty file",
			files: map[string]string{"payscore/a.yaml": "# nothing\n"},
			want:  []string{"scenarios/payscore/a.yaml:1: the file holds no scenario"},
		},
		{
			name:  "two documents",
			files: map[string]string{"payscore/a.yaml": payscoreDefault + "---\nid: payscore.b\n"},
			want:  []string{"scenarios/payscore/a.yaml:7: a file holds one scenario"},
		},
		{
			name:  "repeated key",
			files: map[string]string{"payscore/a.yaml": payscoreDefault + "title: again\n"},
			want:  []string{`scenarios/payscore/a.yaml:7: /title: key "title" is repeated (first at line 3)`},
		},
		{
			name:  "missing property points at its parent",
			files: map[string]string{"payscore/a.yaml": "id: payscore.a\nproduct: payscore\ntitle: a\ndefault: true\nuser:\n  after: 1s\n"},
			want:  []string{"scenarios/payscore/a.yaml:5: /user/action: is required"},
		},
		{
			name:  "action of another product",
			files: map[string]string{"payscore/a.yaml": "id: payscore.a\nproduct: payscore\ntitle: a\ndefault: true\nuser:\n  action: pay\n"},
			want:  []string{`scenarios/payscore/a.yaml:6: /user/action: value must be one of "confirm", "confirm_back_icon", "cancel", "expired"`},
		},
		{
			name:  "unknown property",
			files: map[string]string{"payscore/a.yaml": payscoreDefault + "notify:\n  delay: 1s\n  retries: 3\n"},
			want:  []string{`scenarios/payscore/a.yaml:9: /notify/retries: additional property "retries" is not allowed`},
		},
		{
			name:  "bad duration and fault",
			files: map[string]string{"payscore/a.yaml": payscoreDefault + "timeline:\n  - after: soon\n    set: {state: DOING}\nnotify:\n  faults: [drop, lost]\n"},
			want: []string{
				"scenarios/payscore/a.yaml:8: /timeline/0/after: must match the pattern",
				`scenarios/payscore/a.yaml:11: /notify/faults/1: value must be one of "duplicate"`,
			},
		},
		{
			name:  "id without the product",
			files: map[string]string{"payscore/a.yaml": strings.Replace(payscoreDefault, "payscore.confirm", "embedpay.confirm", 1)},
			want:  []string{`scenarios/payscore/a.yaml:1: /id: must match the pattern ^payscore\.`},
		},
		{
			name:  "magic with neither equals nor prefix",
			files: map[string]string{"payscore/a.yaml": payscoreDefault + "magic:\n  - field: out_order_no\n"},
			want:  []string{`scenarios/payscore/a.yaml:8: /magic/0: needs one of "equals" or "prefix"`},
		},
		{
			name:  "root is not a mapping",
			files: map[string]string{"payscore/a.yaml": "- id: payscore.a\n"},
			want:  []string{"scenarios/payscore/a.yaml:1: /: expected object, but got array"},
		},
		{
			name: "product does not match the folder",
			files: map[string]string{
				"payscore/a.yaml": payscoreDefault,
				"issuer/a.yaml":   "id: payscore.b\nproduct: payscore\ntitle: b\nuser:\n  action: confirm\n",
			},
			want: []string{`scenarios/issuer/a.yaml:2: /product: "payscore" does not match the folder "issuer"`},
		},
		{
			name:  "folder is not a product",
			files: map[string]string{"payscore/a.yaml": payscoreDefault, "parking/a.yaml": "id: parking.a\n"},
			want:  []string{`scenarios/parking/a.yaml: folder "parking" is not a product`},
		},
		{
			name:  "yml extension",
			files: map[string]string{"payscore/a.yaml": payscoreDefault, "payscore/b.yml": payscoreDefault},
			want:  []string{"scenarios/payscore/b.yml: scenario files end in .yaml"},
		},
		{
			name: "duplicate id",
			files: map[string]string{
				"payscore/a.yaml": payscoreDefault,
				"payscore/b.yaml": "title: b\nid: payscore.confirm\nproduct: payscore\nuser:\n  action: cancel\n",
			},
			want: []string{`scenarios/payscore/b.yaml:2: /id: "payscore.confirm" is already the id of scenarios/payscore/a.yaml:1`},
		},
		{
			name: "two defaults",
			files: map[string]string{
				"payscore/a.yaml": payscoreDefault,
				"payscore/b.yaml": "id: payscore.b\nproduct: payscore\ntitle: b\nuser:\n  action: cancel\ndefault: true\n",
			},
			want: []string{`scenarios/payscore/b.yaml:6: /default: product "payscore" already has a default scenario, "payscore.confirm" (scenarios/payscore/a.yaml:4)`},
		},
		{
			name: "no default",
			files: map[string]string{
				"payscore/a.yaml": payscoreDefault,
				"issuer/a.yaml":   "id: issuer.a\nproduct: issuer\ntitle: a\nmode: manual\n",
			},
			want: []string{`scenarios/issuer/: product "issuer" has no default scenario`},
		},
		{
			name: "same magic value in two scenarios",
			files: map[string]string{
				"payscore/a.yaml": payscoreDefault + "magic:\n  - field: out_order_no\n    prefix: FAIL\n",
				"payscore/b.yaml": "id: payscore.b\nproduct: payscore\ntitle: b\nuser: {action: cancel}\nmagic:\n  - field: total\n    equals: '1'\n  - field: out_order_no\n    equals: FAIL-1\n",
			},
			want: []string{`scenarios/payscore/b.yaml:8: /magic/1: magic out_order_no equals "FAIL-1" overlaps out_order_no prefix "FAIL" of scenario "payscore.confirm" (scenarios/payscore/a.yaml:8)`},
		},
		{
			name:  "no files at all",
			files: map[string]string{"README.md": "# scenarios"},
			want:  []string{"no scenario files"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.files)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadReportsEveryProblemOfEveryFile(t *testing.T) {
	_, err := load(t, map[string]string{
		"payscore/a.yaml": "id: payscore.a\nproduct: payscore\ntitle: ''\nuser:\n  action: pay\n",
		"issuer/b.yaml":   "id: issuer.b\nproduct: issuer\n",
		"issuer/c.yaml":   "id: [\n",
	})
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	want := []string{
		"scenarios/issuer/b.yaml:1: /title: is required",
		"scenarios/issuer/b.yaml:1: /user: is required",
		"scenarios/issuer/c.yaml:",
		"scenarios/payscore/a.yaml:3: /title: length must be >= 1",
		"scenarios/payscore/a.yaml:5: /user/action: value must be one of",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("got %d lines, want a header and %d problems:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i+1], w) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i+1], w)
		}
	}
}

func TestLoadAcceptsNumbersAndDefaults(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"payscore/a.yaml": payscoreDefault + "notify:\n  delay: 1.5\n  fail_next: 2\nparams:\n  big: 12345678901234567890\n",
	})
	sc, ok := c.Get("payscore.confirm")
	if !ok {
		t.Fatal("payscore.confirm not loaded")
	}
	if got, want := sc.Notify.Delay.D(), 1500*time.Millisecond; got != want {
		t.Errorf("notify.delay = %v, want %v", got, want)
	}
	if sc.Notify.FailNext != 2 || sc.Mode != sandbox.ModeAuto {
		t.Errorf("fail_next %d mode %q, want 2 and auto", sc.Notify.FailNext, sc.Mode)
	}
	if sc.Params["big"] == nil {
		t.Errorf("params.big missing: %v", sc.Params)
	}
}

func TestPick(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"payscore/a.yaml": payscoreDefault,
		"payscore/b.yaml": "id: payscore.cancel\nproduct: payscore\ntitle: b\nuser: {action: cancel}\nmagic:\n  - {field: out_order_no, prefix: CANCEL}\n",
		"payscore/c.yaml": "id: payscore.manual\nproduct: payscore\ntitle: c\nmode: manual\nmagic:\n  - {field: total_amount, equals: '404'}\n",
		"issuer/a.yaml":   "id: issuer.success\nproduct: issuer\ntitle: a\ndefault: true\nuser: {action: success}\n",
	})
	active := func(id string) *sandbox.Merchant {
		return &sandbox.Merchant{Active: map[string]sandbox.ActiveScenario{sandbox.ProductPayScore: {ID: id}}}
	}
	tests := []struct {
		name     string
		product  string
		explicit string
		fields   map[string]string
		merchant *sandbox.Merchant
		want     string
		wantErr  string
	}{
		{name: "default", product: "payscore", want: "payscore.confirm"},
		{name: "default without merchant scenarios", product: "payscore", merchant: &sandbox.Merchant{}, want: "payscore.confirm"},
		{name: "active over default", product: "payscore", merchant: active("payscore.manual"), want: "payscore.manual"},
		{name: "unknown active falls back to default", product: "payscore", merchant: active("payscore.gone"), want: "payscore.confirm"},
		{name: "active of another product is ignored", product: "payscore", merchant: active("issuer.success"), want: "payscore.confirm"},
		{name: "magic prefix over active", product: "payscore", fields: map[string]string{"out_order_no": "CANCEL-42"}, merchant: active("payscore.manual"), want: "payscore.cancel"},
		{name: "magic equals", product: "payscore", fields: map[string]string{"total_amount": "404"}, want: "payscore.manual"},
		{name: "magic equals needs the whole value", product: "payscore", fields: map[string]string{"total_amount": "4040"}, want: "payscore.confirm"},
		{name: "magic of another field", product: "payscore", fields: map[string]string{"attach": "CANCEL"}, want: "payscore.confirm"},
		{name: "magic of another product", product: "issuer", fields: map[string]string{"out_order_no": "CANCEL-1"}, want: "issuer.success"},
		{name: "explicit over magic and active", product: "payscore", explicit: "payscore.confirm",
			fields: map[string]string{"out_order_no": "CANCEL-1"}, merchant: active("payscore.manual"), want: "payscore.confirm"},
		{name: "unknown explicit", product: "payscore", explicit: "payscore.nope",
			wantErr: `unknown scenario "payscore.nope" for product "payscore"; known: payscore.cancel, payscore.confirm, payscore.manual`},
		{name: "explicit of another product", product: "issuer", explicit: "payscore.confirm",
			wantErr: `unknown scenario "payscore.confirm" for product "issuer"; known: issuer.success`},
		{name: "product without scenarios", product: "embedpay", wantErr: `no scenario for product "embedpay"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Pick(tt.product, tt.explicit, tt.fields, tt.merchant)
			if tt.wantErr != "" {
				if !sandbox.IsCode(err, sandbox.CodeInvalid) || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want CodeInvalid %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			if got.ID != tt.want {
				t.Errorf("Pick = %s, want %s", got.ID, tt.want)
			}
		})
	}
}

func TestListGetDefault(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"payscore/b.yaml": "id: payscore.b\nproduct: payscore\ntitle: b\nmode: manual\n",
		"payscore/a.yaml": strings.Replace(payscoreDefault, "payscore.confirm", "payscore.a", 1),
		"issuer/a.yaml":   "id: issuer.a\nproduct: issuer\ntitle: a\ndefault: true\nuser: {action: success}\n",
	})
	ids := func(list []*sandbox.Scenario) string {
		var s []string
		for _, sc := range list {
			s = append(s, sc.ID)
		}
		return strings.Join(s, ",")
	}
	if got, want := ids(c.List("")), "issuer.a,payscore.a,payscore.b"; got != want {
		t.Errorf("List(\"\") = %s, want %s", got, want)
	}
	if got, want := ids(c.List("payscore")), "payscore.a,payscore.b"; got != want {
		t.Errorf("List(payscore) = %s, want %s", got, want)
	}
	if got := c.List("embedpay"); len(got) != 0 {
		t.Errorf("List(embedpay) = %v, want none", got)
	}
	// List hands out a copy: reordering it does not reorder the catalogue.
	l := c.List("")
	l[0], l[2] = l[2], l[0]
	if got, want := ids(c.List("")), "issuer.a,payscore.a,payscore.b"; got != want {
		t.Errorf("after changing a listed slice, List(\"\") = %s, want %s", got, want)
	}
	if sc, ok := c.Get("payscore.b"); !ok || sc.Mode != sandbox.ModeManual {
		t.Errorf("Get(payscore.b) = %v, %v", sc, ok)
	}
	if _, ok := c.Get("payscore.z"); ok {
		t.Error("Get(payscore.z) found a scenario")
	}
	if d := c.Default("payscore"); d == nil || d.ID != "payscore.a" {
		t.Errorf("Default(payscore) = %v, want payscore.a", d)
	}
	if d := c.Default("embedpay"); d != nil {
		t.Errorf("Default(embedpay) = %v, want nil", d)
	}
}

func BenchmarkPick(b *testing.B) {
	c, err := scenario.Load(scenarios.FS, validator(b))
	if err != nil {
		b.Fatal(err)
	}
	fields := map[string]string{"value": "100", "pay_order": "P1"}
	m := &sandbox.Merchant{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Pick(sandbox.ProductEmbedPay, "", fields, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	v := validator(b)
	for b.Loop() {
		if _, err := scenario.Load(scenarios.FS, v); err != nil {
			b.Fatal(err)
		}
	}
}
