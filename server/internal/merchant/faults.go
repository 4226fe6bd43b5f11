package merchant

import (
	"context"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Bounds of the API faults: they live in the merchant's record.
const (
	// MaxAPIFaults is how many faults a merchant may have at once.
	MaxAPIFaults = 16
	// MaxFaultCalls is how many calls one fault may apply to.
	MaxFaultCalls = 100
	// DefaultHold is how long a timeout holds the connection: as long as
	// wechatpay-go's default client timeout (consts.DefaultTimeout).
	DefaultHold = 30 * time.Second
	// MaxHold bounds a timeout's hold.
	MaxHold = 60 * time.Second
)

// APIFaultRequest is the body of POST /sandbox/v1/merchants/{mchid}/api-faults.
type APIFaultRequest struct {
	Method string           `json:"method"`
	Path   string           `json:"path"`
	Kind   string           `json:"kind"`
	Times  int              `json:"times"`
	Hold   sandbox.Duration `json:"hold"`
}

// AddAPIFault scripts a fault for the merchant's next calls to an
// endpoint, after the faults it has.
func (d *Directory) AddAPIFault(ctx context.Context, mchid string, req APIFaultRequest) (*sandbox.APIFault, error) {
	f, vs := req.fault()
	if len(vs) > 0 {
		return nil, sandbox.Invalid("invalid API fault", vs...)
	}
	_, err := d.Update(ctx, mchid, func(m *sandbox.Merchant) error {
		if len(m.APIFaults) >= MaxAPIFaults {
			return sandbox.Errorf(sandbox.CodeConflict, "merchant %s has %d API faults, the most it may have: delete one first", mchid, MaxAPIFaults)
		}
		m.APIFaults = append(m.APIFaults, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// apiFaultMethods are the methods a fault may name (schema
// admin/api-fault-create); empty is any.
var apiFaultMethods = []string{"", "GET", "POST", "PUT", "PATCH", "DELETE"}

// fault checks the request — every problem, each at its field — and makes
// the fault it asks for.
func (req APIFaultRequest) fault() (sandbox.APIFault, []sandbox.Violation) {
	var vs []sandbox.Violation
	if !slices.Contains(apiFaultMethods, req.Method) {
		vs = append(vs, sandbox.Violation{Path: "/method", Message: fmt.Sprintf("%q is not one of %v (left out: any)", req.Method, apiFaultMethods[1:])})
	}
	if _, err := path.Match(req.Path, ""); err != nil || len(req.Path) == 0 || req.Path[0] != '/' || len(req.Path) > 256 {
		vs = append(vs, sandbox.Violation{Path: "/path", Message: fmt.Sprintf(
			"%q is not a path pattern: a path of up to 256 characters starting with /, * for one segment, e.g. /v3/payscore/serviceorder/*/complete", req.Path)})
	}
	if !slices.Contains(sandbox.APIFaultKinds, req.Kind) {
		vs = append(vs, sandbox.Violation{Path: "/kind", Message: fmt.Sprintf("%q is not one of %v", req.Kind, sandbox.APIFaultKinds)})
	}
	times := req.Times
	if times == 0 {
		times = 1
	}
	if times < 1 || times > MaxFaultCalls {
		vs = append(vs, sandbox.Violation{Path: "/times", Message: fmt.Sprintf("%d: must be 1 to %d", req.Times, MaxFaultCalls)})
	}
	hold := req.Hold.D()
	switch {
	case req.Kind != sandbox.FaultTimeout && hold != 0:
		vs = append(vs, sandbox.Violation{Path: "/hold", Message: "only a timeout holds the connection"})
	case hold < 0 || hold > MaxHold:
		vs = append(vs, sandbox.Violation{Path: "/hold", Message: fmt.Sprintf("%s: must be up to %s", hold, MaxHold)})
	case req.Kind == sandbox.FaultTimeout && hold == 0:
		hold = DefaultHold
	}
	return sandbox.APIFault{ID: httpapi.NewID("flt_"), Method: req.Method, Path: req.Path, Kind: req.Kind,
		Remaining: times, Hold: sandbox.Duration(hold), CreatedAt: time.Now().UTC()}, vs
}

// DeleteAPIFault removes one of the merchant's faults; an empty id removes
// them all.
func (d *Directory) DeleteAPIFault(ctx context.Context, mchid, id string) error {
	_, err := d.Update(ctx, mchid, func(m *sandbox.Merchant) error {
		if id == "" {
			m.APIFaults = nil
			return nil
		}
		i := slices.IndexFunc(m.APIFaults, func(f sandbox.APIFault) bool { return f.ID == id })
		if i < 0 {
			return sandbox.Errorf(sandbox.CodeNotFound, "merchant %s has no API fault %q", mchid, id)
		}
		m.APIFaults = slices.Delete(m.APIFaults, i, i+1)
		return nil
	})
	return err
}

// TakeAPIFault uses up one call of the merchant's first fault that applies
// to the call, persisting what remains, and returns the fault as it was.
// A merchant without faults costs one read of memory.
func (d *Directory) TakeAPIFault(ctx context.Context, mchid, method, urlPath string) (*sandbox.APIFault, error) {
	m, ok := d.Get(mchid)
	if !ok {
		return nil, nil
	}
	if _, ok := m.APIFault(method, urlPath); !ok {
		return nil, nil
	}
	var taken *sandbox.APIFault
	_, err := d.Update(ctx, mchid, func(m *sandbox.Merchant) error {
		// Update may call this again on a fresh copy after losing a race:
		// only what the last, committed, call took counts.
		taken = nil
		i, ok := m.APIFault(method, urlPath) // another call may have used it up
		if !ok {
			return nil
		}
		f := m.APIFaults[i]
		taken = &f
		if m.APIFaults[i].Remaining--; m.APIFaults[i].Remaining <= 0 {
			m.APIFaults = slices.Delete(m.APIFaults, i, i+1)
		}
		return nil
	})
	return taken, err
}
