package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// document is one parsed scenario file: the JSON-like value the schema
// validates and the YAML line of every JSON pointer in it.
type document struct {
	value any
	lines map[string]int
	// open holds the collections being converted, so that an alias to one
	// of them (a cycle) is refused; nodes counts the values produced, so
	// that aliases cannot expand a small file into an enormous value.
	open  map[*yaml.Node]bool
	nodes int
}

// maxNodes bounds the values one file may expand to: a scenario has a few
// dozen, and a file of nested aliases could otherwise make billions.
const maxNodes = 10000

// line returns the line of the deepest existing node on the path, so that a
// missing property ("/user/action is required") points at its parent.
func (d *document) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '/')
		if i < 0 {
			return 1
		}
		path = path[:i]
	}
}

// yamlLine finds the line in yaml.v3's error messages ("yaml: line 3: …").
// yaml.v3 leaves it out on the first line and, for parser (not scanner)
// errors, can name the line before the problem (go-yaml/yaml#205); the
// message still says what is wrong.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parse reads one YAML document. A syntax error, an empty file or a second
// document is returned as a problem with its line (0 when yaml.v3 does not
// say).
func parse(src []byte) (*document, *problem) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &problem{line: 1, msg: "the file holds no scenario"}
		}
		return nil, yamlProblem(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlProblem(err)
	default:
		return nil, &problem{line: next.Line, msg: "a file holds one scenario: a second YAML document starts here"}
	}
	d := &document{lines: map[string]int{}, open: map[*yaml.Node]bool{}}
	v, p := d.convert(&root, "")
	if p != nil {
		return nil, p
	}
	d.value = v
	return d, nil
}

func yamlProblem(err error) *problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &problem{line: line, msg: "invalid YAML: " + msg[len(m[0]):]}
	}
	return &problem{msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// convert turns a YAML node into what encoding/json would decode (numbers as
// json.Number, so that the schema sees them exactly) and records the line of
// every pointer: a mapping member's key line, a sequence item's own line.
func (d *document) convert(n *yaml.Node, ptr string) (any, *problem) {
	if _, ok := d.lines[ptr]; !ok {
		d.lines[ptr] = n.Line
	}
	if d.nodes++; d.nodes > maxNodes {
		return nil, &problem{line: n.Line, msg: fmt.Sprintf("%s: the file expands to more than %d values (through aliases?); a scenario has a few dozen", ptr, maxNodes)}
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		d.open[n] = true
		defer delete(d.open, n)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.convert(n.Content[0], ptr)
	case yaml.AliasNode:
		if d.open[n.Alias] {
			return nil, &problem{line: n.Line, msg: fmt.Sprintf("%s: alias *%s refers to a value that holds it", ptr, n.Value)}
		}
		return d.convert(n.Alias, ptr)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, &problem{line: k.Line, msg: "a key must be a plain string"}
			}
			child := ptr + "/" + escapeToken(k.Value)
			if _, dup := m[k.Value]; dup {
				return nil, &problem{line: k.Line, msg: fmt.Sprintf("%s: key %q is repeated (first at line %d)", child, k.Value, d.lines[child])}
			}
			d.lines[child] = k.Line
			val, p := d.convert(v, child)
			if p != nil {
				return nil, p
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, item := range n.Content {
			val, p := d.convert(item, ptr+"/"+strconv.Itoa(i))
			if p != nil {
				return nil, p
			}
			s[i] = val
		}
		return s, nil
	default:
		return scalar(n, ptr)
	}
}

func scalar(n *yaml.Node, ptr string) (any, *problem) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, &problem{line: n.Line, msg: fmt.Sprintf("%s: %v", ptr, err)}
	}
	switch x := v.(type) {
	case int:
		return json.Number(strconv.Itoa(x)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, &problem{line: n.Line, msg: fmt.Sprintf("%s: %s is not a JSON number", ptr, n.Value)}
		}
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64)), nil
	case time.Time, []byte:
		// Timestamps and binary stay the text that was written.
		return n.Value, nil
	default: // string, bool, nil
		return v, nil
	}
}

// escapeToken escapes a key as a JSON pointer token (RFC 6901).
func escapeToken(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
