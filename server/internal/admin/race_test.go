package admin_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/app/apptest"
	"github.com/mpsandbox/mpsandbox/server/internal/embedpay"
	"github.com/mpsandbox/mpsandbox/server/internal/issuer"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/payscore"
	"github.com/mpsandbox/mpsandbox/server/internal/repayment"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

const demo = "1230000109"

// patches is how many PATCHes race each scenario activation; waves of
// advances are how many times 40 advances race each other.
const (
	patches  = 5
	waves    = 4
	advances = 40
)

// send makes one admin call and fails t unless it answers 200.
func send(t *testing.T, base, method, path, body string) {
	req, err := http.NewRequest(method, base+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s %s %s: %d %s", method, path, body, resp.StatusCode, raw)
	}
}

// TestNoMerchantUpdateIsLost races, over HTTP, each of 30 scenario
// activations against PATCHes of the same merchant, then waves of 40 clock
// advances of one hour against each other; then it restarts (reopens the
// store) and checks that every acknowledged change is there.
func TestNoMerchantUpdateIsLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandbox.db")
	s := apptest.Start(t, app.Options{StorePath: path, Products: []app.Constructor{
		app.Product(payscore.New), app.Product(repayment.New), app.Product(embedpay.New), app.Product(issuer.New)}})
	base := s.Server.URL + "/sandbox/v1"
	// Two scenarios per product, so that each round's activation differs
	// from the one before it.
	ids := map[string][2]string{
		sandbox.ProductPayScore:  {"payscore.cancel", "payscore.expired"},
		sandbox.ProductRepayment: {"repayment.cancelled", "repayment.failed"},
		sandbox.ProductEmbedPay:  {"embedpay.failed", "embedpay.paying"},
		sandbox.ProductIssuer:    {"issuer.failure", "issuer.cancelled"},
	}
	products := []string{sandbox.ProductPayScore, sandbox.ProductRepayment, sandbox.ProductEmbedPay, sandbox.ProductIssuer}
	want := map[string]string{}
	var lastNames []string
	for round := range 30 {
		product := products[round%len(products)]
		id := ids[product][round/len(products)%2]
		want[product] = id
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(1 + patches)
		go func() {
			defer wg.Done()
			<-start
			send(t, base, http.MethodPut, "/merchants/"+demo+"/scenarios/"+product, `{"id":"`+id+`"}`)
		}()
		lastNames = lastNames[:0]
		for i := range patches {
			name := fmt.Sprintf("商户 round %d patch %d", round, i)
			lastNames = append(lastNames, name)
			go func() {
				defer wg.Done()
				<-start
				send(t, base, http.MethodPatch, "/merchants/"+demo, `{"name":"`+name+`"}`)
			}()
		}
		close(start)
		wg.Wait()
		m, _ := s.Merchants.Get(demo)
		if got := m.Active[product].ID; got != want[product] {
			t.Errorf("round %d: the PUT of %s %s answered 200, but the merchant's active %s scenario is %q", round, product, id, product, got)
		}
	}

	before := s.Clock.Offset(demo)
	for range waves {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range advances {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				send(t, base, http.MethodPost, "/clock/advance", `{"mchid":"`+demo+`","by":"1h"}`)
			}()
		}
		close(start)
		wg.Wait()
	}
	const total = waves * advances * time.Hour
	if got := s.Clock.Offset(demo) - before; got != total {
		t.Errorf("after %d advances of 1h the clock moved %s", waves*advances, got)
	}

	// Restart: close the sandbox, reopen its store, load its merchants.
	s.Server.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock := sandbox.NewClock(1, nil)
	dir, err := merchant.Load(ctx, st, clock)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := dir.Get(demo)
	if got := clock.Offset(demo) - before; got != total {
		t.Errorf("after a restart the clock is %s ahead, want the %d advances' %s", got, waves*advances, total)
	}
	for product, id := range want {
		if got := m.Active[product].ID; got != id {
			t.Errorf("after a restart the active %s scenario is %q, want %q", product, got, id)
		}
	}
	found := false
	for _, n := range lastNames {
		found = found || m.Name == n
	}
	if !found {
		t.Errorf("after a restart the name is %q, want one of the last round's %q", m.Name, lastNames)
	}
}
