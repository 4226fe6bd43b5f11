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
	"sync"

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

// Set is the schemas of one folder. It is safe for concurrent use.
type Set struct {
	// mu guards compiler, which is not safe for concurrent use; only a
	// schema's first compilation takes it.
	mu       sync.Mutex
	compiler *jsonschema.Compiler
	entries  map[string]*entry
	names    []string
}

type entry struct {
	url    string
	source []byte
	once   sync.Once
	schema *jsonschema.Schema
	err    error
}

var _ sandbox.Validator = (*Set)(nil)

// Compile reads and compiles every *.schema.json in fsys. A schema that does
// not parse or compile, declares another $schema, or whose $id does not match
// its path is an error naming the file; every such file is reported.
// Compiling costs about half a millisecond per schema, most of it the
// library checking each schema against the 2020-12 meta-schema, which it
// cannot skip; Load defers that to first use.
func Compile(fsys fs.FS) (*Set, error) {
	s, errs, err := read(fsys)
	if err != nil {
		return nil, err
	}
	for _, name := range s.names {
		if _, err := s.schema(s.entries[name]); err != nil {
			errs = append(errs, fmt.Errorf("schemas/%s%s: %w", name, Suffix, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Load reads every *.schema.json in fsys and checks that it is JSON with the
// 2020-12 $schema and the $id of its path, reporting every file that is not,
// but hands a schema to the compiler and compiles it only when it is first
// used (itself or through a $ref), so that start-up does not pay for all of
// them. A schema that then fails to compile makes
// Validate return a CodeInternal error; TestCanCompileEmbeddedSchemas
// compiles the embedded set eagerly so that this cannot happen in a build.
func Load(fsys fs.FS) (*Set, error) {
	s, errs, err := read(fsys)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// read adds every schema file with a sound header to a new Set; errs names
// the others, err is a failure to read the folder.
func read(fsys fs.FS) (s *Set, errs []error, err error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = true
	s = &Set{compiler: c, entries: map[string]*entry{}}
	// The compiler parses a schema file when a compilation first needs it
	// (the schema itself or a $ref to it), not at Load: start-up then
	// parses only the schemas it uses. A $ref to a schema that is not in
	// the set fails instead of fetching a URL or reading a local file.
	c.LoadURL = func(url string) (io.ReadCloser, error) {
		name, ok := strings.CutPrefix(url, BaseURL)
		if e, known := s.entries[strings.TrimSuffix(name, Suffix)]; ok && known && e.url == url {
			return io.NopCloser(bytes.NewReader(e.source)), nil
		}
		return nil, fmt.Errorf("no schema %s in the set", url)
	}
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
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
		if err := checkHeader(path, src); err != nil {
			errs = append(errs, fmt.Errorf("schemas/%s: %w", path, err))
			return nil
		}
		name := strings.TrimSuffix(path, Suffix)
		s.entries[name] = &entry{url: BaseURL + path, source: src}
		s.names = append(s.names, name)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read schemas: %w", err)
	}
	sort.Strings(s.names)
	return s, errs, nil
}

// schema returns the entry's compiled schema, compiling it on first use.
func (s *Set) schema(e *entry) (*jsonschema.Schema, error) {
	e.once.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		e.schema, e.err = s.compiler.Compile(e.url)
	})
	return e.schema, e.err
}

// checkHeader checks that a schema file is JSON with the 2020-12 $schema
// and the $id of its path, under which the compiler loads it.
func checkHeader(path string, src []byte) error {
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
	return nil
}

// Names returns the name of every schema, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Source returns the text of the named schema, for
// GET /sandbox/v1/schemas/{name}. The caller must not modify it.
func (s *Set) Source(name string) ([]byte, bool) {
	if e, ok := s.entries[name]; ok {
		return e.source, true
	}
	return nil, false
}

// Validate returns every violation of doc against the named schema, sorted by
// path; none means valid. doc is a decoded JSON value (decode with
// UseNumber to keep large integers exact); other Go values are converted
// through encoding/json. An unknown name is a CodeInternal *sandbox.Error:
// the caller asked for a schema that does not exist.
func (s *Set) Validate(name string, doc any) ([]sandbox.Violation, error) {
	sch, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if raw, ok := doc.(json.RawMessage); ok {
		return validateJSON(sch, raw), nil
	}
	err = sch.Validate(doc)
	var typeErr jsonschema.InvalidJSONTypeError
	if errors.As(err, &typeErr) {
		// A struct or a typed map: validate what it encodes to, which is
		// what would go over the wire.
		raw, merr := json.Marshal(doc)
		if merr != nil {
			return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "validate " + name + ": value is not JSON", Err: merr}
		}
		return validateJSON(sch, raw), nil
	}
	return violations(err)
}

// ValidateJSON decodes raw (numbers kept as json.Number) and validates it
// like Validate. Malformed JSON is one violation at "" naming the byte
// offset, not an error.
func (s *Set) ValidateJSON(name string, raw []byte) ([]sandbox.Violation, error) {
	sch, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return validateJSON(sch, raw), nil
}

// lookup returns the named schema, compiled. Both failures are the
// caller's or the build's bug, hence CodeInternal.
func (s *Set) lookup(name string) (*jsonschema.Schema, error) {
	e, ok := s.entries[name]
	if !ok {
		return nil, sandbox.Errorf(sandbox.CodeInternal, "unknown schema %q", name)
	}
	sch, err := s.schema(e)
	if err != nil {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: fmt.Sprintf("schema %q does not compile", name), Err: err}
	}
	return sch, nil
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

// DecodeMembers is Decode that also returns, for a document that is an
// object, each member's value as sent — a slice of raw, from its first
// byte to its last — so that a caller keeps one verbatim without decoding
// the document a second time. Anything else has no members.
func DecodeMembers(raw []byte) (any, map[string][]byte, *sandbox.Violation) {
	doc, bad := Decode(raw)
	obj, ok := doc.(map[string]any)
	if bad != nil || !ok {
		return doc, nil, bad
	}
	members := make(map[string][]byte, len(obj))
	// Decode has checked that raw is one well-formed object: walk its
	// members, skipping each value by its nesting, strings and escapes.
	i := skipSpace(raw, 0) + 1 // past '{'
	for {
		i = skipSpace(raw, i)
		if raw[i] == '}' {
			return doc, members, nil
		}
		keyEnd := skipValue(raw, i)
		key := string(raw[i+1 : keyEnd-1])
		if bytes.IndexByte(raw[i:keyEnd], '\\') >= 0 {
			_ = json.Unmarshal(raw[i:keyEnd], &key)
		}
		i = skipSpace(raw, skipSpace(raw, keyEnd)+1) // past ':'
		end := skipValue(raw, i)
		members[key] = raw[i:end] // a repeated key keeps its last value, as in doc
		if i = skipSpace(raw, end); raw[i] == ',' {
			i++
		}
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the well-formed JSON value starting at i.
func skipValue(raw []byte, i int) int {
	depth := 0
	for ; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			for i++; raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of a number, true, false or null
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return i // likewise
			}
		}
	}
	return i
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
