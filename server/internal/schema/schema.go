// Package schema compiles mpsandbox's JSON Schemas (draft 2020-12) from an
// fs.FS and validates documents against them, reporting every violation
// with its JSON pointer so that callers can render all of them at once.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// BaseURL prefixes every schema's $id: a schema named "miniprogram/call"
// has the $id BaseURL + "miniprogram/call.schema.json", so relative $refs
// between files resolve by $id without any network access.
const BaseURL = "https://mpsandbox.dev/schemas/"

// Suffix ends every schema file name.
const Suffix = ".schema.json"

// draft2020 is the only $schema the files may declare, so that one set of
// keyword semantics holds everywhere.
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// Set is the compiled schemas. It is immutable and safe for concurrent use.
type Set struct {
	entries map[string]entry
	names   []string
}

type entry struct {
	schema *jsonschema.Schema
	source []byte
}

var _ sandbox.Validator = (*Set)(nil)

// Compile compiles every *.schema.json in fsys once. A schema that does not
// parse or compile, declares another $schema, or whose $id does not match its
// path is an error naming the file; every such file is reported.
func Compile(fsys fs.FS) (*Set, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = true
	// A $ref to a schema that is not in the set must fail, not fetch a URL
	// or read a local file.
	c.LoadURL = func(url string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("no schema %s in the set", url)
	}

	set := &Set{entries: map[string]entry{}}
	var errs []error
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, Suffix) {
			return nil
		}
		src, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		if err := addResource(c, path, src); err != nil {
			errs = append(errs, fmt.Errorf("schemas/%s: %w", path, err))
			return nil
		}
		name := strings.TrimSuffix(path, Suffix)
		set.entries[name] = entry{source: src}
		set.names = append(set.names, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read schemas: %w", err)
	}
	for _, name := range set.names {
		sch, err := c.Compile(BaseURL + name + Suffix)
		if err != nil {
			errs = append(errs, fmt.Errorf("schemas/%s%s: %w", name, Suffix, err))
			continue
		}
		e := set.entries[name]
		e.schema = sch
		set.entries[name] = e
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Strings(set.names)
	return set, nil
}

// addResource checks the header of one schema file and hands it to the
// compiler under its $id.
func addResource(c *jsonschema.Compiler, path string, src []byte) error {
	var head struct {
		Schema string `json:"$schema"`
		ID     string `json:"$id"`
	}
	if err := json.Unmarshal(src, &head); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if head.Schema != draft2020 {
		return fmt.Errorf("$schema is %q, want %q", head.Schema, draft2020)
	}
	if want := BaseURL + path; head.ID != want {
		return fmt.Errorf("$id is %q, want %q", head.ID, want)
	}
	return c.AddResource(head.ID, bytes.NewReader(src))
}

// Names returns the name of every schema, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Source returns the text of the named schema, for
// GET /sandbox/v1/schemas/{name}. The caller must not modify it.
func (s *Set) Source(name string) ([]byte, bool) {
	e, ok := s.entries[name]
	return e.source, ok
}

// Validate returns every violation of doc against the named schema, sorted by
// path; none means valid. doc is a decoded JSON value (decode with
// UseNumber to keep large integers exact); other Go values are converted
// through encoding/json. An unknown name is a CodeInternal *sandbox.Error:
// the caller asked for a schema that does not exist.
func (s *Set) Validate(name string, doc any) ([]sandbox.Violation, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if raw, ok := doc.(json.RawMessage); ok {
		return validateJSON(e.schema, raw), nil
	}
	err = e.schema.Validate(doc)
	var typeErr jsonschema.InvalidJSONTypeError
	if errors.As(err, &typeErr) {
		// A struct or a typed map: validate what it encodes to, which is
		// what would go over the wire.
		raw, merr := json.Marshal(doc)
		if merr != nil {
			return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "validate " + name + ": value is not JSON", Err: merr}
		}
		return validateJSON(e.schema, raw), nil
	}
	return violations(err)
}

// ValidateJSON decodes raw (numbers kept as json.Number) and validates it
// like Validate. Malformed JSON is one violation at "" naming the byte
// offset, not an error.
func (s *Set) ValidateJSON(name string, raw []byte) ([]sandbox.Violation, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return validateJSON(e.schema, raw), nil
}

func (s *Set) lookup(name string) (entry, error) {
	e, ok := s.entries[name]
	if !ok {
		return entry{}, sandbox.Errorf(sandbox.CodeInternal, "unknown schema %q", name)
	}
	return e, nil
}

func validateJSON(sch *jsonschema.Schema, raw []byte) []sandbox.Violation {
	doc, v := Decode(raw)
	if v != nil {
		return []sandbox.Violation{*v}
	}
	// Only malformed input yields InvalidJSONTypeError, and a decoded
	// document is never malformed, so the error is always a validation one.
	vs, _ := violations(sch.Validate(doc))
	return vs
}

// Decode decodes one JSON document with numbers as json.Number. Malformed
// input, trailing data included, is returned as a violation at "" whose
// message names the byte offset (from 0) of the problem.
func Decode(raw []byte) (any, *sandbox.Violation) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, &sandbox.Violation{Message: malformed(err, len(raw))}
	}
	end := int(dec.InputOffset())
	if rest := bytes.TrimLeft(raw[end:], " \t\r\n"); len(rest) > 0 {
		return nil, &sandbox.Violation{Message: fmt.Sprintf("invalid JSON at byte offset %d: unexpected data after the document", len(raw)-len(rest))}
	}
	return doc, nil
}

// malformed describes a decoding error; size is the input's length, where
// a truncated document ends.
func malformed(err error, size int) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, the bad one included.
		return fmt.Sprintf("invalid JSON at byte offset %d: %s", syn.Offset-1, syn.Error())
	case errors.Is(err, io.EOF):
		return "invalid JSON: the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("invalid JSON at byte offset %d: unexpected end of input", size)
	default:
		return fmt.Sprintf("invalid JSON: %s", err)
	}
}
