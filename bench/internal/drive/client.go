package drive

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DemoMchID is the merchant every sandbox has out of the box.
const DemoMchID = "1230000109"

// The P云 half-screen cashier (P云's payment-sapp guide): the jump's target and page.
const (
	CashierAppID = "wxa204074068ad40ef"
	CashierPage  = "/external/payment/trade/create/index"
)

// Magic values of the embedpay catalogue (scenarios/embedpay).
const (
	// ValueClosed selects embedpay.closed: the user closes the half screen
	// two seconds after the jump, nothing is notified and the trade stays
	// open, so the same pay_id can be opened again and again.
	ValueClosed = "106"
	// ValueNotifyLate selects embedpay.notify-late: the user pays at once
	// and trade-notify falls due 60 s later on the merchant's clock.
	ValueNotifyLate = "113"
	// ValuePaid selects embedpay.paid, the default: the user pays two
	// seconds after the jump and trade-notify follows a second later.
	ValuePaid = "101"
)

// Client talks to one sandbox over keep-alive connections.
type Client struct {
	Base string
	HTTP *http.Client
}

// NewClient returns a client of the sandbox at base with room for conns
// concurrent keep-alive connections.
func NewClient(base string, conns int) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = conns, conns, conns
	return &Client{Base: base, HTTP: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

// JSON sends a JSON body (nil for none) and decodes a JSON answer into out
// (nil to discard); any status but want is an error quoting the body.
func (c *Client) JSON(method, path string, body, out any, want int) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.Base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.Do(req, out, want)
}

// Do sends req and decodes the answer as JSON.
func (c *Client) Do(req *http.Request, out any, want int) error {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %v: %s", req.Method, req.URL.Path, err, raw)
		}
	}
	return nil
}

// Credentials are a merchant's test credentials, as the admin API shows them.
type Credentials struct {
	MchID            string `json:"mchid"`
	AppID            string `json:"appid"`
	ServiceID        string `json:"service_id"`
	MerchantSerialNo string `json:"merchant_serial_no"`
	PrivateKeyPEM    string `json:"merchant_private_key_pem"`
	PCloudAppID      string `json:"pcloud_app_id"`
	PCloudAppSecret  string `json:"pcloud_app_secret"`
	PCloudMerchant   string `json:"pcloud_merchant"`
}

// Credentials reads a merchant's credentials.
func (c *Client) Credentials(mchid string) (*Credentials, error) {
	var cr Credentials
	return &cr, c.JSON(http.MethodGet, "/sandbox/v1/merchants/"+mchid+"/credentials", nil, &cr, http.StatusOK)
}

// CreateMerchant creates a merchant and returns its credentials.
func (c *Client) CreateMerchant(mchid string) (*Credentials, error) {
	if err := c.JSON(http.MethodPost, "/sandbox/v1/merchants", map[string]string{"mchid": mchid, "name": "bench " + mchid}, nil, http.StatusCreated); err != nil {
		return nil, err
	}
	return c.Credentials(mchid)
}

// Advance moves a merchant's clock forward.
func (c *Client) Advance(mchid string, by time.Duration) error {
	return c.JSON(http.MethodPost, "/sandbox/v1/clock/advance", map[string]string{"mchid": mchid, "by": by.String()}, nil, http.StatusOK)
}

// PCloudSign is P云's MD5 signature (SOURCES.md §8): the non-empty
// parameters but sign, sorted by name, joined k=v&…, then
// &app_secret=<secret>; upper-case hex.
func PCloudSign(params map[string]string, secret string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + params[k] + "&")
	}
	b.WriteString("app_secret=" + secret)
	sum := md5.Sum([]byte(b.String()))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// farExpiry keeps prepared trades open for the whole run, whatever the
// clock advances: the default pay_id lifetime is 3 minutes.
const farExpiry = "2099-01-01T00:00:00.000Z"

// Prepare prepares a P云 trade (POST /gate/1.0/payment/trade/prepare)
// and returns its pay_id. value picks the scenario (see ValueClosed…).
func (c *Client) Prepare(cr *Credentials, payOrder, value, notifyURL string) (string, error) {
	p := map[string]string{
		"app_id": cr.PCloudAppID, "merchant": cr.PCloudMerchant, "pay_order": payOrder, "subject": "停车支付",
		"value": value, "notify_url": notifyURL, "trade_scene": "GENERIC", "expire_time": farExpiry,
		"timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "sign_type": "MD5",
	}
	p["sign"] = PCloudSign(p, cr.PCloudAppSecret)
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	req, err := http.NewRequest(http.MethodPost, c.Base+"/gate/1.0/payment/trade/prepare", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		PayID   string `json:"pay_id"`
	}
	if err := c.Do(req, &out, http.StatusOK); err != nil {
		return "", err
	}
	if out.Code != "1001" || out.PayID == "" {
		return "", fmt.Errorf("prepare %s: code %s %s", payOrder, out.Code, out.Message)
	}
	return out.PayID, nil
}

// JumpPath is the mini-program contract's openEmbeddedMiniProgram.
const JumpPath = "/miniprogram/v1/openEmbeddedMiniProgram"

// JumpBody is wx.openEmbeddedMiniProgram to P云's cashier with pay_id, from
// the merchant's mini-program appID on a current base library.
func JumpBody(appID, payID string) []byte {
	return []byte(`{"caller":{"appId":"` + appID + `","platform":"android","sdkVersion":"3.4.0"},` +
		`"args":{"appId":"` + CashierAppID + `","path":"` + CashierPage + `?pay_id=` + payID + `"}}`)
}

// Jump posts a jump and returns the session id.
func (c *Client) Jump(appID, payID string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, c.Base+JumpPath, bytes.NewReader(JumpBody(appID, payID)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		ErrMsg    string `json:"errMsg"`
		SessionID string `json:"session_id"`
	}
	if err := c.Do(req, &out, http.StatusOK); err != nil {
		return "", err
	}
	return out.SessionID, nil
}

// Notification is a row of GET /sandbox/v1/notifications.
type Notification struct {
	ID       string `json:"id"`
	MchID    string `json:"mchid"`
	Ref      string `json:"ref"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
}

// Notifications lists a merchant's notifications (newest first, at most
// 1000) with optional ref and state filters.
func (c *Client) Notifications(mchid, ref, state string) ([]Notification, error) {
	q := url.Values{"mchid": {mchid}, "limit": {"1000"}}
	if ref != "" {
		q.Set("ref", ref)
	}
	if state != "" {
		q.Set("state", state)
	}
	var out struct {
		Notifications []Notification `json:"notifications"`
	}
	return out.Notifications, c.JSON(http.MethodGet, "/sandbox/v1/notifications?"+q.Encode(), nil, &out, http.StatusOK)
}

// Exchange is the part of a journal entry the runs check.
type Exchange struct {
	ID        int64  `json:"id"`
	Direction string `json:"direction"`
	MchID     string `json:"mchid"`
	NotifyID  string `json:"notify_id"`
	Status    int    `json:"status"`
}

// Journal pages through a merchant's journal entries in one direction,
// newest first, calling each for every entry until it returns false.
func (c *Client) Journal(mchid, direction string, each func(Exchange) bool) error {
	before := int64(0)
	for {
		q := url.Values{"mchid": {mchid}, "direction": {direction}, "limit": {"1000"}}
		if before > 0 {
			q.Set("before", strconv.FormatInt(before, 10))
		}
		var out struct {
			Exchanges  []Exchange `json:"exchanges"`
			NextBefore int64      `json:"next_before"`
		}
		if err := c.JSON(http.MethodGet, "/sandbox/v1/journal?"+q.Encode(), nil, &out, http.StatusOK); err != nil {
			return err
		}
		for _, x := range out.Exchanges {
			if !each(x) {
				return nil
			}
		}
		if out.NextBefore == 0 {
			return nil
		}
		before = out.NextBefore
	}
}

// HasPendingSession reports whether a merchant has a pending session.
func (c *Client) HasPendingSession(mchid string) (bool, error) {
	var out struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	err := c.JSON(http.MethodGet, "/sandbox/v1/sessions?state=pending&limit=1&mchid="+mchid, nil, &out, http.StatusOK)
	return len(out.Sessions) > 0, err
}
