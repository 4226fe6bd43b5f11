package sqlite

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// BenchmarkCommit measures Commit throughput with concurrent callers, as
// HTTP handlers would be: each commit inserts a session (a launch), and
// every other one also updates it (the user coming back).
func BenchmarkCommit(b *testing.B) {
	for _, callers := range []int{1, 16, 64} {
		b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
			s := openStore(b)
			ctx := context.Background()
			var seq atomic.Int64
			b.SetParallelism(callers)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					x := newSession(strconv.FormatInt(seq.Add(1), 10), "m1", time.Now())
					if err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{x}}); err != nil {
						b.Error(err)
						return
					}
					if !pb.Next() {
						return
					}
					x.State, x.Return = sandbox.SessionReturned, json.RawMessage(`{"scene":1038}`)
					if err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{x}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// BenchmarkAppendExchanges measures journal writes in the batches the
// journal sends.
func BenchmarkAppendExchanges(b *testing.B) {
	const batch = 100
	s := openStore(b)
	ctx := context.Background()
	x := sandbox.Exchange{Direction: sandbox.DirectionIn, Product: sandbox.ProductPayScore, MchID: "1900000001",
		SessionID: "s1", Method: "POST", URL: "/v3/payscore/serviceorder", Status: 200, LatencyMS: 0.4,
		RequestBody:  `{"out_order_no":"1234323JKHDFE1243252","service_id":"500001","risk_fund":{"name":"ESTIMATE_ORDER_COST","amount":10000}}`,
		ResponseBody: `{"state":"CREATED","order_id":"15646546545165651651","package":"DJIOSQPYWDxsjdldeskdsjfkdlsjfdk"}`}
	xs := make([]*sandbox.Exchange, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		now := time.Now()
		for i := range xs {
			c := x
			c.Time = now
			xs[i] = &c
		}
		if err := s.AppendExchanges(ctx, xs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "exchanges/s")
}

// BenchmarkGetSession measures the read on the return path.
func BenchmarkGetSession(b *testing.B) {
	s := openStore(b)
	ctx := context.Background()
	x := newSession("s1", "m1", time.Now())
	if err := s.Commit(ctx, &sandbox.Batch{Sessions: []*sandbox.Session{x}}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetSession(ctx, "s1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOpen measures start-up on an existing database: open, check the
// schema, prepare the statements, close.
func BenchmarkOpen(b *testing.B) {
	path := openStore(b).path
	for b.Loop() {
		s, err := Open(context.Background(), Options{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
