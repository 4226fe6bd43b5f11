package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/journal"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// counting passes exchanges to the real journal and says when it has seen
// them all.
type counting struct {
	j      *journal.Journal
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (c *counting) Record(x *sandbox.Exchange) {
	if x.Status != http.StatusNoContent {
		panic(fmt.Sprintf("attempt %+v not acknowledged", x))
	}
	c.j.Record(x)
	if c.n.Add(1) == c.target {
		close(c.done)
	}
}

// BenchmarkDeliver measures deliveries per second to an acknowledging
// loopback receiver, each committed to SQLite and journalled there.
func BenchmarkDeliver(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hits atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()
	st := openStore(b)
	j := journal.New(st, journal.Options{})
	go j.Run(ctx)
	defer j.Close()

	clock := sandbox.NewClock(1, nil)
	if err := st.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{merchant("m1")}}); err != nil {
		b.Fatal(err)
	}
	payload := json.RawMessage(`{"id":"EV-2018022511223320873","event_type":"PAYSCORE.USER_CONFIRM","resource":{"ciphertext":"…"}}`)
	due := clock.Now("m1")
	for i := 0; i < b.N; i += 500 {
		batch := &sandbox.Batch{}
		for k := i; k < min(i+500, b.N); k++ {
			batch.Notifications = append(batch.Notifications, &sandbox.Notification{
				ID: fmt.Sprintf("N-%08d", k), MchID: "m1", Product: product, URL: rc.URL, Payload: payload,
				State: sandbox.NotifyPending, DueAt: due,
			})
		}
		if err := st.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	rec := &counting{j: j, target: int64(b.N), done: make(chan struct{})}
	w := New(Options{Store: st, Clock: clock, Journal: rec, Builders: map[string]sandbox.NotifyBuilder{product: builder{}}})

	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	<-rec.done
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	if got := hits.Load(); got != int64(b.N) {
		b.Errorf("receiver got %d notifications, want %d: a row was sent twice", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}
