package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestJournalLookupsSearchTheMerchantIndex: the journal's listings by
// merchant and its lookups by session and notification search the one
// index by merchant (journal_merchant) — a range of it, never a scan of the
// journal's documents — so that an exchange costs one index entry and
// these pages stay cheap on a full journal.
func TestJournalLookupsSearchTheMerchantIndex(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		f    sandbox.JournalFilter
		want string
	}{
		{"merchant", sandbox.JournalFilter{MchID: "m1"}, "SEARCH journal USING INDEX journal_merchant (mchid=?)"},
		{"merchant, before", sandbox.JournalFilter{MchID: "m1", BeforeID: 9}, "SEARCH journal USING INDEX journal_merchant (mchid=? AND id<?)"},
		{"session", sandbox.JournalFilter{SessionID: "s1"}, "SEARCH journal USING INDEX journal_merchant (mchid=? AND id>?)"},
		{"session of a merchant", sandbox.JournalFilter{SessionID: "s1", MchID: "m1"}, "SEARCH journal USING INDEX journal_merchant (mchid=? AND id>?)"},
		{"notification", sandbox.JournalFilter{NotifyID: "n1", Limit: 1000}, "SEARCH journal USING INDEX journal_merchant (mchid=? AND id>?)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.dyn.Range(func(k, st any) bool { // only this query's statement stays
				st.(*sql.Stmt).Close()
				s.dyn.Delete(k)
				return true
			})
			if _, err := s.QueryJournal(ctx, c.f); err != nil {
				t.Fatal(err)
			}
			var plan []string
			s.dyn.Range(func(k, _ any) bool {
				text := k.(string)
				rows, err := s.rdb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+text, make([]any, strings.Count(text, "?"))...)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				return true
			})
			joined := strings.Join(plan, "\n")
			if !strings.Contains(joined, c.want) || strings.Contains(joined, "SCAN journal") {
				t.Errorf("plan of %+v:\n%s\nwant %q and no scan of the journal", c.f, joined, c.want)
			}
		})
	}
}
