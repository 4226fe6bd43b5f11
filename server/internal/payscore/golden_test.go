package payscore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// signHMAC is the v2 HMAC-SHA256 rule written out independently of wxsign:
// sorted non-empty fields but sign, "&key=", upper-case hex.
func signHMAC(tb testing.TB, params map[string]string, key string) string {
	tb.Helper()
	var keys []string
	for k, v := range params {
		if v != "" && k != "sign" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + params[k] + "&")
	}
	b.WriteString("key=" + key)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(b.String()))
	return strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
}

// TestSignGolden checks the extraData sign rule against SOURCES.md §2's
// golden vector (the v2 doc example), through the independent
// implementation the tests sign with and through checkSign's wxsign.
func TestSignGolden(t *testing.T) {
	const key = "192006250b4c09247ec02edce69f6a2d"
	params := map[string]string{"appid": "wxd930ea5d5a258f4f", "body": "test", "device_info": "1000", "mch_id": "10000100", "nonce_str": "ibuaiVcKdpRxkhJA"}
	const want = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
	if got := signHMAC(t, params, key); got != want {
		t.Errorf("test signer: got %s, want %s", got, want)
	}
	if err := wxsign.V2Verify(params, key, wxsign.SignTypeHMACSHA256, want); err != nil {
		t.Errorf("wxsign: %v", err)
	}
	ed := &extraData{MchID: "1230000109", Package: "XXXXXXXX", Timestamp: "1530097563", NonceStr: "zyx53Nkey8o4bHpxTQvd8m7e92nG5mG2", SignType: "HMAC-SHA256"}
	ed.Sign = signHMAC(t, map[string]string{"mch_id": ed.MchID, "package": ed.Package, "timestamp": ed.Timestamp, "nonce_str": ed.NonceStr, "sign_type": ed.SignType}, key)
	if v, _ := checkSign(ed, key); v != nil {
		t.Errorf("checkSign rejects a correct sign: %v", v)
	}
	ed.Timestamp = "1530097564"
	v, diag := checkSign(ed, key)
	if v == nil || diag != "mch_id=1230000109&nonce_str=zyx53Nkey8o4bHpxTQvd8m7e92nG5mG2&package=XXXXXXXX&sign_type=HMAC-SHA256&timestamp=1530097564&key=***" {
		t.Errorf("checkSign on a changed timestamp: got %v %q", v, diag)
	}
}
