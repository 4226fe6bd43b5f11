package issuer

import (
	"encoding/json"
	"fmt"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// params is what an issuer scenario's params may say
// (schemas/issuer/scenario-params).
type params struct {
	// Pages overrides user.action on one page ("activeDes": "failure").
	Pages map[string]string `json:"pages,omitempty"`
	// OBU and Card fix the numbers an activation reports.
	OBU  string `json:"obu,omitempty"`
	Card string `json:"card,omitempty"`
	// FailReason is the detail of "requestPayment:fail <detail>".
	FailReason string `json:"failReason,omitempty"`
}

// checkScenario reports why this product cannot play an issuer scenario — an
// action it does not know, a timeline or notification settings (the plugin
// has neither), params its schema refuses — and decodes its params.
func checkScenario(v sandbox.Validator, sc *sandbox.Scenario) (params, error) {
	bad := func(format string, args ...any) (params, error) {
		return params{}, fmt.Errorf("scenario %s (%s): %s", sc.ID, sc.File, fmt.Sprintf(format, args...))
	}
	if sc.Mode == sandbox.ModeAuto || sc.User.Action != "" {
		if _, ok := normalize(sc.User.Action); !ok || sc.User.Action == sandbox.ActionTimeout {
			return bad("user.action %q is not one of success, failure, cancel, sign, no_sign", sc.User.Action)
		}
	}
	if len(sc.Timeline) > 0 {
		return bad("an issuer scenario has no timeline: the plugin's results are fixed when the user acts (user.action, params.pages)")
	}
	if sc.Notify.Delay != 0 || len(sc.Notify.Faults) > 0 || sc.Notify.FailNext > 0 {
		return bad("notify: the issuer plugin sends no server-side notifications (the plugin guide)")
	}
	var pr params
	if sc.Params == nil {
		return pr, nil
	}
	raw, err := json.Marshal(sc.Params)
	if err != nil {
		return bad("params: %v", err)
	}
	vs, err := v.ValidateJSON(SchemaScenarioParams, raw)
	if err != nil {
		return params{}, err
	}
	if len(vs) > 0 {
		return bad("params%s: %s (schemas/%s)", vs[0].Path, vs[0].Message, SchemaScenarioParams)
	}
	if err := json.Unmarshal(raw, &pr); err != nil {
		return bad("params: %v", err)
	}
	return pr, nil
}

// scenarioAction is what the scenario's user does on page: the page's
// override, else user.action.
func (p *Product) scenarioAction(sc *sandbox.Scenario, page string) string {
	if a, ok := p.params[sc.ID].Pages[page]; ok {
		return a
	}
	return sc.User.Action
}

// UserStep is what the scenario's user does in session s: the page's own
// action when params.pages names one, else user.action. The payment sheet
// answers at once in an auto scenario [I: user.after times the plugin
// pages, so that the call's answer is the callback's result].
func (p *Product) UserStep(sc *sandbox.Scenario, s *sandbox.Session) sandbox.UserStep {
	if s.API == sandbox.APIRequestPayment {
		return sandbox.UserStep{Action: p.scenarioAction(sc, PagePayment)}
	}
	v, _ := parseURL(navigateURL(s.Args))
	return sandbox.UserStep{Action: p.scenarioAction(sc, v.page), After: sc.User.After}
}
