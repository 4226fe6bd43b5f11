package issuer

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

// TestApplicationWalk walks one application through every page of the plugin guide:
// each later page sees what an earlier one did, and each getter reports it.
func TestApplicationWalk(t *testing.T) {
	w := newWorld(t)

	// The default scenario: the user completes the login two seconds later.
	id := w.navigate(loginURL("P1"), "")
	w.pending(id)
	if _, raw := w.do(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/plugin/"+GetterActive, nil, nil, http.StatusConflict); len(raw) == 0 {
		t.Fatal("a getter while the user is in the plugin: want a conflict")
	}
	w.advance(2 * time.Second)
	r := w.back(id)
	no, plate, openid := r.Query["orderNo"], r.Query["plateNum"], r.Query["openId"]
	if o := w.loadOrder(no); o.PlateNum != plate || o.OpenID != openid || o.EtcProductID != "P1" || o.Handle != loginNew {
		t.Fatalf("order got %+v, want plate %s, openId %s, product P1, a new application", o, plate, openid)
	}
	if d := w.loadDevice(plate); d.State != deviceIssued || d.OrderNo != no {
		t.Fatalf("device got %+v, want issued for order %s", d, no)
	}

	// The order of pages is inferred: a strict merchant is refused (the
	// others are warned: TestPageOrderWarns).
	w.SetStrict(t, w.m.MchID, true)
	t.Run("activation needs a signed protocol", func(t *testing.T) {
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/activeDes?orderNo=" + no}),
			want{"/args/url?orderNo", "has no signed protocol"})
	})
	t.Run("activeAgain needs an activated plate", func(t *testing.T) {
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/activeAgain?plateNum=" + plate}),
			want{"/args/url?plateNum", "not activated"})
	})
	w.SetStrict(t, w.m.MchID, false)
	t.Run("the user does not sign the protocol", func(t *testing.T) {
		id, r := w.visit("plugin://issuer-plugin/signProtocol?orderNo="+no, "issuer.not-signed")
		if r.OpenType != openBack {
			t.Errorf("way back got %+v, want navigateBack", r)
		}
		if got := w.state(id, GetterSignPro); got != NotSigned {
			t.Errorf("getSignProResult state got %d, want %d", got, NotSigned)
		}
		if w.loadOrder(no).ProtocolSignedAt != nil {
			t.Error("the order is signed, want unsigned")
		}
	})
	t.Run("the user signs the protocol", func(t *testing.T) {
		id := w.navigate("plugin://issuer-plugin/signProtocol?orderNo="+no, "issuer.instant")
		w.back(id)
		if got := w.state(id, GetterSignPro); got != Signed {
			t.Errorf("getSignProResult state got %d, want %d", got, Signed)
		}
		if at := w.loadOrder(no).ProtocolSignedAt; at == nil || !at.Equal(w.now()) {
			t.Errorf("protocol signed at %v, want %v", at, w.now())
		}
		// A page that sets no getter leaves the others at the plugin's initial values.
		if got := w.getter(id, GetterActive); got["state"] != float64(ActiveCancelled) {
			t.Errorf("getActiveResult after signProtocol got %v, want the initial {state: 2}", got)
		}
	})
	t.Run("car-service signing needs the order's openId", func(t *testing.T) {
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/signGetAuth?orderNo=" + no + "&openId=oUpF8uMEb4qRXf22hE3X68TekukE"}),
			want{"/args/url?openId", "is not the openId of order " + no})
	})
	t.Run("the user signs the car service", func(t *testing.T) {
		id := w.navigate("plugin://issuer-plugin/signGetAuth?orderNo="+no+"&openId="+openid, "issuer.instant")
		w.back(id)
		if got := w.state(id, GetterSignCarService); got != Signed {
			t.Errorf("getSignCarServiceResule state got %d, want %d", got, Signed)
		}
		if w.loadOrder(no).CarServiceSignedAt == nil {
			t.Error("the car service is unsigned, want signed")
		}
	})
	for _, tc := range []struct {
		scenario string
		want     int
	}{
		{"issuer.activation-failed", ActiveFailure},
		{"issuer.activation-cancelled", ActiveCancelled},
	} {
		t.Run("activation "+tc.scenario, func(t *testing.T) {
			id, _ := w.visit("plugin://issuer-plugin/activeDes?orderNo="+no, tc.scenario)
			got := w.getter(id, GetterActive)
			if got["state"] != float64(tc.want) || got["obu"] != "" || got["card"] != "" {
				t.Errorf("getActiveResult got %v, want {state: %d, obu: \"\", card: \"\"}", got, tc.want)
			}
			if d := w.loadDevice(plate); d.State != deviceIssued {
				t.Errorf("device state got %s, want %s", d.State, deviceIssued)
			}
		})
	}
	var obu, card string
	t.Run("activation succeeds", func(t *testing.T) {
		id := w.navigate("plugin://issuer-plugin/activeDes?orderNo="+no, "issuer.instant")
		w.back(id)
		got := w.getter(id, GetterActive)
		wantOBU, wantCard := deviceNumbers(params{}, w.m.MchID, no)
		if got["state"] != float64(ActiveSuccess) || got["obu"] != wantOBU || got["card"] != wantCard {
			t.Fatalf("getActiveResult got %v, want {state: 0, obu: %s, card: %s}", got, wantOBU, wantCard)
		}
		obu, card = wantOBU, wantCard
		if d := w.loadDevice(plate); d.State != deviceActive || d.OBU != obu || d.Activations != 1 {
			t.Errorf("device got %+v, want active with OBU %s, 1 activation", d, obu)
		}
	})
	w.SetStrict(t, w.m.MchID, true)
	t.Run("an activated device is not activated twice", func(t *testing.T) {
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/activeDes?orderNo=" + no}),
			want{"/args/url?orderNo", "already active"})
	})
	t.Run("an activated plate has nothing to continue", func(t *testing.T) {
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/login?etcProductId=P1&plateNum=" + plate +
			"&handleType=continuation&redirectUrl=/pages/a/a&mobile=13912345678"}), want{"/args/url?plateNum", "no application to continue"})
	})
	w.SetStrict(t, w.m.MchID, false)
	t.Run("activeAgain", func(t *testing.T) {
		id := w.navigate("plugin://issuer-plugin/activeAgain?plateNum="+plate, "issuer.instant")
		w.back(id)
		if got := w.getter(id, GetterActive); got["state"] != float64(ActiveSuccess) || got["obu"] != obu || got["card"] != card {
			t.Errorf("getActiveResult got %v, want {0, %s, %s}", got, obu, card)
		}
		if d := w.loadDevice(plate); d.Activations != 2 {
			t.Errorf("activations got %d, want 2", d.Activations)
		}
	})
	t.Run("activeAgain fails", func(t *testing.T) {
		id, _ := w.visit("plugin://issuer-plugin/activeAgain?plateNum="+plate, "issuer.failure")
		if got := w.state(id, GetterActive); got != ActiveFailure {
			t.Errorf("getActiveResult state got %d, want %d", got, ActiveFailure)
		}
	})
	t.Run("login reactivates the plate", func(t *testing.T) {
		id := w.navigate("plugin://issuer-plugin/login?plateNum="+plate+"&handleType=reactivate&redirectUrl=/pages/a/a&mobile=13912345678", "issuer.instant")
		if r := w.back(id); r.Query["orderNo"] != no || r.Query["plateNum"] != plate {
			t.Errorf("way back got %+v, want order %s and plate %s", r, no, plate)
		}
		if got := w.getter(id, GetterActive); got["state"] != float64(ActiveSuccess) || got["obu"] != obu {
			t.Errorf("getActiveResult got %v, want {0, %s, …}", got, obu)
		}
	})
	t.Run("deviceUpgrade", func(t *testing.T) {
		id := w.navigate("plugin://issuer-plugin/deviceUpgrade", "issuer.instant")
		w.back(id)
		if got := w.state(id, GetterActive); got != ActiveSuccess {
			t.Errorf("getActiveResult state got %d, want %d", got, ActiveSuccess)
		}
	})
	t.Run("after-sale cancellation deactivates the device", func(t *testing.T) {
		w.back(w.navigate("plugin://issuer-plugin/login?plateNum="+plate+"&handleType=aftersale&afterType=6&orderNo="+no+
			"&redirectUrl=/pages/a/a&mobile=13912345678", "issuer.instant"))
		if d := w.loadDevice(plate); d.State != deviceDeactivated {
			t.Errorf("device state got %s, want %s", d.State, deviceDeactivated)
		}
		w.SetStrict(t, w.m.MchID, true)
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/activeAgain?plateNum=" + plate}),
			want{"/args/url?plateNum", "deactivated"})
		w.SetStrict(t, w.m.MchID, false)
	})
	t.Run("after-sale of another plate's order", func(t *testing.T) {
		hasAll(t, w.refused(w.caller(appJSON()), map[string]any{"url": "plugin://issuer-plugin/login?plateNum=浙A0P73H_0&handleType=aftersale&afterType=1&orderNo=" +
			no + "&redirectUrl=/pages/a/a&mobile=13912345678"}), want{"/args/url?plateNum", "is for plate " + plate})
	})
	t.Run("another merchant does not see the order", func(t *testing.T) {
		c := w.caller(appJSON())
		c["appId"] = w.other.AppID
		hasAll(t, w.refused(c, map[string]any{"url": "plugin://issuer-plugin/signProtocol?orderNo=" + no}),
			want{"/args/url?orderNo", "does not exist for merchant " + w.other.MchID})
	})
}

// TestCancelledLogin checks that a login the user abandons goes back
// without a credential and creates no order.
func TestCancelledLogin(t *testing.T) {
	w := newWorld(t)
	if _, r := w.visit(loginURL("P1"), "issuer.cancelled"); r.OpenType != openBack || r.Query != nil {
		t.Errorf("way back got %+v, want navigateBack without a query", r)
	}
	if recs, err := w.Store.ListRecords(context.Background(), KindOrder, w.m.MchID, 10); err != nil || len(recs) != 0 {
		t.Errorf("orders got %d (%v), want none", len(recs), err)
	}
}

// TestMagicScenarioStaysWithTheOrder selects a scenario by a magic
// etcProductId and checks that the order's later pages play it.
func TestMagicScenarioStaysWithTheOrder(t *testing.T) {
	w := newWorld(t)
	r := w.back(w.navigate(loginURL("SANDBOX_INSTANT"), ""))
	no := r.Query["orderNo"]
	if got := w.loadOrder(no).Scenario; got != "issuer.instant" {
		t.Fatalf("order scenario got %q, want issuer.instant", got)
	}
	// No header: the order's scenario acts at once, without the default's two seconds.
	id := w.navigate("plugin://issuer-plugin/signProtocol?orderNo="+no, "")
	if got := w.state(id, GetterSignPro); got != Signed {
		t.Errorf("getSignProResult state got %d, want %d", got, Signed)
	}

	_, r = w.visit(loginURL("SANDBOX_ACTIVATION_FAILED"), "")
	failing := r.Query["orderNo"]
	w.back(w.navigate("plugin://issuer-plugin/signProtocol?orderNo="+failing, "issuer.instant"))
	id, _ = w.visit("plugin://issuer-plugin/activeDes?orderNo="+failing, "")
	if got := w.state(id, GetterActive); got != ActiveFailure {
		t.Errorf("getActiveResult state got %d, want %d (the order's magic scenario)", got, ActiveFailure)
	}
}

// TestManualSession lets a person decide on a signing page, and a
// forgotten session time out as the user leaving.
func TestManualSession(t *testing.T) {
	w := newWorld(t)
	no := w.apply("P1").Query["orderNo"]
	id := w.navigate("plugin://issuer-plugin/signProtocol?orderNo="+no, "issuer.manual")
	sess, err := w.Store.GetSession(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.p.Actions(sess), []string{ActionSign, ActionNoSign, ActionCancel}; !slices.Equal(got, want) {
		t.Errorf("actions got %v, want %v", got, want)
	}
	if _, err := w.Sessions.Resolve(context.Background(), id, ActionSign); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got := w.state(id, GetterSignPro); got != Signed {
		t.Errorf("getSignProResult state got %d, want %d", got, Signed)
	}

	id = w.navigate("plugin://issuer-plugin/activeDes?orderNo="+no, "issuer.manual")
	w.pending(id)
	w.advance(30 * time.Minute)
	w.back(id)
	if got := w.state(id, GetterActive); got != ActiveCancelled {
		t.Errorf("getActiveResult state after the timeout got %d, want %d", got, ActiveCancelled)
	}
}

// TestConcurrentActivations resolves two activations of one order at the
// same moment: each is applied on the other's outcome (compare-and-swap),
// so neither is lost — a second activation of an active device activates
// it again (the page-order rule is inferred).
func TestConcurrentActivations(t *testing.T) {
	w := newWorld(t)
	r := w.apply("P1")
	no, plate := r.Query["orderNo"], r.Query["plateNum"]
	w.back(w.navigate("plugin://issuer-plugin/signProtocol?orderNo="+no, "issuer.instant"))
	ids := []string{
		w.navigate("plugin://issuer-plugin/activeDes?orderNo="+no, "issuer.manual"),
		w.navigate("plugin://issuer-plugin/activeDes?orderNo="+no, "issuer.manual"),
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.Sessions.Resolve(context.Background(), id, ActionSuccess)
		}()
	}
	wg.Wait()
	activated := 0
	for i, id := range ids {
		switch {
		case errs[i] != nil && !sandbox.IsCode(errs[i], sandbox.CodeConflict):
			t.Fatalf("resolve %s: %v", id, errs[i])
		case errs[i] == nil && w.state(id, GetterActive) == ActiveSuccess:
			activated++
		}
	}
	if d := w.loadDevice(plate); d.Activations != activated || activated == 0 {
		t.Errorf("device activations got %d, want the %d that succeeded (errors %v): none lost", d.Activations, activated, errs)
	}
}

// TestGetters checks the getters' names and who has them.
func TestGetters(t *testing.T) {
	w := newWorld(t)
	id := w.navigate("plugin://issuer-plugin/deviceUpgrade", "issuer.instant")
	w.back(id)
	for _, tc := range []struct {
		name, getter string
		status       int
		contains     string
	}{
		{"the typo is the name", "getSignCarServiceResule", http.StatusOK, ""},
		{"the corrected spelling is not", "getSignCarServiceResult", http.StatusNotFound, "spells it getSignCarServiceResule"},
		{"an unknown getter", "getOrder", http.StatusNotFound, "exports getActiveResult"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := w.do(http.MethodGet, "/miniprogram/v1/sessions/"+id+"/plugin/"+tc.getter, nil, nil, tc.status)
			if msg, _ := out["errMsg"].(string); !strings.Contains(msg, tc.contains) {
				t.Errorf("errMsg got %q, want it to contain %q", msg, tc.contains)
			}
		})
	}
}
