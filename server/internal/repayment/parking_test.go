package repayment

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	wxnotify "github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// notice is one notification as the merchant's notify_url got it, parsed
// and verified by wechatpay-go's notify handler.
type notice struct {
	event    string
	resource map[string]any
	raw      []byte
}

// parkingWorld is a world with wechatpay-go's parking client and a notify
// receiver that verifies every notification with the SDK's handler in
// public-key mode.
type parkingWorld struct {
	*world
	sdk      wexinpayscoreparking.ParkingsApiService
	tx       wexinpayscoreparking.TransactionsApiService
	services wexinpayscoreparking.ServicesApiService
	rt       *sandboxRT
	url      string
	notices  chan notice
	// handler is the SDK's notify handler the receiver verifies with.
	handler atomic.Pointer[notify.Handler]
}

func newParkingWorld(t *testing.T) *parkingWorld {
	t.Helper()
	w := newWorld(t)
	client, rt := w.sdk()
	pub, err := utils.LoadPublicKey(w.m.PlatformPublicKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	h, err := notify.NewRSANotifyHandler(w.m.APIv3Key, wxnotify.NewSHA256WithRSAPubkeyVerifier(w.m.PlatformPublicKeyID, *pub))
	if err != nil {
		t.Fatal(err)
	}
	pw := &parkingWorld{world: w, sdk: wexinpayscoreparking.ParkingsApiService{Client: client},
		tx: wexinpayscoreparking.TransactionsApiService{Client: client}, services: wexinpayscoreparking.ServicesApiService{Client: client},
		rt: rt, notices: make(chan notice, 16)}
	pw.handler.Store(h)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(raw))
		var res map[string]any
		n, err := pw.handler.Load().ParseNotifyRequest(req.Context(), req, &res)
		if err != nil {
			t.Errorf("the SDK refuses the notification: %v\n%s", err, raw)
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		pw.notices <- notice{event: n.EventType, resource: res, raw: raw}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	pw.url = srv.URL + "/notify"
	return pw
}

// apiErr checks that err is the SDK's APIError with the status and code,
// and its body a v3 error.
func (w *parkingWorld) apiErr(err error, status int, code string) {
	w.tb.Helper()
	var e *core.APIError
	if !errors.As(err, &e) || e.StatusCode != status || e.Code != code {
		w.tb.Fatalf("got %v, want %d %s", err, status, code)
	}
	w.valid("wxpay/error", []byte(e.Body))
}

// next waits for the next notification; it must be the event.
func (w *parkingWorld) next(event string) map[string]any {
	w.tb.Helper()
	select {
	case n := <-w.notices:
		if n.event != event {
			w.tb.Fatalf("notification: got %s %v, want %s", n.event, n.resource, event)
		}
		w.valid("wxpay/notification", n.raw)
		raw, _ := json.Marshal(n.resource)
		if event == EventEntranceStateChange {
			w.valid("repayment/entrance-state.resource", raw)
		} else {
			w.valid("repayment/transaction", raw)
		}
		return n.resource
	case <-time.After(5 * time.Second):
		w.tb.Fatalf("no notification within 5 s; want %s", event)
		return nil
	}
}

// repaidEvents waits for what repaying an advance with a blocked entry
// sends: TRANSACTION.PAY_BACK and VEHICLE.ENTRANCE_STATE_CHANGE, in either
// order, by event.
func (w *parkingWorld) repaidEvents() map[string]map[string]any {
	w.tb.Helper()
	got := map[string]map[string]any{}
	for range 2 {
		select {
		case n := <-w.notices:
			got[n.event] = n.resource
		case <-time.After(5 * time.Second):
			w.tb.Fatalf("after repaying: got %v, want PAY_BACK and ENTRANCE_STATE_CHANGE", got)
		}
	}
	return got
}

// none checks that no notification arrives for a moment.
func (w *parkingWorld) none() {
	w.tb.Helper()
	select {
	case n := <-w.notices:
		w.tb.Fatalf("unexpected notification %s %v", n.event, n.resource)
	case <-time.After(300 * time.Millisecond):
	}
}

// enter creates an entry of the user's plate.
func (w *parkingWorld) enter(u userView, outParkingNo string) *wexinpayscoreparking.Parking {
	w.tb.Helper()
	p, _, err := w.sdk.CreateParking(context.Background(), wexinpayscoreparking.CreateParkingRequest{
		OutParkingNo: core.String(outParkingNo), PlateNumber: core.String(u.PlateNumber),
		PlateColor: wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr(), NotifyUrl: core.String(w.url),
		StartTime: core.Time(base.Add(-time.Hour)), ParkingName: core.String("沙箱停车场"), FreeDuration: core.Int64(900),
	})
	if err != nil {
		w.tb.Fatalf("CreateParking: %v", err)
	}
	w.valid("repayment/parking", w.rt.lastBody())
	return p
}

// deductRequest is a 扣费受理 of 500 fen for the user's plate.
func (w *parkingWorld) deductRequest(u userView, outTradeNo, parkingID string) wexinpayscoreparking.CreateTransactionRequest {
	return wexinpayscoreparking.CreateTransactionRequest{
		Appid: core.String(w.m.AppID), Description: core.String("停车费"), Attach: core.String("lot=7"),
		OutTradeNo: core.String(outTradeNo), TradeScene: core.String("PARKING"), NotifyUrl: core.String(w.url),
		Amount: &wexinpayscoreparking.OrderAmount{Total: core.Int64(500), Currency: core.String("CNY")},
		ParkingInfo: &wexinpayscoreparking.ParkingTradeScene{ParkingId: core.String(parkingID),
			PlateNumber: core.String(u.PlateNumber), PlateColor: wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr(),
			StartTime: core.Time(base.Add(-time.Hour)), EndTime: core.Time(base), ParkingName: core.String("沙箱停车场"),
			ChargingDuration: core.Int64(2700), DeviceId: core.String("GATE-7")},
	}
}

// deduct asks for a deduction; the answer must be ACCEPTED.
func (w *parkingWorld) deduct(u userView, outTradeNo, parkingID string) *wexinpayscoreparking.Transaction {
	w.tb.Helper()
	tx, _, err := w.tx.CreateTransaction(context.Background(), w.deductRequest(u, outTradeNo, parkingID))
	if err != nil {
		w.tb.Fatalf("CreateTransaction: %v", err)
	}
	w.valid("repayment/transaction", w.rt.lastBody())
	if *tx.TradeState != tradeStateAccepted || tx.BankType != nil || tx.TransactionId != nil || *tx.SpMchid != w.m.MchID ||
		*tx.Payer.Openid != u.OpenID || *tx.Attach != "lot=7" || *tx.ParkingInfo.DeviceId != "GATE-7" {
		w.tb.Fatalf("扣费受理: got %s, want ACCEPTED for the user, sp_mchid the merchant", tx)
	}
	if bytes.Contains(w.rt.lastBody(), []byte(`"mchid"`)) {
		w.tb.Fatalf("direct mode answers sp_mchid, not mchid: %s", w.rt.lastBody())
	}
	return tx
}

func (w *parkingWorld) query(outTradeNo string) *wexinpayscoreparking.Transaction {
	w.tb.Helper()
	tx, _, err := w.tx.QueryTransaction(context.Background(), wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String(outTradeNo)})
	if err != nil {
		w.tb.Fatalf("QueryTransaction %s: %v", outTradeNo, err)
	}
	w.valid("repayment/transaction", w.rt.lastBody())
	return tx
}

func (w *parkingWorld) normalUser() userView {
	w.tb.Helper()
	return w.createUser(map[string]any{"user_state": StateNormal})
}

// TestParkingAdvancedThenRepaid is the whole 垫资 flow with wechatpay-go:
// entry NORMAL, deduction ACCEPTED then advanced (SUCCESS, BPA, N) with
// TRANSACTION.SUCCESS, the user OVERDUE in querystate with the path, a new
// entry BLOCKED/OVERDUE; the jump repays (the scenario that advanced it
// says so), after which the query says Y, TRANSACTION.PAY_BACK and
// VEHICLE.ENTRANCE_STATE_CHANGE (NORMAL) are sent and the user is NORMAL.
func TestParkingAdvancedThenRepaid(t *testing.T) {
	w := newParkingWorld(t)
	u := w.normalUser()
	in := w.enter(u, "IN0001")
	if *in.State != entryNormal || in.BlockReason != nil || *in.OutParkingNo != "IN0001" {
		t.Fatalf("entry: got %s, want NORMAL", in)
	}
	w.deduct(u, "PKADVANCE0001", *in.Id)
	paid := w.next(EventTransactionSuccess)
	if paid["trade_state"] != "SUCCESS" || paid["bank_type"] != "BPA" || paid["user_repaid"] != "N" || paid["sp_mchid"] != w.m.MchID {
		t.Fatalf("TRANSACTION.SUCCESS: got %v, want SUCCESS, BPA, N", paid)
	}
	tx := w.query("PKADVANCE0001")
	if *tx.TradeState != "SUCCESS" || *tx.BankType != "BPA" || *tx.UserRepaid != "N" || *tx.Amount.PayerTotal != 500 {
		t.Fatalf("query: got %s, want SUCCESS BPA N", tx)
	}
	if st := w.state(u.OpenID); st["user_state"] != StateOverdue || st["path"] == "" {
		t.Fatalf("querystate: got %v, want OVERDUE with the path", st)
	}
	if got := w.user(u.OpenID); got.Owed != 500 {
		t.Fatalf("owed: got %d, want 500", got.Owed)
	}
	blocked := w.enter(u, "IN0002")
	if *blocked.State != entryBlocked || *blocked.BlockReason != blockOverdue {
		t.Fatalf("entry of a user who owes: got %s, want BLOCKED OVERDUE", blocked)
	}

	// The jump picks no scenario itself: the advance's scenario repays.
	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, seedNonce)))
	if s := w.session(sid); s.Scenario != "repayment.parking-advanced" {
		t.Fatalf("jump scenario: got %s, want the advance's", s.Scenario)
	}
	w.advance(2 * time.Second)
	w.returned(sid, "repayment/return")
	got := w.repaidEvents()
	if pb := got[EventTransactionPayBack]; pb["user_repaid"] != "Y" || pb["bank_type"] != "BPA" || pb["out_trade_no"] != "PKADVANCE0001" {
		t.Fatalf("TRANSACTION.PAY_BACK: got %v, want user_repaid Y", pb)
	}
	es := got[EventEntranceStateChange]
	if es["parking_id"] != *blocked.Id || es["parking_state"] != entryNormal || es["out_parking_no"] != "IN0002" || es["sp_mchid"] != w.m.MchID {
		t.Fatalf("VEHICLE.ENTRANCE_STATE_CHANGE: got %v, want IN0002 NORMAL", es)
	}
	raw, _ := json.Marshal(es)
	w.valid("repayment/entrance-state.resource", raw)
	if tx := w.query("PKADVANCE0001"); *tx.UserRepaid != "Y" {
		t.Fatalf("query after repaying: got %s, want Y", tx)
	}
	if st := w.state(u.OpenID); st["user_state"] != StateNormal {
		t.Fatalf("querystate after repaying: got %v, want NORMAL", st)
	}
	if again := w.enter(u, "IN0003"); *again.State != entryNormal {
		t.Fatalf("entry after repaying: got %s, want NORMAL", again)
	}
}

// collect waits for n notifications, by event; two of one event fail.
func (w *parkingWorld) collect(n int) map[string]map[string]any {
	w.tb.Helper()
	got := map[string]map[string]any{}
	for range n {
		select {
		case no := <-w.notices:
			if _, dup := got[no.event]; dup {
				w.tb.Fatalf("a second %s: %v (got %v)", no.event, no.resource, got)
			}
			w.valid("wxpay/notification", no.raw)
			got[no.event] = no.resource
		case <-time.After(5 * time.Second):
			w.tb.Fatalf("got %v, want %d notifications", got, n)
		}
	}
	return got
}

// TestParkingAdvanceBlocksOpenEntries: the vehicle is in a second lot when
// the first lot's deduction ends in 垫资: the user owes, and the open entry
// of the second lot turns BLOCKED with a VEHICLE.ENTRANCE_STATE_CHANGE
// (parking_state BLOCKED, blocked_state_description OVERDUE), verified with
// wechatpay-go's notify handler; the charged entry (the car left) gets
// none. Repaying unblocks it (NORMAL), and its own deduction later changes
// no entry. Before the change no BLOCKED notification was sent.
func TestParkingAdvanceBlocksOpenEntries(t *testing.T) {
	w := newParkingWorld(t)
	u := w.normalUser()
	first := w.enter(u, "IN-LOT-A")
	second := w.enter(u, "IN-LOT-B")
	if *first.State != entryNormal || *second.State != entryNormal {
		t.Fatalf("entries: got %s and %s, want NORMAL", first, second)
	}
	w.deduct(u, "PKADVANCE-LOT-A", *first.Id)
	got := w.collect(2)
	if tx := got[EventTransactionSuccess]; tx["bank_type"] != "BPA" || tx["user_repaid"] != "N" {
		t.Fatalf("TRANSACTION.SUCCESS: got %v, want BPA, N", tx)
	}
	es := got[EventEntranceStateChange]
	raw, _ := json.Marshal(es)
	w.valid("repayment/entrance-state.resource", raw)
	if es["parking_id"] != *second.Id || es["out_parking_no"] != "IN-LOT-B" || es["parking_state"] != entryBlocked ||
		es["blocked_state_description"] != blockOverdue || es["plate_number"] != u.PlateNumber || es["sp_mchid"] != w.m.MchID {
		t.Fatalf("VEHICLE.ENTRANCE_STATE_CHANGE: got %v, want IN-LOT-B BLOCKED OVERDUE", es)
	}
	w.none()
	// The entry itself reads BLOCKED: creating it again answers it as it is.
	if again := w.enter(u, "IN-LOT-B"); *again.State != entryBlocked || *again.BlockReason != blockOverdue {
		t.Fatalf("IN-LOT-B again: got %s, want BLOCKED OVERDUE", again)
	}

	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, seedNonce)))
	w.advance(2 * time.Second)
	w.returned(sid, "repayment/return")
	got = w.collect(2)
	if pb := got[EventTransactionPayBack]; pb["out_trade_no"] != "PKADVANCE-LOT-A" || pb["user_repaid"] != "Y" {
		t.Fatalf("TRANSACTION.PAY_BACK: got %v", pb)
	}
	if es := got[EventEntranceStateChange]; es["out_parking_no"] != "IN-LOT-B" || es["parking_state"] != entryNormal || es["blocked_state_description"] != nil {
		t.Fatalf("VEHICLE.ENTRANCE_STATE_CHANGE after repaying: got %v, want IN-LOT-B NORMAL", es)
	}
	// IN-LOT-B is open again; its deduction, paid, changes no entry.
	w.deduct(u, "ANY-LOT-B", *second.Id)
	w.next(EventTransactionSuccess)
	w.none()
	if got, err := sandbox.Get[user](context.Background(), w.Store, KindUser, w.m.MchID, u.OpenID); err != nil ||
		len(got.V.OpenEntries) != 0 || len(got.V.BlockedEntries) != 0 {
		t.Errorf("user after both cars left: %+v (%v); want no open or blocked entry", got, err)
	}
}

// TestParkingAdvancedNeverRepaid: the user's repayment fails; nothing is
// repaid and no PAY_BACK goes out.
func TestParkingAdvancedNeverRepaid(t *testing.T) {
	w := newParkingWorld(t)
	u := w.normalUser()
	w.deduct(u, "PKUNREPAID0001", "PK-UNKNOWN")
	w.next(EventTransactionSuccess)
	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, seedNonce)))
	w.advance(2 * time.Second)
	w.returned(sid, "repayment/return")
	if s := w.session(sid); s.Action != ActionFail {
		t.Fatalf("jump: got %s, want fail", s.Action)
	}
	w.none()
	if tx := w.query("PKUNREPAID0001"); *tx.UserRepaid != "N" {
		t.Fatalf("got %s, want user_repaid N", tx)
	}
	if st := w.state(u.OpenID); st["user_state"] != StateOverdue {
		t.Fatalf("got %v, want OVERDUE", st)
	}
}

// TestParkingDeductionOutcomes: paid at once (the default), paid after
// WeChat's retries (ACCEPTED for an hour), failed.
func TestParkingDeductionOutcomes(t *testing.T) {
	w := newParkingWorld(t)
	u := w.normalUser()

	w.deduct(u, "ANY0001", "PK-UNKNOWN")
	if n := w.next(EventTransactionSuccess); n["bank_type"] != bankTypeOthers || n["user_repaid"] != nil || n["transaction_id"] == nil {
		t.Fatalf("paid at once: got %v, want SUCCESS without user_repaid", n)
	}
	if tx := w.query("ANY0001"); *tx.TradeState != "SUCCESS" || tx.SuccessTime == nil {
		t.Fatalf("paid at once: got %s", tx)
	}

	w.deduct(u, "PKRETRY0001", "PK-UNKNOWN")
	if tx := w.query("PKRETRY0001"); *tx.TradeState != tradeStateAccepted {
		t.Fatalf("before the retry: got %s, want ACCEPTED", tx)
	}
	w.none()
	w.advance(time.Hour)
	if n := w.next(EventTransactionSuccess); n["out_trade_no"] != "PKRETRY0001" {
		t.Fatalf("after the retry: got %v", n)
	}
	if tx := w.query("PKRETRY0001"); *tx.TradeState != "SUCCESS" {
		t.Fatalf("after the retry: got %s, want SUCCESS", tx)
	}

	w.deduct(u, "PKFAIL0001", "PK-UNKNOWN")
	if n := w.next(EventTransactionFail); n["trade_state"] != tradeStatePayFail || n["trade_state_description"] != msgPayFail {
		t.Fatalf("failed: got %v, want PAY_FAIL", n)
	}
	if st := w.state(u.OpenID); st["user_state"] != StateNormal {
		t.Fatalf("a failed deduction changes no state: got %v", st)
	}
}

// TestParkingEntryBlocked: the scenario blocks a NORMAL user's entry; a
// PAUSED user, an OVERDUE one and an unknown plate are blocked by
// themselves.
func TestParkingEntryBlocked(t *testing.T) {
	w := newParkingWorld(t)
	cases := []struct {
		name, outParkingNo string
		u                  userView
		want               string
	}{
		{"scenario", "PKBLOCKED0001", w.normalUser(), blockEvaluationFailed},
		{"paused", "IN-P", w.users(w.m.MchID, StatePaused)[0], blockPause},
		{"overdue", "IN-O", w.users(w.m.MchID, StateOverdue)[0], blockOverdue},
		{"unknown plate", "IN-U", userView{PlateNumber: "沪A12345", Plates: []plate{{PlateColor: "BLUE"}}}, blockOutService},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := w.enter(tc.u, tc.outParkingNo)
			if *p.State != entryBlocked || *p.BlockReason != tc.want {
				t.Fatalf("got %s, want BLOCKED %s", p, tc.want)
			}
		})
	}
}

// TestParkingErrors: what the real service refuses, in v3's shape.
func TestParkingErrors(t *testing.T) {
	w := newParkingWorld(t)
	u := w.normalUser()
	ctx := context.Background()
	apiErr := w.apiErr

	stranger := u
	stranger.PlateNumber = "沪A54321"
	_, _, err := w.tx.CreateTransaction(ctx, w.deductRequest(stranger, "NOPLATE01", "x"))
	apiErr(err, http.StatusNotFound, codeNotFound)

	w.deduct(u, "TWICE0001", "x")
	w.next(EventTransactionSuccess)
	if tx, _, err := w.tx.CreateTransaction(ctx, w.deductRequest(u, "TWICE0001", "x")); err != nil || *tx.TradeState != tradeStateAccepted {
		t.Fatalf("the same body again: got %v, %v, want the ACCEPTED answer again", tx, err)
	}
	other := w.deductRequest(u, "TWICE0001", "x")
	other.Amount.Total = core.Int64(600)
	_, _, err = w.tx.CreateTransaction(ctx, other)
	apiErr(err, http.StatusBadRequest, "INVALID_REQUEST")

	partner := w.deductRequest(u, "PARTNER01", "x")
	partner.SubMchid = core.String("1900000109")
	_, _, err = w.tx.CreateTransaction(ctx, partner)
	apiErr(err, http.StatusBadRequest, "PARAM_ERROR")

	// An http notify_url is sent to, with a warning.
	body, _ := json.Marshal(w.deductRequest(u, "WARN0001", "x"))
	res, err := w.tx.Client.Post(ctx, "https://api.mch.weixin.qq.com/v3/vehicle/transactions/parking", json.RawMessage(body))
	if err != nil {
		t.Fatal(err)
	}
	if warn := res.Response.Header.Values("X-Sandbox-Warning"); len(warn) != 2 {
		t.Fatalf("warnings: got %q, want the http notify_url and the unknown parking_id", warn)
	}
	// The id of an entry is known: only the http notify_url is warned about.
	body, _ = json.Marshal(w.deductRequest(u, "WARN0002", *w.enter(u, "IN-W").Id))
	if res, err = w.tx.Client.Post(ctx, "https://api.mch.weixin.qq.com/v3/vehicle/transactions/parking", json.RawMessage(body)); err != nil {
		t.Fatal(err)
	}
	if warn := res.Response.Header.Values("X-Sandbox-Warning"); len(warn) != 1 {
		t.Fatalf("warnings: got %q, want the http notify_url only", warn)
	}
}

// TestParkingNotificationsInCertificateMode: a merchant still on platform
// certificates verifies every parking notification kind with the SDK's
// certificate verifier (the notifications are signed per the merchant's
// key mode, as every v3 notification is).
func TestParkingNotificationsInCertificateMode(t *testing.T) {
	w := newParkingWorld(t)
	mode := sandbox.PlatformKeyModeCertificate
	if _, err := w.Merchants.Change(context.Background(), w.m.MchID, merchant.UpdateRequest{PlatformKeyMode: &mode}); err != nil {
		t.Fatal(err)
	}
	cert, err := utils.LoadCertificate(w.m.PlatformCertificatePEM)
	if err != nil {
		t.Fatal(err)
	}
	h, err := notify.NewRSANotifyHandler(w.m.APIv3Key, wxnotify.NewSHA256WithRSAVerifier(core.NewCertificateMapWithList([]*x509.Certificate{cert})))
	if err != nil {
		t.Fatal(err)
	}
	w.handler.Store(h)
	// The API client in certificate mode too: the SDK as such a merchant
	// has it.
	key, err := utils.LoadPrivateKey(w.m.MerchantPrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayAuthCipher(w.m.MchID, w.m.MerchantSerialNo, key, []*x509.Certificate{cert}),
		option.WithHTTPClient(&http.Client{Transport: w.rt, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	w.sdk.Client, w.tx.Client = client, client
	u := w.normalUser()
	blocked := w.enter(u, "PKBLOCKED-C")
	if *blocked.BlockReason != blockEvaluationFailed {
		t.Fatalf("got %s", blocked)
	}
	w.deduct(u, "PKFAIL-C", "x")
	w.next(EventTransactionFail)
	w.deduct(u, "PKADVANCE-C", "x")
	w.next(EventTransactionSuccess)
	w.enter(u, "IN-C")
	w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, seedNonce)))
	w.advance(2 * time.Second)
	got := map[string]bool{}
	for range 2 {
		select {
		case n := <-w.notices:
			got[n.event] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("got %v, want PAY_BACK and ENTRANCE_STATE_CHANGE verified with the certificate", got)
		}
	}
	if !got[EventTransactionPayBack] || !got[EventEntranceStateChange] {
		t.Fatalf("got %v", got)
	}
}
