package wxsign

import (
	"os"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// The WeChat Pay API v2 signing example (SOURCES.md §2, "[V]"): the doc's
// parameters and API key, with both digests it gives.
const (
	v2GoldenKey    = "192006250b4c09247ec02edce69f6a2d"
	v2GoldenString = "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
	v2GoldenMD5    = "9A0A8659F005D6984697E2CA0A9CF3B7"
	v2GoldenHMAC   = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
)

func v2GoldenParams() map[string]string {
	return map[string]string{
		"appid":       "wxd930ea5d5a258f4f",
		"mch_id":      "10000100",
		"device_info": "1000",
		"body":        "test",
		"nonce_str":   "ibuaiVcKdpRxkhJA",
	}
}

func TestV2StringToSign(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"golden", v2GoldenParams(), v2GoldenString},
		{
			"sign and empty values are skipped",
			map[string]string{"b": "2", "a": "1", "sign": "ABC", "empty": "", "sign_type": "MD5"},
			"a=1&b=2&sign_type=MD5&key=K",
		},
		{
			"ASCII order puts upper case first",
			map[string]string{"b": "1", "B": "2", "a_b": "3", "aB": "4"},
			"B=2&aB=4&a_b=3&b=1&key=K",
		},
		{"no parameters", nil, "&key=K"},
		{
			"values are not URL-encoded",
			map[string]string{"body": "停车费 a&b=c"},
			"body=停车费 a&b=c&key=K",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "K"
			if tt.name == "golden" {
				key = v2GoldenKey
			}
			if got := V2StringToSign(tt.params, key); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestV2SignGolden(t *testing.T) {
	tests := []struct {
		signType string
		want     string
	}{
		{SignTypeMD5, v2GoldenMD5},
		{"", v2GoldenMD5}, // v2 defaults to MD5 without sign_type
		{SignTypeHMACSHA256, v2GoldenHMAC},
	}
	for _, tt := range tests {
		t.Run("type "+tt.signType, func(t *testing.T) {
			got, err := V2Sign(v2GoldenParams(), v2GoldenKey, tt.signType)
			if err != nil {
				t.Fatalf("V2Sign: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if err := V2Verify(v2GoldenParams(), v2GoldenKey, tt.signType, tt.want); err != nil {
				t.Errorf("V2Verify of the golden sign: %v", err)
			}
		})
	}
}

func TestV2SignIgnoresSignParam(t *testing.T) {
	p := v2GoldenParams()
	p["sign"] = v2GoldenMD5
	got, err := V2Sign(p, v2GoldenKey, SignTypeMD5)
	if err != nil {
		t.Fatal(err)
	}
	if got != v2GoldenMD5 {
		t.Errorf("got %s with sign among the params, want %s", got, v2GoldenMD5)
	}
}

func TestV2VerifyFailures(t *testing.T) {
	tests := []struct {
		name     string
		signType string
		sign     string
		mutate   func(map[string]string)
		want     string
	}{
		{"missing sign", SignTypeMD5, "", nil, "sign is missing"},
		{"lower case", SignTypeMD5, strings.ToLower(v2GoldenMD5), nil, "not in upper case"},
		{"wrong digest type", SignTypeHMACSHA256, v2GoldenMD5, nil, "HMAC-SHA256"},
		{"altered parameter", SignTypeMD5, v2GoldenMD5, func(p map[string]string) { p["body"] = "test2" }, "does not match"},
		{"extra parameter", SignTypeMD5, v2GoldenMD5, func(p map[string]string) { p["attach"] = "x" }, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := v2GoldenParams()
			if tt.mutate != nil {
				tt.mutate(p)
			}
			err := V2Verify(p, v2GoldenKey, tt.signType, tt.sign)
			e := wantSandboxError(t, err, sandbox.CodeUnauthorized, tt.want)
			wantDiag := strings.Replace(V2StringToSign(p, v2GoldenKey), "&key="+v2GoldenKey, "&key=***", 1)
			if e.Diagnostics != wantDiag {
				t.Errorf("got diagnostics %q, want %q", e.Diagnostics, wantDiag)
			}
			if strings.Contains(e.Error()+e.Diagnostics, v2GoldenKey) {
				t.Errorf("the API key leaks into the error: %q / %q", e.Error(), e.Diagnostics)
			}
		})
	}
}

func TestV2DiagnosticsMaskKeyInParams(t *testing.T) {
	p := v2GoldenParams()
	p["attach"] = "oops " + v2GoldenKey // a merchant who signs with the key as a parameter
	e := wantSandboxError(t, V2Verify(p, v2GoldenKey, SignTypeMD5, "0"), sandbox.CodeUnauthorized)
	if strings.Contains(e.Diagnostics, v2GoldenKey) {
		t.Errorf("got diagnostics %q, want the key masked everywhere", e.Diagnostics)
	}
	if !strings.Contains(e.Diagnostics, "attach=oops ***&") {
		t.Errorf("got diagnostics %q, want the parameter shown with the key masked", e.Diagnostics)
	}
}

func TestV2UnsupportedSignType(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func() error
	}{
		{"sign", func() error { _, err := V2Sign(v2GoldenParams(), v2GoldenKey, "SHA1"); return err }},
		{"verify", func() error { return V2Verify(v2GoldenParams(), v2GoldenKey, "md5", v2GoldenMD5) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := wantSandboxError(t, tt.run(), sandbox.CodeInvalid, "sign_type")
			if len(e.Fields) != 1 || e.Fields[0].Path != "/sign_type" {
				t.Errorf("got fields %+v, want one at /sign_type", e.Fields)
			}
		})
	}
}

// TestV2ExampleInDocs: the querystate request on the repayment page is
// signed as this package signs, and shows its string-to-sign.
func TestV2ExampleInDocs(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/products/repayment.md")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{"appid": "wxd930ea5d5a258f4f", "mch_id": "1230000109", "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
		"sign_type": SignTypeHMACSHA256, "trade_scene": "PARKING", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "version": "3.0"}
	const key = "192006250b4c09247ec02edce69f6a2d"
	sign, err := V2Sign(params, key, SignTypeHMACSHA256)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<sign>" + sign + "</sign>", "`" + V2StringToSign(params, key) + "`"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/products/repayment.md lacks %s", want)
		}
	}
}
