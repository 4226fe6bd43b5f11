package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
)

// TestPlatformKeyModesAndAPIFaults: against the container, a merchant
// switched to certificate mode downloads its platform certificate with the
// SDK, calls the API in certificate mode, and verifies the notifications
// with the certificate (the public-key verifier refuses them, as against
// WeChat Pay); an API fault scripted through the admin API is the SDK's
// 429; a URI signed without its empty "?" passes with a warning.
func TestPlatformKeyModesAndAPIFaults(t *testing.T) {
	s := startSandbox(t)
	p := newPayScore(t, s)
	recv := p.m.Receiver(t)
	ctx := context.Background()

	s.JSON(t, http.MethodPatch, "/sandbox/v1/merchants/"+demoMchID, map[string]any{"platform_key_mode": "certificate"}, http.StatusOK, nil)
	hc := &http.Client{Transport: s.Transport(), Timeout: 10 * time.Second}
	bare, err := core.NewClient(ctx, option.WithMerchantCredential(p.m.MchID, p.m.MerchantSerialNo, p.m.MerchantPrivateKey), option.WithoutValidator(), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	mgr := downloader.NewCertificateDownloaderMgr(ctx)
	t.Cleanup(mgr.Stop)
	if err := mgr.RegisterDownloaderWithClient(ctx, bare, p.m.MchID, p.m.APIv3Key); err != nil {
		t.Fatalf("the SDK's certificate downloader: %v", err)
	}
	certMode, err := core.NewClient(ctx, option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(p.m.MchID, p.m.MerchantSerialNo, p.m.MerchantPrivateKey, mgr), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	p.client = certMode
	certHandler, err := notify.NewRSANotifyHandler(p.m.APIv3Key, verifiers.NewSHA256WithRSAVerifier(mgr.GetCertificateVisitor(p.m.MchID)))
	if err != nil {
		t.Fatal(err)
	}

	pkg := p.create(t, "E2EKEY0001", recv.URL+"/payscore/notify")
	p.returned(t, p.jump(t, p.extraData(pkg)))
	p.advance(t, time.Second)
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := recv.Next(nctx)
	if err != nil {
		t.Fatalf("the testkit's receiver, which picks the key by Wechatpay-Serial: %v", err)
	}
	req, _ := http.NewRequest(r.Method, "http://merchant.example"+r.Path, bytes.NewReader(r.Body))
	req.Header = r.Header
	var content map[string]any
	if _, err := p.handler.ParseNotifyRequest(ctx, req, &content); err == nil {
		t.Error("the public-key verifier accepted a certificate-mode notification")
	}
	req, _ = http.NewRequest(r.Method, "http://merchant.example"+r.Path, bytes.NewReader(r.Body))
	req.Header = r.Header
	if n, err := certHandler.ParseNotifyRequest(ctx, req, &content); err != nil || n.EventType != "PAYSCORE.USER_CONFIRM" {
		t.Fatalf("the certificate verifier: %v, want PAYSCORE.USER_CONFIRM", err)
	}

	s.JSON(t, http.MethodPost, "/sandbox/v1/merchants/"+demoMchID+"/api-faults",
		map[string]any{"method": "POST", "path": "/v3/payscore/serviceorder", "kind": "rate_limited"}, http.StatusCreated, nil)
	_, err = certMode.Post(ctx, wechatPayAPI+"/v3/payscore/serviceorder", map[string]any{"out_order_no": "E2EKEY0002"})
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "RATELIMIT_EXCEEDED" {
		t.Fatalf("got %v, want 429 RATELIMIT_EXCEEDED", err)
	}
	p.create(t, "E2EKEY0002", recv.URL+"/payscore/notify") // used up

	// GET /v3/certificates? signed over /v3/certificates.
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "E2ENONCE0000000000000000000000001"
	digest := sha256.Sum256([]byte("GET\n/v3/certificates\n" + ts + "\n" + nonce + "\n\n"))
	sig, err := rsa.SignPKCS1v15(nil, p.m.MerchantPrivateKey, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := http.NewRequest(http.MethodGet, s.URL()+"/v3/certificates?", nil)
	raw.Header.Set("Authorization", `WECHATPAY2-SHA256-RSA2048 mchid="`+p.m.MchID+`",nonce_str="`+nonce+`",timestamp="`+ts+
		`",serial_no="`+p.m.MerchantSerialNo+`",signature="`+base64.StdEncoding.EncodeToString(sig)+`"`)
	res := s.Do(t, raw)
	if res.Status != http.StatusOK || !strings.Contains(res.Header.Get("X-Sandbox-Warning"), "/signature") {
		t.Errorf("got %d warning %q, want 200 with an X-Sandbox-Warning", res.Status, res.Header.Get("X-Sandbox-Warning"))
	}
}
