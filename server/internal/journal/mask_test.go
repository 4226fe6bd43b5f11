package journal

import (
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, ``},
		{"no secret word", `{"appid":"wx1","sign":"ABC"}`, `{"appid":"wx1","sign":"ABC"}`},
		{"json key", `{"api_v3_key":"0123456789abcdef","appid":"wx1"}`, `{"api_v3_key":"***","appid":"wx1"}`},
		{"json every word, any case", `{"APIKey":"a","client_secret":"b","PrivateKeyPem":"c","access_token":"d","Password":"e"}`,
			`{"APIKey":"***","client_secret":"***","PrivateKeyPem":"***","access_token":"***","Password":"***"}`},
		{"json signatures stay", `{"sign":"S1","signature":"S2","paySign":"S3","token":"t"}`,
			`{"sign":"S1","signature":"S2","paySign":"S3","token":"***"}`},
		{"json nested and spaced", "{\n  \"merchant\": {\"pcloud_app_secret\" :  \"s3cr3t\", \"n\": 1},\n  \"list\": [{\"token\":\"x\"}]\n}",
			"{\n  \"merchant\": {\"pcloud_app_secret\" :  \"***\", \"n\": 1},\n  \"list\": [{\"token\":\"***\"}]\n}"},
		{"json escaped quotes in values", `{"note":"say \"key\": \"v\"","secret":"a\"b"}`, `{"note":"say \"key\": \"v\"","secret":"***"}`},
		{"json secret name as a value is not a key", `{"field":"api_key","value":"abc"}`, `{"field":"api_key","value":"abc"}`},
		{"json non-string secret kept", `{"key_count":3,"private":{"token":"t"}}`, `{"key_count":3,"private":{"token":"***"}}`},
		{"json cut short", `{"token":"abc`, `{"token":"abc`},
		{"form", `app_id=a1&app_secret=s&value=100&sign=ABCD`, `app_id=a1&app_secret=***&value=100&sign=ABCD`},
		{"form encoded name", `api%5Fkey=k&x=1`, `api%5Fkey=***&x=1`},
		{"form string to sign", `mch_id=1&nonce_str=n&key=192006250b4c09247ec02edce69f6a2d`, `mch_id=1&nonce_str=n&key=***`},
		{"form value with secret word kept", `note=my+key+is+here`, `note=my+key+is+here`},
		{"plain text", `the key is here`, `the key is here`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mask(tt.body); got != tt.want {
				t.Errorf("Mask(%q)\n got %q\nwant %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestMaskURL(t *testing.T) {
	if got, want := maskURL("/sandbox/v1/journal?token=abc&product=x"), "/sandbox/v1/journal?token=***&product=x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := maskURL("/v3/payscore/serviceorder/key"), "/v3/payscore/serviceorder/key"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCut(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short", "abc", 10, "abc"},
		{"exact", "abcdefghij", 10, "abcdefghij"},
		{"long", "abcdefghijk", 10, "abcdefghij…[cut: 11 bytes in all]"},
		{"rune boundary", "ab支付分", 4, "ab…[cut: 11 bytes in all]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cut(tt.in, tt.max); got != tt.want {
				t.Errorf("cut(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func BenchmarkMask(b *testing.B) {
	plain := `{"appid":"wx1","mchid":"1230000109","out_order_no":"1234323JKHDFE1243252","sign":"` + strings.Repeat("A", 64) + `"}`
	secret := `{"appid":"wx1","api_v3_key":"0123456789abcdef0123456789abcdef","n":1}`
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			Mask(plain)
		}
	})
	b.Run("secret", func(b *testing.B) {
		for b.Loop() {
			Mask(secret)
		}
	})
}
