package schema_test

import (
	"strconv"
	"testing"

	"github.com/mpsandbox/mpsandbox/fixtures"
)

// TestFixturesMatchSchemas is the contract between the generators in
// fixtures/ and schemas/fixtures/: every value of many seeds validates. It
// lives here because fixtures/, outside server/, cannot import this package.
func TestFixturesMatchSchemas(t *testing.T) {
	s := compileEmbedded(t)
	generators := map[string]func(f *fixtures.Faker) string{
		"fixtures/openid":          (*fixtures.Faker).OpenID,
		"fixtures/mobile":          (*fixtures.Faker).Mobile,
		"fixtures/plate":           func(f *fixtures.Faker) string { p, _ := f.Plate(); return p },
		"fixtures/plate-num":       (*fixtures.Faker).PlateNum,
		"fixtures/plate-color":     (*fixtures.Faker).PlateColor,
		"fixtures/obu":             (*fixtures.Faker).OBU,
		"fixtures/card":            (*fixtures.Faker).ETCCard,
		"fixtures/order-no":        func(f *fixtures.Faker) string { return f.OrderNo("PS_") },
		"fixtures/serial":          (*fixtures.Faker).Serial,
		"fixtures/mchid":           (*fixtures.Faker).MchID,
		"fixtures/service-id":      (*fixtures.Faker).ServiceID,
		"fixtures/appid":           (*fixtures.Faker).AppID,
		"fixtures/nonce-str":       (*fixtures.Faker).NonceStr,
		"fixtures/pub-key-id":      (*fixtures.Faker).PublicKeyID,
		"fixtures/pcloud-app-id":   (*fixtures.Faker).PCloudAppID,
		"fixtures/pcloud-merchant": (*fixtures.Faker).PCloudMerchant,
	}
	for name, gen := range generators {
		t.Run(name, func(t *testing.T) {
			for seed := int64(0); seed < 500; seed++ {
				f := fixtures.New(seed)
				for i := 0; i < 4; i++ {
					v := gen(f)
					got, err := s.Validate(name, v)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) > 0 {
						t.Fatalf("seed %d, value %d: %q: %v", seed, i, v, got)
					}
				}
			}
		})
	}
	// The plate colour code of Plate must be the one PlateNum appends.
	t.Run("plate colour code", func(t *testing.T) {
		for seed := int64(0); seed < 500; seed++ {
			_, c := fixtures.New(seed).Plate()
			num := fixtures.New(seed).PlateNum()
			if want := "_" + strconv.Itoa(c); num[len(num)-2:] != want {
				t.Fatalf("seed %d: PlateNum %q, Plate colour %d", seed, num, c)
			}
		}
	})
	// A merchant's generated values match the same schemas.
	m, err := fixtures.NewMerchant("", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"fixtures/mchid": m.MchID, "fixtures/appid": m.AppID, "fixtures/service-id": m.ServiceID,
		"fixtures/serial": m.MerchantSerialNo, "fixtures/pub-key-id": m.PlatformPublicKeyID,
		"fixtures/pcloud-app-id": m.PCloudAppID, "fixtures/pcloud-merchant": m.PCloudMerchant,
	} {
		if got, _ := s.Validate(name, v); len(got) > 0 {
			t.Errorf("NewMerchant %s %q: %v", name, v, got)
		}
	}
}
