package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestDataOfSchema1StillOpens: a data file written by schema version 1
// (aliases unique across merchants, repayment and issuer aliases carrying
// the merchant) opens, and every record is found by its alias, now per
// merchant and without the merchant in it.
func TestDataOfSchema1StillOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	old := []struct {
		kind, mchid, key string
		aliases          []string
	}{
		{"repayment.user", "1230000109", "oUser1", []string{"1230000109/plate/粤B12345", "1230000109/trade/BPA1"}},
		{"issuer.order", "1230000109", "ETC1", []string{"wechatSignNo:1230000109:SIGN1"}},
		{"payscore.order", "1230000109", "PS1", []string{"package:PKG1", "query_id:Q1"}},
		{"embedpay.trade", "1900000001", "PO1", []string{"62000000000000000000001"}},
	}
	stmts := []string{migrations[0], "PRAGMA user_version = 1"}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range old {
		aliases := `["` + r.aliases[0] + `"`
		for _, a := range r.aliases[1:] {
			aliases += `,"` + a + `"`
		}
		aliases += "]"
		if _, err := db.Exec(`INSERT INTO records (kind, mchid, key, aliases, version, data, created, updated) VALUES (?, ?, ?, ?, 3, '{}', 1, 1)`,
			r.kind, r.mchid, r.key, aliases); err != nil {
			t.Fatal(err)
		}
		for _, a := range r.aliases {
			if _, err := db.Exec(`INSERT INTO record_aliases (kind, alias, mchid, key) VALUES (?, ?, ?, ?)`, r.kind, a, r.mchid, r.key); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path)
	ctx := context.Background()
	want := map[string][]string{
		"oUser1": {"plate/粤B12345", "trade/BPA1"},
		"ETC1":   {"wechatSignNo:SIGN1"},
		"PS1":    {"package:PKG1", "query_id:Q1"},
		"PO1":    {"62000000000000000000001"},
	}
	for _, r := range old {
		for _, a := range want[r.key] {
			got, err := s.FindRecord(ctx, r.kind, r.mchid, a)
			if err != nil || got.Key != r.key || got.Version != 3 {
				t.Errorf("FindRecord(%s, %s, %q) = %+v, %v; want record %s", r.kind, r.mchid, a, got, err, r.key)
				continue
			}
			if aliases := slices.Sorted(slices.Values(got.Aliases)); !reflect.DeepEqual(aliases, want[r.key]) {
				t.Errorf("record %s's aliases = %q, want %q", r.key, got.Aliases, want[r.key])
			}
		}
		if _, err := s.FindRecord(ctx, r.kind, "1999999999", want[r.key][0]); !sandbox.IsCode(err, sandbox.CodeNotFound) {
			t.Errorf("another merchant finds %s by %q: %v", r.key, want[r.key][0], err)
		}
	}
	// The (kind, mchid, alias) index holds: the same alias under another
	// merchant is that merchant's, twice under one is a conflict.
	commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{{Kind: "payscore.order", MchID: "1999999999", Key: "PS9", Aliases: []string{"package:PKG1"}}}})
	err = s.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{{Kind: "payscore.order", MchID: "1230000109", Key: "PS2", Aliases: []string{"package:PKG1"}}}})
	wantCode(t, err, sandbox.CodeConflict, `"package:PKG1"`)
}

// TestDataOfSchema5StillOpens: a data file written by schema version 5
// (the journal with AUTOINCREMENT and an index each by merchant, session
// and notification) opens; a session's and a notification's entries
// journalled then are still found, by them and by merchant, and so are
// those journalled after it opens; a new entry takes an id above every one
// given before, the newest of which was deleted.
func TestDataOfSchema5StillOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v5.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	stmts := append(slices.Clone(migrations[:5]), "PRAGMA user_version = 5",
		`INSERT INTO sessions (id, mchid, product, state, due_at, created, updated, version, json)
			VALUES ('ses_old', 'm1', 'embedpay', 'returned', 0, 1, 1, 2, '{"id":"ses_old","mchid":"m1","product":"embedpay","state":"returned"}')`,
		`INSERT INTO notifications (id, mchid, product, ref, state, due_at, created, updated, version, json)
			VALUES ('n_old', 'm1', 'embedpay', 'PO1', 'delivered', 0, 1, 1, 2, '{"id":"n_old","mchid":"m1","product":"embedpay","ref":"PO1","state":"delivered"}')`)
	for i, x := range []struct{ mchid, session, notify string }{{"m1", "", ""}, {"m1", "ses_old", ""}, {"m2", "", "n_old"}, {"m1", "ses_old", ""}, {"m1", "", ""}} {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO journal (time, mchid, product, session_id, notify_id, direction, json)
			VALUES (%d, '%s', 'embedpay', '%s', '%s', 'in', '{"id":%d,"time":"2026-01-01T00:00:00Z","url":"/%d"}')`, i+1, x.mchid, x.session, x.notify, i+1, i+1))
	}
	stmts = append(stmts, `DELETE FROM journal WHERE id = 5`)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path)
	ctx := context.Background()
	ids := func(f sandbox.JournalFilter) []int64 {
		t.Helper()
		xs, err := s.QueryJournal(ctx, f)
		if err != nil {
			t.Fatalf("QueryJournal(%+v): %v", f, err)
		}
		out := []int64{}
		for _, x := range xs {
			out = append(out, x.ID)
		}
		return out
	}
	for _, c := range []struct {
		f    sandbox.JournalFilter
		want []int64
	}{
		{sandbox.JournalFilter{SessionID: "ses_old"}, []int64{4, 2}},
		{sandbox.JournalFilter{SessionID: "ses_old", MchID: "m1"}, []int64{4, 2}},
		{sandbox.JournalFilter{SessionID: "ses_old", MchID: "m2"}, []int64{}},
		{sandbox.JournalFilter{NotifyID: "n_old"}, []int64{3}},
		{sandbox.JournalFilter{MchID: "m1"}, []int64{4, 2, 1}},
		{sandbox.JournalFilter{MchID: "m1", BeforeID: 4}, []int64{2, 1}},
	} {
		if got := ids(c.f); !reflect.DeepEqual(got, c.want) {
			t.Errorf("QueryJournal(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	fresh := &sandbox.Session{ID: "ses_new", MchID: "m2", Product: "embedpay", State: sandbox.SessionPending}
	commit(t, s, &sandbox.Batch{Sessions: []*sandbox.Session{fresh}})
	xs := []*sandbox.Exchange{{MchID: "m2", SessionID: "ses_new", URL: "/6"}, {MchID: "m1", SessionID: "ses_old", URL: "/7"}}
	if err := s.AppendExchanges(ctx, xs); err != nil {
		t.Fatal(err)
	}
	if xs[0].ID != 6 || xs[1].ID != 7 {
		t.Errorf("new entries got ids %d, %d; want 6, 7 (5 was given once)", xs[0].ID, xs[1].ID)
	}
	if got := ids(sandbox.JournalFilter{SessionID: "ses_new"}); !reflect.DeepEqual(got, []int64{6}) {
		t.Errorf("the new session's entries = %v, want [6]", got)
	}
	if got := ids(sandbox.JournalFilter{SessionID: "ses_old"}); !reflect.DeepEqual(got, []int64{7, 4, 2}) {
		t.Errorf("the old session's entries = %v, want [7 4 2]", got)
	}
}
