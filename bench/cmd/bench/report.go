package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/bench/internal/drive"
	"github.com/mpsandbox/mpsandbox/bench/internal/load"
)

// The markers around the section `make bench` rewrites.
const (
	beginMarker = "<!-- make bench: begin -->"
	endMarker   = "<!-- make bench: end -->"
)

// Targets of issue 9.
const (
	targetJumpRatio  = 0.45
	targetJumpP99    = 15 * time.Millisecond
	targetV3Ratio    = 0.8
	targetNotifyRate = 2000.0
	targetStart      = 50 * time.Millisecond
	targetImageBytes = 30e6 // decimal megabytes, as docker images shows them
	targetLoadedKiB  = 60 << 10
)

// NotifyFigures is the delivery measurement.
type NotifyFigures struct {
	Count      int // notifications released at once
	Servers    int // sandboxes sharing the store that delivered them
	Attempts   int // requests the receiver got
	Journalled int // outbound journal entries with status 200
	// The ledger: deliveries of a notification the receiver had already
	// acknowledged, and the notifications the journal shows a 200 for.
	Duplicates     int
	JournalledOnce int
	Elapsed        time.Duration
}

// Once is whether every notification was delivered once and journalled
// once: one attempt each, no repeat at the receiver, one journal entry
// for each.
func (n NotifyFigures) Once() bool {
	return n.Attempts == n.Count && n.Duplicates == 0 && n.Journalled == n.Attempts && n.JournalledOnce == n.Count
}

// Rate is deliveries per second.
func (n NotifyFigures) Rate() float64 { return load.PerSecond(int64(n.Count), n.Elapsed) }

// Report is everything one run measured.
type Report struct {
	Started               time.Time
	Took                  time.Duration
	Machine               Machine
	Config                Config
	LoadBefore, LoadAfter string

	SignOneCore, SignAllCores float64 // signatures per second

	Ref, Jump, JumpNoLog, JumpMemory []load.Result
	// JumpBefore is the jump path of Config.JumpBefore's server, in the same
	// rounds; JumpBeforeSkipped says why it is missing.
	JumpBefore        []load.Result
	JumpBeforeSkipped string
	// Drain is how long after the jump load every session was resolved.
	Drain  time.Duration
	V3     load.Result
	Notify NotifyFigures

	FreshStart time.Duration
	Starts     []time.Duration

	// Testkit is this tree's testkit starts, TestkitBefore those of
	// Config.TestkitBefore.
	Testkit, TestkitBefore TestkitFigures

	ContainerFresh  time.Duration
	ContainerStarts []time.Duration
	ImageBytes      int64

	Idle, Loaded drive.Memory
	LoadRun      load.Result

	PG PGFigures
}

// PGFigures are the postgres phase's: one sandbox on a PostgreSQL database
// (jump path, v3), and notification delivery by one and by several
// sandboxes sharing it.
type PGFigures struct {
	Skipped string // why the phase did not run, when it did not
	Jump    []load.Result
	V3      load.Result
	// The same on three sandboxes sharing the database, the load spread
	// over them (the server CPU is theirs together).
	JumpReplicas, V3Replicas load.Result
	Replicas                 int
	Notify                   []NotifyFigures
	// RSS of the first sandbox after its load.
	Memory drive.Memory
}

// best is the round with the most requests per second.
func best(rs []load.Result) load.Result {
	if len(rs) == 0 {
		return load.Result{}
	}
	return slices.MaxFunc(rs, func(a, b load.Result) int {
		switch {
		case a.RPS() < b.RPS():
			return -1
		case a.RPS() > b.RPS():
			return 1
		}
		return 0
	})
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Markdown renders the report as the section of docs/PERFORMANCE.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.Config
	m := r.Machine
	w("%s\n", beginMarker)
	w("## `make bench` — %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	w("Machine: %s, %d cores, %s, Linux %s, %s, %s; commit `%s`. Load average (1, 5, 15 min) %s at the start and %s at the end: ",
		m.CPU, m.Cores, m.Memory, m.Kernel, m.Go, m.Wrk, m.Commit, r.LoadBefore, r.LoadAfter)
	w("the machine is shared with other builds, so every rate is a lower bound and every time an upper bound.\n\n")
	w("Command: `make bench` (`go run ./bench/cmd/bench -connections %d -duration %v -warmup %v -rounds %d`), %s in all. ",
		c.Conns, c.Duration, c.Warmup, c.Rounds, r.Took.Round(time.Second))
	w("The load generator (wrk with one thread and %d connections, or the Go generator for v3) shares the cores with the server. ", c.Conns)
	w("The reference is `bench/cmd/refserver`: a bare `net/http` handler that reads and decodes the same JSON body and writes a fixed answer. ")
	w("Reference and jump path alternate for %d rounds of %v after %v of warm-up; the best round of each is shown.\n\n", c.Rounds, c.Duration, c.Warmup)

	ref, jump, noLog := best(r.Ref), best(r.Jump), best(r.JumpNoLog)
	w("| figure | measured | compared with | ratio | target | |\n|---|---|---|---|---|---|\n")
	if jump.Requests > 0 {
		ratio := jump.RPS() / ref.RPS()
		w("| jump path `POST /miniprogram/v1/openEmbeddedMiniProgram`, access log on (default) | %.0f req/s, p50 %s, p99 %s | reference %.0f req/s, p50 %s, p99 %s | %.2f | ≥ %.2f × reference | %s |\n",
			jump.RPS(), ms(jump.P50), ms(jump.P99), ref.RPS(), ms(ref.P50), ms(ref.P99), ratio, targetJumpRatio, verdict(ratio >= targetJumpRatio))
		w("| jump path p99 | %s | | | ≤ %s | %s |\n", ms(jump.P99), ms(targetJumpP99), verdict(jump.P99 <= targetJumpP99))
		refCPU, jumpCPU := bestCPU(r.Ref), bestCPU(r.Jump)
		w("| server CPU per request (hardly depends on the machine's other load) | jump %.0f µs | reference %.0f µs | %.2f | | |\n",
			us(jumpCPU), us(refCPU), us(refCPU)/us(jumpCPU))
		if noLog.Requests > 0 {
			noLogCPU := bestCPU(r.JumpNoLog)
			w("| jump path, `--access-log=false` (a second sandbox, same rounds) | %.0f req/s, p50 %s, p99 %s; CPU %.0f µs per request | reference | %.2f | | |\n",
				noLog.RPS(), ms(noLog.P50), ms(noLog.P99), us(noLogCPU), noLog.RPS()/ref.RPS())
		}
		if mem := best(r.JumpMemory); mem.Requests > 0 {
			w("| jump path, `--in-memory` store (a third sandbox, same rounds): the same work without a file | %.0f req/s, p50 %s, p99 %s; CPU %.0f µs per request | reference | %.2f | | |\n",
				mem.RPS(), ms(mem.P50), ms(mem.P99), us(bestCPU(r.JumpMemory)), mem.RPS()/ref.RPS())
		}
		r.beforeRow(w, jumpCPU)
		w("| sessions still pending after the load (each is due 2 s after its jump) | all resolved %s after the load stopped | | | ≤ 2 s + scan | %s |\n",
			ms(r.Drain), verdict(r.Drain <= 3500*time.Millisecond))
		fails := failures(r.Jump) + failures(r.JumpNoLog) + failures(r.JumpMemory) + failures(r.JumpBefore)
		w("| failures during the jump rounds | %d | | | 0 | %s |\n", fails, verdict(fails == 0))
	}
	if r.V3.Requests > 0 {
		one, all := r.V3.RPS()/r.SignOneCore, r.V3.RPS()/r.SignAllCores
		w("| v3 `POST /v3/payscore/serviceorder` (request verified, order committed, answer signed) | %.0f req/s, p50 %s, p99 %s | `go test -bench RSASign ./server/internal/wxsign` (one goroutine): %.0f signatures/s | %.2f | ≥ %.2f × that rate | %s |\n",
			r.V3.RPS(), ms(r.V3.P50), ms(r.V3.P99), r.SignOneCore, one, targetV3Ratio, verdict(one >= targetV3Ratio && r.V3.Failures == 0))
		w("| v3, against every core signing at once | | RSA-2048 signing on all %d cores in parallel: %.0f/s | %.2f | (stricter) | %s |\n",
			m.Cores, r.SignAllCores, all, verdict(all >= targetV3Ratio))
		w("| v3 server CPU per request | %.0f µs | one signature: %.0f µs | %.2f | | |\n",
			us(r.V3.CPUPerRequest()), 1e6/r.SignOneCore, 1e6/r.SignOneCore/us(r.V3.CPUPerRequest()))
	}
	if r.Notify.Count > 0 {
		w("| notification delivery to an acknowledging loopback receiver | %.0f deliveries/s (%d released at once, delivered in %s) | | | ≥ %.0f/s | %s |\n",
			r.Notify.Rate(), r.Notify.Count, ms(r.Notify.Elapsed), targetNotifyRate, verdict(r.Notify.Rate() >= targetNotifyRate))
		w("| attempts journalled | %d of %d | | | all | %s |\n", r.Notify.Journalled, r.Notify.Attempts, verdict(r.Notify.Journalled >= r.Notify.Attempts))
	}
	r.pgRows(w)
	if len(r.Starts) > 0 {
		mx := slices.Max(r.Starts)
		w("| start-to-ready of the binary (exec → first 200 from `/readyz`), existing data dir | median %s, max %s of %d | | | ≤ %s | %s |\n",
			ms(median(r.Starts)), ms(mx), len(r.Starts), ms(targetStart), verdict(median(r.Starts) <= targetStart))
	}
	if r.FreshStart > 0 {
		w("| start-to-ready, fresh data dir (creates the database and the demo merchant's RSA keys) | %s | | | | |\n", ms(r.FreshStart))
	}
	r.testkitRows(w)
	if r.ImageBytes > 0 {
		w("| container start-to-ready (`docker run` → first 200), existing volume | median %s of %d (fresh volume: %s) | | | | |\n",
			ms(median(r.ContainerStarts)), len(r.ContainerStarts), ms(r.ContainerFresh))
		w("| image size (`%s`) | %.1f MB (%.1f MiB) | | | ≤ 30 MB | %s |\n", c.Image, float64(r.ImageBytes)/1e6, float64(r.ImageBytes)/(1<<20), verdict(r.ImageBytes <= targetImageBytes))
	}
	if r.Idle.RSSKiB > 0 {
		w("| RSS idle (VmRSS 2 s after start) | %s MiB | | | | |\n", drive.MiB(r.Idle.RSSKiB))
	}
	if r.Loaded.RSSKiB > 0 {
		w("| RSS after %v of jump load (%.0f req/s, %d connections) | %s MiB (peak VmHWM %s MiB) | | | ≤ 60 MiB | %s |\n",
			c.Soak, r.LoadRun.RPS(), c.Conns, drive.MiB(r.Loaded.RSSKiB), drive.MiB(r.Loaded.PeakKiB), verdict(r.Loaded.PeakKiB <= targetLoadedKiB))
	}
	w("\nRounds, req/s (server CPU per request): reference %s; jump %s; jump at `%s` %s; jump without access log %s; jump with the store in memory %s; jump on PostgreSQL %s.\n",
		rates(r.Ref), rates(r.Jump), c.JumpBefore, rates(r.JumpBefore), rates(r.JumpNoLog), rates(r.JumpMemory), rates(r.PG.Jump))
	if r.JumpBeforeSkipped != "" {
		w("\nThe jump path at `%s` was not measured: %s.\n", c.JumpBefore, r.JumpBeforeSkipped)
	}
	if r.PG.Skipped != "" {
		w("\nThe PostgreSQL figures were not measured: %s.\n", r.PG.Skipped)
	} else if len(r.PG.Jump) > 0 || r.PG.V3.Requests > 0 {
		w("\nOn PostgreSQL the server CPU per request is the sandbox's alone: the database server's processes, on the same cores, are not counted.\n")
	}
	w("%s\n", endMarker)
	return b.String()
}

// bestCPU is the least server CPU per request among the rounds.
func bestCPU(rs []load.Result) time.Duration {
	var least time.Duration
	for _, r := range rs {
		if c := r.CPUPerRequest(); c > 0 && (least == 0 || c < least) {
			least = c
		}
	}
	return least
}

// targetBeforeCPU is issue 15's bound on the jump path's server CPU per
// request against the build before it (-jump-before): a third lower.
const targetBeforeCPU = 2.0 / 3

// beforeRow compares the jump path with the -jump-before build's, measured
// in the same rounds: the least CPU per request of each, and the mean of
// the rounds, whose ratio the target reads.
func (r *Report) beforeRow(w func(string, ...any), jumpCPU time.Duration) {
	before := best(r.JumpBefore)
	if before.Requests == 0 {
		return
	}
	beforeCPU := bestCPU(r.JumpBefore)
	ratio := meanCPU(r.Jump) / meanCPU(r.JumpBefore)
	w("| jump path at `%s` (issue 15's before: its server, access log on, a fourth sandbox in the same rounds) | %.0f req/s, p50 %s, p99 %s; CPU %.0f µs per request (mean of the rounds %.0f µs) | this tree: CPU %.0f µs (mean %.0f µs), %.0f req/s | %.2f | CPU ≤ %.2f × before | %s |\n",
		r.Config.JumpBefore, before.RPS(), ms(before.P50), ms(before.P99), us(beforeCPU), meanCPU(r.JumpBefore),
		us(jumpCPU), meanCPU(r.Jump), best(r.Jump).RPS(), ratio, targetBeforeCPU, verdict(ratio <= targetBeforeCPU))
}

// meanCPU is the mean server CPU per request of the rounds, in µs.
func meanCPU(rs []load.Result) float64 {
	var sum float64
	for _, r := range rs {
		sum += us(r.CPUPerRequest())
	}
	return sum / float64(max(len(rs), 1))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func failures(rs []load.Result) int64 {
	var n int64
	for _, r := range rs {
		n += r.Failures
	}
	return n
}

func rates(rs []load.Result) string {
	if len(rs) == 0 {
		return "—"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.0f (%.0f µs)", r.RPS(), us(r.CPUPerRequest()))
	}
	return strings.Join(parts, ", ")
}

// pgRows renders the postgres phase's rows, beside the SQLite ones.
func (r *Report) pgRows(w func(format string, args ...any)) {
	pg := r.PG
	// against renders the comparison with the SQLite figure, when measured.
	against := func(what string, pgRPS, sqliteRPS float64) string {
		if sqliteRPS == 0 {
			return " | | "
		}
		return fmt.Sprintf(" | %s on SQLite %.0f req/s | %.2f", what, sqliteRPS, pgRPS/sqliteRPS)
	}
	if jump := best(pg.Jump); jump.Requests > 0 {
		w("| jump path on PostgreSQL (`--database-url`, a local throwaway cluster; no record cache) | %.0f req/s, p50 %s, p99 %s; CPU %.0f µs per request; %d failures%s | | |\n",
			jump.RPS(), ms(jump.P50), ms(jump.P99), us(bestCPU(pg.Jump)), failures(pg.Jump), against("jump", jump.RPS(), best(r.Jump).RPS()))
	}
	if pg.V3.Requests > 0 {
		w("| v3 `POST /v3/payscore/serviceorder` on PostgreSQL | %.0f req/s, p50 %s, p99 %s; CPU %.0f µs per request; %d failures%s | | |\n",
			pg.V3.RPS(), ms(pg.V3.P50), ms(pg.V3.P99), us(pg.V3.CPUPerRequest()), pg.V3.Failures, against("v3", pg.V3.RPS(), r.V3.RPS()))
	}
	if j := pg.JumpReplicas; j.Requests > 0 {
		w("| jump path on PostgreSQL, %d sandboxes sharing the database (one wrk each, %d connections in all) | %.0f req/s, worst p50 %s, p99 %s; CPU %.0f µs per request (the sandboxes together); %d failures%s | | |\n",
			pg.Replicas, r.Config.Conns/pg.Replicas*pg.Replicas, j.RPS(), ms(j.P50), ms(j.P99), us(j.CPUPerRequest()), j.Failures, against("jump", j.RPS(), best(r.Jump).RPS()))
	}
	if v := pg.V3Replicas; v.Requests > 0 {
		w("| v3 `POST /v3/payscore/serviceorder` on PostgreSQL, %d sandboxes (requests to each in turn) | %.0f req/s, p50 %s, p99 %s; CPU %.0f µs per request (the sandboxes together); %d failures%s | | |\n",
			pg.Replicas, v.RPS(), ms(v.P50), ms(v.P99), us(v.CPUPerRequest()), v.Failures, against("v3", v.RPS(), r.V3.RPS()))
	}
	if pg.Memory.RSSKiB > 0 {
		w("| RSS of a sandbox on PostgreSQL after its jump and v3 load | %s MiB (peak VmHWM %s MiB) | | | | |\n", drive.MiB(pg.Memory.RSSKiB), drive.MiB(pg.Memory.PeakKiB))
	}
	for _, n := range pg.Notify {
		w("| notification delivery on PostgreSQL, %d sandbox(es) sharing the database | %.0f deliveries/s (%d released at once, delivered in %s); %d attempts, %d repeated at the receiver, %d journal entries for %d notifications | | | ≥ %.0f/s, each once, all journalled | %s |\n",
			n.Servers, n.Rate(), n.Count, ms(n.Elapsed), n.Attempts, n.Duplicates, n.Journalled, n.JournalledOnce, targetNotifyRate,
			verdict(n.Rate() >= targetNotifyRate && n.Once()))
	}
}
