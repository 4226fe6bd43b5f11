package embedpay

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Notify faults a scenario can ask for (scenario.schema.json notify.faults).
const (
	FaultDuplicate    = "duplicate"     // the final notification is sent once more after it is acknowledged
	FaultOutOfOrder   = "out_of_order"  // a stale status-0 notification follows the final one
	FaultBadSignature = "bad_signature" // the first attempt of the final notification carries a wrong sign
	FaultDrop         = "drop"          // nothing is ever sent ("never")
	FaultLate         = "late"          // notifications go out well after the user is back
)

// lateDelay is how long after the user's return a "late" notification goes
// out when the scenario names no longer notify.delay [I].
const lateDelay = time.Minute

// actionStatus is the status an action gives the trade; ok is false for
// close and timeout, which leave the trade untouched.
func actionStatus(action string) (status int, ok bool) {
	switch action {
	case ActionPay:
		return StatusPaid, true
	case ActionFail:
		return StatusFailed, true
	case ActionPaying:
		return StatusPaying, true
	}
	return 0, false
}

func isFinal(status int) bool { return status == StatusPaid || status == StatusFailed }

// statusValue reads a timeline's status, which YAML decodes as an int,
// JSON as a float64 and a UseNumber decoder as a json.Number.
func statusValue(v any) (int, bool) {
	var f float64
	switch x := v.(type) {
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if f != math.Trunc(f) || (f != StatusPaid && f != StatusFailed && f != StatusPaying) {
		return 0, false
	}
	return int(f), true
}

// CheckScenario reports why this product cannot play an embedpay scenario:
// an action it does not know, or a timeline that sets anything but a status
// of 1, -1 or 0, goes back in time, or moves a final status.
func CheckScenario(sc *sandbox.Scenario) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("scenario %s (%s): %s", sc.ID, sc.File, fmt.Sprintf(format, args...))
	}
	if sc.Mode == sandbox.ModeAuto || sc.User.Action != "" {
		if !slices.Contains([]string{ActionPay, ActionFail, ActionPaying, ActionClose}, sc.User.Action) {
			return bad("user.action %q is not one of pay, fail, paying, close", sc.User.Action)
		}
	}
	if len(sc.Timeline) > 0 && sc.User.Action == ActionClose {
		return bad("a timeline needs a user who pays: close leaves the trade untouched")
	}
	last, have := 0, false
	if s, ok := actionStatus(sc.User.Action); ok {
		last, have = s, true
	}
	var prev time.Duration
	for i, st := range sc.Timeline {
		if st.After.D() < prev {
			return bad("timeline[%d].after %s is before the step above it", i, st.After.D())
		}
		prev = st.After.D()
		for k, v := range st.Set {
			if k != "status" {
				return bad("timeline[%d].set.%s: embedpay timelines set only status", i, k)
			}
			s, ok := statusValue(v)
			if !ok {
				return bad("timeline[%d].set.status %v is not 1, -1 or 0", i, v)
			}
			if have && isFinal(last) && s != last {
				return bad("timeline[%d] moves the final status %d to %d", i, last, s)
			}
			last, have = s, true
		}
	}
	return nil
}

// plan is what a scenario makes of the user's action at a moment: the
// trade's timeline and how its notifications go out.
type plan struct {
	points   []point
	delay    time.Duration
	faults   sandbox.NotifySpec
	failNext int
}

// planFor builds the plan of an action taken at `at`. sc may be nil (a
// scenario that left the catalogue since the launch): then the action alone
// decides, with no faults.
func planFor(sc *sandbox.Scenario, action string, at time.Time) plan {
	status, _ := actionStatus(action)
	pl := plan{points: []point{{At: at, Status: status}}}
	if sc == nil {
		return pl
	}
	pl.delay, pl.faults, pl.failNext = sc.Notify.Delay.D(), sc.Notify, sc.Notify.FailNext
	for _, st := range sc.Timeline {
		s, ok := statusValue(st.Set["status"])
		if !ok {
			continue // CheckScenario refused it at start-up
		}
		p := point{At: at.Add(st.After.D()), Status: s}
		lastP := &pl.points[len(pl.points)-1]
		switch {
		case p.Status == lastP.Status:
			continue // no change, nothing to notify
		case !p.At.After(lastP.At):
			lastP.Status = p.Status // a step at the action itself overrides it
		default:
			pl.points = append(pl.points, p)
		}
	}
	return pl
}
