// Package schemas embeds mpsandbox's JSON Schemas (draft 2020-12). A
// schema's name is its path under this folder without ".schema.json";
// server/internal/schema compiles them.
package schemas

import "embed"

// FS holds every *.schema.json under this folder.
//
//go:embed *.schema.json */*.schema.json
var FS embed.FS
