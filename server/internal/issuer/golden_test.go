package issuer

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got, indented, with testdata/name, or rewrites it with
// -update.
func golden(tb testing.TB, name string, v any) {
	tb.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		tb.Errorf("%s\ngot  %s\nwant %s", name, got, want)
	}
}

// TestGolden pins the bodies a host reads, byte for byte: a refused
// navigation, a login's way back, and an activation's result for a fixed
// order (whose numbers fixtures draws from the order number).
func TestGolden(t *testing.T) {
	const mchid, no = "1230000109", "ETC20250301000000000001"
	t.Run("navigate-fail", func(t *testing.T) {
		w := newWorld(t)
		out := w.call(sandbox.APIPluginNavigate, w.caller(nil), map[string]any{
			"url": "plugin://issuer-plugin/login?etcProductId=P1&accountType=9&afterType=3&mobile=1",
		}, "", http.StatusBadRequest)
		delete(out, "request_id")
		golden(t, "navigate-fail.json", out)
	})
	t.Run("login-return", func(t *testing.T) {
		ret := redirect(PageLogin, "/pages/etc/done?from=plugin", "openId", openID(mchid, "13912345678"),
			"accessToken", "0123456789abcdef0123456789abcdef", "orderNo", no, "plateNum", faker(mchid, no).PlateNum())
		validDoc(t, SchemaReturn, ret)
		golden(t, "login-return.json", ret)
	})
	t.Run("active-result", func(t *testing.T) {
		obu, card := deviceNumbers(params{}, mchid, no)
		res := activeResult{State: ActiveSuccess, OBU: obu, Card: card}
		validDoc(t, SchemaActiveResult, res)
		golden(t, "active-result.json", res)
	})
}

// validDoc checks a value against a schema as it would go over the wire.
func validDoc(tb testing.TB, name string, v any) {
	tb.Helper()
	w := &world{tb: tb, set: compiledSchemas(tb)}
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	w.valid(name, raw)
}
