package app

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
)

// merchantsFile is the YAML named by --merchants-file:
//
//	merchants:
//	  - mchid: "1900000001"
//	    name: 测试商户
//	    appid: wx1234567890abcdef
//	    notify_hosts: ["127.0.0.1:9000"]
type merchantsFile struct {
	Merchants []struct {
		MchID                string   `yaml:"mchid"`
		Name                 string   `yaml:"name"`
		AppID                string   `yaml:"appid"`
		NotifyHosts          []string `yaml:"notify_hosts"`
		MerchantPublicKeyPEM string   `yaml:"merchant_public_key_pem"`
	} `yaml:"merchants"`
}

// loadMerchantsFile creates the file's merchants that do not exist yet;
// existing ones keep their credentials.
func loadMerchantsFile(ctx context.Context, dir *merchant.Directory, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("merchants file: %w", err)
	}
	var f merchantsFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("merchants file %s: %w", path, err)
	}
	for i, m := range f.Merchants {
		if m.MchID == "" {
			return fmt.Errorf("merchants file %s: merchants[%d]: mchid is required", path, i)
		}
		if _, ok := dir.Get(m.MchID); ok {
			continue
		}
		if _, err := dir.Create(ctx, merchant.CreateRequest{MchID: m.MchID, Name: m.Name, AppID: m.AppID,
			NotifyHosts: m.NotifyHosts, MerchantPublicKeyPEM: m.MerchantPublicKeyPEM}); err != nil {
			return fmt.Errorf("merchants file %s: merchants[%d] (%s): %w", path, i, m.MchID, err)
		}
	}
	return nil
}
