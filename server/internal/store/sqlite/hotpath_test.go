package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// TestRecordCacheServesWhatIsCommitted checks that reads through the cache
// give what a read of the file gives: the newest version, its aliases
// (including ones an update added), its times, and copies a caller may
// change freely.
func TestRecordCacheServesWhatIsCommitted(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	r := newRecord("m1", "K1", "alias-a")
	commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{r}})
	up := &sandbox.Record{Kind: r.Kind, MchID: "m1", Key: "K1", Version: r.Version, Aliases: []string{"alias-b"},
		Data: json.RawMessage(`{"n":2}`)}
	commit(t, s, &sandbox.Batch{Updates: []*sandbox.Record{up}})

	cached, err := s.GetRecord(ctx, r.Kind, "m1", "K1")
	if err != nil {
		t.Fatal(err)
	}
	byAlias, err := s.FindRecord(ctx, r.Kind, "m1", "alias-b")
	if err != nil {
		t.Fatal(err)
	}
	// What the file holds, read past the cache.
	fromFile, err := readOne(s, ctx, rRecord, scanRecord, func() string { return "" }, r.Kind, "m1", "K1")
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*sandbox.Record{"GetRecord": cached, "FindRecord": byAlias} {
		if !reflect.DeepEqual(got, fromFile) {
			t.Errorf("%s through the cache = %+v\nthe file holds      %+v", name, got, fromFile)
		}
	}
	if cached.Version != 2 || string(cached.Data) != `{"n":2}` || len(cached.Aliases) != 2 {
		t.Errorf("cached record = %+v, want version 2, the new data and both aliases", cached)
	}

	// A caller changing what it got changes nothing for the next caller.
	cached.Data[1] = 'X'
	cached.Aliases[0] = "changed"
	again, _ := s.GetRecord(ctx, r.Kind, "m1", "K1")
	if string(again.Data) != `{"n":2}` || again.Aliases[0] != "alias-a" {
		t.Errorf("a caller's change reached the cache: %+v", again)
	}

	// A failed batch (stale version) leaves the cache as it was.
	stale := &sandbox.Record{Kind: r.Kind, MchID: "m1", Key: "K1", Version: 1, Data: json.RawMessage(`{"n":3}`)}
	wantCode(t, s.Commit(ctx, &sandbox.Batch{Updates: []*sandbox.Record{stale}}), sandbox.CodeConflict)
	if got, _ := s.GetRecord(ctx, r.Kind, "m1", "K1"); got.Version != 2 || string(got.Data) != `{"n":2}` {
		t.Errorf("after a refused update the cache serves %+v", got)
	}
}

// TestRecordCacheFillsFromTheFile checks a cold cache (a restart) fills from
// the file and stays bounded when more records are read than it keeps.
func TestRecordCacheFillsFromTheFile(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/mpsandbox.db"
	s := openStore(t, path)
	n := recordCacheSize + recordCacheSize/2
	recs := make([]*sandbox.Record, n)
	for i := range recs {
		recs[i] = newRecord("m1", fmt.Sprintf("K%05d", i), fmt.Sprintf("A%05d", i))
	}
	commit(t, s, &sandbox.Batch{Creates: recs})
	if got := len(s.records.byKey); got > recordCacheSize {
		t.Fatalf("cache holds %d records, more than its bound %d", got, recordCacheSize)
	}
	s.Close()

	s = openStore(t, path)
	if len(s.records.byKey) != 0 {
		t.Fatalf("a new store starts with %d cached records", len(s.records.byKey))
	}
	for i := range n {
		got, err := s.FindRecord(ctx, recs[0].Kind, "m1", fmt.Sprintf("A%05d", i))
		if err != nil || got.Key != fmt.Sprintf("K%05d", i) {
			t.Fatalf("FindRecord(A%05d) = %+v, %v", i, got, err)
		}
	}
	if got := len(s.records.byKey); got == 0 || got > recordCacheSize {
		t.Errorf("after %d reads the cache holds %d records, want 1..%d", n, got, recordCacheSize)
	}
	if got := len(s.records.byAlias); got > len(s.records.byKey) {
		t.Errorf("%d aliases cached for %d records: evicted records left aliases behind", got, len(s.records.byKey))
	}
	_, err := s.FindRecord(ctx, recs[0].Kind, "m1", "no-such-alias")
	wantCode(t, err, sandbox.CodeNotFound)
}

// TestRecordCacheNeverGoesBack races readers against a writer that bumps a
// record over and over, with the cache squeezed so that evictions happen
// too: once a reader has seen version v (or the writer has committed it),
// no later read returns an older one.
func TestRecordCacheNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	const records = 8
	recs := make([]*sandbox.Record, records)
	for i := range recs {
		recs[i] = newRecord("m1", fmt.Sprintf("R%d", i), fmt.Sprintf("alias-%d", i))
	}
	commit(t, s, &sandbox.Batch{Creates: recs})
	var committed [records]atomic.Int64
	for i := range committed {
		committed[i].Store(1)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for round := range 150 {
			i := round % records
			r := *recs[i]
			r.Data = json.RawMessage(fmt.Sprintf(`{"round":%d}`, round))
			if err := s.Commit(ctx, &sandbox.Batch{Updates: []*sandbox.Record{&r}}); err != nil {
				t.Errorf("update: %v", err)
				return
			}
			recs[i].Version = r.Version
			committed[i].Store(r.Version)
			if round%10 == 0 {
				// Evict everything, as a full cache would.
				s.records.mu.Lock()
				for k := range s.records.byKey {
					s.records.dropLocked(k)
				}
				s.records.mu.Unlock()
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seen [records]int64
			for {
				select {
				case <-done:
					return
				default:
				}
				for i := range records {
					floor := max(seen[i], committed[i].Load())
					var got *sandbox.Record
					var err error
					if i%2 == 0 {
						got, err = s.GetRecord(ctx, recs[0].Kind, "m1", fmt.Sprintf("R%d", i))
					} else {
						got, err = s.FindRecord(ctx, recs[0].Kind, "m1", fmt.Sprintf("alias-%d", i))
					}
					if err != nil {
						t.Errorf("read R%d: %v", i, err)
						return
					}
					if got.Version < floor {
						t.Errorf("R%d read at version %d after version %d was seen or committed", i, got.Version, floor)
						return
					}
					seen[i] = got.Version
				}
			}
		}()
	}
	wg.Wait()
}

// TestCheckpointerCopiesTheWAL checks that commits reach the database file
// while the store runs: the writer no longer checkpoints, so without the
// checkpointer the file would stay as created until Close.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	path := t.TempDir() + "/mpsandbox.db"
	s := openStore(t, path)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	for i := range 50 {
		recs := make([]*sandbox.Record, 20)
		for j := range recs {
			recs[j] = newRecord("m1", fmt.Sprintf("K%d-%d", i, j))
		}
		commit(t, s, &sandbox.Batch{Creates: recs})
	}
	waitFor(t, func() bool { return size() > before })
}

// TestPruneJournalInChunks prunes more entries than one chunk, by count and
// then by age, and checks exactly the newest survive.
func TestPruneJournalInChunks(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	base := time.Now().Add(-time.Hour).UTC()
	n := 3*pruneChunk + 17
	xs := make([]*sandbox.Exchange, n)
	for i := range xs {
		xs[i] = &sandbox.Exchange{Time: base.Add(time.Duration(i) * time.Second), Direction: sandbox.DirectionIn,
			Method: "POST", URL: fmt.Sprintf("/x/%d", i), Status: 200}
	}
	if err := s.AppendExchanges(ctx, xs); err != nil {
		t.Fatal(err)
	}
	keep := 100
	got, err := s.PruneJournal(ctx, keep, time.Time{}, 0)
	if err != nil || got != n-keep {
		t.Fatalf("PruneJournal(keep %d) = %d, %v; want %d", keep, got, err, n-keep)
	}
	left, err := s.QueryJournal(ctx, sandbox.JournalFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != keep || left[0].ID != xs[n-1].ID || left[keep-1].ID != xs[n-keep].ID {
		t.Fatalf("after pruning %d entries remain, ids %d..%d; want the newest %d, ids %d..%d",
			len(left), left[len(left)-1].ID, left[0].ID, keep, xs[n-keep].ID, xs[n-1].ID)
	}
	// By age: everything before the last 10 seconds' entries.
	got, err = s.PruneJournal(ctx, 0, base.Add(time.Duration(n-10)*time.Second), 0)
	if err != nil || got != keep-10 {
		t.Fatalf("PruneJournal(by age) = %d, %v; want %d", got, err, keep-10)
	}
}

// TestRecordCacheAfterACommitSeenElsewhere races a reader that learns of a
// commit from another object of the same batch — a session read from the
// file, as a caller's long poll does — against the writer: once it has
// seen the session's new version, the record committed with it must not
// come back older from the cache. (The writer used to update the cache
// just after the commit, leaving a moment when the file had the new
// versions and the cache the old.)
func TestRecordCacheAfterACommitSeenElsewhere(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	rec := newRecord("m1", "R", "alias-r")
	x := newSession("S", "m1", time.Now())
	commit(t, s, &sandbox.Batch{Creates: []*sandbox.Record{rec}, Sessions: []*sandbox.Session{x}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := range 300 {
			r := *rec
			r.Data = json.RawMessage(fmt.Sprintf(`{"round":%d}`, round))
			if err := s.Commit(ctx, &sandbox.Batch{Updates: []*sandbox.Record{&r}, Sessions: []*sandbox.Session{x}}); err != nil {
				t.Errorf("commit: %v", err)
				return
			}
			rec.Version = r.Version
		}
	}()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				sess, err := s.GetSession(ctx, "S")
				if err != nil {
					t.Errorf("read session: %v", err)
					return
				}
				got, err := s.FindRecord(ctx, rec.Kind, "m1", "alias-r")
				if err != nil {
					t.Errorf("read record: %v", err)
					return
				}
				// Both start at 1 and move together.
				if got.Version < sess.Version {
					t.Errorf("the session is at version %d, the record committed with it reads as version %d", sess.Version, got.Version)
					return
				}
			}
		}()
	}
	wg.Wait()
}
