package main

import (
	"flag"
	"fmt"
	"strings"
	"time"
)

// Config is everything the server can be told at start. Each flag has an
// environment variable named by one rule (envName); a flag wins over the
// variable, the variable over the default.
type Config struct {
	Addr          string
	DataDir       string
	InMemory      bool
	ScenariosDir  string
	MerchantsFile string
	ClockScale    float64
	AdminToken    string
	LogFormat     string
	LogLevel      string
	AccessLog     bool

	JournalMaxEntries int
	JournalMaxAge     time.Duration
	ManualTimeout     time.Duration
	MaxBody           int64
	ShutdownTimeout   time.Duration
}

// envPrefix is the one rule from a flag to its environment variable:
// --clock-scale is MPSANDBOX_CLOCK_SCALE.
const envPrefix = "MPSANDBOX_"

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags (args, without the program name) over the
// environment over the defaults.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("mpsandbox", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address; bound to a non-loopback address the admin API requires a token")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the SQLite database")
	fs.BoolVar(&c.InMemory, "in-memory", false, "keep everything in memory and lose it at exit, for throwaway runs")
	fs.StringVar(&c.ScenariosDir, "scenarios-dir", "", "load scenarios from this directory instead of the embedded set")
	fs.StringVar(&c.MerchantsFile, "merchants-file", "", "YAML file of merchants to create at start if missing")
	fs.Float64Var(&c.ClockScale, "clock-scale", 1, "sandbox seconds per real second; CI uses a large one")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token of the admin API; bound to a non-loopback address without one, one is generated, logged once and kept in <data-dir>/admin-token")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.AccessLog, "access-log", true, "one log line per request")
	fs.IntVar(&c.JournalMaxEntries, "journal-max-entries", 100000, "journal history kept, by count")
	fs.DurationVar(&c.JournalMaxAge, "journal-max-age", 24*time.Hour, "journal history kept, by age")
	fs.DurationVar(&c.ManualTimeout, "manual-timeout", 30*time.Minute, "how long a manual session waits for a person, on the sandbox clock")
	fs.Int64Var(&c.MaxBody, "max-body", 1<<20, "largest request body in bytes")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish at SIGTERM")
	// Every flag reads its variable first, so that the command line wins.
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " (" + name + ")"
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q is not a valid --%s (%v; the default is %s)", name, v, f.Name, err, f.DefValue))
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if c.ClockScale <= 0 {
		errs = append(errs, "--clock-scale must be above 0")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Sprintf("--log-format %q: use text or json", c.LogFormat))
	}
	if c.JournalMaxEntries < 1 {
		errs = append(errs, "--journal-max-entries must be at least 1")
	}
	if c.MaxBody < 1024 {
		errs = append(errs, "--max-body must be at least 1024 bytes")
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}
