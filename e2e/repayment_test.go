package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// The repayment mini-program (the repayment page).
const (
	repayAppID    = "wx5e73c65404eee268"
	repayUserName = "gh_5e259b7a73b1"
	repayPage     = "pages/invest_list/invest_list"
)

// repayment is a merchant integrating 垫资还款 against a sandbox: its
// mini-program and App jump to the repayment mini-program, its backend asks
// the user state with the v2 XML query and the official SDK's typed v3
// vehicle client.
type repayment struct {
	s            *Sandbox
	m            *testkit.Merchant
	plates       wexinpayscoreparking.ServicesApiService
	transactions wexinpayscoreparking.TransactionsApiService
	parkings     wexinpayscoreparking.ParkingsApiService
}

func newRepayment(t *testing.T, s *Sandbox) *repayment {
	t.Helper()
	m := s.merchant(t, demoMchID)
	client, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(m.MchID, m.MerchantSerialNo, m.MerchantPrivateKey, m.PlatformPublicKeyID, m.PlatformPublicKey),
		option.WithHTTPClient(&http.Client{Transport: s.Transport(), Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatalf("core.NewClient: %v", err)
	}
	return &repayment{s: s, m: m,
		plates: wexinpayscoreparking.ServicesApiService{Client: client}, transactions: wexinpayscoreparking.TransactionsApiService{Client: client},
		parkings: wexinpayscoreparking.ParkingsApiService{Client: client}}
}

// vehicleUser is the part of a vehicle user the tests look at.
type vehicleUser struct {
	OpenID      string `json:"openid"`
	UserState   string `json:"user_state"`
	PlateNumber string `json:"plate_number"`
	Plates      []struct {
		PlateColor string `json:"plate_color"`
	} `json:"plates"`
	Advances []struct {
		OutTradeNo string `json:"out_trade_no"`
		UserRepaid string `json:"user_repaid"`
	} `json:"advances"`
}

// overdue creates an OVERDUE user owing one advance of amount fen.
func (r *repayment) overdue(t *testing.T, amount int) vehicleUser {
	t.Helper()
	var u vehicleUser
	r.s.JSON(t, http.MethodPost, "/sandbox/v1/vehicle-users", map[string]any{
		"mchid": r.m.MchID, "user_state": "OVERDUE", "advances": []map[string]any{{"amount": amount}},
	}, http.StatusCreated, &u)
	if u.OpenID == "" || u.UserState != "OVERDUE" || len(u.Advances) != 1 {
		t.Fatalf("created user: %+v", u)
	}
	return u
}

// parseXML reads a v2 answer, written here with encoding/xml rather than
// imported, so that the suite judges the sandbox's XML by itself.
func parseXML(t *testing.T, b []byte) map[string]string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	out := map[string]string{}
	var name string
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("answer is not XML: %v\n%s", err, b)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && x.Name.Local != "xml" {
				t.Fatalf("root <%s>, want <xml>: %s", x.Name.Local, b)
			}
			name = x.Name.Local
		case xml.CharData:
			if depth == 2 {
				out[name] += string(x)
			}
		case xml.EndElement:
			depth--
		}
	}
	return out
}

// querystate posts the v2 user-state query, signed HMAC-SHA256 with
// testkit.V2HMACSign (checked against the v2 golden vector), unless
// sign is given; v2 answers 200 whatever happens.
func (r *repayment) querystate(t *testing.T, params map[string]string, sign string) map[string]string {
	t.Helper()
	if sign == "" {
		sign = testkit.V2HMACSign(params, r.m.APIv2Key)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("<xml>")
	for _, k := range keys {
		b.WriteString("<" + k + "><![CDATA[" + params[k] + "]]></" + k + ">")
	}
	b.WriteString("<sign>" + sign + "</sign></xml>")
	req, err := http.NewRequest(http.MethodPost, r.s.URL()+"/vehicle/pay/querystate", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml")
	resp := r.s.Do(t, req)
	if resp.Status != http.StatusOK {
		t.Fatalf("querystate: status %d, body %s", resp.Status, resp.Body)
	}
	return parseXML(t, resp.Body)
}

// state asks the user's state by openid and checks the answer is a signed
// success.
func (r *repayment) state(t *testing.T, openid string) map[string]string {
	t.Helper()
	out := r.querystate(t, map[string]string{"appid": r.m.AppID, "mch_id": r.m.MchID, "nonce_str": rand.Text(),
		"sign_type": "HMAC-SHA256", "trade_scene": "PARKING", "version": "3.0", "openid": openid}, "")
	if out["return_code"] != "SUCCESS" || out["result_code"] != "SUCCESS" {
		t.Fatalf("querystate: %v", out)
	}
	if got := testkit.V2HMACSign(out, r.m.APIv2Key); got != out["sign"] {
		t.Fatalf("querystate answer sign: got %s, want %s", out["sign"], got)
	}
	return out
}

// transaction asks the v3 transaction query with the typed SDK client.
func (r *repayment) transaction(t *testing.T, outTradeNo string) *wexinpayscoreparking.Transaction {
	t.Helper()
	tx, _, err := r.transactions.QueryTransaction(context.Background(), wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String(outTradeNo)})
	if err != nil {
		t.Fatalf("QueryTransaction %s: %v", outTradeNo, err)
	}
	return tx
}

// launch makes a wx.* (or App SDK) call and returns the session id.
func (r *repayment) launch(t *testing.T, c testkit.Call) string {
	t.Helper()
	out, err := r.m.Jump(context.Background(), c)
	if err != nil || !strings.HasSuffix(out.ErrMsg, ":ok") || out.SessionID == "" {
		t.Fatalf("%s: %+v, %v", c.API(), out, err)
	}
	return out.SessionID
}

// navigate is the repayment page's <navigator>/wx.navigateToMiniProgram jump.
func (r *repayment) navigate(t *testing.T, openid, nonce string) string {
	t.Helper()
	return r.launch(t, testkit.NavigateToMiniProgram{AppID: repayAppID, Path: repayPage,
		ExtraData: map[string]any{"appid": repayAppID, "mchid": r.m.MchID, "nonce_str": nonce, "openid": openid}})
}

// back lets the user act (2 s on the clock) and reads what the caller sees.
func (r *repayment) back(t *testing.T, sessionID string) map[string]any {
	t.Helper()
	if err := r.m.AdvanceClock(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	ret, err := r.s.Return(context.Background(), sessionID, 10*time.Second)
	var out map[string]any
	if err == nil && !ret.Pending {
		err = ret.Decode(&out)
	}
	if err != nil || out == nil {
		t.Fatalf("return of %s: %+v, %v", sessionID, ret, err)
	}
	return out
}

// normalUser creates a NORMAL vehicle user of the merchant.
func (r *repayment) normalUser(t *testing.T) vehicleUser {
	t.Helper()
	var u vehicleUser
	r.s.JSON(t, http.MethodPost, "/sandbox/v1/vehicle-users", map[string]any{"mchid": r.m.MchID, "user_state": "NORMAL"}, http.StatusCreated, &u)
	return u
}

// deduct is 扣费受理 of amount fen for the user's plate with the typed SDK
// client; the answer must be ACCEPTED.
func (r *repayment) deduct(t *testing.T, u vehicleUser, outTradeNo, parkingID, notifyURL string, amount int64) {
	t.Helper()
	tx, _, err := r.transactions.CreateTransaction(context.Background(), wexinpayscoreparking.CreateTransactionRequest{
		Appid: core.String(r.m.AppID), Description: core.String("停车费"), OutTradeNo: core.String(outTradeNo),
		TradeScene: core.String("PARKING"), NotifyUrl: core.String(notifyURL),
		Amount: &wexinpayscoreparking.OrderAmount{Total: core.Int64(amount)},
		ParkingInfo: &wexinpayscoreparking.ParkingTradeScene{ParkingId: core.String(parkingID), PlateNumber: core.String(u.PlateNumber),
			PlateColor: wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr(), StartTime: core.Time(time.Now().Add(-time.Hour)), EndTime: core.Time(time.Now()),
			ParkingName: core.String("E2E 停车场"), ChargingDuration: core.Int64(3000), DeviceId: core.String("E2E-GATE")}})
	if err != nil || *tx.TradeState != "ACCEPTED" {
		t.Fatalf("CreateTransaction: got %v, %v, want ACCEPTED", tx, err)
	}
}

// nextEvent waits for the receiver's next notification, which must be the
// event, and returns its resource.
func nextEvent(t *testing.T, recv *testkit.Receiver, event string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := recv.Next(ctx)
	var res map[string]any
	if err == nil {
		err = n.Decode(&res)
	}
	if err != nil || n.EventType != event {
		t.Fatalf("notification: got %v %v, want %s", n, err, event)
	}
	return res
}

func TestRepayment(t *testing.T) {
	t.Parallel()
	s := startSandbox(t)
	r := newRepayment(t, s)

	t.Run("a deduction WeChat advances makes the user OVERDUE until the repayment", func(t *testing.T) {
		u := r.normalUser(t)
		recv := r.m.Receiver(t)
		ctx := context.Background()
		color := wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr()
		enter := func(no string) *wexinpayscoreparking.Parking {
			p, _, err := r.parkings.CreateParking(ctx, wexinpayscoreparking.CreateParkingRequest{
				OutParkingNo: core.String(no), PlateNumber: core.String(u.PlateNumber), PlateColor: color,
				NotifyUrl: core.String(recv.URL + "/parking/notify"), StartTime: core.Time(time.Now()),
				ParkingName: core.String("E2E 停车场"), FreeDuration: core.Int64(600)})
			if err != nil {
				t.Fatalf("CreateParking: %v", err)
			}
			return p
		}
		in := enter("E2EIN1")
		if *in.State != "NORMAL" {
			t.Fatalf("entry: got %s, want NORMAL", in)
		}
		r.deduct(t, u, "PKADVANCEE2E1", *in.Id, recv.URL+"/parking/notify", 800)
		if res := nextEvent(t, recv, "TRANSACTION.SUCCESS"); res["bank_type"] != "BPA" || res["user_repaid"] != "N" {
			t.Fatalf("TRANSACTION.SUCCESS: got %v, want BPA, N", res)
		}
		if st := r.state(t, u.OpenID); st["user_state"] != "OVERDUE" || st["path"] == "" {
			t.Fatalf("querystate: got %v, want OVERDUE with a path", st)
		}
		if p := enter("E2EIN2"); *p.State != "BLOCKED" || *p.BlockReason != "OVERDUE" {
			t.Fatalf("entry of a user who owes: got %s, want BLOCKED OVERDUE", p)
		}
		r.back(t, r.navigate(t, u.OpenID, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"))
		events := map[string]map[string]any{}
		for range 2 {
			nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := recv.Next(nctx)
			cancel()
			var res map[string]any
			if err == nil {
				err = n.Decode(&res)
			}
			if err != nil {
				t.Fatalf("after repaying: %v (got %v)", err, events)
			}
			events[n.EventType] = res
		}
		if events["TRANSACTION.PAY_BACK"]["user_repaid"] != "Y" || events["VEHICLE.ENTRANCE_STATE_CHANGE"]["parking_state"] != "NORMAL" {
			t.Fatalf("after repaying: got %v, want PAY_BACK (Y) and ENTRANCE_STATE_CHANGE (NORMAL)", events)
		}
		if tx := r.transaction(t, "PKADVANCEE2E1"); *tx.UserRepaid != "Y" {
			t.Fatalf("after repaying: transaction %s, want user_repaid Y", tx)
		}
	})

	t.Run("an advance never repaid at the jump, repaid outside it", func(t *testing.T) {
		u := r.normalUser(t)
		recv := r.m.Receiver(t)
		r.deduct(t, u, "PKUNREPAIDE2E1", "E2E-NO-ENTRY", recv.URL+"/parking/notify", 600)
		if res := nextEvent(t, recv, "TRANSACTION.SUCCESS"); res["bank_type"] != "BPA" || res["user_repaid"] != "N" {
			t.Fatalf("TRANSACTION.SUCCESS: got %v, want BPA, N", res)
		}
		// The jump plays the advance's scenario: the repayment fails.
		r.back(t, r.navigate(t, u.OpenID, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"))
		if st := r.state(t, u.OpenID); st["user_state"] != "OVERDUE" {
			t.Fatalf("after the failed repayment: got %v, want OVERDUE", st)
		}
		var flow struct {
			Transactions []struct {
				OpenID      string         `json:"openid"`
				Scenario    string         `json:"scenario"`
				Transaction map[string]any `json:"transaction"`
			} `json:"transactions"`
		}
		r.s.JSON(t, http.MethodGet, "/sandbox/v1/parking?mchid="+r.m.MchID+"&openid="+u.OpenID, nil, http.StatusOK, &flow)
		if len(flow.Transactions) != 1 || flow.Transactions[0].Scenario != "repayment.parking-advanced-unrepaid" ||
			flow.Transactions[0].Transaction["user_repaid"] != "N" || flow.Transactions[0].Transaction["bank_type"] != "BPA" {
			t.Fatalf("GET /sandbox/v1/parking: got %+v, want the advance, user_repaid N", flow.Transactions)
		}
		// The user repays from WeChat itself (the QA page's button).
		var after vehicleUser
		r.s.JSON(t, http.MethodPost, "/sandbox/v1/vehicle-users/"+u.OpenID+"/repay", map[string]any{"mchid": r.m.MchID}, http.StatusOK, &after)
		if after.UserState != "NORMAL" || len(after.Advances) != 1 || after.Advances[0].UserRepaid != "Y" {
			t.Fatalf("repay: got %+v, want NORMAL with the advance repaid", after)
		}
		if res := nextEvent(t, recv, "TRANSACTION.PAY_BACK"); res["user_repaid"] != "Y" || res["out_trade_no"] != "PKUNREPAIDE2E1" {
			t.Fatalf("TRANSACTION.PAY_BACK: got %v, want user_repaid Y", res)
		}
		if tx := r.transaction(t, "PKUNREPAIDE2E1"); *tx.UserRepaid != "Y" {
			t.Fatalf("after repaying: transaction %s, want user_repaid Y", tx)
		}
	})

	t.Run("an OVERDUE user repays through the mini-program", func(t *testing.T) {
		u := r.overdue(t, 1500)
		before := r.state(t, u.OpenID)
		if before["user_state"] != "OVERDUE" || before["path"] == "" || before["openid"] != u.OpenID {
			t.Fatalf("before: got %v, want OVERDUE with a path", before)
		}
		tx := r.transaction(t, u.Advances[0].OutTradeNo)
		if *tx.BankType != "BPA" || *tx.UserRepaid != "N" || *tx.TradeState != "SUCCESS" || *tx.Amount.Total != 1500 {
			t.Fatalf("before: transaction %s, want BPA, SUCCESS, user_repaid N", tx)
		}

		ret := r.back(t, r.navigate(t, u.OpenID, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"))
		ri, _ := ret["referrerInfo"].(map[string]any)
		if ret["scene"] != float64(1038) || ri["appId"] != repayAppID || ri["extraData"] != nil {
			t.Fatalf("return: got %v, want scene 1038 from %s with no data (the repayment page)", ret, repayAppID)
		}

		after := r.state(t, u.OpenID)
		if after["user_state"] != "NORMAL" || after["path"] != "" {
			t.Fatalf("after: got %v, want NORMAL without a path", after)
		}
		if tx := r.transaction(t, u.Advances[0].OutTradeNo); *tx.UserRepaid != "Y" || *tx.BankType != "BPA" {
			t.Fatalf("after: transaction %s, want user_repaid Y", tx)
		}
	})

	t.Run("a user who leaves stays OVERDUE", func(t *testing.T) {
		u := r.overdue(t, 800)
		ret := r.back(t, r.navigate(t, u.OpenID, "CANCEL0000000000000000000000001"))
		if ret["scene"] != float64(1038) {
			t.Fatalf("return: %v", ret)
		}
		if st := r.state(t, u.OpenID); st["user_state"] != "OVERDUE" || st["path"] == "" {
			t.Fatalf("after cancel: got %v, want OVERDUE with a path", st)
		}
		if tx := r.transaction(t, u.Advances[0].OutTradeNo); *tx.UserRepaid != "N" {
			t.Fatalf("after cancel: transaction %s, want user_repaid N", tx)
		}
	})

	t.Run("an App launches the mini-program", func(t *testing.T) {
		u := r.overdue(t, 600)
		// The repayment page's iOS sample names the merchant mch_id.
		path := func(nonce, openid string) string {
			return repayPage + "?mch_id=" + r.m.MchID + "&appid=" + r.m.AppID + "&nonce_str=" + nonce + "&openid=" + openid
		}
		ret := r.back(t, r.launch(t, testkit.AppLaunchMiniProgram{UserName: repayUserName,
			Path: path("5K8264ILTKCH16CQ2502SI8ZNMTM67VS", u.OpenID)}))
		if ret["errCode"] != float64(0) || ret["extMsg"] != nil {
			t.Fatalf("onResp: got %v, want errCode 0 and no extMsg", ret)
		}
		if st := r.state(t, u.OpenID); st["user_state"] != "NORMAL" {
			t.Fatalf("after: got %v, want NORMAL", st)
		}
		// The user cancels the next launch: ERR_USER_CANCEL.
		v := r.overdue(t, 700)
		cancelled := path("CANCEL0000000000000000000000001", v.OpenID)
		if ret := r.back(t, r.launch(t, testkit.AppLaunchMiniProgram{UserName: repayUserName, Path: cancelled})); ret["errCode"] != float64(-2) {
			t.Fatalf("cancelled onResp: got %v, want errCode -2", ret)
		}
	})

	t.Run("a bad v2 signature", func(t *testing.T) {
		out := r.querystate(t, map[string]string{"appid": r.m.AppID, "mch_id": r.m.MchID, "nonce_str": rand.Text(),
			"sign_type": "HMAC-SHA256", "trade_scene": "PARKING", "version": "3.0", "openid": "oUpF8uMEb4qRXf22hE3X68TekukE"},
			strings.Repeat("0", 64))
		if out["return_code"] != "FAIL" || out["return_msg"] != "签名错误" || out["sign"] != "" || out["result_code"] != "" {
			t.Fatalf("got %v, want return_code FAIL, return_msg 签名错误, unsigned", out)
		}
		if d := out["sandbox_diagnostics"]; !strings.HasSuffix(d, "&key=***") || strings.Contains(d, r.m.APIv2Key) {
			t.Fatalf("diagnostics %q: want the string-to-sign, key masked", d)
		}
	})

	t.Run("the typed v3 client reads the plate service", func(t *testing.T) {
		var list struct {
			Users []vehicleUser `json:"users"`
		}
		s.JSON(t, http.MethodGet, "/sandbox/v1/vehicle-users?mchid="+r.m.MchID, nil, http.StatusOK, &list)
		want := map[string]string{"NORMAL": "NORMAL", "PAUSED": "PAUSE", "OVERDUE": "NORMAL", "UNAUTHORIZED": "OUT_SERVICE"}
		seen := map[string]bool{}
		for _, u := range list.Users {
			if seen[u.UserState] {
				continue
			}
			seen[u.UserState] = true
			resp, _, err := r.plates.QueryPlateService(context.Background(), wexinpayscoreparking.QueryPlateServiceRequest{
				Appid: core.String(r.m.AppID), PlateNumber: core.String(u.PlateNumber), Openid: core.String(u.OpenID),
				PlateColor: wexinpayscoreparking.PlateColor(u.Plates[0].PlateColor).Ptr(),
			})
			if err != nil {
				t.Fatalf("QueryPlateService %s: %v", u.UserState, err)
			}
			if *resp.ServiceState != want[u.UserState] || *resp.PlateNumber != u.PlateNumber {
				t.Fatalf("%s: got %s, want %s", u.UserState, resp, want[u.UserState])
			}
		}
		states := make([]string, 0, len(seen))
		for st := range seen {
			states = append(states, st)
		}
		slices.Sort(states)
		if !slices.Equal(states, []string{"NORMAL", "OVERDUE", "PAUSED", "UNAUTHORIZED"}) {
			t.Fatalf("users in states %v, want every state", states)
		}
		_, _, err := r.transactions.QueryTransaction(context.Background(), wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String("NO-SUCH-TRADE-1")})
		if !core.IsAPIError(err, "ORDER_NOT_EXIST") {
			t.Fatalf("unknown out_trade_no: got %v, want ORDER_NOT_EXIST", err)
		}
	})
}
