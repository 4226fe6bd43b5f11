// Command bench is `make bench`: it starts the real mpsandbox binary with a
// fresh data dir, drives it over loopback, measures a bare net/http
// reference (bench/cmd/refserver) in the same run, and prints a table of
// every figure of issue 9 with its ratio and target, which it also writes
// into docs/PERFORMANCE.md between the bench markers.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/bench/internal/drive"
)

// Config is what the run is told.
type Config struct {
	Bin, Ref, Image, Out, Root string
	DatabaseURL                string
	Warmup, Duration, Soak     time.Duration
	Conns, Trades, Notify      int
	Startups, Rounds           int
	// TestkitProcs fresh processes of each build start TestkitStarts
	// testkit sandboxes each; TestkitBefore is the commit measured beside
	// this tree.
	TestkitProcs, TestkitStarts int
	TestkitBefore               string
	// JumpBefore is the commit whose server runs the jump rounds beside
	// this tree's.
	JumpBefore string
	Phases     map[string]bool
}

func main() {
	var c Config
	var phases string
	flag.StringVar(&c.Bin, "bin", "bin/mpsandbox", "the sandbox binary")
	flag.StringVar(&c.Ref, "ref", "bin/refserver", "the reference net/http server")
	flag.StringVar(&c.Image, "image", "mpsandbox:dev", "the image for the container figures (\"\" skips them)")
	flag.StringVar(&c.Out, "out", "docs/PERFORMANCE.md", "the document whose bench section is rewritten (\"\" to only print)")
	flag.StringVar(&c.Root, "root", ".", "the repository root (for go test of the signing benchmark)")
	flag.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unmeasured load before each measured window")
	flag.DurationVar(&c.Duration, "duration", 10*time.Second, "each measured window")
	flag.DurationVar(&c.Soak, "load-time", 60*time.Second, "the load before the loaded RSS is read")
	flag.IntVar(&c.Conns, "connections", 16, "concurrent connections of the load generator")
	flag.IntVar(&c.Trades, "trades", 500, "prepared trades the jumps cycle through")
	flag.IntVar(&c.Notify, "notifications", 20000, "notifications released at once for the delivery figure")
	flag.IntVar(&c.Startups, "startups", 15, "starts of the binary on an existing data dir")
	flag.IntVar(&c.Rounds, "rounds", 4, "alternating rounds of reference and jump load; the best of each is reported (four: a round of the same build varies by a fifth; docs/PERFORMANCE.md, issue 15)")
	flag.IntVar(&c.TestkitProcs, "testkit-processes", 10, "fresh processes per build in the testkit phase")
	flag.IntVar(&c.TestkitStarts, "testkit-starts", 10, "testkit sandboxes each of those processes starts, one after the other")
	flag.StringVar(&c.TestkitBefore, "testkit-before", "9bc607e", "the commit whose testkit starts are measured beside this tree's (issue 18's before; \"\" skips it)")
	flag.StringVar(&c.JumpBefore, "jump-before", "ff888e9", "the commit whose server runs the jump rounds beside this tree's (issue 15's before; \"\" skips it)")
	flag.StringVar(&c.DatabaseURL, "database-url", "", "the PostgreSQL database of the postgres phase (default: a throwaway cluster, when PostgreSQL is installed)")
	flag.StringVar(&phases, "phases", "all", "comma-separated subset: sign,jump,v3,notify,postgres,rss,startup,testkit,container")
	flag.Parse()
	c.Phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		c.Phases[strings.TrimSpace(p)] = true
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (c Config) on(phase string) bool { return c.Phases["all"] || c.Phases[phase] }

func run(c Config) error {
	for _, p := range []*string{&c.Bin, &c.Ref} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	tmp, err := os.MkdirTemp("", "mpsandbox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &Report{Started: time.Now(), Machine: describeMachine(), Config: c}
	r.LoadBefore = drive.LoadAverage()
	b := &bench{c: c, r: r, tmp: tmp}
	if err := b.all(); err != nil {
		return err
	}
	r.LoadAfter = drive.LoadAverage()
	r.Took = time.Since(r.Started)
	table := r.Markdown()
	fmt.Println(table)
	if c.Out == "" {
		return nil
	}
	return drive.ReplaceSection(c.Out, beginMarker, endMarker, table)
}
