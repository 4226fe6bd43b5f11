package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/mpsandbox/mpsandbox/bench/internal/drive"
	"github.com/mpsandbox/mpsandbox/bench/internal/load"
	"github.com/mpsandbox/mpsandbox/internal/pgcluster"
)

// replicas is how many sandboxes share the database in the replicated
// delivery figure.
const replicas = 3

// postgres measures the PostgreSQL store: the jump path and the v3
// endpoint on one sandbox and on three sharing the database (the others
// idle in the first case), and notification delivery by one sandbox and by
// three (each notification claimed by one of them); the ledger is checked:
// each notification delivered once and journalled once.
// Without -database-url it starts a throwaway cluster on this machine, and
// skips the phase, saying so in the report, when PostgreSQL is not
// installed.
func (b *bench) postgres() error {
	url := b.c.DatabaseURL
	if url == "" {
		if _, err := pgcluster.Binaries(); err != nil {
			b.r.PG.Skipped = err.Error()
			fmt.Fprintln(os.Stderr, "postgres phase skipped:", err)
			return nil
		}
		c, err := pgcluster.Start()
		if err != nil {
			return err
		}
		defer c.Remove()
		if url, err = c.CreateDatabase(context.Background()); err != nil {
			return err
		}
	}
	servers := make([]*drive.Server, replicas)
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.Stop()
			}
		}
	}()
	start := func(i int) (err error) {
		log := filepath.Join(b.tmp, fmt.Sprintf("postgres-%d.log", i))
		servers[i], err = drive.Start(b.c.Bin, log, "--database-url", url, "--log-format", "json")
		return err
	}
	if err := start(0); err != nil {
		return err
	}
	s := servers[0]
	client := drive.NewClient(s.Base, b.c.Conns)
	creds, err := client.Credentials(drive.DemoMchID)
	if err != nil {
		return err
	}
	// The notification merchants exist before the other sandboxes start:
	// each sandbox loads the merchants at start and does not yet see one
	// another's new ones.
	var notifyCreds []*drive.Credentials
	for i := range 2 {
		cr, err := client.CreateMerchant(fmt.Sprintf("19000091%02d", i))
		if err != nil {
			return err
		}
		notifyCreds = append(notifyCreds, cr)
	}
	for i := 1; i < replicas; i++ {
		if err := start(i); err != nil {
			return err
		}
	}
	bodies, err := b.prepareTrades(client, creds)
	if err != nil {
		return err
	}
	script := load.WrkScript(drive.JumpPath, bodies, http.StatusOK)
	for round := range b.c.Rounds {
		res, err := load.Wrk(b.tmp, s.Base, script, b.c.Conns, b.c.Warmup, b.c.Duration, cpuOf(s))
		if err != nil {
			return err
		}
		b.r.PG.Jump = append(b.r.PG.Jump, res)
		fmt.Fprintf(os.Stderr, "round %d jump on PostgreSQL: %.0f req/s p50 %v p99 %v, server CPU %v/request, failures %d %s\n",
			round+1, res.RPS(), res.P50, res.P99, res.CPUPerRequest(), res.Failures, res.FirstFailure)
	}
	if b.r.PG.V3, err = b.v3(servers[:1], client, creds); err != nil {
		return fmt.Errorf("v3: %w", err)
	}
	if b.r.PG.Memory, err = drive.ReadMemory(s.Pid()); err != nil {
		return err
	}
	b.r.PG.Replicas = replicas
	if b.r.PG.JumpReplicas, err = b.jumpAcross(servers, script); err != nil {
		return fmt.Errorf("jump, %d servers: %w", replicas, err)
	}
	if b.r.PG.V3Replicas, err = b.v3(servers, client, creds); err != nil {
		return fmt.Errorf("v3, %d servers: %w", replicas, err)
	}
	// Half the SQLite phase's notifications at most: the first must not
	// fall due (60 s after its payment) before the last is prepared, and
	// preparing goes at the jump path's pace, lower on PostgreSQL (20,000
	// took over a minute on 2 cores).
	n := min(b.c.Notify, 10000)
	for i, group := range [][]*drive.Server{servers[:1], servers} {
		f, err := b.notify(group, notifyCreds[i], n)
		if err != nil {
			return fmt.Errorf("notifications, %d servers: %w", len(group), err)
		}
		b.r.PG.Notify = append(b.r.PG.Notify, f)
	}
	return nil
}

// jumpAcross runs wrk against each server at once, the connections shared
// out among them, and adds up what they measured: requests and failures,
// the servers' CPU; the latencies are the worst server's.
func (b *bench) jumpAcross(servers []*drive.Server, script string) (load.Result, error) {
	results := make([]load.Result, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(b.tmp, fmt.Sprintf("wrk-%d", i))
			if errs[i] = os.MkdirAll(dir, 0o755); errs[i] == nil {
				results[i], errs[i] = load.Wrk(dir, srv.Base, script, max(1, b.c.Conns/len(servers)), b.c.Warmup, b.c.Duration, cpuOf(srv))
			}
		}()
	}
	wg.Wait()
	var sum load.Result
	for i, r := range results {
		if errs[i] != nil {
			return sum, errs[i]
		}
		sum.Requests += r.Requests
		sum.Failures += r.Failures
		sum.ServerCPU += r.ServerCPU
		sum.Elapsed = max(sum.Elapsed, r.Elapsed)
		sum.P50, sum.P99, sum.Max = max(sum.P50, r.P50), max(sum.P99, r.P99), max(sum.Max, r.Max)
		if sum.FirstFailure == "" {
			sum.FirstFailure = r.FirstFailure
		}
	}
	fmt.Fprintf(os.Stderr, "jump on %d PostgreSQL sandboxes: %.0f req/s, worst p50 %v p99 %v, server CPU %v/request, failures %d %s\n",
		len(servers), sum.RPS(), sum.P50, sum.P99, sum.CPUPerRequest(), sum.Failures, sum.FirstFailure)
	return sum, nil
}
