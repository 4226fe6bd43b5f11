// Package e2e is mpsandbox's black-box suite: it builds the image the way
// `make image` does, starts it with testcontainers-go and drives the server
// from outside, over HTTP on loopback, as a merchant's CI would.
//
// Run it with `make e2e` (or `go test ./e2e`); `-short` skips it. Set
// MPSANDBOX_E2E_IMAGE to test an image already built instead of building one.
package e2e
