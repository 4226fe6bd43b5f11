package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/store/pgtest"
)

// BenchmarkPruneJournalBytes times the byte-bounded prune on a journal of
// 100,000 entries (the default --journal-max-entries) of 2 KB each: a round
// that finds the journal over its bound by a chunk, one that finds it over
// by 10,000 entries (the journal asks for a prune every 10,000 appends) and
// one that finds nothing to delete.
//
//	go test -run '^$' -bench PruneJournalBytes -benchtime 20x ./server/internal/store/postgres
func BenchmarkPruneJournalBytes(b *testing.B) {
	const entries, size = 100_000, 2048
	s := openStore(b, pgtest.NewDatabase(b))
	ctx := context.Background()
	fill := func(n int) {
		b.Helper()
		if _, err := s.pool.Exec(ctx, `INSERT INTO journal (time, mchid, product, session_id, notify_id, direction, size, doc)
			SELECT $1, 'm1', 'embedpay', '', '', 'in', $2, '\x7b7d'::bytea FROM generate_series(1, $3)`,
			time.Now().UnixNano(), size, n); err != nil {
			b.Fatal(err)
		}
	}
	fill(entries)
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE journal"); err != nil {
		b.Fatal(err)
	}
	bound := int64(entries * size)
	b.Run("over-by-one-chunk", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			fill(pruneChunk)
			b.StartTimer()
			n, err := s.PruneJournal(ctx, 0, time.Time{}, bound)
			if err != nil || n != pruneChunk {
				b.Fatalf("pruned %d, %v; want %d", n, err, pruneChunk)
			}
		}
	})
	b.Run("over-by-ten-thousand", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			fill(10_000)
			b.StartTimer()
			n, err := s.PruneJournal(ctx, 0, time.Time{}, bound)
			if err != nil || n != 10_000 {
				b.Fatalf("pruned %d, %v; want 10000", n, err)
			}
		}
	})
	b.Run("under-the-bound", func(b *testing.B) {
		for b.Loop() {
			n, err := s.PruneJournal(ctx, 0, time.Time{}, bound)
			if err != nil || n != 0 {
				b.Fatalf("pruned %d, %v; want none", n, err)
			}
		}
	})
}
