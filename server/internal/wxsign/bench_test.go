package wxsign

import (
	"testing"
)

// BenchmarkRSASign is the RSA-2048 signing ceiling every signed v3 response
// and notification pays; the v3 endpoints' throughput is read against it.
func BenchmarkRSASign(b *testing.B) {
	key := testKey(b, platformKey)
	msg := V3ResponseMessage("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c", `{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_order_no":"1234323JKHDFE1243252","state":"CREATED"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RSASign(key, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSAVerify is the cost of checking a merchant's v3 request.
func BenchmarkRSAVerify(b *testing.B) {
	key := testKey(b, merchantKey)
	msg := V3RequestMessage("POST", "/v3/payscore/serviceorder", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", `{"out_order_no":"1234323JKHDFE1243252"}`)
	sig, err := RSASign(key, msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := RSAVerify(&key.PublicKey, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkV2Sign covers the extraData sign of every wxpayScoreUse jump.
func BenchmarkV2Sign(b *testing.B) {
	params := v2GoldenParams()
	for _, st := range []string{SignTypeMD5, SignTypeHMACSHA256} {
		b.Run(st, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := V2Sign(params, v2GoldenKey, st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseAuthorization is the per-request header parse of v3.
func BenchmarkParseAuthorization(b *testing.B) {
	h := FormatAuthorization(validAuthorization())
	b.ReportAllocs()
	for b.Loop() {
		if _, vs := ParseAuthorization(h); len(vs) != 0 {
			b.Fatal(vs)
		}
	}
}

// BenchmarkPCloudSign covers a trade-prepare's sign check.
func BenchmarkPCloudSign(b *testing.B) {
	params := pcloudPrepareParams()
	b.ReportAllocs()
	for b.Loop() {
		PCloudSign(params, pcloudPrepareSecret)
	}
}
