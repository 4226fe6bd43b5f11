package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/embedpay"
)

// TestJournalReadSeesTheRequestBefore: a journal read lists every exchange
// that ended before it, though the journal stores them in the background
// (and gathers them for a few milliseconds): the read flushes it first. A
// merchant's test that calls and then reads the journal at once must not
// find it empty.
func TestJournalReadSeesTheRequestBefore(t *testing.T) {
	s := apptest.Start(t, app.Options{Products: []app.Constructor{app.Product(embedpay.New)}})
	for i := range 10 {
		// Journalled though refused: the caller is no sandbox merchant.
		resp, err := http.Post(s.Server.URL+"/miniprogram/v1/openEmbeddedMiniProgram", "application/json",
			strings.NewReader(`{"caller":{"appId":"wx00000000000000`+string(rune('a'+i))+`0"},"args":{}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		reqID := resp.Header.Get("X-Request-Id")
		if reqID == "" {
			t.Fatalf("call %d: no X-Request-Id", i)
		}
		resp, err = http.Get(s.Server.URL + "/sandbox/v1/journal?limit=20")
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Exchanges []struct {
				RequestID string `json:"request_id"`
			} `json:"exchanges"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("journal read: %d %v", resp.StatusCode, err)
		}
		found := false
		for _, x := range page.Exchanges {
			found = found || x.RequestID == reqID
		}
		if !found {
			t.Fatalf("call %d: the journal read right after it lists %d exchanges, not request %s", i, len(page.Exchanges), reqID)
		}
	}
}
