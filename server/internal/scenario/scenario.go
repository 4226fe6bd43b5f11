// Package scenario loads the scenario catalogue from an fs.FS (the embedded
// scenarios/ or a --scenarios-dir), validates every file against the
// "scenario" schema, and picks the scenario for a request.
package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// SchemaName is the schema every scenario file must satisfy.
const SchemaName = "scenario"

// Catalog is the loaded scenarios. It is immutable and safe for concurrent
// use; the *sandbox.Scenario values it returns are shared and must not be
// modified.
type Catalog struct {
	byID      map[string]*sandbox.Scenario
	all       []*sandbox.Scenario            // sorted by id
	byProduct map[string][]*sandbox.Scenario // sorted by id
	defaults  map[string]*sandbox.Scenario
	magic     map[string][]magicRule // per product, in id order
	known     map[string]string      // per product: "a, b, c" for error messages
}

// magicRule is one magic value and the scenario it selects.
type magicRule struct {
	sandbox.Magic
	scenario *sandbox.Scenario
	line     int
}

func (r magicRule) matches(v string) bool {
	if r.Equals != "" {
		return v == r.Equals
	}
	return strings.HasPrefix(v, r.Prefix)
}

// overlaps reports whether one value could be selected by both rules.
func (r magicRule) overlaps(o magicRule) bool {
	if r.Field != o.Field {
		return false
	}
	switch {
	case r.Equals != "" && o.Equals != "":
		return r.Equals == o.Equals
	case r.Equals != "":
		return o.matches(r.Equals)
	case o.Equals != "":
		return r.matches(o.Equals)
	default:
		return strings.HasPrefix(r.Prefix, o.Prefix) || strings.HasPrefix(o.Prefix, r.Prefix)
	}
}

func (r magicRule) String() string {
	if r.Equals != "" {
		return fmt.Sprintf("%s equals %q", r.Field, r.Equals)
	}
	return fmt.Sprintf("%s prefix %q", r.Field, r.Prefix)
}

var _ sandbox.Scenarios = (*Catalog)(nil)

// problem is one reason the catalogue does not load, located in a file.
type problem struct {
	file string // "payscore/confirm.yaml", or "payscore/" for a whole product
	line int    // 0 when unknown
	msg  string
}

func (p problem) Error() string {
	switch {
	case p.line > 0:
		return fmt.Sprintf("scenarios/%s:%d: %s", p.file, p.line, p.msg)
	default:
		return fmt.Sprintf("scenarios/%s: %s", p.file, p.msg)
	}
}

// loaded is a scenario with the file facts the cross-file checks report.
type loaded struct {
	sc   *sandbox.Scenario
	file string // under the scenarios folder
	doc  *document
}

func (l loaded) at(ptr string) int { return l.doc.line(ptr) }

// Schemas is what Load needs of the schema set: validation, and the
// scenario schema's text, whose product enum names the products.
type Schemas interface {
	sandbox.Validator
	Source(name string) ([]byte, bool)
}

// Products lists the products a scenario may be for: the scenario schema's
// product enum.
func Products(v Schemas) ([]string, error) {
	src, ok := v.Source(SchemaName)
	if !ok {
		return nil, fmt.Errorf("no %s schema", SchemaName)
	}
	var s struct {
		Properties struct {
			Product struct {
				Enum []string `json:"enum"`
			} `json:"product"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(src, &s); err != nil || len(s.Properties.Product.Enum) == 0 {
		return nil, fmt.Errorf("the %s schema lists no products in properties.product.enum (%v)", SchemaName, err)
	}
	return s.Properties.Product.Enum, nil
}

// Load reads every <product>/*.yaml in fsys, one scenario per file, and
// validates each against the "scenario" schema with v, the files on every
// core at once (v is safe for concurrent use, as a sandbox.Validator is). It returns one error
// listing every problem of every file, each as
// "scenarios/<file>:<line>: <path>: <reason>", so that a bad set stops
// start-up saying what to fix.
func Load(fsys fs.FS, v Schemas) (*Catalog, error) {
	products, err := Products(v)
	if err != nil {
		return nil, err
	}
	var problems []problem
	var files []loaded
	var paths []string // the scenario files, in walk order
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := path.Ext(p)
		if d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		dir := path.Dir(p)
		switch {
		case ext == ".yml":
			problems = append(problems, problem{file: p, msg: "scenario files end in .yaml"})
			return nil
		case dir == "." || strings.Contains(dir, "/"):
			problems = append(problems, problem{file: p, msg: "scenario files live in <product>/<name>.yaml"})
			return nil
		case !slices.Contains(products, dir):
			problems = append(problems, problem{file: p, msg: fmt.Sprintf("folder %q is not a product (%s)", dir, strings.Join(products, ", "))})
			return nil
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load scenarios: %w", err)
	}
	results, err := loadFiles(fsys, paths, v)
	if err != nil {
		return nil, fmt.Errorf("load scenarios: %w", err)
	}
	for _, r := range results {
		problems = append(problems, r.problems...)
		if r.loaded != nil {
			files = append(files, *r.loaded)
		}
	}
	if len(files) == 0 && len(problems) == 0 {
		return nil, errors.New("load scenarios: no scenario files (<product>/<name>.yaml)")
	}
	problems = append(problems, crossCheck(files)...)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool {
			if problems[i].file != problems[j].file {
				return problems[i].file < problems[j].file
			}
			return problems[i].line < problems[j].line
		})
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return nil, fmt.Errorf("invalid scenarios:\n%w", errors.Join(errs...))
	}
	return newCatalog(files), nil
}

// fileResult is what loadFile made of one file.
type fileResult struct {
	loaded   *loaded
	problems []problem
}

// loadFiles reads, parses and validates the files on every core: the
// catalogue is most of an in-process sandbox's first start (a test
// process's). The results are in the order of paths.
func loadFiles(fsys fs.FS, paths []string, v sandbox.Validator) ([]fileResult, error) {
	results := make([]fileResult, len(paths))
	errs := make([]error, len(paths))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(paths)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(paths); i = int(next.Add(1) - 1) {
				src, err := fs.ReadFile(fsys, paths[i])
				if err != nil {
					errs[i] = err
					continue
				}
				results[i].loaded, results[i].problems, errs[i] = loadFile(paths[i], src, v)
			}
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// loadFile parses and validates one file. A validator failure is an error
// (a bug); everything wrong with the file is a problem.
func loadFile(file string, src []byte, v sandbox.Validator) (*loaded, []problem, error) {
	doc, p := parse(src)
	if p != nil {
		p.file = file
		return nil, []problem{*p}, nil
	}
	vs, err := v.Validate(SchemaName, doc.value)
	if err != nil {
		return nil, nil, err
	}
	if len(vs) > 0 {
		ps := make([]problem, len(vs))
		for i, x := range vs {
			where := x.Path
			if where == "" {
				where = "/"
			}
			ps[i] = problem{file: file, line: doc.line(x.Path), msg: where + ": " + x.Message}
		}
		return nil, ps, nil
	}
	raw, err := json.Marshal(doc.value)
	if err != nil {
		return nil, nil, err
	}
	sc := new(sandbox.Scenario)
	if err := json.Unmarshal(raw, sc); err != nil {
		// The schema admits only what the struct reads; anything else is
		// a mismatch between the two, reported like a violation.
		return nil, []problem{{file: file, line: 1, msg: "does not fit the scenario type: " + err.Error()}}, nil
	}
	if sc.Mode == "" {
		sc.Mode = sandbox.ModeAuto
	}
	sc.File = "scenarios/" + file
	if dir := path.Dir(file); sc.Product != dir {
		return nil, []problem{{file: file, line: doc.line("/product"),
			msg: fmt.Sprintf("/product: %q does not match the folder %q", sc.Product, dir)}}, nil
	}
	return &loaded{sc: sc, file: file, doc: doc}, nil, nil
}

// crossCheck finds what no single file shows: duplicate ids, a product with
// no default or several, and magic values that select two scenarios.
func crossCheck(files []loaded) []problem {
	var ps []problem

	ids := map[string]loaded{}
	defaults := map[string]loaded{}
	hasFiles := map[string]bool{}
	var rules []magicRule
	for _, l := range files {
		sc := l.sc
		hasFiles[sc.Product] = true
		if first, dup := ids[sc.ID]; dup {
			ps = append(ps, problem{file: l.file, line: l.at("/id"),
				msg: fmt.Sprintf("/id: %q is already the id of %s:%d", sc.ID, first.sc.File, first.at("/id"))})
		} else {
			ids[sc.ID] = l
		}
		if sc.Default {
			if first, dup := defaults[sc.Product]; dup {
				ps = append(ps, problem{file: l.file, line: l.at("/default"),
					msg: fmt.Sprintf("/default: product %q already has a default scenario, %q (%s:%d)",
						sc.Product, first.sc.ID, first.sc.File, first.at("/default"))})
			} else {
				defaults[sc.Product] = l
			}
		}
		for i, m := range sc.Magic {
			ptr := fmt.Sprintf("/magic/%d", i)
			r := magicRule{Magic: m, scenario: sc, line: l.at(ptr)}
			for _, o := range rules {
				if o.scenario.Product == sc.Product && o.scenario != sc && r.overlaps(o) {
					ps = append(ps, problem{file: l.file, line: r.line,
						msg: fmt.Sprintf("%s: magic %s overlaps %s of scenario %q (%s:%d): a request could match both",
							ptr, r, o, o.scenario.ID, o.scenario.File, o.line)})
				}
			}
			rules = append(rules, r)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(hasFiles)) {
		if _, ok := defaults[p]; !ok {
			ps = append(ps, problem{file: p + "/", msg: fmt.Sprintf("product %q has no default scenario: set default: true in one of its files", p)})
		}
	}
	return ps
}

func newCatalog(files []loaded) *Catalog {
	c := &Catalog{
		byID:      make(map[string]*sandbox.Scenario, len(files)),
		byProduct: map[string][]*sandbox.Scenario{},
		defaults:  map[string]*sandbox.Scenario{},
		magic:     map[string][]magicRule{},
		known:     map[string]string{},
	}
	for _, l := range files {
		c.all = append(c.all, l.sc)
		c.byID[l.sc.ID] = l.sc
	}
	sort.Slice(c.all, func(i, j int) bool { return c.all[i].ID < c.all[j].ID })
	for _, sc := range c.all {
		c.byProduct[sc.Product] = append(c.byProduct[sc.Product], sc)
		if sc.Default {
			c.defaults[sc.Product] = sc
		}
		for _, m := range sc.Magic {
			c.magic[sc.Product] = append(c.magic[sc.Product], magicRule{Magic: m, scenario: sc})
		}
	}
	for p, list := range c.byProduct {
		ids := make([]string, len(list))
		for i, sc := range list {
			ids[i] = sc.ID
		}
		c.known[p] = strings.Join(ids, ", ")
	}
	return c
}

// Get returns the scenario with the id.
func (c *Catalog) Get(id string) (*sandbox.Scenario, bool) {
	sc, ok := c.byID[id]
	return sc, ok
}

// List returns the scenarios of a product ("" for all), sorted by id.
func (c *Catalog) List(product string) []*sandbox.Scenario {
	if product == "" {
		return slices.Clone(c.all)
	}
	return slices.Clone(c.byProduct[product])
}

// Default returns the product's default scenario, nil when the product has
// none.
func (c *Catalog) Default(product string) *sandbox.Scenario { return c.defaults[product] }

// Pick chooses the scenario for a request, first match wins: the explicit
// id (X-Sandbox-Scenario or caller.scenario; unknown, or of another
// product, is a CodeInvalid error listing the product's ids), a magic value
// among fields, the merchant's active scenario when it still exists, the
// product's default. Clearing a Once active scenario is the caller's job.
func (c *Catalog) Pick(product, explicit string, fields map[string]string, m *sandbox.Merchant) (*sandbox.Scenario, error) {
	if explicit != "" {
		if sc, ok := c.byID[explicit]; ok && sc.Product == product {
			return sc, nil
		}
		return nil, sandbox.Errorf(sandbox.CodeInvalid, "unknown scenario %q for product %q; known: %s", explicit, product, c.known[product])
	}
	if len(fields) > 0 {
		for _, r := range c.magic[product] {
			if v, ok := fields[r.Field]; ok && r.matches(v) {
				return r.scenario, nil
			}
		}
	}
	if m != nil {
		if a, ok := m.Active[product]; ok {
			if sc, ok := c.byID[a.ID]; ok && sc.Product == product {
				return sc, nil
			}
		}
	}
	if sc := c.defaults[product]; sc != nil {
		return sc, nil
	}
	return nil, sandbox.Errorf(sandbox.CodeInvalid, "no scenario for product %q", product)
}
