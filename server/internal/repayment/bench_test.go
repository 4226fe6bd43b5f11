package repayment

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// BenchmarkLaunch is the product's share of the jump path: both schemas,
// the fixture check, the user read and the scenario pick.
func BenchmarkLaunch(b *testing.B) {
	w := newWorld(b)
	u := w.users(w.m.MchID, StateOverdue)[0]
	args, _ := json.Marshal(navigateArgs(w.extraData(u.OpenID, seedNonce)))
	call := &sandbox.Call{API: sandbox.APINavigateToMiniProgram, Args: args, Merchant: w.m,
		Caller: sandbox.Caller{AppID: w.m.AppID}}
	doc, _ := schema.Decode(args)
	call.Doc = doc.(map[string]any)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.p.Launch(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueryState is one signed v2 query through HTTP on loopback.
func BenchmarkQueryState(b *testing.B) {
	w := newWorld(b)
	openid := w.users(w.m.MchID, StateOverdue)[0].OpenID
	b.ReportAllocs()
	for b.Loop() {
		w.state(openid)
	}
}
