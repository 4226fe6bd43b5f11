// Package examples is a merchant's integration test suite in miniature: a
// module of its own that imports github.com/mpsandbox/mpsandbox/testkit the
// way a merchant's module does, and runs a 支付分 (Pay Score) flow with the
// official wechatpay-go SDK against the sandbox started both ways — in
// process (testkit.Start) and as the image (testkit.RunContainer).
//
// Run it with `make examples` (part of `make test`), or `go test ./...` in
// this folder; the container half needs docker and the image
// (MPSANDBOX_IMAGE, default mpsandbox:dev from `make image`).
package examples
