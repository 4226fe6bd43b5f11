package repayment

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/wexinpayscoreparking"
)

func TestPlateServiceWithTheSDK(t *testing.T) {
	w := newWorld(t)
	client, rt := w.sdk()
	svc := wexinpayscoreparking.ServicesApiService{Client: client}
	byState := map[string]userView{}
	for _, u := range w.users(w.m.MchID, "") {
		byState[u.UserState] = u
	}
	color := func(u userView) string { return u.Plates[0].PlateColor }
	other := func(c string) string {
		if c == "BLUE" {
			return "YELLOW"
		}
		return "BLUE"
	}
	for _, tc := range []struct {
		name, openid, plate, color, want string
	}{
		{"NORMAL", byState[StateNormal].OpenID, byState[StateNormal].PlateNumber, color(byState[StateNormal]), serviceNormal},
		{"PAUSED", byState[StatePaused].OpenID, byState[StatePaused].PlateNumber, color(byState[StatePaused]), servicePause},
		{"OVERDUE still has the service", byState[StateOverdue].OpenID, byState[StateOverdue].PlateNumber, color(byState[StateOverdue]), serviceNormal},
		{"UNAUTHORIZED", byState[StateUnauthorized].OpenID, byState[StateUnauthorized].PlateNumber, color(byState[StateUnauthorized]), serviceOutService},
		{"another colour", byState[StateNormal].OpenID, byState[StateNormal].PlateNumber, other(color(byState[StateNormal])), serviceOutService},
		{"another user's plate", byState[StatePaused].OpenID, byState[StateNormal].PlateNumber, color(byState[StateNormal]), serviceOutService},
		{"unknown openid", "oNeverSeenBefore000000000000", byState[StateNormal].PlateNumber, color(byState[StateNormal]), serviceOutService},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, err := svc.QueryPlateService(context.Background(), wexinpayscoreparking.QueryPlateServiceRequest{
				Appid: core.String(w.m.AppID), PlateNumber: core.String(tc.plate), Openid: core.String(tc.openid),
				PlateColor: wexinpayscoreparking.PlateColor(tc.color).Ptr(),
			})
			if err != nil {
				t.Fatalf("QueryPlateService: %v", err)
			}
			w.valid("repayment/plate-service", rt.lastBody())
			if *resp.ServiceState != tc.want || *resp.PlateNumber != tc.plate || *resp.Openid != tc.openid || string(*resp.PlateColor) != tc.color {
				t.Fatalf("got %s, want %s", resp, tc.want)
			}
			if (resp.ServiceOpenTime != nil) != (tc.want != serviceOutService) {
				t.Fatalf("service_open_time: got %v for %s", resp.ServiceOpenTime, tc.want)
			}
		})
	}
}

func TestTransactionWithTheSDK(t *testing.T) {
	w := newWorld(t)
	client, rt := w.sdk()
	svc := wexinpayscoreparking.TransactionsApiService{Client: client}
	query := func(outTradeNo string) (*wexinpayscoreparking.Transaction, error) {
		resp, _, err := svc.QueryTransaction(context.Background(), wexinpayscoreparking.QueryTransactionRequest{OutTradeNo: core.String(outTradeNo)})
		return resp, err
	}
	u := w.overdue(1234)
	adv := u.Advances[0]
	tx, err := query(adv.OutTradeNo)
	if err != nil {
		t.Fatalf("QueryTransaction: %v", err)
	}
	w.valid("repayment/transaction", rt.lastBody())
	if *tx.BankType != bankTypeAdvanced || *tx.UserRepaid != "N" || *tx.TradeState != tradeStateSuccess ||
		*tx.Amount.Total != 1234 || *tx.Payer.Openid != u.OpenID || *tx.SpMchid != w.m.MchID || *tx.Appid != w.m.AppID ||
		*tx.TransactionId != adv.TransactionID || !tx.SuccessTime.Equal(adv.Time) || *tx.ParkingInfo.PlateNumber != u.PlateNumber {
		t.Fatalf("got %s, want the advance, BPA, user_repaid N", tx)
	}

	// The user repays; the same query says Y.
	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, seedNonce)))
	w.advance(2 * time.Second)
	w.returned(sid, "repayment/return")
	if tx, err = query(adv.OutTradeNo); err != nil || *tx.UserRepaid != "Y" {
		t.Fatalf("after repaying: got %v, %v, want user_repaid Y", tx, err)
	}

	// Another merchant's advance is no transaction of this merchant's.
	stranger := w.users(w.other.MchID, StateOverdue)[0].Advances[0].OutTradeNo
	for _, outTradeNo := range []string{"NO-SUCH-TRADE-1", stranger} {
		_, err := query(outTradeNo)
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "ORDER_NOT_EXIST" {
			t.Fatalf("%s: got %v, want 404 ORDER_NOT_EXIST", outTradeNo, err)
		}
		w.valid("wxpay/error", []byte(apiErr.Body))
	}
}

func TestV3Failures(t *testing.T) {
	w := newWorld(t)
	client, _ := w.sdk()
	u := w.users(w.m.MchID, StateNormal)[0]
	find := func(q url.Values) string {
		return "https://api.mch.weixin.qq.com/v3/vehicle/parking/services/find?" + q.Encode()
	}
	good := url.Values{"appid": {w.m.AppID}, "plate_number": {u.PlateNumber}, "openid": {u.OpenID}, "plate_color": {u.Plates[0].PlateColor}}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for key, vals := range good {
			q[key] = vals
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	for _, tc := range []struct {
		name, url, field, location string
	}{
		{"no plate_color", find(with("plate_color", "")), "/plate_color", "query"},
		{"plate_color RED", find(with("plate_color", "RED")), "/plate_color", "query"},
		{"sub_mchid of a service provider", find(with("sub_mchid", "1900000109")), "/sub_mchid", "query"},
		{"another merchant's appid", find(with("appid", w.other.AppID)), "/appid", "query"},
		{"out_trade_no too short", "https://api.mch.weixin.qq.com/v3/vehicle/transactions/out-trade-no/A1", "/out_trade_no", "uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Get(context.Background(), tc.url)
			var apiErr *core.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "PARAM_ERROR" {
				t.Fatalf("got %v, want 400 PARAM_ERROR", err)
			}
			w.valid("wxpay/error", []byte(apiErr.Body))
			detail, _ := apiErr.Detail.(map[string]any)
			if detail["field"] != tc.field || detail["location"] != tc.location {
				t.Fatalf("detail: got %v, want field %s in %s", apiErr.Detail, tc.field, tc.location)
			}
		})
	}
	t.Run("unsigned", func(t *testing.T) {
		status, raw := w.do(must(http.NewRequest(http.MethodGet, w.Server.URL+"/v3/vehicle/parking/services/find?"+good.Encode(), nil)))
		if status != http.StatusUnauthorized {
			t.Fatalf("status: got %d, want 401", status)
		}
		w.valid("wxpay/error", raw)
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
