// Package storetest is the contract every sandbox.Store keeps, run against
// each adapter from the same code: the SQLite store's tests and the
// PostgreSQL store's tests call Run. Tests of an adapter's own mechanics
// (SQLite's group commit and WAL, PostgreSQL's migrations under a lock)
// stay with the adapter.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Harness opens the stores under test.
type Harness struct {
	// Open returns a new, empty store, closed when the test ends.
	Open func(t *testing.T) sandbox.Store
	// Replica, when set, opens another store on s's database, as another
	// process of a replicated deployment would; closed when the test ends.
	Replica func(t *testing.T, s sandbox.Store) sandbox.Store
	// Reopen, when set, returns a store on s's database that holds
	// nothing of what s wrote in memory, as a restarted process would
	// (s may be closed). Without it, Replica serves.
	Reopen func(t *testing.T, s sandbox.Store) sandbox.Store
	// Outage, when set, returns a new, empty store and two functions: down
	// takes its database away (a stopped server), up brings it back.
	Outage func(t *testing.T) (s sandbox.Store, down, up func())
	// JournalBytes returns the bytes s counts its journal's stored entries
	// at, the measure PruneJournal's byte bound applies to.
	JournalBytes func(t *testing.T, s sandbox.Store) int64
}

// Run runs every contract test against the harness's stores.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(*testing.T, Harness)
	}{
		{"Merchants", testMerchants},
		{"MerchantCAS", testMerchantCAS},
		{"Hooks", testHooks},
		{"Records", testRecords},
		{"Sessions", testSessions},
		{"Notifications", testNotifications},
		{"Claims", testClaims},
		{"SessionClaims", testSessionClaims},
		{"NextDue", testNextDue},
		{"Journal", testJournal},
		{"RoundTrip", testRoundTrip},
		{"QueryJournalLimits", testQueryJournalLimits},
		{"JournalBytes", testJournalBytes},
		{"CommitCancelled", testCommitCancelled},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Closed", testClosed},
		{"Outage", testOutage},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

// Commit commits b or fails the test.
func Commit(tb testing.TB, s sandbox.Store, b *sandbox.Batch) {
	tb.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		tb.Fatalf("Commit: %v", err)
	}
}

// WantCode fails unless err is a *sandbox.Error with the code and a message
// containing every one of parts.
func WantCode(tb testing.TB, err error, code sandbox.Code, parts ...string) {
	tb.Helper()
	if got := sandbox.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			tb.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// NewSession returns a pending auto session of the merchant, due at due.
func NewSession(id, mchid string, due time.Time) *sandbox.Session {
	return &sandbox.Session{
		ID: id, MchID: mchid, Product: sandbox.ProductPayScore, API: sandbox.APIOpenBusinessView,
		Scenario: "payscore.confirm", Mode: sandbox.ModeAuto, State: sandbox.SessionPending,
		Args: json.RawMessage(`{"businessType":"wxpayScoreUse"}`), DueAt: due,
	}
}

// NewNotification returns a pending notification of the merchant, due at due.
func NewNotification(id, mchid string, due time.Time) *sandbox.Notification {
	return &sandbox.Notification{
		ID: id, MchID: mchid, Product: sandbox.ProductEmbedPay, Event: "trade-notify", Ref: "trade-" + id,
		URL: "http://127.0.0.1/notify", Payload: json.RawMessage(`{"status":1}`), State: sandbox.NotifyPending,
		DueAt: due, Faults: sandbox.Faults{Duplicate: true},
	}
}

// NewRecord returns a new pay-score order of the merchant.
func NewRecord(mchid, key string, aliases ...string) *sandbox.Record {
	return &sandbox.Record{Kind: "payscore.order", MchID: mchid, Key: key, Aliases: aliases,
		Data: json.RawMessage(`{"out_order_no":"` + key + `"}`)}
}

// KeysOf lists the keys of xs, for comparing lists.
func KeysOf[T any](key func(*T) string, xs []*T) []string {
	var keys []string
	for _, x := range xs {
		keys = append(keys, key(x))
	}
	return keys
}

// Keys of the stored objects, for KeysOf.
var (
	SessionID = func(x *sandbox.Session) string { return x.ID }
	NotifyID  = func(n *sandbox.Notification) string { return n.ID }
	RecordKey = func(r *sandbox.Record) string { return r.Key }
)

func testMerchants(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	m := &sandbox.Merchant{MchID: "1900000001", Name: "demo", AppID: "wx0123456789abcdef",
		PlatformPrivateKeyPEM: "-----BEGIN PRIVATE KEY-----", Token: "tok-1",
		NotifyHosts: []string{"127.0.0.1:8080"}, ClockOffset: time.Hour}
	Commit(t, s, &sandbox.Batch{Merchants: []*sandbox.Merchant{m}})
	if m.CreatedAt.IsZero() {
		t.Fatal("CreatedAt not set on commit")
	}
	created := m.CreatedAt

	got, err := s.GetMerchant(ctx, m.MchID)
	if err != nil {
		t.Fatalf("GetMerchant: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("GetMerchant = %+v, want %+v", got, m)
	}

	// An upsert replaces everything but the creation time.
	m2 := &sandbox.Merchant{MchID: m.MchID, Name: "renamed", Token: "tok-2"}
	Commit(t, s, &sandbox.Batch{Merchants: []*sandbox.Merchant{m2, {MchID: "1900000002"}}})
	if !m2.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt after upsert = %v, want %v", m2.CreatedAt, created)
	}
	list, err := s.ListMerchants(ctx)
	if err != nil {
		t.Fatalf("ListMerchants: %v", err)
	}
	if len(list) != 2 || list[0].Name != "renamed" || list[0].Token != "tok-2" || list[0].PlatformPrivateKeyPEM != "" ||
		list[1].MchID != "1900000002" {
		t.Errorf("ListMerchants = %+v, want the renamed merchant then 1900000002", list)
	}

	_, err = s.GetMerchant(ctx, "nobody")
	WantCode(t, err, sandbox.CodeNotFound, `merchant "nobody" not found`)
}

func testRecords(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	r := NewRecord("m1", "o1", "q1", "q1", "p1")
	Commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{r}})
	if r.Version != 1 || r.CreatedAt.IsZero() || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Fatalf("after create: version %d, created %v, updated %v; want 1 and equal non-zero times", r.Version, r.CreatedAt, r.UpdatedAt)
	}

	t.Run("get and find", func(t *testing.T) {
		got, err := s.GetRecord(ctx, r.Kind, "m1", "o1")
		if err != nil {
			t.Fatal(err)
		}
		want := *r
		want.Aliases = []string{"q1", "p1"}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("GetRecord = %+v, want %+v", got, &want)
		}
		for _, a := range []string{"q1", "p1"} {
			got, err := s.FindRecord(ctx, r.Kind, "m1", a)
			if err != nil || got.Key != "o1" {
				t.Errorf("FindRecord(%q) = %v, %v; want o1", a, got, err)
			}
		}
	})

	errCases := []struct {
		name  string
		batch *sandbox.Batch
		code  sandbox.Code
		parts []string
	}{
		{"duplicate key", &sandbox.Batch{Creates: []*sandbox.Record{NewRecord("m1", "o1")}},
			sandbox.CodeConflict, []string{"payscore.order", `"o1"`, "already exists"}},
		{"duplicate alias", &sandbox.Batch{Creates: []*sandbox.Record{NewRecord("m1", "o9", "p1")}},
			sandbox.CodeConflict, []string{"payscore.order", `"p1"`, "taken", `"m1"`}},
		{"stale version", &sandbox.Batch{Updates: []*sandbox.Record{{Kind: r.Kind, MchID: "m1", Key: "o1", Version: 5, Data: json.RawMessage(`{}`)}}},
			sandbox.CodeConflict, []string{`"o1"`, "version 5 is stale", "has 1"}},
		{"update of a missing record", &sandbox.Batch{Updates: []*sandbox.Record{{Kind: r.Kind, MchID: "m1", Key: "nope", Version: 1}}},
			sandbox.CodeNotFound, []string{`"nope"`, "not found"}},
		{"update with version 0 of an existing key", &sandbox.Batch{Updates: []*sandbox.Record{NewRecord("m1", "o1")}},
			sandbox.CodeConflict, []string{"already exists"}},
		{"update adding another record's alias", &sandbox.Batch{Updates: []*sandbox.Record{{Kind: r.Kind, MchID: "m1", Key: "o1", Version: 1, Aliases: []string{"x9"}}},
			Creates: []*sandbox.Record{NewRecord("m1", "o2", "x9")}},
			sandbox.CodeConflict, []string{`"x9"`}},
		{"missing key", &sandbox.Batch{Creates: []*sandbox.Record{{Kind: r.Kind, MchID: "m1"}}},
			sandbox.CodeInvalid, []string{"/creates/0"}},
		{"invalid data", &sandbox.Batch{Creates: []*sandbox.Record{{Kind: r.Kind, MchID: "m1", Key: "k", Data: json.RawMessage(`{`)}}},
			sandbox.CodeInvalid, []string{"/creates/0", "JSON"}},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			// A session rides along: it must not land when the batch fails.
			x := NewSession("s-"+c.name, "m1", time.Time{})
			c.batch.Sessions = append(c.batch.Sessions, x)
			err := s.Commit(ctx, c.batch)
			WantCode(t, err, c.code, c.parts...)
			if x.Version != 0 {
				t.Errorf("session version = %d after a failed commit, want 0", x.Version)
			}
			if _, err := s.GetSession(ctx, x.ID); !sandbox.IsCode(err, sandbox.CodeNotFound) {
				t.Errorf("GetSession after a failed batch: %v, want not found", err)
			}
		})
	}

	t.Run("update", func(t *testing.T) {
		u := &sandbox.Record{Kind: r.Kind, MchID: "m1", Key: "o1", Version: r.Version, Aliases: []string{"q1", "n1"},
			Data: json.RawMessage(`{"state":"DONE"}`)}
		Commit(t, s, &sandbox.Batch{Updates: []*sandbox.Record{u}})
		if u.Version != 2 || !u.CreatedAt.Equal(r.CreatedAt) || u.UpdatedAt.Before(u.CreatedAt) {
			t.Errorf("after update: version %d created %v updated %v; want 2, %v, later", u.Version, u.CreatedAt, u.UpdatedAt, r.CreatedAt)
		}
		got, err := s.FindRecord(ctx, r.Kind, "m1", "n1")
		if err != nil {
			t.Fatalf("FindRecord(new alias): %v", err)
		}
		if string(got.Data) != `{"state":"DONE"}` || got.Version != 2 {
			t.Errorf("record = %s v%d, want the updated data v2", got.Data, got.Version)
		}
		if want := []string{"q1", "p1", "n1"}; !reflect.DeepEqual(got.Aliases, want) {
			t.Errorf("aliases = %q, want %q", got.Aliases, want)
		}
		// The x9 alias of the failed case above must not have stuck.
		if _, err := s.FindRecord(ctx, r.Kind, "m1", "x9"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
			t.Errorf("FindRecord(x9) = %v, want not found", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		Commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{NewRecord("m1", "o2"), NewRecord("m1", "o3"), NewRecord("m2", "o4")}})
		got, err := s.ListRecords(ctx, r.Kind, "m1", 2)
		if err != nil {
			t.Fatal(err)
		}
		if keys := KeysOf(RecordKey, got); !reflect.DeepEqual(keys, []string{"o3", "o2"}) {
			t.Errorf("ListRecords(m1, 2) = %q, want [o3 o2]", keys)
		}
		got, err = s.ListRecords(ctx, r.Kind, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if keys := KeysOf(RecordKey, got); !reflect.DeepEqual(keys, []string{"o4", "o3", "o2", "o1"}) {
			t.Errorf("ListRecords(all) = %q, want [o4 o3 o2 o1]", keys)
		}
	})

	t.Run("an alias is per merchant", func(t *testing.T) {
		other := NewRecord("m2", "o7", "q1")
		Commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{other}})
		for mchid, want := range map[string]int64{"m1": r.Version + 1, "m2": 1} {
			got, err := s.FindRecord(ctx, r.Kind, mchid, "q1")
			if err != nil || got.MchID != mchid || got.Version != want {
				t.Errorf("FindRecord(%s, q1) = %+v, %v; want %s's own record", mchid, got, err, mchid)
			}
		}
		_, err := s.FindRecord(ctx, r.Kind, "m3", "q1")
		WantCode(t, err, sandbox.CodeNotFound, `"m3"`, `"q1"`)
	})

	t.Run("not found", func(t *testing.T) {
		_, err := s.GetRecord(ctx, r.Kind, "m2", "o1")
		WantCode(t, err, sandbox.CodeNotFound, "payscore.order", `"o1"`, `"m2"`)
		_, err = s.FindRecord(ctx, "embedpay.trade", "m1", "q1")
		WantCode(t, err, sandbox.CodeNotFound, "embedpay.trade", `"q1"`)
	})
}

func testSessions(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	a := NewSession("a", "m1", base.Add(2*time.Minute))
	b := NewSession("b", "m1", base.Add(time.Minute))
	c := NewSession("c", "m2", base)
	d := NewSession("d", "m1", base)
	d.State = sandbox.SessionReturned
	d.Results = map[string]json.RawMessage{"getActiveResult": json.RawMessage(`{"state":1}`)}
	Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{a, b, c, d}})
	if a.Version != 1 || a.CreatedAt.IsZero() {
		t.Fatalf("after insert: version %d created %v, want 1 and a time", a.Version, a.CreatedAt)
	}

	got, err := s.GetSession(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("GetSession = %+v, want %+v", got, d)
	}

	t.Run("due", func(t *testing.T) {
		due, err := s.DueSessions(ctx, "m1", base.Add(90*time.Second), 10)
		if err != nil {
			t.Fatal(err)
		}
		if ids := KeysOf(SessionID, due); !reflect.DeepEqual(ids, []string{"b"}) {
			t.Errorf("DueSessions(+90s) = %q, want [b] (d is not pending, a not due)", ids)
		}
		due, _ = s.DueSessions(ctx, "m1", base.Add(time.Hour), 10)
		if ids := KeysOf(SessionID, due); !reflect.DeepEqual(ids, []string{"b", "a"}) {
			t.Errorf("DueSessions(+1h) = %q, want [b a], oldest first", ids)
		}
		due, _ = s.DueSessions(ctx, "m1", base.Add(time.Hour), 1)
		if ids := KeysOf(SessionID, due); !reflect.DeepEqual(ids, []string{"b"}) {
			t.Errorf("DueSessions(limit 1) = %q, want [b]", ids)
		}
	})

	t.Run("list", func(t *testing.T) {
		cases := []struct {
			name string
			f    sandbox.SessionFilter
			want []string
		}{
			{"all", sandbox.SessionFilter{}, []string{"d", "c", "b", "a"}},
			{"merchant", sandbox.SessionFilter{MchID: "m1"}, []string{"d", "b", "a"}},
			{"state", sandbox.SessionFilter{MchID: "m1", State: sandbox.SessionPending}, []string{"b", "a"}},
			{"product", sandbox.SessionFilter{Product: sandbox.ProductIssuer}, nil},
			{"limit", sandbox.SessionFilter{Limit: 1}, []string{"d"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := s.ListSessions(ctx, c.f)
				if err != nil {
					t.Fatal(err)
				}
				if ids := KeysOf(SessionID, got); !reflect.DeepEqual(ids, c.want) {
					t.Errorf("ListSessions(%+v) = %q, want %q", c.f, ids, c.want)
				}
			})
		}
	})

	t.Run("cas", func(t *testing.T) {
		u := *b
		u.State, u.Action, u.Return = sandbox.SessionReturned, "confirm", json.RawMessage(`{"scene":1038}`)
		Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{&u}})
		if u.Version != 2 || !u.CreatedAt.Equal(b.CreatedAt) {
			t.Errorf("after update: version %d created %v, want 2 and %v", u.Version, u.CreatedAt, b.CreatedAt)
		}
		got, _ := s.GetSession(ctx, "b")
		if !reflect.DeepEqual(got, &u) {
			t.Errorf("GetSession = %+v, want %+v", got, &u)
		}
		err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{b}}) // still version 1
		WantCode(t, err, sandbox.CodeConflict, `session "b"`, "version 1 is stale", "has 2")
		if b.Version != 1 {
			t.Errorf("stale session's version changed to %d", b.Version)
		}
		err = s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("a", "m1", base)}})
		WantCode(t, err, sandbox.CodeConflict, `session "a" already exists`)
		missing := NewSession("zz", "m1", base)
		missing.Version = 3
		err = s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{missing}})
		WantCode(t, err, sandbox.CodeNotFound, `session "zz" not found`)
		_, err = s.GetSession(ctx, "zz")
		WantCode(t, err, sandbox.CodeNotFound, `session "zz" not found`)
	})
}

func testNotifications(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	n1 := NewNotification("n1", "m1", base.Add(time.Minute))
	n2 := NewNotification("n2", "m1", base)
	n3 := NewNotification("n3", "m2", base)
	n4 := NewNotification("n4", "m1", base)
	n4.State = sandbox.NotifyHeld
	Commit(t, s, &sandbox.Batch{Notifications: []*sandbox.Notification{n1, n2, n3, n4}})

	got, err := s.GetNotification(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, n1) {
		t.Errorf("GetNotification = %+v, want %+v", got, n1)
	}
	due, err := s.DueNotifications(ctx, "m1", base.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ids := KeysOf(NotifyID, due); !reflect.DeepEqual(ids, []string{"n2", "n1"}) {
		t.Errorf("DueNotifications = %q, want [n2 n1]", ids)
	}

	cases := []struct {
		name string
		f    sandbox.NotificationFilter
		want []string
	}{
		{"all", sandbox.NotificationFilter{}, []string{"n4", "n3", "n2", "n1"}},
		{"merchant and state", sandbox.NotificationFilter{MchID: "m1", State: sandbox.NotifyPending}, []string{"n2", "n1"}},
		{"ref", sandbox.NotificationFilter{Ref: "trade-n3"}, []string{"n3"}},
		{"product", sandbox.NotificationFilter{Product: sandbox.ProductEmbedPay, Limit: 2}, []string{"n4", "n3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ListNotifications(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if ids := KeysOf(NotifyID, got); !reflect.DeepEqual(ids, c.want) {
				t.Errorf("ListNotifications(%+v) = %q, want %q", c.f, ids, c.want)
			}
		})
	}

	u := *n2
	u.State, u.Attempts, u.LastStatus = sandbox.NotifyDelivered, 1, 200
	Commit(t, s, &sandbox.Batch{Notifications: []*sandbox.Notification{&u}})
	if u.Version != 2 {
		t.Errorf("version after update = %d, want 2", u.Version)
	}
	err = s.Commit(ctx, &sandbox.Batch{Notifications: []*sandbox.Notification{n2}})
	WantCode(t, err, sandbox.CodeConflict, `notification "n2"`, "stale")
	err = s.Commit(ctx, &sandbox.Batch{Notifications: []*sandbox.Notification{NewNotification("n1", "m1", base)}})
	WantCode(t, err, sandbox.CodeConflict, `notification "n1" already exists`)
	_, err = s.GetNotification(ctx, "nx")
	WantCode(t, err, sandbox.CodeNotFound, `notification "nx" not found`)
}

func testNextDue(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	check := func(t *testing.T, mchid string, want time.Time) {
		t.Helper()
		got, err := s.NextDue(ctx, mchid)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Errorf("NextDue(%s) = %v, want %v", mchid, got, want)
		}
	}
	check(t, "m1", time.Time{})
	done := NewNotification("n0", "m1", base.Add(-time.Hour))
	done.State = sandbox.NotifyDelivered
	Commit(t, s, &sandbox.Batch{
		Sessions:      []*sandbox.Session{NewSession("s1", "m1", base.Add(time.Minute))},
		Notifications: []*sandbox.Notification{NewNotification("n1", "m1", base.Add(2*time.Minute)), done},
	})
	check(t, "m1", base.Add(time.Minute))
	Commit(t, s, &sandbox.Batch{Notifications: []*sandbox.Notification{NewNotification("n2", "m1", base.Add(30*time.Second))}})
	check(t, "m1", base.Add(30*time.Second))
	check(t, "m2", time.Time{})
	Commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{NewSession("s2", "m2", time.Time{})}})
	check(t, "m2", time.Unix(0, 0))
}

func testJournal(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	base := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	var xs []*sandbox.Exchange
	for i := range 10 {
		x := &sandbox.Exchange{Time: base.Add(time.Duration(i) * time.Second), Direction: sandbox.DirectionIn,
			Product: sandbox.ProductPayScore, MchID: "m1", Method: "POST", URL: fmt.Sprintf("/v3/x/%d", i), Status: 200,
			Violations: []sandbox.Violation{{Path: "/a", Message: "b"}}}
		if i%2 == 1 {
			x.Direction, x.MchID, x.NotifyID, x.Attempt = sandbox.DirectionOut, "m2", "n1", i
		}
		if i == 4 {
			x.SessionID = "s1"
		}
		if i == 3 {
			x.Warnings = []sandbox.Violation{{Path: "/w", Message: "inferred"}}
			x.Source, x.Unverified = "192.0.2.7:4242", true
		}
		xs = append(xs, x)
	}
	if err := s.AppendExchanges(ctx, xs[:5]); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendExchanges(ctx, xs[5:]); err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		if i > 0 && x.ID != xs[i-1].ID+1 {
			t.Fatalf("exchange %d has id %d after %d, want consecutive ids", i, x.ID, xs[i-1].ID)
		}
	}
	got, err := s.GetExchange(ctx, xs[3].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, xs[3]) {
		t.Errorf("GetExchange = %+v, want %+v", got, xs[3])
	}
	_, err = s.GetExchange(ctx, 999)
	WantCode(t, err, sandbox.CodeNotFound, "exchange 999 not found")

	id := func(i int) int64 { return xs[i].ID }
	cases := []struct {
		name string
		f    sandbox.JournalFilter
		want []int
	}{
		{"all newest first", sandbox.JournalFilter{}, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"merchant", sandbox.JournalFilter{MchID: "m1"}, []int{8, 6, 4, 2, 0}},
		{"direction", sandbox.JournalFilter{Direction: sandbox.DirectionOut, Limit: 2}, []int{9, 7}},
		{"notification", sandbox.JournalFilter{NotifyID: "n1"}, []int{9, 7, 5, 3, 1}},
		{"session", sandbox.JournalFilter{SessionID: "s1"}, []int{4}},
		{"product", sandbox.JournalFilter{Product: sandbox.ProductIssuer}, nil},
		{"before", sandbox.JournalFilter{BeforeID: id(3)}, []int{2, 1, 0}},
		{"after", sandbox.JournalFilter{AfterID: id(6)}, []int{9, 8, 7}},
		{"between", sandbox.JournalFilter{AfterID: id(2), BeforeID: id(6), MchID: "m1"}, []int{4}},
		{"oldest first", sandbox.JournalFilter{AfterID: id(6), Oldest: true, Limit: 2}, []int{7, 8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.QueryJournal(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for _, i := range c.want {
				want = append(want, id(i))
			}
			var ids []int64
			for _, x := range got {
				ids = append(ids, x.ID)
			}
			if !reflect.DeepEqual(ids, want) {
				t.Errorf("QueryJournal(%+v) = %v, want %v", c.f, ids, want)
			}
		})
	}

	t.Run("zero time is set", func(t *testing.T) {
		x := &sandbox.Exchange{Method: "GET", URL: "/"}
		before := time.Now()
		if err := s.AppendExchanges(ctx, []*sandbox.Exchange{x}); err != nil {
			t.Fatal(err)
		}
		if x.Time.Before(before) {
			t.Errorf("Time = %v, want now", x.Time)
		}
	})

	t.Run("prune", func(t *testing.T) {
		n, err := s.PruneJournal(ctx, 0, base.Add(2*time.Second), 0) // drops 0 and 1
		if err != nil || n != 2 {
			t.Fatalf("PruneJournal(before +2s) = %d, %v; want 2", n, err)
		}
		n, err = s.PruneJournal(ctx, 3, time.Time{}, 0)
		if err != nil || n != 6 {
			t.Fatalf("PruneJournal(keep 3) = %d, %v; want 6", n, err)
		}
		got, _ := s.QueryJournal(ctx, sandbox.JournalFilter{})
		if len(got) != 3 || got[2].ID != id(8) {
			t.Errorf("after prune %d entries, oldest %d; want 3 from %d", len(got), got[len(got)-1].ID, id(8))
		}
		// Ids are not reused after a prune.
		x := &sandbox.Exchange{Method: "GET", URL: "/"}
		if _, err := s.PruneJournal(ctx, 0, time.Now().Add(time.Hour), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendExchanges(ctx, []*sandbox.Exchange{x}); err != nil {
			t.Fatal(err)
		}
		if x.ID <= id(9)+1 {
			t.Errorf("id after pruning everything = %d, want above %d", x.ID, id(9)+1)
		}
	})

	t.Run("prune by age, an old entry after newer ones", func(t *testing.T) {
		// An exchange is journalled when it ends: a long one (a long
		// poll) gets a higher id than quicker ones that started after it.
		if _, err := s.PruneJournal(ctx, 0, time.Now().Add(time.Hour), 0); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-time.Minute)
		xs := []*sandbox.Exchange{
			{Method: "GET", URL: "/new-1", Time: at.Add(time.Second)},
			{Method: "GET", URL: "/old", Time: at.Add(-time.Second)},
			{Method: "GET", URL: "/new-2", Time: at.Add(2 * time.Second)},
		}
		if err := s.AppendExchanges(ctx, xs); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneJournal(ctx, 0, at, 0); err != nil || n != 1 {
			t.Fatalf("PruneJournal(before) = %d, %v; want 1", n, err)
		}
		got, _ := s.QueryJournal(ctx, sandbox.JournalFilter{})
		if len(got) != 2 || got[0].URL != "/new-2" || got[1].URL != "/new-1" {
			t.Errorf("left %+v; want /new-2, /new-1", got)
		}
	})
}

// testJournalBytes fills the journal with entries of a known size and
// prunes it to a byte bound: the oldest go, the newest that fit stay, and a
// page read with MaxBytes stops once it holds that many bytes.
func testJournalBytes(t *testing.T, h Harness) {
	if h.JournalBytes == nil {
		t.Skip("the harness cannot count the journal's bytes")
	}
	ctx := context.Background()
	s := h.Open(t)
	body := strings.Repeat("x", 10<<10)
	const chunk = 500 // both stores prune 500 entries a transaction
	n := 2*chunk + 3
	xs := make([]*sandbox.Exchange, n)
	for i := range xs {
		xs[i] = &sandbox.Exchange{Direction: sandbox.DirectionIn, Method: "POST", URL: fmt.Sprintf("/x/%d", i), Status: 200, RequestBody: body}
	}
	if err := s.AppendExchanges(ctx, xs); err != nil {
		t.Fatal(err)
	}
	page, err := s.QueryJournal(ctx, sandbox.JournalFilter{Limit: 1000, MaxBytes: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// Each stored document is a little over 10 KiB: ten fit under 100 KiB,
	// the eleventh passes it.
	if len(page) != 10 || page[0].ID != xs[n-1].ID {
		t.Fatalf("a page of at most 100 KiB held %d entries of 10 KiB; want 10, the newest first", len(page))
	}
	const budget = 1 << 20 // room for 99 entries
	got, err := s.PruneJournal(ctx, 0, time.Time{}, budget)
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.QueryJournal(ctx, sandbox.JournalFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got+len(left) != n || len(left) < 95 || len(left) > 102 || left[0].ID != xs[n-1].ID {
		t.Fatalf("pruned %d, %d left (newest id %d); want about 100 KiB-sized newest entries left, the newest (%d) among them",
			got, len(left), left[0].ID, xs[n-1].ID)
	}
	if n := h.JournalBytes(t, s); n > budget {
		t.Fatalf("after pruning to %d bytes the journal holds %d", budget, n)
	}
	// The bound follows appends and the other bounds' deletes: a second
	// round prunes exactly the excess again.
	more := make([]*sandbox.Exchange, 60)
	for i := range more {
		more[i] = &sandbox.Exchange{Direction: sandbox.DirectionIn, Method: "POST", URL: "/more", Status: 200, RequestBody: body}
	}
	if err := s.AppendExchanges(ctx, more); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneJournal(ctx, 150, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneJournal(ctx, 0, time.Time{}, budget); err != nil {
		t.Fatal(err)
	}
	if n := h.JournalBytes(t, s); n > budget || n < budget-(12<<10) {
		t.Fatalf("after a second round the journal holds %d bytes; want just under %d", n, budget)
	}
	// An oldest-first page with a byte bound pages forward from AfterID.
	first, err := s.QueryJournal(ctx, sandbox.JournalFilter{Oldest: true, Limit: 1000, MaxBytes: 30 << 10})
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.QueryJournal(ctx, sandbox.JournalFilter{Oldest: true, AfterID: first[len(first)-1].ID, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || first[0].ID >= first[1].ID || len(next) != 1 || next[0].ID <= first[2].ID {
		t.Fatalf("oldest-first pages: %d entries then %d; want 3 in ascending ids, then the next one", len(first), len(next))
	}
}

func testQueryJournalLimits(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	xs := make([]*sandbox.Exchange, 1100)
	for i := range xs {
		xs[i] = &sandbox.Exchange{Method: "GET", URL: "/"}
	}
	if err := s.AppendExchanges(ctx, xs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ limit, want int }{{0, 100}, {5, 5}, {5000, 1000}} {
		got, err := s.QueryJournal(ctx, sandbox.JournalFilter{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want {
			t.Errorf("QueryJournal(limit %d) returned %d, want %d", c.limit, len(got), c.want)
		}
	}
}

func testCommitCancelled(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	x := NewSession("s1", "m1", time.Time{})
	err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{x}})
	WantCode(t, err, sandbox.CodeUnavailable)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if _, err := s.GetSession(context.Background(), "s1"); !sandbox.IsCode(err, sandbox.CodeNotFound) {
		t.Errorf("GetSession after a cancelled commit: %v, want not found", err)
	}
}
