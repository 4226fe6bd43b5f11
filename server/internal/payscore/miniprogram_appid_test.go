package payscore

import (
	"net/http"
	"testing"
)

// TestAnswersCarryTheMiniProgramAppID: create and query answer
// miniprogram_appid, and it is the appId the user's return shows in
// referrerInfo — the comparison the merchant's App.onShow makes in the 小程序调起支付分 guide's sample.
func TestAnswersCarryTheMiniProgramAppID(t *testing.T) {
	w := newWorld(t)
	const no = "MPAPPID0001"
	created := w.ok(http.MethodPost, "/v3/payscore/serviceorder", w.createBody(no), schemaCreateResponse)
	ret := w.returned(w.open(created["package"].(string), nil))
	referrer, _ := ret["referrerInfo"].(map[string]any)
	if created["miniprogram_appid"] != AppID || referrer["appId"] != created["miniprogram_appid"] {
		t.Errorf("create miniprogram_appid %v, referrerInfo.appId %v: want both %s", created["miniprogram_appid"], referrer["appId"], AppID)
	}
	if got := w.query(no)["miniprogram_appid"]; got != AppID {
		t.Errorf("query miniprogram_appid %v, want %s", got, AppID)
	}
}
