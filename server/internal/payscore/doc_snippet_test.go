package payscore

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// doc:begin — docs/products/payscore.md shows this, between the markers,
// verbatim (TestDocSnippet).

// sandboxRT sends the SDK's requests to the sandbox: the host is not part of
// a v3 signature, so rewriting it keeps every signature valid.
type sandboxRT struct{ u *url.URL }

func (t sandboxRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.u.Scheme, t.u.Host, t.u.Host
	return http.DefaultTransport.RoundTrip(r2)
}

// newSandboxClient is wechatpay-go's client for one sandbox merchant; cred
// is the JSON of GET /sandbox/v1/merchants/{mchid}/credentials.
func newSandboxClient(ctx context.Context, sandboxURL string, cred map[string]string) (*core.Client, error) {
	u, err := url.Parse(sandboxURL)
	if err != nil {
		return nil, err
	}
	mchKey, err := utils.LoadPrivateKey(cred["merchant_private_key_pem"])
	if err != nil {
		return nil, err
	}
	platformKey, err := utils.LoadPublicKey(cred["platform_public_key_pem"])
	if err != nil {
		return nil, err
	}
	return core.NewClient(ctx,
		option.WithWechatPayPublicKeyAuthCipher(cred["mchid"], cred["merchant_serial_no"], mchKey,
			cred["platform_public_key_id"], platformKey),
		option.WithHTTPClient(&http.Client{Transport: sandboxRT{u}, Timeout: 10 * time.Second}))
}

// doc:end

// TestDocSnippet runs the page's snippet against a sandbox (a signed
// request, a signed 404 answer mapped to the SDK's APIError) and checks
// that the page shows it as it is here.
func TestDocSnippet(t *testing.T) {
	src, err := os.ReadFile("doc_snippet_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, snippet, _ := strings.Cut(string(src), "// doc:begin")
	_, snippet, _ = strings.Cut(snippet, "\n\n")
	snippet, _, _ = strings.Cut(snippet, "\n// doc:end")
	doc, err := os.ReadFile("../../../docs/products/payscore.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+snippet+"```") {
		t.Errorf("docs/products/payscore.md does not show the snippet of doc_snippet_test.go:\n%s", snippet)
	}

	w := newWorld(t)
	res, err := http.Get(w.Server.URL + "/sandbox/v1/merchants/" + w.m.MchID + "/credentials")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	cred := map[string]string{}
	var all map[string]any
	if err := json.NewDecoder(res.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	for k, v := range all {
		if s, ok := v.(string); ok {
			cred[k] = s
		}
	}
	ctx := context.Background()
	client, err := newSandboxClient(ctx, w.Server.URL, cred)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Get(ctx, "https://api.mch.weixin.qq.com/v3/payscore/serviceorder?service_id="+cred["service_id"]+
		"&appid="+cred["appid"]+"&out_order_no=NOSUCHORDER")
	if !core.IsAPIError(err, "ORDER_NOT_EXIST") {
		t.Errorf("query of a missing order: got %v, want the SDK's APIError ORDER_NOT_EXIST", err)
	}
}
