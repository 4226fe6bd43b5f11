package report_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/server/internal/report"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// BenchmarkBuildFullWindow builds the report of a merchant whose window
// holds the most a report reads: 20,000 journal entries on a real SQLite
// file, 2,000 P云 payments (prepare, jump, return with status 0, a
// notification attempt, and six other calls each) and not one trade/query
// — the worst case for the checks that look for a query after each
// return. docs/PERFORMANCE.md quotes it:
//
//	go test ./server/internal/report -run '^$' -bench BuildFullWindow -benchtime 5x
func BenchmarkBuildFullWindow(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	set, err := schema.Load(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	cat, err := scenario.Load(scenarios.FS, set)
	if err != nil {
		b.Fatal(err)
	}
	const mchid, payments = "1230000401", report.DefaultMaxEntries / 10
	m := &sandbox.Merchant{MchID: mchid, Name: "bench", AppID: "wxbench", PCloudAppSecret: "secret", CreatedAt: time.Now()}
	if err := st.Commit(ctx, &sandbox.Batch{Merchants: []*sandbox.Merchant{m}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	var xs []*sandbox.Exchange
	var sessions []*sandbox.Session
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Millisecond) }
	for i := range payments {
		order, sid := fmt.Sprintf("BENCH%06d", i), fmt.Sprintf("ses_bench%06d", i)
		sessions = append(sessions, &sandbox.Session{ID: sid, MchID: mchid, Product: sandbox.ProductEmbedPay, API: sandbox.APIOpenEmbeddedMiniProgram,
			Scenario: "embedpay.paying", Mode: sandbox.ModeAuto, State: sandbox.SessionReturned, Ref: order, DueAt: start})
		in := func(k int, method, url, body string, status int) *sandbox.Exchange {
			return &sandbox.Exchange{Time: at(i*10 + k), Direction: sandbox.DirectionIn, Product: sandbox.ProductEmbedPay, MchID: mchid,
				Method: method, URL: url, RequestBody: body, Status: status, Scenario: "embedpay.paying"}
		}
		launch := in(1, "POST", "/miniprogram/v1/openEmbeddedMiniProgram", `{"caller":{"appId":"wxbench"},"args":{}}`, 200)
		launch.SessionID = sid
		back := in(2, "GET", "/miniprogram/v1/sessions/"+sid+"/return?wait=5s", "", 200)
		back.SessionID, back.ResponseBody = sid, `{"scene":1038,"referrerInfo":{"extraData":{"pay_order":"`+order+`","status":0}}}`
		xs = append(xs, in(0, "POST", "/gate/1.0/payment/trade/prepare", "app_id=a&pay_order="+order+"&value=105&sign=X", 200), launch, back,
			&sandbox.Exchange{Time: at(i*10 + 3), Direction: sandbox.DirectionOut, Product: sandbox.ProductEmbedPay, MchID: mchid,
				NotifyID: fmt.Sprintf("ntf_bench%06d", i), Attempt: 1, Method: "POST", URL: "http://127.0.0.1:9/notify",
				RequestBody: "pay_order=" + order + "&status=0&trade_time=1&sign=X", Status: 200, ResponseBody: `{"code":"1001"}`})
		for k := 4; k < 10; k++ {
			xs = append(xs, in(k, "GET", "/miniprogram/v1/sessions/"+sid, "", 200))
		}
	}
	if err := st.Commit(ctx, &sandbox.Batch{Sessions: sessions}); err != nil {
		b.Fatal(err)
	}
	if err := st.AppendExchanges(ctx, xs); err != nil {
		b.Fatal(err)
	}
	builder := &report.Builder{Store: st, Scenarios: cat, Products: []string{sandbox.ProductEmbedPay}, Acknowledged: map[string]func(int, []byte) bool{
		sandbox.ProductEmbedPay: func(status int, _ []byte) bool { return status == 200 },
	}}
	b.ResetTimer()
	for range b.N {
		r, err := builder.Build(ctx, mchid, time.Time{}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if r.Entries != len(xs) || r.Truncated {
			b.Fatalf("read %d entries (truncated %v), want %d", r.Entries, r.Truncated, len(xs))
		}
		if c := verdicts(r)["embedpay return.queried"]; c.Verdict != report.Failed || c.EvidenceTotal != payments {
			b.Fatalf("return.queried: %s with %d entries, want failed with %d", c.Verdict, c.EvidenceTotal, payments)
		}
	}
}
