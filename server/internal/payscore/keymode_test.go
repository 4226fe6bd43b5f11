package payscore

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	wxnotify "github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// rawReceiver is a notify_url that keeps every notification as it came and
// answers 200, so that a test can judge each with several verifiers.
type rawReceiver struct {
	url string
	got chan *http.Request
}

func newRawReceiver(tb testing.TB) *rawReceiver {
	tb.Helper()
	r := &rawReceiver{got: make(chan *http.Request, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		c := req.Clone(context.Background())
		c.Body = io.NopCloser(bytes.NewReader(raw))
		r.got <- c
		rw.WriteHeader(http.StatusOK)
	}))
	tb.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *rawReceiver) next(tb testing.TB) *http.Request {
	tb.Helper()
	select {
	case req := <-r.got:
		return req
	case <-time.After(5 * time.Second):
		tb.Fatal("no notification within 5 s")
		return nil
	}
}

// setKeyMode changes the merchant's mode as PATCH /sandbox/v1/merchants does.
func (w *world) setKeyMode(mode string) {
	w.tb.Helper()
	m, err := w.Merchants.Change(context.Background(), w.m.MchID, merchant.UpdateRequest{PlatformKeyMode: &mode})
	if err != nil {
		w.tb.Fatal(err)
	}
	w.m = m
}

// certificateClient is the official SDK in certificate mode: its
// downloader fetches and decrypts GET /v3/certificates from the sandbox;
// the visitor of what it downloaded is what a certificate-mode receiver
// verifies notifications with.
func (w *world) certificateClient() (*core.Client, core.CertificateVisitor) {
	w.tb.Helper()
	ctx := context.Background()
	key, err := utils.LoadPrivateKey(w.m.MerchantPrivateKeyPEM)
	if err != nil {
		w.tb.Fatal(err)
	}
	u, _ := url.Parse(w.Server.URL)
	hc := &http.Client{Transport: hostRewrite{u}, Timeout: 10 * time.Second}
	bare, err := core.NewClient(ctx, option.WithMerchantCredential(w.m.MchID, w.m.MerchantSerialNo, key), option.WithoutValidator(), option.WithHTTPClient(hc))
	if err != nil {
		w.tb.Fatal(err)
	}
	mgr := downloader.NewCertificateDownloaderMgr(ctx)
	w.tb.Cleanup(mgr.Stop)
	if err := mgr.RegisterDownloaderWithClient(ctx, bare, w.m.MchID, w.m.APIv3Key); err != nil {
		w.tb.Fatalf("the SDK's certificate downloader: %v", err)
	}
	if _, ok := mgr.GetCertificate(ctx, w.m.MchID, w.m.PlatformSerialNo); !ok {
		w.tb.Fatalf("downloaded %v, want the certificate %s", mgr.GetCertificateMap(ctx, w.m.MchID), w.m.PlatformSerialNo)
	}
	c, err := core.NewClient(ctx, option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(w.m.MchID, w.m.MerchantSerialNo, key, mgr), option.WithHTTPClient(hc))
	if err != nil {
		w.tb.Fatal(err)
	}
	return c, mgr.GetCertificateVisitor(w.m.MchID)
}

// payscoreNotifications runs one order through USER_CONFIRM and USER_PAID
// and returns both notifications as the merchant received them.
func (w *world) payscoreNotifications(no string, recv *rawReceiver) []*http.Request {
	w.tb.Helper()
	body := w.createBody(no)
	body["notify_url"] = recv.url + "/payscore/notify"
	out := w.ok(http.MethodPost, "/v3/payscore/serviceorder", body, schemaCreateResponse)
	w.returned(w.open(out["package"].(string), nil))
	w.advance(time.Second)
	confirm := recv.next(w.tb)
	w.ok(http.MethodPost, "/v3/payscore/serviceorder/"+no+"/complete", w.completeBody(), schemaOrder)
	w.advance(time.Second)
	return []*http.Request{confirm, recv.next(w.tb)}
}

// TestKeyModesWithTheSDK: for every notification kind, the SDK's
// certificate, public-key and combined verifiers judge as they would
// against WeChat Pay in each platform key mode, and both SDK client modes
// call the API as they could there.
func TestKeyModesWithTheSDK(t *testing.T) {
	for _, mode := range sandbox.PlatformKeyModes {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t)
			w.setKeyMode(mode)
			certClient, certs := w.certificateClient()
			pubClient := w.sdk
			w.sdk = certClient // works in every mode
			pub, err := utils.LoadPublicKey(w.m.PlatformPublicKeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			handlers := map[string]*wxnotify.Handler{}
			for name, v := range map[string]auth.Verifier{
				"certificate": verifiers.NewSHA256WithRSAVerifier(certs),
				"public key":  verifiers.NewSHA256WithRSAPubkeyVerifier(w.m.PlatformPublicKeyID, *pub),
				"combined":    verifiers.NewSHA256WithRSACombinedVerifier(certs, w.m.PlatformPublicKeyID, *pub),
			} {
				if handlers[name], err = wxnotify.NewRSANotifyHandler(w.m.APIv3Key, v); err != nil {
					t.Fatal(err)
				}
			}

			recv := newRawReceiver(t)
			serials := map[string]int{}
			for i := 0; i < 20; i++ {
				for _, req := range w.payscoreNotifications("KEYMODE"+string(rune('A'+i)), recv) {
					serial := req.Header.Get(wxsign.HeaderSerial)
					serials[serial]++
					raw, _ := io.ReadAll(req.Body)
					for name, h := range handlers {
						r := req.Clone(context.Background())
						r.Body = io.NopCloser(bytes.NewReader(raw))
						var content map[string]any
						n, err := h.ParseNotifyRequest(context.Background(), r, &content)
						want := name == "combined" ||
							name == "certificate" && serial == w.m.PlatformSerialNo ||
							name == "public key" && serial == w.m.PlatformPublicKeyID
						if (err == nil) != want {
							t.Errorf("%s verifier on a notification signed for %s: got error %v, want it to pass: %v", name, serial, err, want)
						}
						if err == nil && n.EventType != EventUserConfirm && n.EventType != EventUserPaid {
							t.Errorf("event %q", n.EventType)
						}
					}
				}
				if mode != sandbox.PlatformKeyModeSwitching || serials[w.m.PlatformSerialNo] > 0 && serials[w.m.PlatformPublicKeyID] > 0 {
					break
				}
			}
			// The API: the SDK in certificate mode everywhere; in
			// public-key mode only once the switch has started.
			query := apiHost + w.queryPath("out_order_no", "KEYMODEA")
			for name, c := range map[string]*core.Client{"certificate": certClient, "public key": pubClient} {
				res, err := c.Get(context.Background(), query)
				want := name == "certificate" || mode != sandbox.PlatformKeyModeCertificate
				if (err == nil) != want {
					t.Errorf("%s client: got error %v, want success: %v", name, err, want)
				}
				if err == nil && name == "public key" && res.Response.Header.Get(wxsign.HeaderSerial) != w.m.PlatformPublicKeyID {
					t.Errorf("public key client: answer serial %s", res.Response.Header.Get(wxsign.HeaderSerial))
				}
			}
			want := map[string]string{sandbox.PlatformKeyModeCertificate: w.m.PlatformSerialNo, sandbox.PlatformKeyModePublicKey: w.m.PlatformPublicKeyID}[mode]
			if want != "" && (len(serials) != 1 || serials[want] == 0) {
				t.Errorf("serials %v, want every notification signed for %s", serials, want)
			}
			if mode == sandbox.PlatformKeyModeSwitching && len(serials) != 2 {
				t.Errorf("serials %v, want both keys within 20 orders", serials)
			}
		})
	}
}
