package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Sizes of the round trip: enough draws that every kind of text lands in
// keys, aliases, ids and documents several times, few enough for well
// under two seconds a store.
const (
	roundTripBatches   = 50 // each: records, sessions, exchanges
	roundTripMerchants = 3
)

// testRoundTrip commits records, sessions and journal exchanges made of
// gofakeit's text — sentences, hacker phrases, emoji, quotations, Chinese,
// quotes and backslashes, U+2028, control characters, NUL in documents,
// strings of a few KB — in keys, aliases, ids and JSON documents written in
// several of the forms JSON allows, updates some of them, and reads
// everything back from a store that holds none of it in memory: every
// string exactly as written, every document meaning what it meant, every
// alias finding its record, every list and filter by an awkward merchant
// id, session id or alias finding what it should. A failure logs the seed
// that replays it (FakeSeedEnv).
func testRoundTrip(t *testing.T, h Harness) {
	reopen := h.Reopen
	if reopen == nil {
		reopen = h.Replica
	}
	if reopen == nil {
		t.Skip("the harness can neither reopen a store nor open a replica")
	}
	f := newFaker(t)
	ctx := context.Background()
	s := h.Open(t)
	start := time.Now()

	mchids := make([]string, roundTripMerchants)
	for i := range mchids {
		mchids[i] = f.unique()
	}
	kinds := []string{"payscore.order", f.unique()}
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	// Written: the records as they should read back (aliases without
	// duplicates, in the order first given), the sessions, the exchanges.
	var records []*sandbox.Record
	var sessions []*sandbox.Session
	var exchanges []*sandbox.Exchange
	aliases := func() []string {
		as := make([]string, f.Number(0, 4))
		for i := range as {
			as[i] = f.unique()
		}
		return as
	}
	for range roundTripBatches {
		b := &sandbox.Batch{}
		for range f.Number(1, 4) {
			as := aliases()
			r := &sandbox.Record{Kind: f.RandomString(kinds), MchID: f.RandomString(mchids), Key: f.unique(),
				Aliases: as, Data: f.document(t)}
			if len(as) > 0 && f.Bool() {
				r.Aliases = append(slices.Clone(as), as[0]) // a repeat is kept once
			}
			b.Creates = append(b.Creates, r)
			records = append(records, &sandbox.Record{Kind: r.Kind, MchID: r.MchID, Key: r.Key, Aliases: slices.Clone(as), Data: r.Data})
		}
		for range f.Number(1, 3) {
			x := &sandbox.Session{ID: f.unique(), MchID: f.RandomString(mchids), Product: sandbox.ProductPayScore,
				API: f.RandomString([]string{sandbox.APIOpenBusinessView, f.Word()}), Target: f.text(0),
				Scenario: f.text(0), Mode: sandbox.ModeAuto, State: sandbox.SessionPending, Ref: f.text(0),
				Args: f.document(t), DueAt: base.Add(time.Duration(f.Number(0, 1e9)) * time.Microsecond)}
			b.Sessions = append(b.Sessions, x)
			sessions = append(sessions, x)
		}
		Commit(t, s, b)
		for i, r := range b.Creates {
			w := records[len(records)-len(b.Creates)+i]
			w.Version, w.CreatedAt, w.UpdatedAt = r.Version, r.CreatedAt, r.UpdatedAt
		}

		xs := make([]*sandbox.Exchange, f.Number(1, 4))
		for i := range xs {
			x := &sandbox.Exchange{Time: base.Add(time.Duration(f.Int64()%1e15) * time.Nanosecond),
				Direction: f.RandomString([]string{sandbox.DirectionIn, sandbox.DirectionOut}),
				Product:   sandbox.ProductPayScore, MchID: f.RandomString(mchids), Scenario: f.text(0),
				RequestID: f.UUID(), Method: f.HTTPMethod(), URL: f.URL() + "/" + f.text(0), Status: f.HTTPStatusCode(),
				LatencyMS: f.Float64Range(0, 1e4), RequestBody: f.body(), ResponseBody: f.body(),
				Diagnostics: f.body(), Error: f.text(0), Source: f.IPv6Address()}
			if f.Bool() {
				x.SessionID = sessions[f.Number(0, len(sessions)-1)].ID
			}
			for range f.Number(0, 3) {
				x.Violations = append(x.Violations, sandbox.Violation{Path: "/" + f.text(0), Message: f.text(0)})
			}
			if f.Bool() {
				x.Warnings = []sandbox.Violation{{Path: "", Message: f.body()}}
			}
			xs[i] = x
		}
		if err := s.AppendExchanges(ctx, xs); err != nil {
			t.Fatalf("AppendExchanges: %v", err)
		}
		exchanges = append(exchanges, xs...)
	}

	// Updates: new data, more aliases (one already the record's), the
	// sessions' user coming back with what the caller sees.
	b := &sandbox.Batch{}
	for i, w := range records {
		if i%3 != 0 {
			continue
		}
		more := aliases()
		if len(w.Aliases) > 0 {
			more = append(more, w.Aliases[0])
		}
		u := &sandbox.Record{Kind: w.Kind, MchID: w.MchID, Key: w.Key, Version: w.Version, Aliases: more, Data: f.document(t)}
		b.Updates = append(b.Updates, u)
		for _, a := range more {
			if !slices.Contains(w.Aliases, a) {
				w.Aliases = append(w.Aliases, a)
			}
		}
		w.Data = u.Data
	}
	for i, x := range sessions {
		if i%2 != 0 {
			continue
		}
		x.State, x.Action, x.Return = sandbox.SessionReturned, f.text(0), f.document(t)
		x.Results = map[string]json.RawMessage{f.unique(): f.document(t), "getActiveResult": f.document(t)}
		b.Sessions = append(b.Sessions, x)
	}
	Commit(t, s, b)
	updated := map[string]*sandbox.Record{}
	for _, u := range b.Updates {
		updated[u.Kind+"\x00"+u.MchID+"\x00"+u.Key] = u
	}
	for _, w := range records {
		if u := updated[w.Kind+"\x00"+w.MchID+"\x00"+w.Key]; u != nil {
			w.Version, w.UpdatedAt = u.Version, u.UpdatedAt
		}
	}
	wrote := time.Since(start)

	s = reopen(t, s)

	t.Run("records", func(t *testing.T) {
		for i, w := range records {
			got, err := s.GetRecord(ctx, w.Kind, w.MchID, w.Key)
			if err != nil {
				t.Fatalf("record %d: GetRecord: %v", i, err)
			}
			if d := firstDiff(w, got); d != "" {
				t.Fatalf("record %d (key %s) read back differs %s", i, clip(w.Key, 60), d)
			}
			for _, a := range w.Aliases {
				got, err := s.FindRecord(ctx, w.Kind, w.MchID, a)
				if err != nil {
					t.Fatalf("record %d: FindRecord(alias %s): %v", i, clip(a, 60), err)
				}
				if d := firstDiff(w, got); d != "" {
					t.Fatalf("record %d found by alias %s differs %s", i, clip(a, 60), d)
				}
			}
		}
		for _, kind := range kinds {
			for _, mchid := range mchids {
				var want []*sandbox.Record
				for _, w := range records {
					if w.Kind == kind && w.MchID == mchid {
						want = append(want, w)
					}
				}
				slices.Reverse(want) // newest first
				got, err := s.ListRecords(ctx, kind, mchid, 1000)
				if err != nil {
					t.Fatalf("ListRecords: %v", err)
				}
				if d := firstDiff(want, got); d != "" {
					t.Fatalf("ListRecords(%s, %s) differs %s", clip(kind, 40), clip(mchid, 40), d)
				}
			}
		}
	})

	t.Run("sessions", func(t *testing.T) {
		for i, w := range sessions {
			got, err := s.GetSession(ctx, w.ID)
			if err != nil {
				t.Fatalf("session %d: GetSession: %v", i, err)
			}
			if d := firstDiff(w, got); d != "" {
				t.Fatalf("session %d (id %s) read back differs %s", i, clip(w.ID, 60), d)
			}
		}
		for _, mchid := range mchids {
			var want []*sandbox.Session
			for _, w := range sessions {
				if w.MchID == mchid {
					want = append(want, w)
				}
			}
			slices.Reverse(want)
			got, err := s.ListSessions(ctx, sandbox.SessionFilter{MchID: mchid, Limit: 1000})
			if err != nil {
				t.Fatalf("ListSessions: %v", err)
			}
			if d := firstDiff(want, got); d != "" {
				t.Fatalf("ListSessions(%s) differs %s", clip(mchid, 40), d)
			}
		}
	})

	t.Run("journal", func(t *testing.T) {
		bySession := map[string][]*sandbox.Exchange{}
		for i, w := range exchanges {
			got, err := s.GetExchange(ctx, w.ID)
			if err != nil {
				t.Fatalf("exchange %d: GetExchange: %v", i, err)
			}
			if d := firstDiff(w, got); d != "" {
				t.Fatalf("exchange %d (id %d) read back differs %s", i, w.ID, d)
			}
			if w.SessionID != "" {
				bySession[w.SessionID] = append([]*sandbox.Exchange{w}, bySession[w.SessionID]...)
			}
		}
		for _, x := range sessions {
			got, err := s.QueryJournal(ctx, sandbox.JournalFilter{SessionID: x.ID, Limit: 1000})
			if err != nil {
				t.Fatalf("QueryJournal: %v", err)
			}
			if d := firstDiff(bySession[x.ID], got); d != "" {
				t.Fatalf("QueryJournal(session %s) differs %s", clip(x.ID, 40), d)
			}
		}
		for _, mchid := range mchids {
			var want []*sandbox.Exchange
			for _, w := range exchanges {
				if w.MchID == mchid {
					want = append([]*sandbox.Exchange{w}, want...)
				}
			}
			got, err := s.QueryJournal(ctx, sandbox.JournalFilter{MchID: mchid, Limit: 1000})
			if err != nil {
				t.Fatalf("QueryJournal: %v", err)
			}
			if d := firstDiff(want, got); d != "" {
				t.Fatalf("QueryJournal(merchant %s) differs %s", clip(mchid, 40), d)
			}
		}
	})
	t.Logf("%d records, %d sessions, %d exchanges: written in %v, read back in %v",
		len(records), len(sessions), len(exchanges), wrote.Round(time.Millisecond), (time.Since(start) - wrote).Round(time.Millisecond))
}
