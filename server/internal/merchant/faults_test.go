package merchant

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// TestAPIFaultsAreUsedUpAndPersisted: a fault applies to its method and
// path pattern only, as many times as asked, concurrent calls each use one
// call up, and what remains survives a restart.
func TestAPIFaultsAreUsedUpAndPersisted(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/m.db"
	st, d := open(t, path)
	const mchid = "1230000109"
	f, err := d.AddAPIFault(ctx, mchid, APIFaultRequest{Method: "POST", Path: "/v3/payscore/serviceorder/*/complete", Kind: sandbox.FaultSystemError, Times: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddAPIFault(ctx, mchid, APIFaultRequest{Path: "/v3/payscore/serviceorder", Kind: sandbox.FaultTimeout}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v3/payscore/serviceorder/A/complete"},
		{"POST", "/v3/payscore/serviceorder/A/cancel"},
		{"POST", "/v3/payscore/serviceorder/A/B/complete"},
	} {
		if got, err := d.TakeAPIFault(ctx, mchid, tc.method, tc.path); err != nil || got != nil {
			t.Errorf("%s %s: got %+v %v, want no fault", tc.method, tc.path, got, err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range 7 {
		wg.Go(func() {
			got, err := d.TakeAPIFault(ctx, mchid, "POST", "/v3/payscore/serviceorder/ORDER1/complete")
			if err != nil || got == nil || got.ID != f.ID || got.Kind != sandbox.FaultSystemError {
				t.Errorf("got %+v %v, want fault %s", got, err, f.ID)
				return
			}
			mu.Lock()
			taken++
			mu.Unlock()
		})
	}
	wg.Wait()
	timeout, err := d.TakeAPIFault(ctx, mchid, "GET", "/v3/payscore/serviceorder")
	if err != nil || timeout == nil || timeout.Hold.D() != DefaultHold || timeout.Remaining != 1 {
		t.Fatalf("timeout fault: got %+v %v, want one call held %s", timeout, err, DefaultHold)
	}
	st.Close()

	st, d = open(t, path)
	defer st.Close()
	m, _ := d.Get(mchid)
	if len(m.APIFaults) != 1 || m.APIFaults[0].ID != f.ID || m.APIFaults[0].Remaining != 10-taken || taken != 7 {
		t.Fatalf("after a restart: got %+v (taken %d), want %s with 3 calls left, the used-up timeout gone", m.APIFaults, taken, f.ID)
	}
	for range 3 {
		if got, _ := d.TakeAPIFault(ctx, mchid, "POST", "/v3/payscore/serviceorder/X/complete"); got == nil {
			t.Fatal("a remaining call found no fault")
		}
	}
	if got, _ := d.TakeAPIFault(ctx, mchid, "POST", "/v3/payscore/serviceorder/X/complete"); got != nil {
		t.Errorf("got %+v after the last call, want none", got)
	}
}

// TestAPIFaultIsPlayedAsOftenAsAsked: many calls racing for a fault of 3
// calls get it exactly 3 times, whatever the compare-and-swap retries.
func TestAPIFaultIsPlayedAsOftenAsAsked(t *testing.T) {
	ctx := context.Background()
	st, d := open(t, t.TempDir()+"/m.db")
	defer st.Close()
	const mchid = "1230000109"
	for round := range 5 {
		if _, err := d.AddAPIFault(ctx, mchid, APIFaultRequest{Path: "/v3/x", Kind: sandbox.FaultSystemError, Times: 3}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := 0
		for range 16 {
			wg.Go(func() {
				f, err := d.TakeAPIFault(ctx, mchid, "GET", "/v3/x")
				if err != nil {
					t.Error(err)
				}
				if f != nil {
					mu.Lock()
					got++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if got != 3 {
			t.Fatalf("round %d: 16 racing calls got the fault %d times, want 3", round, got)
		}
	}
}

func TestAPIFaultRequestsAreChecked(t *testing.T) {
	ctx := context.Background()
	st, d := open(t, t.TempDir()+"/m.db")
	defer st.Close()
	for _, tc := range []struct {
		name string
		req  APIFaultRequest
		path string
	}{
		{"relative path", APIFaultRequest{Path: "v3/x", Kind: sandbox.FaultTimeout}, "/path"},
		{"bad pattern", APIFaultRequest{Path: "/v3/[x", Kind: sandbox.FaultTimeout}, "/path"},
		{"unknown kind", APIFaultRequest{Path: "/v3/x", Kind: "slow"}, "/kind"},
		{"too many calls", APIFaultRequest{Path: "/v3/x", Kind: sandbox.FaultTimeout, Times: 101}, "/times"},
		{"hold on an error", APIFaultRequest{Path: "/v3/x", Kind: sandbox.FaultSystemError, Hold: sandbox.Duration(time.Second)}, "/hold"},
		{"hold too long", APIFaultRequest{Path: "/v3/x", Kind: sandbox.FaultTimeout, Hold: sandbox.Duration(2 * time.Minute)}, "/hold"},
	} {
		_, err := d.AddAPIFault(ctx, "1230000109", tc.req)
		e := sandbox.AsError(err)
		if e == nil || e.Code != sandbox.CodeInvalid || len(e.Fields) != 1 || e.Fields[0].Path != tc.path {
			t.Errorf("%s: got %v, want one violation at %s", tc.name, err, tc.path)
		}
	}
	for i := range MaxAPIFaults {
		if _, err := d.AddAPIFault(ctx, "1230000109", APIFaultRequest{Path: "/v3/x", Kind: sandbox.FaultRateLimited}); err != nil {
			t.Fatalf("fault %d: %v", i, err)
		}
	}
	if _, err := d.AddAPIFault(ctx, "1230000109", APIFaultRequest{Path: "/v3/x", Kind: sandbox.FaultRateLimited}); !sandbox.IsCode(err, sandbox.CodeConflict) {
		t.Errorf("fault %d: got %v, want a conflict", MaxAPIFaults+1, err)
	}
	if err := d.DeleteAPIFault(ctx, "1230000109", "flt_nope"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("delete unknown: got %v", err)
	}
	if err := d.DeleteAPIFault(ctx, "1230000109", ""); err != nil {
		t.Fatal(err)
	}
	if m, _ := d.Get("1230000109"); len(m.APIFaults) != 0 {
		t.Errorf("after deleting all: %d faults", len(m.APIFaults))
	}
}

// open loads the directory of the SQLite file at path.
func open(t *testing.T, path string) (*sqlite.Store, *Directory) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(context.Background(), st, sandbox.NewClock(1, nil))
	if err != nil {
		t.Fatal(err)
	}
	return st, d
}
