package testkit_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// A whole 支付分 (Pay Score) flow against an in-process sandbox: the
// merchant's wechatpay-go client through Transport, the mini-program's
// wx.openBusinessView through Jump and Return, the notifications through a
// Receiver that verifies and decrypts them.
func Example_payScore() {
	ctx := context.Background()
	sb, err := testkit.Run(ctx) // in a test: testkit.Start(t)
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		log.Fatal(err)
	}
	recv, err := m.NewReceiver(ctx) // in a test: m.Receiver(t)
	if err != nil {
		log.Fatal(err)
	}
	defer recv.Close()

	seen, err := payScoreFlow(ctx, sb, m, recv, "EXAMPLE0001")
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range seen {
		fmt.Println(line)
	}
	// Output:
	// created: CREATED
	// jump: openBusinessView:ok
	// back on scene 1038 with a query_id: true
	// notified PAYSCORE.USER_CONFIRM: DOING/USER_CONFIRM
	// completed: DOING/MCH_COMPLETE
	// notified PAYSCORE.USER_PAID: DONE collection USER_PAID 1500
	// queried: DONE collection USER_PAID 1500
}

// A P云 half-screen payment against an in-process sandbox: trade-prepare
// with the merchant's own form client through Transport,
// wx.openEmbeddedMiniProgram through Jump and Return, the trade-notify
// through a Receiver that checks its MD5 sign.
func Example_embedPay() {
	ctx := context.Background()
	sb, m := exampleSandbox(ctx) // testkit.Run and the demo merchant, as in Example_payScore
	defer sb.Close()
	recv, err := m.NewReceiver(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer recv.Close()

	seen, err := pcloudFlow(ctx, sb, m, recv, "EXAMPLE-P1", "100")
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range seen {
		fmt.Println(line)
	}
	// Output:
	// prepared: a pay_id of 24 digits
	// jump: openEmbeddedMiniProgram:ok (embedpay.paid)
	// back on scene 1038, status 1
	// notified: pay_order EXAMPLE-P1 status 1 value 100
	// queried: status 1
}

// The repayment mini-program against an in-process sandbox: a vehicle
// owner whose advance is overdue, the merchant's mini-program sends them to
// repay (wx.navigateToMiniProgram), and the merchant's backend sees the
// advance repaid with wechatpay-go's typed parking client through
// Transport.
func Example_repayment() {
	ctx := context.Background()
	sb, m := exampleSandbox(ctx) // testkit.Run and the demo merchant, as in Example_payScore
	defer sb.Close()
	// A vehicle owner who owes one advance of 1500 fen (the sandbox's own
	// admin route; the real system has none).
	var user struct {
		OpenID   string `json:"openid"`
		Advances []struct {
			OutTradeNo string `json:"out_trade_no"`
		} `json:"advances"`
	}
	if err := sb.Admin(ctx, http.MethodPost, "/sandbox/v1/vehicle-users", map[string]any{
		"mchid": m.MchID, "user_state": "OVERDUE", "advances": []map[string]any{{"amount": 1500}},
	}, &user); err != nil {
		log.Fatal(err)
	}
	transactions := parkingTransactions(ctx, sb, m)
	tx, _, err := transactions.QueryTransaction(ctx, wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String(user.Advances[0].OutTradeNo)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("before: bank_type", *tx.BankType, "user_repaid", *tx.UserRepaid)

	launch, err := m.Jump(ctx, testkit.NavigateToMiniProgram{AppID: "wx5e73c65404eee268", Path: "pages/invest_list/invest_list",
		ExtraData: map[string]any{"appid": "wx5e73c65404eee268", "mchid": m.MchID, "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "openid": user.OpenID}})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.AdvanceClock(ctx, 3*time.Second); err != nil { // the owner repays
		log.Fatal(err)
	}
	ret, err := sb.Return(ctx, launch.SessionID, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("back on scene", ret.Scene, "from", ret.ReferrerInfo.AppID)

	if tx, _, err = transactions.QueryTransaction(ctx, wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String(user.Advances[0].OutTradeNo)}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after: bank_type", *tx.BankType, "user_repaid", *tx.UserRepaid)
	// Output:
	// before: bank_type BPA user_repaid N
	// back on scene 1038 from wx5e73c65404eee268
	// after: bank_type BPA user_repaid Y
}

// The ETC issuer plugin against an in-process sandbox: the host
// mini-program opens the plugin's login page, the protocol, the car-service
// signing and the activation, reading requirePlugin('issuer-plugin')'s
// getters after each.
func Example_issuer() {
	ctx := context.Background()
	sb, m := exampleSandbox(ctx) // testkit.Run and the demo merchant, as in Example_payScore
	defer sb.Close()
	// The host's app.json declares the plugin.
	host := testkit.Caller{AppID: m.AppID, Platform: "android", SDKVersion: "3.4.0", AppJSON: map[string]any{
		"plugins": map[string]any{"issuer-plugin": map[string]any{"version": "1.0.0", "provider": "wx06bc6021dc900553"}}}}
	visit := func(url string) (string, map[string]any) {
		launch, err := m.Jump(ctx, testkit.PluginNavigate{URL: url}, host)
		if err != nil {
			log.Fatal(err)
		}
		if err := m.AdvanceClock(ctx, 3*time.Second); err != nil { // the user acts
			log.Fatal(err)
		}
		ret, err := sb.Return(ctx, launch.SessionID, 10*time.Second)
		if err != nil {
			log.Fatal(err)
		}
		var back map[string]any
		if err := ret.Decode(&back); err != nil {
			log.Fatal(err)
		}
		return launch.SessionID, back
	}

	_, back := visit("plugin://issuer-plugin/login?etcProductId=P1001&accountType=1&carType=0&redirectUrl=/pages/login/login&mobile=13912345678")
	query := back["query"].(map[string]any)
	fmt.Println("login: back with", back["openType"], "to", back["path"])

	orderNo, openID := query["orderNo"].(string), query["openId"].(string)
	for _, step := range []struct{ url, getter string }{
		{"plugin://issuer-plugin/signProtocol?orderNo=" + orderNo, "getSignProResult"},
		{"plugin://issuer-plugin/signGetAuth?orderNo=" + orderNo + "&openId=" + openID, "getSignCarServiceResule"},
	} {
		session, _ := visit(step.url)
		var signed struct {
			State int `json:"state"`
		}
		if err := sb.PluginResult(ctx, session, step.getter, &signed); err != nil {
			log.Fatal(err)
		}
		fmt.Println(step.getter+": state", signed.State)
	}

	session, _ := visit("plugin://issuer-plugin/activeDes?orderNo=" + orderNo)
	var result struct {
		State int    `json:"state"`
		OBU   string `json:"obu"`
		Card  string `json:"card"`
	}
	if err := sb.PluginResult(ctx, session, "getActiveResult", &result); err != nil {
		log.Fatal(err)
	}
	fmt.Println("getActiveResult: state", result.State, "obu of", len(result.OBU), "digits, card of", len(result.Card), "digits")
	// Output:
	// login: back with redirectTo to /pages/login/login
	// getSignProResult: state 0
	// getSignCarServiceResule: state 0
	// getActiveResult: state 0 obu of 16 digits, card of 20 digits
}

// exampleSandbox runs an in-process sandbox and returns it with its demo
// merchant, as Example_payScore spells out.
func exampleSandbox(ctx context.Context) (*testkit.Sandbox, *testkit.Merchant) {
	sb, err := testkit.Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	m, err := sb.Merchant(ctx, testkit.DemoMchID)
	if err != nil {
		sb.Close()
		log.Fatal(err)
	}
	return sb, m
}
