// Package sdk embeds the wx.* shim, sdk/mpsandbox-wx.js: a dependency-free
// CommonJS module a merchant's develop or trial mini-program installs so
// that its jumps reach the sandbox. The server serves it at
// GET /sdk/mpsandbox-wx.js; the module and its act page are documented in
// sdk/README.md.
package sdk

import _ "embed"

//go:embed mpsandbox-wx.js
var module string

// Module returns the shim's source, as served at GET /sdk/mpsandbox-wx.js.
func Module() string { return module }
