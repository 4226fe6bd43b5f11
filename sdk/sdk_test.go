package sdk

import (
	"os"
	"strings"
	"testing"
)

// TestModuleIsTheSource proves the binary serves the file beside this one,
// byte for byte, and that it is a CommonJS module exporting install.
func TestModuleIsTheSource(t *testing.T) {
	want, err := os.ReadFile("mpsandbox-wx.js")
	if err != nil {
		t.Fatal(err)
	}
	if got := Module(); got != string(want) {
		t.Fatalf("got %d embedded bytes, want the %d of mpsandbox-wx.js", len(got), len(want))
	}
	if !strings.Contains(Module(), "module.exports = { install: install") {
		t.Errorf("got a module without the install export")
	}
}
