// Package openapi builds the OpenAPI 3.1 document of the sandbox's own
// surface — the admin API /sandbox/v1 and the mini-program contract
// /miniprogram/v1 — from source.json (the paths, operations and the
// response shapes no schema file holds) and the JSON schemas in schemas/
// that the server validates requests with: every "$ref" to a schema file is
// bundled into components/schemas, so the document stands alone and cannot
// drift from what the server checks. GET /sandbox/v1/openapi.json serves
// it; docs/openapi.json is the same document, committed (a test keeps them
// equal).
package openapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

//go:embed source.json
var source []byte

// Path is where the server serves the document.
const Path = "/sandbox/v1/openapi.json"

// Build returns the document: source.json with info.version set to version
// and every schema file it refers to (through schemas) bundled under
// components/schemas as "<folder>.<name>".
func Build(schemas fs.FS, version string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(source, &doc); err != nil {
		return nil, fmt.Errorf("openapi source: %w", err)
	}
	doc["info"].(map[string]any)["version"] = version
	b := &bundler{fsys: schemas, bundled: map[string]any{}}
	if err := b.rewrite(doc, "", ""); err != nil {
		return nil, err
	}
	comps := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for k, v := range b.bundled {
		if _, taken := comps[k]; taken {
			return nil, fmt.Errorf("openapi: components/schemas/%s is both in the source and a bundled schema", k)
		}
		comps[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Handler serves the document built once, on the first request.
func Handler(schemas fs.FS, version string) gin.HandlerFunc {
	build := sync.OnceValues(func() ([]byte, error) { return Build(schemas, version) })
	return func(c *gin.Context) {
		doc, err := build()
		if err != nil {
			// The document is checked by the package's tests: this is a build
			// of the server that should not have passed them.
			c.Error(err)
			c.JSON(http.StatusInternalServerError, gin.H{"error": gin.H{"code": "internal", "message": err.Error()}})
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
	}
}

// bundler copies schema files into the document.
type bundler struct {
	fsys    fs.FS
	bundled map[string]any // by component key
}

// Key is the components/schemas key of a schema file:
// "admin/clock-advance.schema.json" → "admin.clock-advance".
func Key(file string) string {
	return strings.ReplaceAll(strings.TrimSuffix(file, ".schema.json"), "/", ".")
}

// rewrite points every "$ref" under v at components/schemas. dir is the
// folder of the schema file v comes from ("" for the source, whose refs
// name files from schemas/' root); self is that file ("" for the source),
// against which a "#…" reference inside it is taken.
func (b *bundler) rewrite(v any, dir, self string) error {
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["$ref"].(string); ok {
			to, err := b.target(r, dir, self)
			if err != nil {
				return err
			}
			x["$ref"] = to
		}
		for _, e := range x {
			if err := b.rewrite(e, dir, self); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := b.rewrite(e, dir, self); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bundler) target(ref, dir, self string) (string, error) {
	file, frag, _ := strings.Cut(ref, "#")
	if file == "" {
		if self == "" {
			return ref, nil // a reference within the source document
		}
		file = self
	} else {
		file = path.Join(dir, file)
		if err := b.load(file); err != nil {
			return "", err
		}
	}
	return "#/components/schemas/" + Key(file) + frag, nil
}

// load bundles a schema file (once), without its $id and $schema: its
// references are rewritten to the bundle, so the ids would only mislead.
func (b *bundler) load(file string) error {
	key := Key(file)
	if _, done := b.bundled[key]; done {
		return nil
	}
	raw, err := fs.ReadFile(b.fsys, file)
	if err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("openapi: %s: %w", file, err)
	}
	delete(s, "$id")
	delete(s, "$schema")
	b.bundled[key] = s
	return b.rewrite(s, path.Dir(file), file)
}
