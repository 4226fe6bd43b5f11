package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
)

// exportMerchant handles "GET /sandbox/v1/merchants/{mchid}/export": the
// merchant as a merchants-file entry (--merchants-file), every credential
// included, so that a fresh data dir started with it hands out the same
// credentials. One YAML document each, so that exports concatenate into one
// file. The admin token or the merchant's own token may read it.
func (a *API) exportMerchant(c *gin.Context) error {
	m, err := a.merchant(c, c.Param("mchid"))
	if err != nil {
		return err
	}
	var doc bytes.Buffer
	enc := yaml.NewEncoder(&doc)
	enc.SetIndent(2)
	if err := enc.Encode(merchant.File{Merchants: []merchant.FileEntry{merchant.EntryOf(m)}}); err != nil {
		return err
	}
	head := fmt.Sprintf("# mpsandbox merchant %s, exported %s: every credential it has.\n"+
		"# Start a sandbox with --merchants-file <this file> to have it again. Keep it secret.\n---\n",
		m.MchID, time.Now().UTC().Format(time.RFC3339))
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="merchant-%s.yaml"`, m.MchID))
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", append([]byte(head), doc.Bytes()...))
	return nil
}
