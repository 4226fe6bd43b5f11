package sqlite

import (
	"context"
	"database/sql"
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
