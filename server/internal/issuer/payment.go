package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// The payment's errMsg values (SOURCES.md §5; 支付功能页 回调结果).
const (
	errMsgPaid      = "requestPayment:ok"
	errMsgCancelled = "requestPayment:fail cancel"
	errMsgFailed    = "requestPayment:fail " // + the backend's detail message
)

// paySignRSA is the signType of an API v3 (RSA) paySign.
const paySignRSA = "RSA"

// paymentArgs is what beforeRequestPayment hands back (the plugin guide 支付接入).
type paymentArgs struct {
	TimeStamp, NonceStr, Package, SignType, PaySign string
}

// prepayID returns the prepay_id of package "prepay_id=…".
func (a paymentArgs) prepayID() string { return strings.TrimPrefix(a.Package, "prepay_id=") }

// readPaymentArgs reads the args by their exact names, as JavaScript does:
// encoding/json would let a stray "timestamp" stand in for "timeStamp".
func readPaymentArgs(m map[string]any) paymentArgs {
	str := func(k string) string { s, _ := m[k].(string); return s }
	return paymentArgs{TimeStamp: str("timeStamp"), NonceStr: str("nonceStr"), Package: str("package"),
		SignType: str("signType"), PaySign: str("paySign")}
}

// millis matches a timeStamp given in milliseconds, the usual slip.
var millis = regexp.MustCompile(`^[1-9][0-9]{12}$`)

// launchPayment checks the payment WeChat is asked to take through the
// host's functional page, as WeChat would: the host's app.json declares the
// plugin and the functional pages; the args are the five strings of
// wx.requestPayment; paySign verifies with the merchant's key for signType;
// the prepay_id was not paid already. The payment sheet's outcome comes at
// once in an auto scenario [I: user.after times the plugin pages, so that
// the call's answer is the callback's result], or when a person decides.
func (p *Product) launchPayment(ctx context.Context, call *sandbox.Call) (*sandbox.Launched, error) {
	vs, err := sandbox.ValidateAt(p.d.Validator, SchemaPaymentArgs, call.Doc, "/args")
	if err != nil {
		return nil, err
	}
	a := readPaymentArgs(call.Doc)
	for i := range vs {
		if vs[i].Path == "/args/timeStamp" && millis.MatchString(a.TimeStamp) {
			vs[i].Message = "is " + a.TimeStamp + ", milliseconds: wx.requestPayment takes seconds since 1970 as a string of 10 digits"
		}
	}
	host, warnings, err := p.checkHost(call.Caller, true)
	if err != nil {
		return nil, err
	}
	vs = append(vs, host...)
	if len(vs) > 0 {
		sortViolations(vs)
		return nil, sandbox.Invalid("WeChat cannot take the payment", vs...)
	}
	if err := verifyPaySign(call.Merchant, call.Caller.AppID, a); err != nil {
		return nil, err
	}
	paid, err := load[payment](ctx, p.d.Store, KindPayment, call.Merchant.MchID, a.prepayID())
	if err != nil {
		return nil, err
	}
	if paid != nil {
		// [I]: that WeChat refuses a paid prepay_id, and how, is not
		// documented: a warning (a refusal for a strict merchant), and the
		// payment sheet plays the scenario again.
		warnings = append(warnings, sandbox.Violation{Path: "/args/package", Message: fmt.Sprintf(
			"prepay_id %s was paid at %s (session %s); WeChat presumably answers 该订单已支付: create a new JSAPI order for a new payment "+
				"(inferred rule: no document states it, so the sandbox warns; a strict merchant is refused)",
			paid.V.PrepayID, paid.V.PaidAt.UTC().Format(time.RFC3339), paid.V.Session)})
	}
	return &sandbox.Launched{Ref: a.prepayID(), Magic: map[string]string{"nonceStr": a.NonceStr, "package": a.Package}, Warnings: warnings}, nil
}

// verifyPaySign checks paySign as WeChat does (SOURCES.md §5): RSA is
// SHA256withRSA over "appId\ntimeStamp\nnonceStr\npackage\n" with the
// merchant's key; MD5 and HMAC-SHA256 are the API v2 rule over appId,
// nonceStr, package, signType and timeStamp with the API v2 key. The appId
// is the host's: the one the JSAPI order was placed for.
func verifyPaySign(m *sandbox.Merchant, appID string, a paymentArgs) error {
	var err error
	if a.SignType == paySignRSA {
		pub, perr := wxsign.ParsePublicKey(m.MerchantPublicKeyPEM)
		if perr != nil {
			return sandbox.Invalid("the merchant has no usable public key", sandbox.Violation{Path: "/args/signType", Message: fmt.Sprintf(
				"RSA needs merchant %s's public key, which does not parse: %v", m.MchID, perr)})
		}
		err = wxsign.RSAVerify(pub, wxsign.PaySignMessage(appID, a.TimeStamp, a.NonceStr, a.Package), a.PaySign)
	} else {
		if m.APIv2Key == "" {
			return sandbox.Invalid("the merchant has no API v2 key", sandbox.Violation{Path: "/args/signType", Message: fmt.Sprintf(
				"%s needs merchant %s's API v2 key, and it has none: sign with RSA", a.SignType, m.MchID)})
		}
		err = wxsign.V2Verify(map[string]string{
			"appId": appID, "nonceStr": a.NonceStr, "package": a.Package, "signType": a.SignType, "timeStamp": a.TimeStamp,
		}, m.APIv2Key, a.SignType, a.PaySign)
	}
	if err == nil {
		return nil
	}
	e := *sandbox.AsError(err)
	e.Fields = []sandbox.Violation{{Path: "/args/paySign", Message: paymentSignatureFailure + ": " + e.Message}}
	return &e
}

// resolvePayment answers the payment: paid, cancelled, or failed with the
// scenario's reason. A payment marks its prepay_id paid; a concurrent
// payment of the same prepay_id loses on the store's conflict.
func (p *Product) resolvePayment(ctx context.Context, s *sandbox.Session, act string, now time.Time) (*sandbox.Batch, error) {
	var b sandbox.Batch
	ret := struct {
		ErrMsg string `json:"errMsg"`
	}{errMsgCancelled}
	switch act {
	case ActionSuccess:
		ret.ErrMsg = errMsgPaid
		paid, err := load[payment](ctx, p.d.Store, KindPayment, s.MchID, s.Ref)
		if err != nil {
			return nil, err
		}
		if paid != nil {
			break // paid again (a warning at the call): the first payment stays the record
		}
		rec, err := sandbox.NewRecord(KindPayment, s.MchID, s.Ref, &payment{PrepayID: s.Ref, Session: s.ID, PaidAt: now})
		if err != nil {
			return nil, err
		}
		b.Creates = append(b.Creates, rec)
	case ActionFailure:
		reason := p.params[s.Scenario].FailReason
		if reason == "" {
			reason = defaultPaymentFailure
		}
		ret.ErrMsg = errMsgFailed + reason
	}
	var err error
	s.Return, err = marshal("the payment result", ret)
	return &b, err
}

// CallErrMsg is the errMsg of the answer to a call: for a payment the user
// already acted on, the callback's result (requestPayment:ok or :fail …),
// since wx.requestPayment calls back only then; ok is false otherwise, and
// the answer acknowledges the call.
func (p *Product) CallErrMsg(s *sandbox.Session) (string, bool) {
	if s.API != sandbox.APIRequestPayment || s.State != sandbox.SessionReturned {
		return "", false
	}
	var ret struct {
		ErrMsg string `json:"errMsg"`
	}
	if json.Unmarshal(s.Return, &ret) != nil || ret.ErrMsg == "" {
		return "", false
	}
	return ret.ErrMsg, true
}
