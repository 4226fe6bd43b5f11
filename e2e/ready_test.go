package e2e

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/testcontainers/testcontainers-go/wait"
)

// readyz waits until GET <url>/readyz answers 200, polling the URL itself.
//
// wait.ForHTTP cannot be used: with host networking it does resolve the port
// (MappedPort answers the port asked about), but it polls target.Host(),
// which, when the tests themselves run in a container (/.dockerenv, as in
// CI here), is the docker bridge's gateway address, not 127.0.0.1 — and the
// server listens on 127.0.0.1 only. Host networking means the server shares
// the daemon's network namespace, so the URL the tests use is the one to
// poll.
type readyz struct {
	url     string
	every   time.Duration // between polls: short, so a start costs tens of ms
	timeout time.Duration
}

var _ wait.Strategy = readyz{}

// String names the strategy in testcontainers' log.
func (r readyz) String() string { return "GET " + r.url + "/readyz answers 200" }

// WaitUntilReady implements wait.Strategy.
func (r readyz) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	// A server that exits (bad flag, port taken) would otherwise be waited
	// for until the timeout; the state is asked for now and then, not on
	// every poll, to keep the daemon out of the loop.
	checkState := time.NewTicker(250 * time.Millisecond)
	defer checkState.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/readyz not ready: %w (last: %v)", r.url, ctx.Err(), last)
		case <-checkState.C:
			st, err := target.State(ctx)
			if err != nil {
				return fmt.Errorf("container state: %w", err)
			}
			if !st.Running {
				return fmt.Errorf("container %s (exit code %d) before %s/readyz answered", st.Status, st.ExitCode, r.url)
			}
		case <-tick.C:
		}
	}
}
