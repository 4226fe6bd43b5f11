package repayment

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// seedNonce is the repayment page's sample nonce_str: it starts with no magic
// prefix, so the merchant's active scenario or the default decides.
const seedNonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"

func TestMiniProgramJumpRepaysEverything(t *testing.T) {
	w := newWorld(t)
	u := w.overdue(500, 700)
	if got := w.state(u.OpenID); got["user_state"] != StateOverdue || got["path"] != pathAbnormal {
		t.Fatalf("before: got %v, want OVERDUE with a path", got)
	}
	launched := w.Clock.Now(w.m.MchID)
	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, seedNonce)))
	if s := w.session(sid); s.Scenario != "repayment.repaid" || s.State != sandbox.SessionPending {
		t.Fatalf("session: got %s %s, want the default scenario, pending", s.Scenario, s.State)
	}
	// The user takes 2 s: until the clock gets there, nothing has changed.
	if got := w.state(u.OpenID); got["user_state"] != StateOverdue {
		t.Fatalf("while away: got %s, want OVERDUE", got["user_state"])
	}
	w.advance(2 * time.Second)
	ret := w.returned(sid, "repayment/return")
	if ret["scene"] != float64(1038) || ret["referrerInfo"].(map[string]any)["appId"] != AppID {
		t.Fatalf("return: got %v", ret)
	}
	if _, ok := ret["referrerInfo"].(map[string]any)["extraData"]; ok {
		t.Fatalf("return: got extraData %v, want none (the repayment page: 无数据)", ret)
	}
	got := w.state(u.OpenID)
	if got["user_state"] != StateNormal || got["path"] != "" {
		t.Fatalf("after: got %v, want NORMAL without a path", got)
	}
	after := w.user(u.OpenID)
	if after.Owed != 0 || after.LastAttempt == nil || after.LastAttempt.Action != ActionRepay || after.LastAttempt.Amount != 1200 {
		t.Fatalf("user: got %+v, want nothing owed and a repay attempt of 1200", after)
	}
	for _, a := range after.Advances {
		if a.UserRepaid != "Y" || !a.RepaidAt.Equal(launched.Add(2*time.Second)) {
			t.Errorf("advance %s: got %s at %v, want Y at the user's action", a.OutTradeNo, a.UserRepaid, a.RepaidAt)
		}
	}
}

func TestMerchantIDUnderEitherName(t *testing.T) {
	w := newWorld(t)
	u := w.users(w.m.MchID, StateOverdue)[0]
	for _, tc := range []struct {
		name  string
		extra map[string]any
	}{
		{"mchid, as the table says", map[string]any{"appid": AppID, "mchid": w.m.MchID, "nonce_str": "CANCEL1", "openid": u.OpenID}},
		{"mch_id, as the iOS sample says", map[string]any{"appid": AppID, "mch_id": w.m.MchID, "nonce_str": "CANCEL2", "openid": u.OpenID}},
		{"both, equal", map[string]any{"appid": AppID, "mchid": w.m.MchID, "mch_id": w.m.MchID, "nonce_str": "CANCEL3", "openid": u.OpenID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.open("navigateToMiniProgram", navigateArgs(tc.extra))
		})
	}
}

func TestJumpRules(t *testing.T) {
	w := newWorld(t)
	u := w.users(w.m.MchID, StateOverdue)[0]
	stranger := w.users(w.other.MchID, StateOverdue)[0]
	extra := func(change map[string]any) map[string]any {
		e := w.extraData(u.OpenID, seedNonce)
		for k, v := range change {
			if v == nil {
				delete(e, k)
			} else {
				e[k] = v
			}
		}
		return e
	}
	for _, tc := range []struct {
		name  string
		args  map[string]any
		paths []string
		says  string
	}{
		{"the repayment page's sample extraData", navigateArgs(map[string]any{"appid": "wxcbda96de0b165486", "mchid": "1900009231",
			"openid": "oUpF8uMEb4qRXf22hE3X68TekukE", "nonce_str": seedNonce}),
			[]string{"/args/extraData/appid", "/args/extraData/mchid", "/args/extraData/openid"}, "the fixed wx5e73c65404eee268"},
		{"no extraData", map[string]any{"appId": AppID, "path": Page}, []string{"/args/extraData"}, "is required"},
		{"another page", map[string]any{"appId": AppID, "path": "pages/index/index", "extraData": extra(nil)},
			[]string{"/args/path"}, Page},
		{"nonce_str over 32", navigateArgs(extra(map[string]any{"nonce_str": seedNonce + "X"})),
			[]string{"/args/extraData/nonce_str"}, "32"},
		{"no merchant id", navigateArgs(extra(map[string]any{"mchid": nil})), []string{"/args/extraData"}, "mch_id"},
		{"mchid and mch_id differ", navigateArgs(extra(map[string]any{"mch_id": w.other.MchID})),
			[]string{"/args/extraData/mch_id"}, "send one name"},
		{"openId instead of openid", navigateArgs(extra(map[string]any{"openid": nil, "openId": u.OpenID})),
			[]string{"/args/extraData/openId", "/args/extraData/openid"}, "not allowed"},
		{"another merchant's user", navigateArgs(extra(map[string]any{"openid": stranger.OpenID})),
			[]string{"/args/extraData/openid"}, "GET /sandbox/v1/vehicle-users"},
		{"unknown argument", map[string]any{"appId": AppID, "path": Page, "extraData": extra(nil), "extradata": map[string]any{}},
			[]string{"/args/extradata"}, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := w.jump("navigateToMiniProgram", tc.args, http.StatusBadRequest)
			checkFail(t, out, "navigateToMiniProgram:fail ", tc.paths, tc.says)
		})
	}
}

func TestAppLaunchRules(t *testing.T) {
	w := newWorld(t)
	u := w.users(w.m.MchID, StateOverdue)[0]
	// The repayment page's iOS sample, verbatim: its merchant, its appid, a space
	// after the nonce and "=weixin" after the openid.
	iosSample := "pages/invest_list/invest_list?mch_id=1900009231&appid=wxcbda96de0b165486&nonce_str=5K8264ILTKCH16CQ2502SI8ZNMTM67VS &openid=oUpF8uMEb4qRXf22hE3X68TekukE=weixin"
	for _, tc := range []struct {
		name  string
		args  map[string]any
		paths []string
		says  string
	}{
		{"the repayment page's iOS sample", map[string]any{"userName": UserName, "path": iosSample, "miniProgramType": 0},
			[]string{"/args/path/appid", "/args/path/mch_id", "/args/path/nonce_str", "/args/path/openid"}, `"=weixin"`},
		{"a test version", map[string]any{"userName": UserName, "path": w.appPath(u.OpenID, seedNonce), "miniprogramType": 1},
			[]string{"/args/miniprogramType"}, ""},
		{"two names, two types", map[string]any{"userName": UserName, "path": w.appPath(u.OpenID, seedNonce), "miniprogramType": 0, "miniProgramType": 2},
			[]string{"/args/miniProgramType", "/args/miniProgramType"}, "send one"},
		{"another page", map[string]any{"userName": UserName, "path": "pages/index/index?" + strings.SplitN(w.appPath(u.OpenID, seedNonce), "?", 2)[1]},
			[]string{"/args/path"}, "not the repayment page"},
		{"openid twice", map[string]any{"userName": UserName, "path": w.appPath(u.OpenID, seedNonce) + "&openid=" + u.OpenID},
			[]string{"/args/path/openid"}, "2 times"},
		{"the mini-program's appid", map[string]any{"userName": UserName, "path": strings.Replace(w.appPath(u.OpenID, seedNonce), w.m.AppID, AppID, 1)},
			[]string{"/args/path/appid"}, "公众账号ID"},
		{"no path", map[string]any{"userName": UserName}, []string{"/args/path"}, "is required"},
		{"another mini-program", map[string]any{"userName": "gh_000000000000", "path": w.appPath(u.OpenID, seedNonce)},
			[]string{"/args/userName"}, UserName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := w.jump("app/launchMiniProgram", tc.args, http.StatusBadRequest)
			checkFail(t, out, "launchMiniProgram:fail ", tc.paths, tc.says)
		})
	}
}

// checkFail checks an errMsg failure: its prefix, every violation path, and
// that some message says what the case is about.
func checkFail(t *testing.T, out map[string]any, prefix string, want []string, says string) {
	t.Helper()
	msg, _ := out["errMsg"].(string)
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("errMsg: got %q, want prefix %q", msg, prefix)
	}
	var got []string
	vs, _ := out["violations"].([]any)
	for _, v := range vs {
		got = append(got, v.(map[string]any)["path"].(string))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("paths: got %v, want %v\n%s", got, want, msg)
	}
	if !strings.Contains(msg, says) {
		t.Fatalf("errMsg %q does not say %q", msg, says)
	}
}

func TestAppLaunchOutcomes(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		nonce    string
		errCode  float64
		state    string
		attempt  string
		scenario string
	}{
		{seedNonce, 0, StateNormal, ActionRepay, "repayment.repaid"},
		{"CANCEL" + seedNonce[6:], -2, StateOverdue, "", "repayment.cancelled"},
		{"FAIL" + seedNonce[4:], 0, StateOverdue, ActionFail, "repayment.failed"},
		{"DENY" + seedNonce[4:], -4, StateOverdue, "", "repayment.app-denied"},
		{"UNSUPPORTED" + seedNonce[11:], -5, StateOverdue, "", "repayment.app-unsupported"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			u := w.overdue(990)
			sid := w.open("app/launchMiniProgram", map[string]any{"userName": UserName, "path": w.appPath(u.OpenID, tc.nonce), "miniprogramType": 0})
			if s := w.session(sid); s.Scenario != tc.scenario {
				t.Fatalf("scenario: got %s, want %s", s.Scenario, tc.scenario)
			}
			w.advance(2 * time.Second)
			ret := w.returned(sid, "repayment/app-response")
			if ret["errCode"] != tc.errCode || ret["type"] != float64(typeLaunchMini) {
				t.Fatalf("onResp: got %v, want errCode %v", ret, tc.errCode)
			}
			if got := w.state(u.OpenID)["user_state"]; got != tc.state {
				t.Fatalf("user_state: got %s, want %s", got, tc.state)
			}
			after := w.user(u.OpenID)
			switch {
			case tc.attempt == "" && after.LastAttempt != nil:
				t.Fatalf("last_attempt: got %+v, want none", after.LastAttempt)
			case tc.attempt != "" && (after.LastAttempt == nil || after.LastAttempt.Action != tc.attempt || after.LastAttempt.SessionID != sid):
				t.Fatalf("last_attempt: got %+v, want %s in %s", after.LastAttempt, tc.attempt, sid)
			}
		})
	}
}

func TestMiniProgramCallerOfAnAppOnlyScenarioComesBackEmptyHanded(t *testing.T) {
	w := newWorld(t)
	u := w.overdue(100)
	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, "DENY000")))
	w.returned(sid, "repayment/return")
	if s := w.session(sid); s.Action != ActionCancel || s.Scenario != "repayment.app-denied" {
		t.Fatalf("session: got %s %s, want cancel under repayment.app-denied", s.Scenario, s.Action)
	}
	if got := w.user(u.OpenID); got.Owed != 100 {
		t.Fatalf("owed: got %d, want 100", got.Owed)
	}
}

func TestRepaidLaterOnTheClock(t *testing.T) {
	w := newWorld(t)
	u := w.overdue(100)
	launched := w.Clock.Now(w.m.MchID)
	sid := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, "SLOW01")))
	w.advance(9 * time.Minute)
	w.call(http.MethodGet, "/miniprogram/v1/sessions/"+sid+"/return", "", nil, http.StatusAccepted)
	if got := w.state(u.OpenID)["user_state"]; got != StateOverdue {
		t.Fatalf("at 9m: got %s, want OVERDUE", got)
	}
	w.advance(2 * time.Minute)
	w.returned(sid, "repayment/return")
	after := w.user(u.OpenID)
	if after.UserState != StateNormal || !after.Advances[0].RepaidAt.Equal(launched.Add(10*time.Minute)) {
		t.Fatalf("got %+v, want NORMAL, repaid at launch + 10m exactly", after)
	}
}

func TestManualSessions(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	u := w.overdue(300)
	mp := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, "MANUAL1")))
	app := w.open("app/launchMiniProgram", map[string]any{"userName": UserName, "path": w.appPath(u.OpenID, "MANUAL2")})

	if got := w.p.Actions(w.session(mp)); !slices.Equal(got, []string{ActionRepay, ActionCancel, ActionFail}) {
		t.Fatalf("mini-program actions: got %v", got)
	}
	if got := w.p.Actions(w.session(app)); len(got) != 5 {
		t.Fatalf("App actions: got %v, want deny and unsupported too", got)
	}
	if _, err := w.Sessions.Resolve(ctx, mp, ActionDeny); !sandbox.IsCode(err, sandbox.CodeInvalid) {
		t.Fatalf("deny on a mini-program session: got %v, want invalid", err)
	}
	if _, err := w.Sessions.Resolve(ctx, mp, ActionRepay); err != nil {
		t.Fatalf("repay: %v", err)
	}
	w.returned(mp, "repayment/return")
	if got := w.user(u.OpenID); got.UserState != StateNormal {
		t.Fatalf("after a person chose repay: got %s, want NORMAL", got.UserState)
	}
	// Nobody decides for the App session: it times out as the user leaving.
	w.advance(31 * time.Minute)
	if ret := w.returned(app, "repayment/app-response"); ret["errCode"] != float64(errUserCancel) {
		t.Fatalf("timeout: got %v, want errCode -2", ret)
	}
	if s := w.session(app); s.Action != sandbox.ActionTimeout {
		t.Fatalf("timeout: got action %q", s.Action)
	}
}

func TestTwoSessionsRepayOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	u := w.overdue(400, 600)
	a := w.open("navigateToMiniProgram", navigateArgs(w.extraData(u.OpenID, "MANUALA")))
	b := w.open("app/launchMiniProgram", map[string]any{"userName": UserName, "path": w.appPath(u.OpenID, "MANUALB")})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range []string{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = w.Sessions.Resolve(ctx, id, ActionRepay) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !sandbox.IsCode(err, sandbox.CodeConflict) {
			t.Fatalf("resolve: got %v, want success or the CAS conflict", err)
		}
	}
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both lost: %v", errs)
	}
	after := w.user(u.OpenID)
	if after.Owed != 0 || after.UserState != StateNormal || after.LastAttempt == nil || after.LastAttempt.Amount != 1000 {
		t.Fatalf("got %+v, want 1000 repaid once", after)
	}
	rec, stored, err := w.p.getUser(ctx, w.m.MchID, u.OpenID)
	if err != nil || rec == nil {
		t.Fatal(err)
	}
	for _, adv := range stored.Advances {
		if adv.RepaidIn != stored.LastAttempt.SessionID {
			t.Fatalf("advance %s repaid in %s, last attempt %s: two sessions repaid", adv.OutTradeNo, adv.RepaidIn, stored.LastAttempt.SessionID)
		}
	}
}
