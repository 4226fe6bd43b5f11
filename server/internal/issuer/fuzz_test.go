package issuer

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzParseURL: any plugin:// URL a mini-program navigates to is read into
// a page and its parameters or refused with violations at /args/url…,
// never a panic; a URL it reads cleanly names one of the plugin's pages
// and reads the same again once re-encoded.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"plugin://issuer-plugin/login?etcProductId=P1&accountType=1&carType=0&redirectUrl=/pages/a/a&mobile=13912345678",
		"plugin://issuer-plugin/login?handleType=aftersale&afterType=1&orderNo=x",
		"plugin://issuer-plugin/activeAgain?plateNum=%E6%B5%99A0P73H_0",
		"plugin://issuer-plugin/signGetAuth?orderNo=a&orderNo=b&openId=%zz#frag",
		"plugin://issuer-plugin/deviceUpgrade?",
		"plugin://issuer-plugin/nowhere",
		"plugin://other/login",
		"plugin://issuer-plugin/login?a=1;b=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, vs := parseURL(raw)
		for _, x := range vs {
			if !strings.HasPrefix(x.Path, pathURL) || x.Message == "" {
				t.Fatalf("violation %+v: want a message at %s…", x, pathURL)
			}
		}
		if len(vs) > 0 {
			return
		}
		if !slices.Contains(pages[:], v.page) {
			t.Fatalf("%q read as page %q, which the plugin does not have", raw, v.page)
		}
		q := url.Values{}
		for k, val := range v.query {
			q.Set(k, val)
		}
		again, vs := parseURL(urlPrefix + v.page + "?" + q.Encode())
		if len(vs) > 0 || again.page != v.page || again.variant != v.variant || !maps.Equal(again.query, v.query) {
			t.Fatalf("%q reads as %+v, re-encoded as %+v %v", raw, v, again, vs)
		}
	})
}
