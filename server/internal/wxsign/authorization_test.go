package wxsign

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func validAuthorization() Authorization {
	return Authorization{
		MchID:     "1900000001",
		NonceStr:  "593BEC0C930BF1AFEB40B4A08C8FB242",
		Timestamp: "1554208460",
		SerialNo:  "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
		Signature: "uOVRnA4qG/MNnYzdQxJanN+zU+lTgIcnU9BxGw5dKjK+VdEUz2FeIoC+D5sB/LN+nGzX3hfZg6r5wT1pl2ZobmIc6p0ldN7J6yDgUzbX8Uk3sD4a4eZVPTBvqNDoUqcYMlZ9uuDdCvNv4TM3c1WzsXUrExwVkI1XO5jCNbgDJ25nkT/c1gIFvqoogl7MdSFGc4W4xZsqCItnqbypR3RuGIlR9h9vlRsy7zJR9PBI83X8alLDIfR1ukt1P7tMnmogZ0cuDY8cZsd8ZlCgLadmvej58SLsIkVxFJ8XmUgx9FpazPC0tQyOHBJxPkhC4GnN6eU3+A9CiNfTGzoXtfnAQA==",
	}
}

func TestFormatAuthorizationMatchesSDK(t *testing.T) {
	// core/consts.HeaderAuthorizationFormat of wechatpay-go v0.2.21.
	a := validAuthorization()
	want := `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="` + a.Signature + `"`
	if got := FormatAuthorization(a); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseAuthorizationFields(t *testing.T) {
	a := validAuthorization()
	tests := []struct {
		name       string
		header     string
		violations int
	}{
		{"sdk order", FormatAuthorization(a), 0},
		{
			"other order with spaces", `WECHATPAY2-SHA256-RSA2048 signature="` + a.Signature + `", serial_no="` + a.SerialNo +
				`" ,timestamp="` + a.Timestamp + `",  mchid="` + a.MchID + `",nonce_str="` + a.NonceStr + `"`, 0,
		},
		{"lower-case scheme", strings.Replace(FormatAuthorization(a), AuthScheme, strings.ToLower(AuthScheme), 1), 0},
		{"unknown field ignored", FormatAuthorization(a) + `,version="2"`, 0},
		{"trailing comma", FormatAuthorization(a) + ",", 0},
		// A header with one problem still yields every field, so the product
		// can find the merchant and say which of its fields is wrong.
		{"unquoted value", strings.Replace(FormatAuthorization(a), `nonce_str="`+a.NonceStr+`"`, `nonce_str=`+a.NonceStr, 1), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, vs := ParseAuthorization(tt.header)
			if len(vs) != tt.violations {
				t.Fatalf("got violations %+v, want %d", vs, tt.violations)
			}
			if got != a {
				t.Errorf("got %+v, want %+v", got, a)
			}
		})
	}
}

func TestParseAuthorizationViolations(t *testing.T) {
	a := validAuthorization()
	sdk := FormatAuthorization(a)
	// without is the SDK header less the named fields.
	without := func(fields ...string) string {
		var pairs []string
		for _, f := range authFields {
			if !slices.Contains(fields, f) {
				pairs = append(pairs, f+`="`+*a.field(authFieldIndex(f))+`"`)
			}
		}
		return AuthScheme + " " + strings.Join(pairs, ",")
	}
	tests := []struct {
		name   string
		header string
		want   [][2]string // path, message
	}{
		{"empty", "  ", [][2]string{{"", "Authorization header is missing: expected " + authExample}}},
		{"scheme only", AuthScheme, [][2]string{{"", "Authorization has no fields: expected " + authExample}}},
		{"missing scheme", strings.TrimPrefix(sdk, AuthScheme+" "), [][2]string{{"", "scheme is missing: the header starts with " + AuthScheme}}},
		{"wrong scheme", strings.Replace(sdk, AuthScheme, "WECHATPAY2-SHA256-RSA", 1), [][2]string{{"", `scheme "WECHATPAY2-SHA256-RSA" is not ` + AuthScheme}}},
		{"missing mchid", without("mchid"), [][2]string{{"/mchid", "mchid is missing"}}},
		{"missing serial_no", without("serial_no"), [][2]string{{"/serial_no", "serial_no is missing"}}},
		{
			"missing two", without("nonce_str", "signature"),
			[][2]string{{"/nonce_str", "nonce_str is missing"}, {"/signature", "signature is missing"}},
		},
		{"duplicate", sdk + `,mchid="1900000002"`, [][2]string{{"/mchid", "mchid appears more than once"}}},
		{"empty value", strings.Replace(sdk, `nonce_str="`+a.NonceStr+`"`, `nonce_str=""`, 1), [][2]string{{"/nonce_str", "nonce_str is empty"}}},
		{"unquoted", strings.Replace(sdk, `mchid="1900000001"`, `mchid=1900000001`, 1), [][2]string{{"/mchid", `mchid must be in double quotes: mchid="…"`}}},
		{"no value", strings.Replace(sdk, `mchid="1900000001"`, `mchid`, 1), [][2]string{{"/mchid", `mchid has no value: expected mchid="…"`}}},
		{"unclosed quote", strings.TrimSuffix(sdk, `"`), [][2]string{{"/signature", "signature has no closing quote"}}},
		{
			"text after a value", strings.Replace(sdk, `timestamp="1554208460"`, `timestamp="1554208460"x`, 1),
			[][2]string{{"/timestamp", `timestamp is followed by "x" instead of a comma`}},
		},
		{"timestamp not digits", strings.Replace(sdk, a.Timestamp, "2019-04-02", 1), [][2]string{{"/timestamp", `timestamp must be Unix seconds in decimal digits, got "2019-04-02"`}}},
		{"url-safe base64 signature", strings.Replace(sdk, "uOVRnA4qG/MN", "uOVRnA4qG_MN", 1), [][2]string{{"/signature", "signature is not standard base64 (RFC 4648 §4, with padding)"}}},
		{"stray text", sdk + ",garbage", [][2]string{{"", `unexpected text "garbage": garbage has no value: expected garbage="…"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, vs := ParseAuthorization(tt.header)
			var got [][2]string
			for _, v := range vs {
				got = append(got, [2]string{v.Path, v.Message})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("header %s\ngot  %+v\nwant %+v", tt.header, got, tt.want)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	a := validAuthorization()
	f.Add(FormatAuthorization(a))
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="1",mchid=",",=,"`)
	f.Add(`mchid="`)
	f.Fuzz(func(t *testing.T, header string) {
		got, vs := ParseAuthorization(header)
		if len(vs) > 0 {
			return
		}
		// Whatever parses cleanly formats back into a header that parses to
		// the same fields.
		again, vs := ParseAuthorization(FormatAuthorization(got))
		if len(vs) != 0 || again != got {
			t.Errorf("round trip of %q: got %+v %+v, want %+v", header, again, vs, got)
		}
	})
}
