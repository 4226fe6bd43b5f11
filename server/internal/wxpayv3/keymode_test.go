package wxpayv3

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// inMode puts the harness's merchant in a platform key mode.
func (h *harness) inMode(mode string) {
	m := *h.m
	m.PlatformKeyMode = mode
	h.m = &m
	h.dir.put(h.m)
}

// TestAnswerKeyFollowsTheRequestSerial: the answer names, and is signed by,
// the key the request's Wechatpay-Serial asks for, but a PUB_KEY_ID asked
// before the switch gets the certificate.
func TestAnswerKeyFollowsTheRequestSerial(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ mode, asked, want string }{
		{sandbox.PlatformKeyModeCertificate, testPubKeyID, testPlatSer},
		{sandbox.PlatformKeyModeCertificate, testPlatSer, testPlatSer},
		{sandbox.PlatformKeyModeCertificate, "", testPlatSer},
		{sandbox.PlatformKeyModeSwitching, testPubKeyID, testPubKeyID},
		{sandbox.PlatformKeyModeSwitching, testPlatSer, testPlatSer},
		{sandbox.PlatformKeyModeSwitching, "", testPlatSer},
		{sandbox.PlatformKeyModePublicKey, testPubKeyID, testPubKeyID},
		{sandbox.PlatformKeyModePublicKey, testPlatSer, testPlatSer},
		{sandbox.PlatformKeyModePublicKey, "", testPlatSer},
		{sandbox.PlatformKeyModePublicKey, "ABCDEF", testPlatSer},
	} {
		t.Run(tc.mode+" asked "+tc.asked, func(t *testing.T) {
			h.inMode(tc.mode)
			req := h.request(t, http.MethodGet, "/v3/echo", "", time.Now().Unix(), merchantKey)
			if tc.asked != "" {
				req.Header.Set(wxsign.HeaderSerial, tc.asked)
			}
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, req)
			if got := w.Header().Get(wxsign.HeaderSerial); w.Code != 200 || got != tc.want {
				t.Fatalf("got %d serial %q, want 200 %q", w.Code, got, tc.want)
			}
			signedBy, other := platformKey, certKey
			if tc.want == testPlatSer {
				signedBy, other = certKey, platformKey
			}
			msg := w.Header().Get(wxsign.HeaderTimestamp) + "\n" + w.Header().Get(wxsign.HeaderNonce) + "\n" + w.Body.String() + "\n"
			sig := w.Header().Get(wxsign.HeaderSignature)
			if err := wxsign.RSAVerify(&testKey(t, signedBy).PublicKey, msg, sig); err != nil {
				t.Errorf("the key %s names does not verify the answer: %v", tc.want, err)
			}
			if wxsign.RSAVerify(&testKey(t, other).PublicKey, msg, sig) == nil {
				t.Errorf("the other platform key verifies the answer too: the two keys must differ")
			}
		})
	}
}

// certificateClient is the official SDK in certificate mode: a client
// without a validator downloads GET /v3/certificates with the SDK's own
// downloader (which decrypts them with the API v3 key and then checks
// the answer with what it downloaded), and the API client verifies with
// the certificates it holds.
func (h *harness) certificateClient(tb testing.TB) (*core.Client, *downloader.CertificateDownloaderMgr) {
	tb.Helper()
	ctx := context.Background()
	u, _ := url.Parse(h.srv.URL)
	hc := &http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second}
	bare, err := core.NewClient(ctx, option.WithMerchantCredential(testMchID, testMchSerial, testKey(tb, merchantKey)),
		option.WithoutValidator(), option.WithHTTPClient(hc))
	if err != nil {
		tb.Fatal(err)
	}
	mgr := downloader.NewCertificateDownloaderMgr(ctx)
	tb.Cleanup(mgr.Stop)
	if err := mgr.RegisterDownloaderWithClient(ctx, bare, testMchID, testAPIv3Key); err != nil {
		tb.Fatalf("the SDK's certificate downloader: %v", err)
	}
	c, err := core.NewClient(ctx,
		option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(testMchID, testMchSerial, testKey(tb, merchantKey), mgr),
		option.WithHTTPClient(hc))
	if err != nil {
		tb.Fatal(err)
	}
	return c, mgr
}

// TestSDKClientsInEachMode: the SDK in certificate mode works whatever the
// merchant's mode; in public-key mode it works once the switch started.
func TestSDKClientsInEachMode(t *testing.T) {
	h := newHarness(t)
	pubClient := h.sdk(t)
	for _, tc := range []struct {
		mode       string
		pubKeyOK   bool
		wantSerial map[string]string // by client
	}{
		{sandbox.PlatformKeyModeCertificate, false, map[string]string{"certificate": testPlatSer}},
		{sandbox.PlatformKeyModeSwitching, true, map[string]string{"certificate": testPlatSer, "public key": testPubKeyID}},
		{sandbox.PlatformKeyModePublicKey, true, map[string]string{"certificate": testPlatSer, "public key": testPubKeyID}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			h.inMode(tc.mode)
			certClient, mgr := h.certificateClient(t)
			if got := mgr.GetNewestCertificateSerial(context.Background(), testMchID); got != testPlatSer {
				t.Errorf("downloaded certificate serial %q, want %s", got, testPlatSer)
			}
			for name, c := range map[string]*core.Client{"certificate": certClient, "public key": pubClient} {
				res, err := c.Get(context.Background(), apiHost+"/v3/echo?appid="+testAppID)
				want, ok := tc.wantSerial[name]
				if !ok {
					if err == nil {
						t.Errorf("%s client: the SDK accepted an answer signed with %s", name, res.Response.Header.Get(wxsign.HeaderSerial))
					}
					continue
				}
				if err != nil {
					t.Errorf("%s client: %v", name, err)
					continue
				}
				if got := res.Response.Header.Get(wxsign.HeaderSerial); got != want {
					t.Errorf("%s client: answer serial %q, want %q", name, got, want)
				}
			}
		})
	}
}

// notifyHandlers are the SDK's three notification verifiers: by certificate
// (the downloaded ones), by public key, and combined (picks by serial).
func notifyHandlers(t *testing.T, cert *x509.Certificate) map[string]*notify.Handler {
	t.Helper()
	certs := core.NewCertificateMapWithList([]*x509.Certificate{cert})
	pub := testKey(t, platformKey).PublicKey
	out := map[string]*notify.Handler{}
	for name, v := range map[string]auth.Verifier{
		"certificate": verifiers.NewSHA256WithRSAVerifier(certs),
		"public key":  verifiers.NewSHA256WithRSAPubkeyVerifier(testPubKeyID, pub),
		"combined":    verifiers.NewSHA256WithRSACombinedVerifier(certs, testPubKeyID, pub),
	} {
		h, err := notify.NewRSANotifyHandler(testAPIv3Key, v)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = h
	}
	return out
}

// TestNotificationKeyPerMode builds 40 notifications per mode and lets the
// SDK's three verifiers judge each: as against WeChat Pay, one that picks
// the key by Wechatpay-Serial always passes, one that assumes a key fails
// as soon as the other key signs.
func TestNotificationKeyPerMode(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	src := rand.New(rand.NewPCG(14, 1))
	h.api.rand = func() float64 { mu.Lock(); defer mu.Unlock(); return src.Float64() }
	cert, err := utils.LoadCertificate(h.m.PlatformCertificatePEM)
	if err != nil {
		t.Fatal(err)
	}
	handlers := notifyHandlers(t, cert)
	ev := NewEvent(time.Now(), "PAYSCORE.USER_PAID", "支付成功", "payscore", "payscore", json.RawMessage(`{"state":"DONE"}`))
	payload, _ := json.Marshal(ev)
	const n = 40
	for _, tc := range []struct {
		mode string
		// passes is how many of the n each verifier accepts: -1 for "some
		// but not all" (the switch).
		passes map[string]int
	}{
		{sandbox.PlatformKeyModeCertificate, map[string]int{"certificate": n, "public key": 0, "combined": n}},
		{sandbox.PlatformKeyModePublicKey, map[string]int{"certificate": 0, "public key": n, "combined": n}},
		{sandbox.PlatformKeyModeSwitching, map[string]int{"certificate": -1, "public key": -1, "combined": n}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			h.inMode(tc.mode)
			passed := map[string]int{}
			serials := map[string]int{}
			for range n {
				out, err := h.api.BuildNotify(context.Background(), h.m, &sandbox.Notification{ID: "ntf_1", URL: "http://127.0.0.1:1/n", Payload: payload})
				if err != nil {
					t.Fatal(err)
				}
				serial := out.Header.Get(wxsign.HeaderSerial)
				serials[serial]++
				for name, hd := range handlers {
					req := httptest.NewRequest(out.Method, out.URL, bytes.NewReader(out.Body))
					req.Header = out.Header.Clone()
					var content map[string]any
					if _, err := hd.ParseNotifyRequest(context.Background(), req, &content); err == nil {
						passed[name]++
					} else if name == "combined" {
						t.Errorf("the combined verifier refused a notification signed for %s: %v", serial, err)
					}
				}
				// A receiver that ignores the serial and always uses the
				// public key (gopay's VerifySignByPK) fails on the
				// certificate's signatures: the keys differ.
				msg := out.Header.Get(wxsign.HeaderTimestamp) + "\n" + out.Header.Get(wxsign.HeaderNonce) + "\n" + string(out.Body) + "\n"
				pubOK := wxsign.RSAVerify(&testKey(t, platformKey).PublicKey, msg, out.Header.Get(wxsign.HeaderSignature)) == nil
				if pubOK != (serial == testPubKeyID) {
					t.Errorf("serial %s: the public key verifies it: %v", serial, pubOK)
				}
			}
			for name, want := range tc.passes {
				got := passed[name]
				if want >= 0 && got != want || want < 0 && (got == 0 || got == n) {
					t.Errorf("%s verifier passed %d of %d, want %d (-1: some, not all); serials %v", name, got, n, want, serials)
				}
			}
			if tc.mode == sandbox.PlatformKeyModeSwitching && (serials[testPlatSer] == 0 || serials[testPubKeyID] == 0) {
				t.Errorf("serials %v: a switch signs with both keys", serials)
			}
		})
	}
}
