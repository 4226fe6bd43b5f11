package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/wxpayv2"
	"github.com/mpsandbox/mpsandbox/server/internal/wxsign"
)

// signPaths are where a refused signature is reported: the v3
// Authorization, a P云 or v2 sign, the 支付分 extraData sign, a paySign.
var signPaths = []string{"/signature", "/sign", "/args/extraData/sign", "/args/paySign"}

// call is the body of a wx.* call as the journal keeps it.
type call struct {
	Caller struct {
		AppID  string `json:"appId"`
		SDK    string `json:"sdkVersion"`
		WeChat string `json:"wechatVersion"`
	} `json:"caller"`
	Args struct {
		ExtraData map[string]any `json:"extraData"`
		TimeStamp any            `json:"timeStamp"`
		NonceStr  string         `json:"nonceStr"`
		Package   string         `json:"package"`
		SignType  string         `json:"signType"`
		PaySign   string         `json:"paySign"`
	} `json:"args"`
}

func readCall(x *sandbox.Exchange) call {
	var c call
	_ = json.Unmarshal([]byte(x.RequestBody), &c)
	return c
}

func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case map[string]any, []any:
		return ""
	}
	return fmt.Sprint(v)
}

// signed reports whether x carries a signature the sandbox verifies.
func signed(product string, x *sandbox.Exchange) bool {
	if isUpstream(x) {
		return true
	}
	api, ok := launchAPI(x)
	if !ok {
		return false
	}
	switch product {
	case sandbox.ProductPayScore:
		return api == sandbox.APIOpenBusinessView || api == sandbox.APINavigateToMiniProgram
	case sandbox.ProductIssuer:
		return api == sandbox.APIRequestPayment
	}
	return false
}

func evalSigned(f *facts, p string) Check {
	var c Check
	xs := f.of(p, func(x *sandbox.Exchange) bool { return signed(p, x) })
	bad, firstGood := 0, -1
	for i, x := range xs {
		if v, refused := hasViolation(x, signPaths...); refused {
			bad++
			c.Evidence = append(c.Evidence, evidence(x, true, "signature refused at %s: %s", v.Path, cut(v.Message, 200)))
			continue
		}
		if firstGood < 0 && bad > 0 {
			firstGood = i
			c.Evidence = append(c.Evidence, evidence(x, false, "first verified request after %s", plural(bad, "refusal", "refusals")))
		} else if len(c.Evidence) < 5 {
			c.Evidence = append(c.Evidence, evidence(x, false, "signature verified"))
		}
	}
	failed := fmt.Sprintf("Signature refused: %d of %s.", bad, plural(len(xs), "signed request", "signed requests"))
	if firstGood > 0 {
		failed += " The merchant got it right after the refusals; a go-live build signs right the first time."
	}
	judge(&c, len(xs), bad, says{
		none:     "No signed request in the window.",
		exercise: "Run a flow that calls the product's signed APIs.",
		failed:   failed,
		fix:      "Compare the string-to-sign in each refused entry's diagnostics with the one your code builds, and check which key it uses.",
		passed:   fmt.Sprintf("All %s verified the first time.", plural(len(xs), "signed request", "signed requests")),
	})
	return c
}

// v2Sign returns the parameters of a v2-style signature in x (the 支付分
// extraData, a v2 XML request, a v2 paySign) and the sign type; ok is false
// when x carries none.
func v2Sign(f *facts, p string, x *sandbox.Exchange) (params map[string]string, sign, signType string, ok bool) {
	switch {
	case p == sandbox.ProductRepayment && isUpstream(x) && strings.HasPrefix(x.RequestBody, "<"):
		params = xmlParams(x.RequestBody)
		sign, signType = params["sign"], params["sign_type"]
		delete(params, "sign")
		return params, sign, signType, sign != ""
	case p == sandbox.ProductPayScore && isLaunch(x):
		ed := readCall(x).Args.ExtraData
		params = map[string]string{}
		for _, k := range []string{"mch_id", "package", "timestamp", "nonce_str", "sign_type"} {
			params[k] = text(ed[k])
		}
		return params, text(ed["sign"]), params["sign_type"], text(ed["sign"]) != ""
	case p == sandbox.ProductIssuer && isLaunch(x):
		c := readCall(x)
		a := c.Args
		if a.PaySign == "" || a.SignType == "" || a.SignType == "RSA" {
			return nil, "", "", false
		}
		params = map[string]string{"appId": c.Caller.AppID, "nonceStr": a.NonceStr, "package": a.Package, "signType": a.SignType, "timeStamp": text(a.TimeStamp)}
		return params, a.PaySign, a.SignType, true
	}
	return nil, "", "", false
}

func xmlParams(body string) map[string]string {
	params, _ := wxpayv2.ParseXML([]byte(body))
	if params == nil {
		params = map[string]string{}
	}
	return params
}

func evalKey(f *facts, p string) Check {
	var c Check
	seen, bad := 0, 0
	for _, x := range f.of(p, func(*sandbox.Exchange) bool { return true }) {
		params, sign, signType, ok := v2Sign(f, p, x)
		if !ok {
			continue
		}
		seen++
		if _, refused := hasViolation(x, signPaths...); !refused {
			if len(c.Evidence) < 5 {
				c.Evidence = append(c.Evidence, evidence(x, false, "%s sign verified with the API v2 key", signType))
			}
			continue
		}
		if want, err := wxsign.V2Sign(params, f.m.APIv3Key, signType); err == nil && strings.EqualFold(want, sign) {
			bad++
			c.Evidence = append(c.Evidence, evidence(x, true, "the %s sign is the one the API v3 key makes", signType))
		} else {
			c.Evidence = append(c.Evidence, evidence(x, false, "refused, but not made with the API v3 key"))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No v2-style sign in the window.",
		exercise: "Run a flow that sends a v2-style sign (the 支付分 jump, querystate, an MD5/HMAC-SHA256 paySign).",
		failed:   fmt.Sprintf("Made with the API v3 key: %d of %s.", bad, plural(seen, "v2 sign", "v2 signs")),
		fix:      "Sign v2 parameters with api_v2_key (the 32-character v2 key), never api_v3_key; they are different secrets.",
		passed:   fmt.Sprintf("None of %s used the API v3 key.", plural(seen, "v2 sign", "v2 signs")),
	})
	return c
}

func isV3(x *sandbox.Exchange) bool { return isUpstream(x) && strings.HasPrefix(pathOf(x), "/v3/") }

func evalTimestamp(f *facts, p string) Check {
	var c Check
	xs := f.of(p, isV3)
	bad := 0
	for _, x := range xs {
		if v, ok := hasViolation(x, "/timestamp"); ok {
			bad++
			c.Evidence = append(c.Evidence, evidence(x, true, "%s", cut(v.Message, 200)))
		} else if len(c.Evidence) < 5 {
			c.Evidence = append(c.Evidence, evidence(x, false, "timestamp within the window"))
		}
	}
	judge(&c, len(xs), bad, says{
		none:     "No v3 request in the window.",
		exercise: "Run a flow that calls the v3 API.",
		failed:   fmt.Sprintf("Timestamp 300 s or more away: %d of %s.", bad, plural(len(xs), "v3 request", "v3 requests")),
		fix:      "Stamp each request with the current Unix time in seconds (not milliseconds, not a cached value) and keep the host clock in sync.",
		passed:   fmt.Sprintf("All %s were within the window.", plural(len(xs), "v3 request", "v3 requests")),
	})
	return c
}

// attempt is one notification attempt that reached the merchant.
type attempt struct {
	x *sandbox.Exchange
	n *sandbox.Notification
	// bad: the attempt carried a signature that does not verify.
	bad bool
	ack bool
	// key identifies the notification's content: a resend of the same
	// content is a duplicate.
	key string
	// ref is the order or trade it is about; state what it says of it: a
	// P云 trade-notify's status, a v3 notification's event_type.
	ref, state string
}

// attempts returns the product's notification attempts that reached the
// merchant, oldest first. One the sandbox failed on purpose (fail_next) or
// did not send (allow-list) is not the merchant's doing and is left out.
func (f *facts) attempts(p string) []attempt {
	ack := f.b.Acknowledged[p]
	var out []attempt
	for _, x := range f.of(p, isAttempt) {
		n := f.notes[x.NotifyID]
		if x.Status == 0 && (strings.HasPrefix(x.Error, "failed on purpose") || (n != nil && n.State == sandbox.NotifyRefused) || x.RequestBody == "") {
			continue
		}
		a := attempt{x: x, n: n, ack: ack != nil && ack(x.Status, []byte(x.ResponseBody))}
		switch p {
		case sandbox.ProductEmbedPay:
			// The sign is in the form: check it as the merchant should.
			form := maps.Clone(f.params(x))
			a.ref, a.state = form["pay_order"], form["status"]
			a.key = form["pay_order"] + "|" + form["status"] + "|" + form["trade_time"]
			sign := form["sign"]
			delete(form, "sign")
			a.bad = !strings.EqualFold(wxsign.PCloudSign(form, f.m.PCloudAppSecret), sign)
		default:
			// v3 signs in headers, which the journal does not keep: the
			// notification row's fault says the attempt was signed wrong.
			var env struct {
				ID        string `json:"id"`
				EventType string `json:"event_type"`
			}
			_ = json.Unmarshal([]byte(x.RequestBody), &env)
			a.key, a.state = env.ID, env.EventType
			if n != nil {
				a.ref = n.Ref
			}
			a.bad = n != nil && n.Faults.BadSignature
		}
		out = append(out, a)
	}
	return out
}

// deadlineMS is WeChat Pay's answer deadline for a notification.
const deadlineMS = 5000

func evalAcknowledged(f *facts, p string) Check {
	var c Check
	seen, bad := 0, 0
	for _, a := range f.attempts(p) {
		if a.bad {
			continue
		}
		seen++
		switch {
		case !a.ack:
			bad++
			c.Evidence = append(c.Evidence, evidence(a.x, true, "a valid notification was not acknowledged: %s", answer(a.x)))
		case a.x.LatencyMS >= deadlineMS:
			bad++
			c.Evidence = append(c.Evidence, evidence(a.x, true, "acknowledged after %.0f ms, past the 5 s deadline", a.x.LatencyMS))
		default:
			c.Evidence = append(c.Evidence, evidence(a.x, false, "acknowledged in %.0f ms", a.x.LatencyMS))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No valid notification reached the merchant in the window.",
		exercise: "Run a flow that ends in a notification, with a notify_url the sandbox may reach (notify_hosts).",
		failed:   fmt.Sprintf("Not acknowledged in time: %d of %s.", bad, plural(seen, "valid notification attempt", "valid notification attempts")),
		fix: map[string]string{
			sandbox.ProductEmbedPay:  `Answer 200 with the JSON body {"code":"1001","message":"通知成功","hint":""} — code as a string — within 5 s; process slow work after answering.`,
			sandbox.ProductPayScore:  "Answer 200 or 204 within 5 s once the signature verifies; process slow work after answering.",
			sandbox.ProductRepayment: "Answer 200 or 204 within 5 s once the signature verifies; process slow work after answering.",
		}[p],
		passed: fmt.Sprintf("All %s were acknowledged within 5 s.", plural(seen, "valid notification attempt", "valid notification attempts")),
	})
	return c
}

// answer describes the merchant's answer to an attempt.
func answer(x *sandbox.Exchange) string {
	if x.Status == 0 {
		return "no answer (" + cut(x.Error, 120) + ")"
	}
	return fmt.Sprintf("%d %s", x.Status, cut(strings.TrimSpace(x.ResponseBody), 120))
}

func evalBadSignature(f *facts, p string) Check {
	var c Check
	seen, bad := 0, 0
	for _, a := range f.attempts(p) {
		if !a.bad {
			continue
		}
		seen++
		if a.ack {
			bad++
			c.Evidence = append(c.Evidence, evidence(a.x, true, "acknowledged a notification whose signature does not verify: %s", answer(a.x)))
		} else {
			c.Evidence = append(c.Evidence, evidence(a.x, false, "refused: %s", answer(a.x)))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No notification with a bad signature reached the merchant in the window.",
		exercise: "Run the notify-bad-signature scenario (X-Sandbox-Scenario: " + p + ".notify-bad-signature).",
		failed:   fmt.Sprintf("SECURITY: the merchant acknowledged %s with a bad signature (of %d sent): it does not verify signatures.", plural(bad, "notification", "notifications"), seen),
		fix: map[string]string{
			sandbox.ProductEmbedPay: "Recompute the MD5 sign of the form (sorted non-empty parameters, &app_secret=…) and refuse the notification when it differs.",
			sandbox.ProductPayScore: "Verify Wechatpay-Signature with the platform public key the Wechatpay-Serial names (e.g. wechatpay-go notify.NewRSANotifyHandler) and answer 4xx/5xx when it fails.",
		}[p],
		passed: fmt.Sprintf("All %s with a bad signature were refused.", plural(seen, "notification", "notifications")),
	})
	return c
}

func evalDuplicate(f *facts, p string) Check {
	var c Check
	first := map[string]attempt{} // content key → its first acknowledged attempt
	seen, bad := 0, 0
	for _, a := range f.attempts(p) {
		if a.bad || a.key == "" {
			continue
		}
		orig, dup := first[a.key]
		if !dup {
			if a.ack {
				first[a.key] = a
			}
			continue
		}
		seen++
		if a.ack != orig.ack || a.x.Status != orig.x.Status {
			bad++
			c.Evidence = append(c.Evidence, evidence(a.x, true, "duplicate answered %s; the original (#%d) was answered %s", answer(a.x), orig.x.ID, answer(orig.x)),
				evidence(orig.x, false, "the original"))
		} else {
			c.Evidence = append(c.Evidence, evidence(a.x, false, "duplicate of #%d answered the same: %d", orig.x.ID, a.x.Status))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No duplicate notification reached the merchant in the window.",
		exercise: "Run the notify-duplicate scenario (X-Sandbox-Scenario: " + p + ".notify-duplicate).",
		failed:   fmt.Sprintf("Answered differently from the original: %d of %s.", bad, plural(seen, "duplicate", "duplicates")),
		fix:      "Make the receiver idempotent: when the notification was already processed, acknowledge it again the same way instead of failing.",
		passed:   fmt.Sprintf("All %s were answered as the original.", plural(seen, "duplicate", "duplicates")),
	})
	return c
}

// final reports whether a notification's state is final: a P云 status 1
// (success) or -1 (failure), PAYSCORE.USER_PAID.
func final(p, state string) bool {
	if p == sandbox.ProductPayScore {
		return state == "PAYSCORE.USER_PAID"
	}
	return state == "1" || state == "-1"
}

// refIs matches a status query of the order or trade ref.
func (f *facts) refIs(p, ref string) func(*sandbox.Exchange) bool {
	if p == sandbox.ProductPayScore {
		no := orderNo(ref)
		return func(x *sandbox.Exchange) bool { return f.params(x)["out_order_no"] == no }
	}
	return f.payOrderIs(ref)
}

// isTradeQuery is a successful P云 trade query.
func isTradeQuery(x *sandbox.Exchange) bool {
	return isUpstream(x) && ok2xx(x) && pathOf(x) == "/gate/1.0/payment/trade/query"
}

// payOrderIs matches a trade query or trade-notify about pay_order.
func (f *facts) payOrderIs(payOrder string) func(*sandbox.Exchange) bool {
	return func(x *sandbox.Exchange) bool { return f.params(x)["pay_order"] == payOrder }
}

func evalOutOfOrder(f *facts, p string) Check {
	var c Check
	done := map[string]bool{} // ref → a final state was delivered
	queries := f.sorted(p, statusQuery(p))
	seen, bad := 0, 0
	for _, a := range f.attempts(p) {
		if a.bad {
			continue
		}
		if final(p, a.state) {
			done[a.ref] = true
			continue
		}
		if !done[a.ref] {
			continue
		}
		seen++
		if q := after(queries, a.x, f.refIs(p, a.ref)); q != nil {
			c.Evidence = append(c.Evidence, evidence(a.x, false, "stale %s after the final one", a.state),
				evidence(q, false, "query of %s after the stale notification", a.ref))
		} else {
			bad++
			c.Evidence = append(c.Evidence, evidence(a.x, true, "stale %s after the final one, and no query of %s followed", a.state, a.ref))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No stale notification reached the merchant in the window.",
		exercise: "Run the notify-out-of-order scenario (X-Sandbox-Scenario: " + p + ".notify-out-of-order).",
		failed:   fmt.Sprintf("Not followed by a query, so it may have overwritten the final state: %d of %s.", bad, plural(seen, "stale notification", "stale notifications")),
		fix: map[string]string{
			sandbox.ProductEmbedPay: "Never move a trade back from a final status; on a notification that disagrees with what you hold, query trade/query and keep the final state.",
			sandbox.ProductPayScore: "Never move a DONE order back; on a notification that disagrees with what you hold, query the order (GET /v3/payscore/serviceorder) and keep its state.",
		}[p],
		passed: fmt.Sprintf("After each of %s the merchant queried.", plural(seen, "stale notification", "stale notifications")),
	})
	return c
}

// sessionOf returns the session x names, nil when unknown.
func (f *facts) sessionOf(x *sandbox.Exchange) *sandbox.Session { return f.sessions[x.SessionID] }

// hasFault reports whether the session's scenario puts the fault on its
// notifications.
func (f *facts) hasFault(s *sandbox.Session, fault string) bool {
	if s == nil || f.b.Scenarios == nil {
		return false
	}
	sc, ok := f.b.Scenarios.Get(s.Scenario)
	return ok && sc.Notify.HasFault(fault)
}

func evalLate(f *facts, p string) Check {
	var c Check
	queries := f.sorted(p, statusQuery(p))
	var attempts []*sandbox.Exchange
	refOf := map[int64]string{}
	for _, a := range f.attempts(p) {
		attempts = append(attempts, a.x)
		refOf[a.x.ID] = a.ref
	}
	slices.SortStableFunc(attempts, func(a, b *sandbox.Exchange) int { return a.Time.Compare(b.Time) })
	seen, bad := 0, 0
	for _, r := range f.returns(p) {
		s := f.sessionOf(r)
		if !f.hasFault(s, "late") {
			continue
		}
		seen++
		q := after(queries, r, f.refIs(p, s.Ref))
		n := after(attempts, r, func(x *sandbox.Exchange) bool { return refOf[x.ID] == s.Ref })
		switch {
		case q != nil && (n == nil || q.Time.Before(n.Time)):
			c.Evidence = append(c.Evidence, evidence(r, false, "user back, notification late"), evidence(q, false, "queried %s before the notification came", s.Ref))
		default:
			bad++
			c.Evidence = append(c.Evidence, evidence(r, true, "user back with the notification late, and no query of %s before it came", s.Ref))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No late notification in the window.",
		exercise: "Run the notify-late scenario (X-Sandbox-Scenario: " + p + ".notify-late).",
		failed:   fmt.Sprintf("The merchant waited for the notification instead of querying: %d of %s.", bad, plural(seen, "late case", "late cases")),
		fix:      "When the user is back and no notification has come, query the order/trade (with a short back-off) rather than wait.",
		passed:   fmt.Sprintf("In all %s the merchant queried before the notification came.", plural(seen, "late case", "late cases")),
	})
	return c
}

// statusQuery is a successful query of the product's state: the 支付分
// order, the vehicle user (querystate, services/find or a transaction),
// the P云 trade, a plugin getter.
func statusQuery(p string) func(*sandbox.Exchange) bool {
	switch p {
	case sandbox.ProductPayScore:
		return func(x *sandbox.Exchange) bool {
			return isUpstream(x) && ok2xx(x) && x.Method == "GET" &&
				(pathOf(x) == "/v3/payscore/serviceorder" || pathOf(x) == "/v3/payscore/partner/serviceorder")
		}
	case sandbox.ProductEmbedPay:
		return isTradeQuery
	case sandbox.ProductRepayment:
		return func(x *sandbox.Exchange) bool { return isUpstream(x) && ok2xx(x) }
	default:
		return func(x *sandbox.Exchange) bool { return isGetter(x) && ok2xx(x) }
	}
}

// settles returns whether a status query is about session s, whose return
// r was read.
func (f *facts) settles(p string, s *sandbox.Session, r *sandbox.Exchange) func(*sandbox.Exchange) bool {
	switch p {
	case sandbox.ProductPayScore:
		queryID := text(returnData(r)["query_id"])
		return func(x *sandbox.Exchange) bool {
			q := f.params(x)
			return q["out_order_no"] == orderNo(s.Ref) || (queryID != "" && q["query_id"] == queryID)
		}
	case sandbox.ProductEmbedPay:
		return f.payOrderIs(s.Ref)
	case sandbox.ProductRepayment:
		return func(*sandbox.Exchange) bool { return true } // the user's state, by whichever query
	default:
		return func(x *sandbox.Exchange) bool { return x.SessionID == s.ID }
	}
}

// isComplete acts on a 支付分 order as if the outcome were known (direct
// or partner path).
func isComplete(x *sandbox.Exchange) bool {
	return isUpstream(x) && x.Method == "POST" && strings.HasSuffix(pathOf(x), "/complete") &&
		(strings.HasPrefix(pathOf(x), "/v3/payscore/serviceorder/") || strings.HasPrefix(pathOf(x), "/v3/payscore/partner/serviceorder/"))
}

// completes returns whether a complete is of session s's order.
func completes(s *sandbox.Session) func(*sandbox.Exchange) bool {
	no := orderNo(s.Ref)
	return func(x *sandbox.Exchange) bool {
		return pathOf(x) == "/v3/payscore/serviceorder/"+no+"/complete" || pathOf(x) == "/v3/payscore/partner/serviceorder/"+no+"/complete"
	}
}

// orderNo is the out_order_no of a 支付分 session's Ref: the Ref itself, or
// for a partner (服务商) order "sub:<sub_mchid>:<out_order_no>".
func orderNo(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }

// returns lists the first read of each returned session of the product.
func (f *facts) returns(p string) []*sandbox.Exchange {
	var out []*sandbox.Exchange
	done := map[string]bool{}
	for _, r := range f.of(p, isReturn) {
		if s := f.sessionOf(r); s != nil && !done[s.ID] {
			done[s.ID] = true
			out = append(out, r)
		}
	}
	return out
}

// ambiguous reports why a return settles nothing, "" when it does.
func ambiguous(p string, r *sandbox.Exchange) string {
	ed := returnData(r)
	switch p {
	case sandbox.ProductPayScore:
		if text(ed["query_id"]) == "" {
			return "returned without query_id"
		}
	case sandbox.ProductEmbedPay:
		if ed != nil && text(ed["status"]) == "0" {
			return "returned with status 0 (paying)"
		}
	}
	return ""
}

func evalAmbiguous(f *facts, p string) Check {
	var c Check
	queries := f.sorted(p, statusQuery(p))
	seen, bad := 0, 0
	for _, r := range f.returns(p) {
		why := ambiguous(p, r)
		if why == "" {
			continue
		}
		seen++
		s := f.sessionOf(r)
		if q := after(queries, r, f.settles(p, s, r)); q != nil {
			c.Evidence = append(c.Evidence, evidence(r, false, "%s", why), evidence(q, false, "queried %s", s.Ref))
		} else {
			bad++
			c.Evidence = append(c.Evidence, evidence(r, true, "%s, and the merchant never queried %s", why, s.Ref))
		}
	}
	judge(&c, seen, bad, says{
		none: "No inconclusive return in the window.",
		exercise: map[string]string{
			sandbox.ProductPayScore: "Run the confirm-back-icon scenario (X-Sandbox-Scenario: payscore.confirm-back-icon).",
			sandbox.ProductEmbedPay: "Run the paying or paying-then-paid scenario (X-Sandbox-Scenario: embedpay.paying-then-paid).",
		}[p],
		failed: fmt.Sprintf("Trusted without a query: %d of %s.", bad, plural(seen, "inconclusive return", "inconclusive returns")),
		fix:    "On such a return, query the order/trade and act on its state, not on the return.",
		passed: fmt.Sprintf("All %s were followed by a query.", plural(seen, "inconclusive return", "inconclusive returns")),
	})
	return c
}

func evalQueried(f *facts, p string) Check {
	var c Check
	queries, completions := f.sorted(p, statusQuery(p)), f.sorted(p, isComplete)
	rs := f.returns(p)
	bad := 0
	for _, r := range rs {
		s := f.sessionOf(r)
		q := after(queries, r, f.settles(p, s, r))
		done := after(completions, r, completes(s))
		switch {
		case q == nil:
			bad++
			c.Evidence = append(c.Evidence, evidence(r, true, "user back (session %s); no query of %s followed", s.ID, s.Ref))
		case done != nil && done.Time.Before(q.Time):
			bad++
			c.Evidence = append(c.Evidence, evidence(done, true, "completed %s before querying it after the return (#%d)", s.Ref, r.ID))
		default:
			c.Evidence = append(c.Evidence, evidence(q, false, "queried after the return #%d (session %s)", r.ID, s.ID))
		}
	}
	fix := "After the user is back, query the order/trade from your server and act on its state."
	switch p {
	case sandbox.ProductIssuer:
		fix = "After the plugin returns, read its getters (requirePlugin('issuer-plugin').getActiveResult() …) and act on their state."
	case sandbox.ProductRepayment:
		fix = "After the user is back, query the user state (querystate or services/find) again before unblocking the service."
	}
	judge(&c, len(rs), bad, says{
		none:     "No user came back in the window.",
		exercise: "Run a jump and read its return (GET /miniprogram/v1/sessions/{id}/return).",
		failed:   fmt.Sprintf("Not followed by a query before acting: %d of %s.", bad, plural(len(rs), "return", "returns")),
		fix:      fix,
		passed:   fmt.Sprintf("All %s were followed by a query.", plural(len(rs), "return", "returns")),
	})
	return c
}

// loop is how many identical refused calls in a row read as a retry loop.
const loop = 3

func evalClient(f *facts, p string) Check {
	var c Check
	seen, bad := 0, 0
	run, last := 0, ""
	for _, x := range f.of(p, isLaunch) {
		v, refused := hasViolation(x, "/caller/sdkVersion", "/caller/wechatVersion")
		if !refused {
			run, last = 0, ""
			continue
		}
		seen++
		cl := readCall(x).Caller
		api, _ := launchAPI(x)
		key := api + "|" + cl.SDK + "|" + cl.WeChat
		if key == last {
			run++
		} else {
			run, last = 1, key
		}
		if run == loop {
			bad++
			c.Evidence = append(c.Evidence, evidence(x, true, "the same refused call %d times in a row (base library %s, WeChat %s): a retry loop", loop, cl.SDK, cl.WeChat))
		} else if run < loop {
			c.Evidence = append(c.Evidence, evidence(x, false, "refused: %s", cut(v.Message, 160)))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No jump from a client below the minimum versions in the window.",
		exercise: "Call the jump once with an old caller (e.g. caller.sdkVersion \"2.5.0\" or wechatVersion \"7.0.0\") and check your code shows an upgrade prompt.",
		failed:   fmt.Sprintf("Retry loops (%d identical refused calls in a row): %d, among %s.", loop, bad, plural(seen, "refused call", "refused calls")),
		fix:      "Check the API exists and the versions (wx.canIUse, wx.getSystemInfoSync) before the jump, and on fail ask the user to upgrade WeChat rather than retry.",
		passed:   fmt.Sprintf("%s refused, none retried in a loop.", plural(seen, "jump from an old client was", "jumps from old clients were")),
	})
	return c
}

func evalCoverage(f *facts, p string) Check {
	var c Check
	if f.b.Scenarios == nil {
		c.Verdict, c.Summary = NotExercised, "No scenario catalogue."
		return c
	}
	used := map[string]bool{}
	for _, x := range f.of(p, func(x *sandbox.Exchange) bool { return x.Scenario != "" }) {
		if !used[x.Scenario] {
			used[x.Scenario] = true
			c.Evidence = append(c.Evidence, evidence(x, false, "scenario %s", x.Scenario))
		}
	}
	var never, faults, faultsNever []string
	seenFault := map[string]bool{}
	all := f.b.Scenarios.List(p)
	for _, sc := range all {
		if !used[sc.ID] {
			never = append(never, sc.ID)
		}
		for _, ft := range sc.Notify.Faults {
			if used[sc.ID] {
				seenFault[ft] = true
			}
		}
	}
	for _, sc := range all {
		for _, ft := range sc.Notify.Faults {
			if !slices.Contains(faults, ft) {
				faults = append(faults, ft)
				if !seenFault[ft] {
					faultsNever = append(faultsNever, ft)
				}
			}
		}
	}
	// API faults: the kinds the merchant scripted on the product's
	// upstream APIs and met.
	var apiNever []string
	if slices.Contains(apiFaultProducts, p) {
		met := map[string]bool{}
		for _, x := range f.of(p, isUpstream) {
			if kind, ok := apiFault(x); ok && !met[kind] {
				met[kind] = true
				c.Evidence = append(c.Evidence, evidence(x, false, "API fault %s", kind))
			}
		}
		for _, kind := range sandbox.APIFaultKinds {
			if !met[kind] {
				apiNever = append(apiNever, kind)
			}
		}
	}
	fix := ""
	switch {
	case len(never) > 0:
		fix = "Run each missing scenario once, e.g. with the header X-Sandbox-Scenario: " + never[0] + "."
	case len(apiNever) > 0:
		fix = "Script each missing API fault once: POST /sandbox/v1/merchants/{mchid}/api-faults {\"path\": …, \"kind\": \"" + apiNever[0] + "\"}."
	}
	apiLine := ""
	if slices.Contains(apiFaultProducts, p) {
		apiLine = " API faults never exercised: " + quoteList(apiNever) + "."
	}
	judge(&c, len(used), len(never)+len(apiNever), says{
		none:     fmt.Sprintf("None of the %d scenarios was exercised.", len(all)),
		exercise: "Run the product's scenarios (GET /sandbox/v1/scenarios?product=" + p + " lists them).",
		failed: fmt.Sprintf("%d of %d scenarios exercised; never: %s. Notification faults never exercised: %s.",
			len(all)-len(never), len(all), quoteList(never), quoteList(faultsNever)) + apiLine,
		fix:    fix,
		passed: fmt.Sprintf("All %d scenarios exercised.", len(all)) + apiLine,
	})
	return c
}

// cut bounds a quoted message.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// apiFaultProducts are the products whose upstream APIs play the API
// faults a merchant scripts (POST /sandbox/v1/merchants/{mchid}/api-faults):
// the v3 APIs and querystate.
var apiFaultProducts = []string{sandbox.ProductPayScore, sandbox.ProductRepayment}

// faultNote is how the fault player notes a fault it played in the journal
// entry's diagnostics or error: "API fault <id> (<kind> on <method> <path>) …".
var faultNote = regexp.MustCompile(`^API fault \S+ \((\w+) on `)

// apiFault returns the kind of API fault x met, if any.
func apiFault(x *sandbox.Exchange) (string, bool) {
	for _, s := range []string{x.Diagnostics, x.Error} {
		if m := faultNote.FindStringSubmatch(s); m != nil {
			return m[1], true
		}
	}
	return "", false
}

// retryKinds are the API faults after which the same request is to be sent
// again: a 5xx, a 429 (not processed), no answer.
var retryKinds = []string{sandbox.FaultSystemError, sandbox.FaultServiceUnavailable, sandbox.FaultRateLimited, sandbox.FaultTimeout}

func evalRetried(f *facts, p string) Check {
	var c Check
	upstream := f.sorted(p, isUpstream)
	seen, bad := 0, 0
	for _, x := range upstream {
		kind, ok := apiFault(x)
		if !ok || !slices.Contains(retryKinds, kind) {
			continue
		}
		seen++
		again := after(upstream, x, func(y *sandbox.Exchange) bool {
			if _, faulted := apiFault(y); faulted {
				return false
			}
			return y.Method == x.Method && y.URL == x.URL
		})
		if again != nil {
			c.Evidence = append(c.Evidence, evidence(x, false, "%s", kind), evidence(again, false, "the same request again, answered %d", again.Status))
		} else {
			bad++
			c.Evidence = append(c.Evidence, evidence(x, true, "%s, and the same request was never sent again", kind))
		}
	}
	judge(&c, seen, bad, says{
		none:     "No request met a 5xx, a 429 or no answer in the window.",
		exercise: "Script an API fault (POST /sandbox/v1/merchants/{mchid}/api-faults with kind system_error, service_unavailable, rate_limited or timeout) and run the flow.",
		failed:   fmt.Sprintf("Never sent again: %d of %s.", bad, plural(seen, "failed request", "failed requests")),
		fix:      "Retry a 5xx, a 429 (after a pause) or a timeout with the same parameters — the APIs are idempotent for them — and give up only after a bounded number of tries.",
		passed:   fmt.Sprintf("Each of %s was sent again.", plural(seen, "failed request", "failed requests")),
	})
	return c
}

// Parking notification events and the transaction query
// (repayment's parking flow).
const (
	eventPayBack       = "TRANSACTION.PAY_BACK"
	transactionByTrade = "/v3/vehicle/transactions/out-trade-no/"
)

// evalRepaidQueried: for each advanced deduction the user repaid (a
// TRANSACTION.PAY_BACK reached the merchant), a query of the transaction
// answered user_repaid Y.
func evalRepaidQueried(f *facts, p string) Check {
	var c Check
	repaid := map[string]bool{}
	seen, bad := 0, 0
	for _, a := range f.attempts(p) {
		if a.bad || a.n == nil || a.n.Event != eventPayBack || repaid[a.ref] {
			continue
		}
		repaid[a.ref] = true
		seen++
		q := f.of(p, func(x *sandbox.Exchange) bool {
			return isUpstream(x) && ok2xx(x) && x.Method == "GET" && pathOf(x) == transactionByTrade+a.ref &&
				strings.Contains(strings.ReplaceAll(x.ResponseBody, " ", ""), `"user_repaid":"Y"`)
		})
		if len(q) == 0 {
			bad++
			c.Evidence = append(c.Evidence, evidence(a.x, true, "the user repaid advance %s; no query of the transaction showed user_repaid Y", a.ref))
			continue
		}
		c.Evidence = append(c.Evidence, evidence(q[0], false, "queried advance %s after the repayment: user_repaid Y", a.ref))
	}
	judge(&c, seen, bad, says{
		none:     "No advanced deduction was repaid in the window.",
		exercise: "Run the parking flow to an advance and its repayment: 创建停车入场, then 扣费受理 with an out_trade_no starting PKADVANCE (scenario repayment.parking-advanced), then the jump to the repayment mini-program.",
		failed:   fmt.Sprintf("Not confirmed by a query: %d of %s.", bad, plural(seen, "repaid advance", "repaid advances")),
		fix:      "On TRANSACTION.PAY_BACK (or the user's return from the repayment mini-program), GET /v3/vehicle/transactions/out-trade-no/{out_trade_no} and clear the user's debt only when it answers user_repaid Y.",
		passed:   fmt.Sprintf("All %s were confirmed by a query showing user_repaid Y.", plural(seen, "repaid advance", "repaid advances")),
	})
	return c
}
