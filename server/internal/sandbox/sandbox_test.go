package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestClockScalesAndAdvancesPerMerchant(t *testing.T) {
	real := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(60, func() time.Time { return real })
	start := c.Now("a")
	real = real.Add(time.Second)
	if got, want := c.Now("a").Sub(start), time.Minute; got != want {
		t.Fatalf("at scale 60 one real second: got %v, want %v", got, want)
	}
	woken := 0
	c.OnAdvance(func() { woken++ })
	if off := c.Advance("a", time.Hour); off != time.Hour {
		t.Fatalf("offset: got %v", off)
	}
	if got := c.Now("a").Sub(c.Now("b")); got != time.Hour {
		t.Fatalf("merchant a is ahead of b by %v, want 1h: clocks are per merchant", got)
	}
	if woken != 1 {
		t.Fatalf("listeners woken %d times, want 1", woken)
	}
	if got := c.RealDuration(time.Hour); got != time.Minute {
		t.Fatalf("RealDuration(1h) at scale 60: got %v", got)
	}
}

func TestErrorHelpers(t *testing.T) {
	e := Invalid("bad", Violation{Path: "/a", Message: "is required"}, Violation{Path: "/b", Message: "too long"})
	if got, want := e.Error(), "bad; /a: is required; /b: too long"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("ctx: %w", e)
	if ErrorCode(wrapped) != CodeInvalid || !IsCode(wrapped, CodeInvalid) {
		t.Fatalf("a wrapped *Error keeps its code")
	}
	foreign := AsError(errors.New("disk"))
	if foreign.Code != CodeInternal || !errors.Is(foreign, foreign.Err) {
		t.Fatalf("a foreign error becomes internal and stays unwrappable: %+v", foreign)
	}
	if ErrorCode(nil) != "" || AsError(nil) != nil {
		t.Fatalf("nil stays nil")
	}
}

func TestDurationReadsStringsAndSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{`"90s"`, 90 * time.Second}, {`2.5`, 2500 * time.Millisecond}, {`"1h30m"`, 90 * time.Minute}} {
		var d Duration
		if err := json.Unmarshal([]byte(tc.in), &d); err != nil || d.D() != tc.want {
			t.Errorf("json %s: got %v %v, want %v", tc.in, d.D(), err, tc.want)
		}
		var y Duration
		if err := yaml.Unmarshal([]byte(tc.in), &y); err != nil || y.D() != tc.want {
			t.Errorf("yaml %s: got %v %v, want %v", tc.in, y.D(), err, tc.want)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Fatal("a bad duration must be an error")
	}
}

// TestCommittedIsIDsOnlyAndCrossesAsJSON: what a commit tells its hooks
// names merchants and sessions by id (each once), only the merchants left
// with a pending notification, and survives a JSON round trip unchanged, as
// it must when another replica's store delivers it.
func TestCommittedIsIDsOnlyAndCrossesAsJSON(t *testing.T) {
	due := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &Batch{
		Merchants: []*Merchant{{MchID: "m1"}, {MchID: "m1"}},
		Sessions:  []*Session{{ID: "s1", MchID: "m1", State: SessionPending, DueAt: due}, {ID: "s2", MchID: "m2", State: SessionReturned}},
		Notifications: []*Notification{{ID: "n1", MchID: "m2", State: NotifyPending}, {ID: "n2", MchID: "m2", State: NotifyPending},
			{ID: "n3", MchID: "m3", State: NotifyDelivered}},
	}
	c := b.Committed()
	want := Committed{Merchants: []string{"m1"}, NotifyMerchants: []string{"m2"}, Sessions: []CommittedSession{
		{ID: "s1", MchID: "m1", State: SessionPending, DueAt: due}, {ID: "s2", MchID: "m2", State: SessionReturned}}}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Committed
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back) != fmt.Sprint(want) {
		t.Fatalf("Committed = %+v (as %s), want %+v", back, raw, want)
	}
}
