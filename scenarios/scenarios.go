// Package scenarios embeds the scenario catalogue: <product>/<name>.yaml,
// one scenario per file, each valid against schemas/scenario.schema.json.
// server/internal/scenario loads them.
package scenarios

import "embed"

// FS holds every <product>/*.yaml under this folder.
//
//go:embed */*.yaml
var FS embed.FS
