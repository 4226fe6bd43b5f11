package drive

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strconv"
	"sync"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/credentials"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// CreatePath is the pay-score create endpoint: the request is verified
// (RSA public key) and the answer signed (RSA private key).
const CreatePath = "/v3/payscore/serviceorder"

// Signed is one v3 request, signed ahead of time.
type Signed struct {
	Body          []byte
	Authorization string
}

// Request builds the HTTP request of s against base.
func (s *Signed) Request(base string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, base+CreatePath, bytes.NewReader(s.Body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", s.Authorization)
	return req, nil
}

// CreateBody is a pay-score service order as a merchant's backend creates it.
func CreateBody(cr *Credentials, outOrderNo, notifyURL string) []byte {
	b, _ := json.Marshal(map[string]any{
		"out_order_no": outOrderNo, "appid": cr.AppID, "service_id": cr.ServiceID, "service_introduction": "停车服务",
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
		"time_range":    map[string]any{"start_time": "OnAccept"},
		"risk_fund":     map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
		"notify_url":    notifyURL,
	})
	return b
}

// Signer signs v3 requests as the merchant's SDK does.
type Signer struct {
	creds *credentials.WechatPayCredentials
}

// NewSigner loads the merchant's private key.
func NewSigner(cr *Credentials) (*Signer, error) {
	key, err := utils.LoadPrivateKey(cr.PrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	return &Signer{creds: &credentials.WechatPayCredentials{Signer: &signers.SHA256WithRSASigner{
		MchID: cr.MchID, PrivateKey: key, CertificateSerialNo: cr.MerchantSerialNo,
	}}}, nil
}

// Create signs a create request with a fresh nonce and timestamp.
func (s *Signer) Create(body []byte) (Signed, error) {
	auth, err := s.creds.GenerateAuthorizationHeader(context.Background(), http.MethodPost, CreatePath, string(body))
	return Signed{Body: body, Authorization: auth}, err
}

// PresignCreates signs n create requests with the merchant's key, as its
// SDK would (fresh nonce and timestamp each), on every core. Signing ahead
// keeps the load generator's RSA work out of the measured window: the
// sandbox accepts a timestamp for 5 minutes and does not reject a nonce it
// has seen, as WeChat Pay does not (SOURCES.md §1).
func PresignCreates(cr *Credentials, prefix, notifyURL string, n int) ([]Signed, error) {
	signer, err := NewSigner(cr)
	if err != nil {
		return nil, err
	}
	out := make([]Signed, n)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if out[i], errs[w] = signer.Create(CreateBody(cr, prefix+strconv.Itoa(i), notifyURL)); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
