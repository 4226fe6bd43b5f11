package main

import (
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/notify"
)

// Config is everything the server can be told at start. Each flag has an
// environment variable named by one rule (envName); a flag wins over the
// variable, the variable over the default.
type Config struct {
	Addr          string
	DataDir       string
	InMemory      bool
	DatabaseURL   string
	ScenariosDir  string
	MerchantsFile string
	ClockScale    float64
	AdminToken    string
	LogFormat     string
	LogLevel      string
	AccessLog     bool

	JournalMaxEntries int
	JournalMaxAge     time.Duration
	JournalMaxBytes   int64
	ManualTimeout     time.Duration
	NotifyLease       time.Duration
	MaxBody           int64
	BodyTimeout       time.Duration
	BodyMinRate       int64
	MaxConnsPerSource int
	ShutdownTimeout   time.Duration
	DrainTime         time.Duration
	// NotifyAllow is the operator's allow-list of notification targets.
	NotifyAllow *notify.Policy

	// Staging: reproducible credentials (CI only); HTTPS from certificate
	// files or from a local CA kept in the data dir; who reads /metrics.
	CredentialsSeed string
	TLSCert         string
	TLSKey          string
	TLSSelfSigned   bool
	PublicNames     []string
	MetricsToken    string
}

// TLS reports whether the server speaks HTTPS.
func (c Config) TLS() bool { return c.TLSSelfSigned || c.TLSCert != "" }

// nameList is a repeatable flag of comma-separated names.
type nameList struct{ names *[]string }

func (l nameList) String() string {
	if l.names == nil {
		return ""
	}
	return strings.Join(*l.names, ",")
}

func (l nameList) Set(v string) error {
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			*l.names = append(*l.names, n)
		}
	}
	return nil
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
	fs.StringVar(&c.DatabaseURL, "database-url", "", "postgres://… URL of a PostgreSQL database to keep everything in instead of SQLite, shared by every replica; --data-dir is then unused")
	fs.BoolVar(&c.InMemory, "in-memory", false, "keep everything in memory and lose it at exit, for throwaway runs")
	fs.StringVar(&c.ScenariosDir, "scenarios-dir", "", "load scenarios from this directory instead of the embedded set")
	fs.StringVar(&c.MerchantsFile, "merchants-file", "", "YAML file of merchants, with any of their credentials, to create at start if missing; GET /sandbox/v1/merchants/{mchid}/export writes one")
	fs.StringVar(&c.CredentialsSeed, "credentials-seed", "", "make every generated credential (keys, secrets, ids, tokens) a function of this seed and the mchid, for throwaway CI runs; never on a shared server")
	fs.Float64Var(&c.ClockScale, "clock-scale", 1, "sandbox seconds per real second; CI uses a large one")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token of the admin API; bound to a non-loopback address without one, one is generated, logged once and kept in <data-dir>/admin-token")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.AccessLog, "access-log", true, "one log line per request (written in batches, at most 50 ms late)")
	fs.IntVar(&c.JournalMaxEntries, "journal-max-entries", 100000, "journal history kept, by count")
	fs.DurationVar(&c.JournalMaxAge, "journal-max-age", 24*time.Hour, "journal history kept, by age")
	fs.Int64Var(&c.JournalMaxBytes, "journal-max-bytes", 256<<20, "journal history kept, by the bytes of its stored entries; pruned in the background")
	fs.DurationVar(&c.ManualTimeout, "manual-timeout", 30*time.Minute, "how long a manual session waits for a person, on the sandbox clock")
	fs.DurationVar(&c.NotifyLease, "notify-lease", 30*time.Second, "with --database-url: how long a notification one replica claimed stays its own; a killed replica's wait this long for another")
	fs.Int64Var(&c.MaxBody, "max-body", 1<<20, "largest request body in bytes")
	fs.DurationVar(&c.BodyTimeout, "body-timeout", 30*time.Second, "longest time a request body may take to arrive")
	fs.Int64Var(&c.BodyMinRate, "body-min-rate", 1024, "bytes a second a request body must keep up after its first 5 s")
	fs.IntVar(&c.MaxConnsPerSource, "max-conns-per-source", 128, "connections open at once from one client address; more are closed at once")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish at SIGTERM")
	fs.DurationVar(&c.DrainTime, "drain-time", 0, "at SIGTERM, how long /readyz answers 503 while requests are still served, before new connections are refused: the time a load balancer needs to stop sending any")
	notifyAllow := fs.String("notify-allow", notify.DefaultAllow, "where notifications may go, comma-separated: host names (exact or *.suffix), addresses and CIDR prefixes, each optionally :port; a merchant's notify_hosts can only narrow it; link-local and cloud-metadata addresses are always refused")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain); with --tls-key")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the PEM private key of --tls-cert")
	fs.BoolVar(&c.TLSSelfSigned, "tls-self-signed", false, "serve HTTPS with a certificate from a local CA kept in <data-dir>/tls (with --database-url, in the database, shared by the replicas); clients trust GET /sandbox/v1/ca.pem")
	fs.Var(nameList{&c.PublicNames}, "public-name", "a host name or IP the sandbox is reached by: in --tls-self-signed's certificate (localhost and 127.0.0.1 always), and a Host the admin API answers to besides localhost and the bound address (DNS rebinding); repeat or comma-separate")
	fs.StringVar(&c.MetricsToken, "metrics-token", "", "bound to a non-loopback address, GET /metrics wants this bearer token or the admin token; it opens nothing else")
	// Every flag reads its variable first, so that the command line wins.
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " (" + name + ")"
		if _, list := f.Value.(nameList); list {
			return // a list appends: its variable is read after the command line, when that gave none
		}
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
	if c.InMemory && c.DatabaseURL != "" {
		errs = append(errs, "--in-memory and --database-url choose two different stores: give one")
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
	if c.NotifyLease < 10*time.Second {
		// A claim is renewed only by a scan with room for more; an attempt
		// takes up to 5 s, and a lease shorter than that would let another
		// replica send a notification still in flight.
		errs = append(errs, "--notify-lease must be at least 10s: an attempt alone may take 5s")
	}
	if c.JournalMaxBytes < 1<<20 {
		errs = append(errs, "--journal-max-bytes must be at least 1048576 (1 MiB)")
	}
	if p, err := notify.ParsePolicy(*notifyAllow); err != nil {
		errs = append(errs, err.Error())
	} else {
		c.NotifyAllow = p
	}
	if c.BodyTimeout < time.Second || c.BodyMinRate < 1 || c.MaxConnsPerSource < 1 {
		errs = append(errs, "--body-timeout must be at least 1s, --body-min-rate and --max-conns-per-source at least 1")
	}
	if c.MaxBody < 1024 {
		errs = append(errs, "--max-body must be at least 1024 bytes")
	}
	if len(c.PublicNames) == 0 {
		_ = nameList{&c.PublicNames}.Set(getenv(envName("public-name")))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, "--tls-cert and --tls-key go together")
	}
	if c.TLSSelfSigned && c.TLSCert != "" {
		errs = append(errs, "--tls-self-signed or --tls-cert, not both")
	}
	for _, n := range c.PublicNames {
		if strings.ContainsAny(n, "/: ") && net.ParseIP(n) == nil {
			errs = append(errs, fmt.Sprintf("--public-name %q: a host name or an IP address, without scheme, port or path", n))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}
