package testkit

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Notification kinds.
const (
	KindWeChatPayV3 = "wechatpay-v3" // 支付分: Wechatpay-* headers, an encrypted resource
	KindPCloud      = "pcloud"       // P云 trade-notify: a form with an MD5 sign
)

// maxNotification bounds a notification body the receiver reads.
const maxNotification = 1 << 20

// Notification is one request the sandbox sent to a Receiver, verified and,
// for WeChat Pay v3, decrypted with the merchant's keys.
type Notification struct {
	Kind   string `json:"-"`
	Method string `json:"-"`
	// Path is the request URI: the notify_url's path and query.
	Path   string      `json:"-"`
	Header http.Header `json:"-"`
	Body   []byte      `json:"-"`

	// WeChat Pay v3: the envelope and the decrypted resource.
	ID           string `json:"id"`
	CreateTime   string `json:"create_time"`
	EventType    string `json:"event_type"` // PAYSCORE.USER_CONFIRM, …
	ResourceType string `json:"resource_type"`
	Summary      string `json:"summary"`
	Resource     struct {
		Algorithm      string `json:"algorithm"`
		Ciphertext     string `json:"ciphertext"`
		Nonce          string `json:"nonce"`
		AssociatedData string `json:"associated_data"`
		OriginalType   string `json:"original_type"`
	} `json:"resource"`
	// Plaintext is the decrypted resource (a JSON object).
	Plaintext json.RawMessage `json:"-"`

	// Params are the P云 form's fields, sign included.
	Params map[string]string `json:"-"`
}

// Decode unmarshals the decrypted v3 resource into v.
func (n *Notification) Decode(v any) error {
	if n.Plaintext == nil {
		return fmt.Errorf("testkit: a %s notification has no decrypted resource", n.Kind)
	}
	return json.Unmarshal(n.Plaintext, v)
}

// VerifyError is a notification that does not verify (a wrong signature, a
// resource that does not decrypt, a shape the receiver does not know). The
// receiver refused it, so the sandbox retries as the real system would.
type VerifyError struct {
	Notification *Notification
	Err          error
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("testkit: %s %s does not verify: %v", e.Notification.Method, e.Notification.Path, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Answer picks the receiver's answer to one notification; err is the
// verification failure, nil for a good one.
type Answer func(n *Notification, err error) (status int, body []byte)

// Receiver stands in for the merchant's notify_url: an HTTP server on
// 127.0.0.1 that verifies each request with the merchant's keys and hands
// it to Next.
type Receiver struct {
	// URL is the base URL, http://127.0.0.1:<port>; a notify_url is URL
	// plus any path.
	URL string

	m      *Merchant
	srv    *httptest.Server
	answer Answer
	got    chan received
}

type received struct {
	n   *Notification
	err error
}

// Receiver starts a notify receiver for the merchant, as NewReceiver does,
// closed when the test ends.
func (m *Merchant) Receiver(tb testing.TB, answer ...Answer) *Receiver {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := m.NewReceiver(ctx, answer...)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// NewReceiver starts a notify receiver for the merchant on 127.0.0.1 and
// allows it as a notify host (when the merchant's allow-list is not
// loopback-only already). It answers a verified notification as the
// merchant should — 204 for WeChat Pay, P云's {"code":"1001"} — and refuses
// one that does not verify, unless answer (at most one) says otherwise. The
// caller closes it.
func (m *Merchant) NewReceiver(ctx context.Context, answer ...Answer) (*Receiver, error) {
	r := &Receiver{m: m, answer: DefaultAnswer, got: make(chan received, 256)}
	if len(answer) > 0 && answer[0] != nil {
		r.answer = answer[0]
	}
	r.srv = httptest.NewServer(r)
	r.URL = r.srv.URL
	if len(m.NotifyHosts) > 0 {
		host := strings.TrimPrefix(r.URL, "http://")
		if !slices.Contains(m.NotifyHosts, host) {
			if err := m.SetNotifyHosts(ctx, append(slices.Clone(m.NotifyHosts), host)); err != nil {
				r.Close()
				return nil, fmt.Errorf("allow the receiver %s: %w", host, err)
			}
		}
	}
	return r, nil
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// DefaultAnswer is the receiver's answer unless told otherwise: success in
// the notification's own dialect when it verifies, a failure when not.
func DefaultAnswer(n *Notification, err error) (int, []byte) {
	if n.Kind == KindPCloud {
		// "若通知未能返回`1001`不成功则会重复通知多次" (4pyun-doc openapi/api/trade-notify.md).
		if err != nil {
			return http.StatusOK, []byte(`{"code":"400","message":"签名错误","hint":"sign"}`)
		}
		return http.StatusOK, []byte(`{"code":"1001","message":"通知成功","hint":""}`)
	}
	if err != nil {
		// WeChat Pay's recommended failure body.
		return http.StatusUnauthorized, []byte(`{"code":"FAIL","message":"签名错误"}`)
	}
	return http.StatusNoContent, nil
}

// ServeHTTP verifies the request, answers it, then hands it to Next.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxNotification))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(r.got) == cap(r.got) {
		// A test that lets 256 deliveries pile up unread has lost track;
		// answering 503 makes the sandbox retry instead of hiding one.
		http.Error(w, "receiver full", http.StatusServiceUnavailable)
		return
	}
	n := &Notification{Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body}
	err = r.m.Credentials.verify(n)
	var verr error
	if err != nil {
		verr = &VerifyError{Notification: n, Err: err}
	}
	status, answer := r.answer(n, verr)
	if answer != nil && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	w.Write(answer)
	// Handed over once answered, so that Next returns requests the sandbox
	// has its answer to; what the sandbox then does with it (store the
	// attempt, schedule a retry) still takes a moment.
	w.(http.Flusher).Flush()
	select {
	case r.got <- received{n, verr}:
	default: // filled up by concurrent deliveries since the check above
	}
}

// Next returns the next notification, verified and decrypted; one that
// does not verify comes back with a *VerifyError (holding it). It waits
// until ctx ends.
func (r *Receiver) Next(ctx context.Context) (*Notification, error) {
	select {
	case g := <-r.got:
		return g.n, g.err
	case <-ctx.Done():
		return nil, fmt.Errorf("testkit: no notification at %s: %w", r.URL, ctx.Err())
	}
}

// verify recognises the notification's kind, checks its signature and
// decrypts what is encrypted.
func (c *Credentials) verify(n *Notification) error {
	if n.Header.Get("Wechatpay-Signature") != "" {
		n.Kind = KindWeChatPayV3
		return c.verifyV3(n)
	}
	mt, _, _ := mime.ParseMediaType(n.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		n.Kind = KindPCloud
		return c.verifyPCloud(n)
	}
	return fmt.Errorf("neither a WeChat Pay v3 notification (no Wechatpay-Signature) nor a P云 form (Content-Type %q)", mt)
}

// verifyV3 checks Wechatpay-Signature — SHA256withRSA over
// "<timestamp>\n<nonce>\n<body>\n" with the platform key Wechatpay-Serial
// names — and decrypts the resource (AEAD_AES_256_GCM, the APIv3 key), as
// wechatpay-go's notify handler does (core/notify/notify.go).
func (c *Credentials) verifyV3(n *Notification) error {
	h := n.Header
	serial := h.Get("Wechatpay-Serial")
	var key *rsa.PublicKey
	switch {
	case serial == "":
		return errors.New("no Wechatpay-Serial header")
	case serial == c.PlatformPublicKeyID:
		key = c.PlatformPublicKey
	case serial == c.PlatformSerialNo && c.PlatformCertificate != nil:
		key, _ = c.PlatformCertificate.PublicKey.(*rsa.PublicKey)
	}
	if key == nil {
		return fmt.Errorf("Wechatpay-Serial %q is neither the platform public key id %s nor the platform certificate serial %s",
			serial, c.PlatformPublicKeyID, c.PlatformSerialNo)
	}
	ts, nonce := h.Get("Wechatpay-Timestamp"), h.Get("Wechatpay-Nonce")
	if ts == "" || nonce == "" {
		return errors.New("no Wechatpay-Timestamp or Wechatpay-Nonce header")
	}
	sig, err := base64.StdEncoding.DecodeString(h.Get("Wechatpay-Signature"))
	if err != nil {
		return fmt.Errorf("Wechatpay-Signature is not base64: %w", err)
	}
	digest := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(n.Body) + "\n"))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("Wechatpay-Signature does not verify with the key of %s: %w", serial, err)
	}
	if err := json.Unmarshal(n.Body, n); err != nil {
		return fmt.Errorf("the body is not a notification: %w", err)
	}
	res := n.Resource
	if res.Algorithm != "AEAD_AES_256_GCM" {
		return fmt.Errorf("resource.algorithm %q, want AEAD_AES_256_GCM", res.Algorithm)
	}
	ct, err := base64.StdEncoding.DecodeString(res.Ciphertext)
	if err != nil {
		return fmt.Errorf("resource.ciphertext is not base64: %w", err)
	}
	block, err := aes.NewCipher([]byte(c.APIv3Key))
	if err != nil {
		return fmt.Errorf("the APIv3 key: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(res.Nonce))
	if err != nil {
		return fmt.Errorf("resource.nonce: %w", err)
	}
	if n.Plaintext, err = gcm.Open(nil, []byte(res.Nonce), ct, []byte(res.AssociatedData)); err != nil {
		return fmt.Errorf("resource does not decrypt with the APIv3 key: %w", err)
	}
	return nil
}

// verifyPCloud checks the sign of a P云 trade-notify form (PCloudSign with
// the merchant's app secret, compared case-insensitively).
func (c *Credentials) verifyPCloud(n *Notification) error {
	form, err := url.ParseQuery(string(n.Body))
	if err != nil {
		return fmt.Errorf("the body is not a form: %w", err)
	}
	n.Params = make(map[string]string, len(form))
	for k := range form {
		n.Params[k] = form.Get(k)
	}
	if want := PCloudSign(n.Params, c.PCloudAppSecret); !strings.EqualFold(want, n.Params["sign"]) {
		return fmt.Errorf("sign %q is not the MD5 of the fields with the merchant's app secret", n.Params["sign"])
	}
	return nil
}
