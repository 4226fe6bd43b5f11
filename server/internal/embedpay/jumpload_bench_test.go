package embedpay

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// BenchmarkJumpLoad is the bench's jump path under load, in process: 16
// concurrent callers open the cashier on one of 100 prepared trades whose
// user closes the half screen two seconds later (value 106,
// embedpay.closed); after the jumps the merchant's clock moves on and the
// benchmark waits until every session is resolved, so that each jump's
// resolution commit is counted too, as make bench's drain does. Under
// valgrind --tool=callgrind (GODEBUG=asyncpreemptoff=1) its instruction
// count per jump hardly depends on the machine's other load.
func BenchmarkJumpLoad(b *testing.B) {
	// newWorld's sandbox, but without the scans every 20 ms that tests
	// want: work that grows with wall time, not with jumps. The clock's
	// advance wakes the resolver.
	m := testMerchant("1230000109", "wx1234567890abcdef", docAppID, docSecret, docMerchant)
	s := apptest.Start(b, app.Options{
		Now: apptest.Frozen(base), Merchants: []*sandbox.Merchant{m}, Products: []app.Constructor{app.Product(New)},
		MaxPoll: time.Hour,
	})
	w := &world{tb: b, Sandbox: s, set: s.Schemas, p: s.Products[0].(*Product), m: m}
	w.recv = newReceiver(b, w.Merchants)
	bodies := make([][]byte, 100)
	for i := range bodies {
		payID := w.prepare("L-"+strconv.Itoa(i), "106")
		bodies[i], _ = json.Marshal(map[string]any{"caller": w.caller(), "args": cashierArgs(WeChatAppID, payID)})
	}
	url := w.Server.URL + "/miniprogram/v1/openEmbeddedMiniProgram"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var n atomic.Int64
	b.SetParallelism(8) // 16 callers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i%int64(len(bodies))]))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("jump: %d", resp.StatusCode)
				return
			}
		}
	})
	w.advance(3 * time.Second)
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Minute); ; {
		due, err := w.Store.NextDue(ctx, w.m.MchID)
		if err != nil {
			b.Fatal(err)
		}
		if due.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("sessions still pending, the next due at %v", due)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
