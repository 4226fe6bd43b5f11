package testkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// The merchant's side of a 支付分 flow, as a merchant's own code would be
// written: wechatpay-go for the v3 API, through the sandbox's Transport.
// The examples and the tests share it.

const wechatPayAPI = "https://api.mch.weixin.qq.com"

// payScoreClient is the merchant's wechatpay-go client in public-key mode.
func payScoreClient(ctx context.Context, sb *testkit.Sandbox, m *testkit.Merchant) (*core.Client, error) {
	return core.NewClient(ctx,
		option.WithWechatPayPublicKeyAuthCipher(m.MchID, m.MerchantSerialNo, m.MerchantPrivateKey,
			m.PlatformPublicKeyID, m.PlatformPublicKey),
		option.WithHTTPClient(&http.Client{Transport: sb.Transport(), Timeout: 10 * time.Second}))
}

// order is the part of a 支付分 order the flows look at.
type order struct {
	OutOrderNo       string `json:"out_order_no"`
	State            string `json:"state"`
	StateDescription string `json:"state_description"`
	Package          string `json:"package"`
	Collection       *struct {
		State      string `json:"state"`
		PaidAmount int    `json:"paid_amount"`
	} `json:"collection"`
}

func (o order) String() string {
	s := o.State
	if o.StateDescription != "" {
		s += "/" + o.StateDescription
	}
	if o.Collection != nil {
		s += fmt.Sprintf(" collection %s %d", o.Collection.State, o.Collection.PaidAmount)
	}
	return s
}

func call(ctx context.Context, c *core.Client, method, path string, body any) (order, error) {
	var res *core.APIResult
	var err error
	if method == http.MethodGet {
		res, err = c.Get(ctx, wechatPayAPI+path)
	} else {
		res, err = c.Post(ctx, wechatPayAPI+path, body)
	}
	var o order
	if err != nil {
		return o, err
	}
	defer res.Response.Body.Close()
	return o, json.NewDecoder(res.Response.Body).Decode(&o)
}

// createOrder creates a 需确认 order notified at notifyURL.
func createOrder(ctx context.Context, c *core.Client, m *testkit.Merchant, outOrderNo, notifyURL string) (order, error) {
	return call(ctx, c, http.MethodPost, "/v3/payscore/serviceorder", map[string]any{
		"out_order_no": outOrderNo, "appid": m.AppID, "service_id": m.ServiceID, "service_introduction": "停车服务",
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
		"time_range":    map[string]any{"start_time": "OnAccept"},
		"risk_fund":     map[string]any{"name": "ESTIMATE_ORDER_COST", "amount": 5000},
		"notify_url":    notifyURL,
	})
}

func completeOrder(ctx context.Context, c *core.Client, m *testkit.Merchant, outOrderNo string) (order, error) {
	return call(ctx, c, http.MethodPost, "/v3/payscore/serviceorder/"+outOrderNo+"/complete", map[string]any{
		"appid": m.AppID, "service_id": m.ServiceID, "total_amount": 1500,
		"post_payments": []any{map[string]any{"name": "停车费", "amount": 1500, "count": 1}},
		"time_range":    map[string]any{"end_time": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405")},
	})
}

// confirmPage is wx.openBusinessView to the 支付分 confirm page with the
// extraData the merchant's backend signs (HMAC-SHA256, the API v2 key).
func confirmPage(m *testkit.Merchant, pkg string) testkit.OpenBusinessView {
	ed := map[string]string{"mch_id": m.MchID, "package": pkg, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "sign_type": "HMAC-SHA256"}
	ed["sign"] = testkit.V2HMACSign(ed, m.APIv2Key)
	return testkit.OpenBusinessView{BusinessType: "wxpayScoreUse", ExtraData: ed}
}

// payScoreFlow runs a whole 支付分 flow for outOrderNo — create, the user
// confirms in the mini-program, USER_CONFIRM, complete, USER_PAID — and
// returns what the merchant saw at each step, one line each.
func payScoreFlow(ctx context.Context, sb *testkit.Sandbox, m *testkit.Merchant, recv *testkit.Receiver, outOrderNo string) ([]string, error) {
	var seen []string
	client, err := payScoreClient(ctx, sb, m)
	if err != nil {
		return nil, err
	}
	created, err := createOrder(ctx, client, m, outOrderNo, recv.URL+"/payscore/notify")
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	seen = append(seen, "created: "+created.String())

	launch, err := m.Jump(ctx, confirmPage(m, created.Package))
	if err != nil {
		return nil, fmt.Errorf("jump: %w", err)
	}
	seen = append(seen, "jump: "+launch.ErrMsg)
	// The simulated user confirms after 2 s on the merchant's clock.
	if err := m.AdvanceClock(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	ret, err := sb.Return(ctx, launch.SessionID, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("return: %w", err)
	}
	queryID, _ := ret.ReferrerInfo.ExtraData["query_id"].(string)
	seen = append(seen, fmt.Sprintf("back on scene %d with a query_id: %t", ret.Scene, queryID != ""))

	if err := m.AdvanceClock(ctx, time.Second); err != nil {
		return nil, err
	}
	line, err := nextNotification(ctx, recv)
	if err != nil {
		return nil, err
	}
	seen = append(seen, line)

	done, err := completeOrder(ctx, client, m, outOrderNo)
	if err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	seen = append(seen, "completed: "+done.String())
	if err := m.AdvanceClock(ctx, time.Second); err != nil {
		return nil, err
	}
	if line, err = nextNotification(ctx, recv); err != nil {
		return nil, err
	}
	seen = append(seen, line)
	final, err := call(ctx, client, http.MethodGet, "/v3/payscore/serviceorder?service_id="+m.ServiceID+"&appid="+m.AppID+"&out_order_no="+outOrderNo, nil)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return append(seen, "queried: "+final.String()), nil
}

// nextNotification waits for the next notification and describes it.
func nextNotification(ctx context.Context, recv *testkit.Receiver) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := recv.Next(ctx)
	if verr := (*testkit.VerifyError)(nil); errors.As(err, &verr) {
		return "", err
	}
	if err != nil {
		return "", err
	}
	var o order
	if err := n.Decode(&o); err != nil {
		return "", err
	}
	return fmt.Sprintf("notified %s: %s", n.EventType, o), nil
}

// parkingTransactions is wechatpay-go's typed 支付分停车 transactions
// client for the merchant, through the sandbox's Transport.
func parkingTransactions(ctx context.Context, sb *testkit.Sandbox, m *testkit.Merchant) wexinpayscoreparking.TransactionsApiService {
	client, err := payScoreClient(ctx, sb, m)
	if err != nil {
		log.Fatal(err)
	}
	return wexinpayscoreparking.TransactionsApiService{Client: client}
}
