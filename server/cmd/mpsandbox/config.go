package main

import (
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is everything the server can be told at start. Each flag has an
// MPSANDBOX_* environment variable; a flag wins over the variable, the
// variable over the default.
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
	ManualTimeout     time.Duration
	NotifyLease       time.Duration
	MaxBody           int64
	ShutdownTimeout   time.Duration

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

// parseConfig reads flags (args, without the program name) over the
// environment over the defaults.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("mpsandbox", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := getenv("MPSANDBOX_" + name); v != "" {
			return v
		}
		return def
	}
	var errs []string
	envFloat := func(name string, def float64) float64 {
		v := env(name, "")
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("MPSANDBOX_%s=%q is not a number", name, v))
		}
		return f
	}
	envInt := func(name string, def int) int {
		v := env(name, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("MPSANDBOX_%s=%q is not a whole number", name, v))
		}
		return n
	}
	envBool := func(name string, def bool) bool {
		v := env(name, "")
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("MPSANDBOX_%s=%q is not true or false", name, v))
		}
		return b
	}
	envDur := func(name string, def time.Duration) time.Duration {
		v := env(name, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("MPSANDBOX_%s=%q is not a duration like 30s", name, v))
		}
		return d
	}
	fs.StringVar(&c.Addr, "addr", env("ADDR", "127.0.0.1:8080"), "listen address; bound to a non-loopback address the admin API requires a token (MPSANDBOX_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", env("DATA_DIR", "./data"), "directory of the SQLite database (MPSANDBOX_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", env("DATABASE_URL", ""), "postgres://… URL of a PostgreSQL database to keep everything in instead of SQLite, shared by every replica; --data-dir is then unused (MPSANDBOX_DATABASE_URL)")
	fs.BoolVar(&c.InMemory, "in-memory", envBool("IN_MEMORY", false), "keep everything in memory and lose it at exit, for throwaway runs (MPSANDBOX_IN_MEMORY)")
	fs.StringVar(&c.ScenariosDir, "scenarios-dir", env("SCENARIOS_DIR", ""), "load scenarios from this directory instead of the embedded set (MPSANDBOX_SCENARIOS_DIR)")
	fs.StringVar(&c.MerchantsFile, "merchants-file", env("MERCHANTS_FILE", ""), "YAML file of merchants, with any of their credentials, to create at start if missing; GET /sandbox/v1/merchants/{mchid}/export writes one (MPSANDBOX_MERCHANTS_FILE)")
	fs.StringVar(&c.CredentialsSeed, "credentials-seed", env("CREDENTIALS_SEED", ""), "make every generated credential (keys, secrets, ids, tokens) a function of this seed and the mchid, for throwaway CI runs; never on a shared server: the seed gives every key away (MPSANDBOX_CREDENTIALS_SEED)")
	fs.Float64Var(&c.ClockScale, "clock-scale", envFloat("CLOCK_SCALE", 1), "sandbox seconds per real second; CI uses a large one (MPSANDBOX_CLOCK_SCALE)")
	fs.StringVar(&c.AdminToken, "admin-token", env("ADMIN_TOKEN", ""), "bearer token of the admin API; bound to a non-loopback address without one, one is generated, logged once and kept in <data-dir>/admin-token (MPSANDBOX_ADMIN_TOKEN)")
	fs.StringVar(&c.LogFormat, "log-format", env("LOG_FORMAT", "text"), "text or json (MPSANDBOX_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (MPSANDBOX_LOG_LEVEL)")
	fs.BoolVar(&c.AccessLog, "access-log", envBool("ACCESS_LOG", true), "one log line per request (MPSANDBOX_ACCESS_LOG)")
	fs.IntVar(&c.JournalMaxEntries, "journal-max-entries", envInt("JOURNAL_MAX_ENTRIES", 100000), "journal history kept, by count (MPSANDBOX_JOURNAL_MAX_ENTRIES)")
	fs.DurationVar(&c.JournalMaxAge, "journal-max-age", envDur("JOURNAL_MAX_AGE", 24*time.Hour), "journal history kept, by age (MPSANDBOX_JOURNAL_MAX_AGE)")
	fs.DurationVar(&c.ManualTimeout, "manual-timeout", envDur("MANUAL_TIMEOUT", 30*time.Minute), "how long a manual session waits for a person, on the sandbox clock (MPSANDBOX_MANUAL_TIMEOUT)")
	fs.DurationVar(&c.NotifyLease, "notify-lease", envDur("NOTIFY_LEASE", 30*time.Second), "with --database-url: how long a notification one replica claimed stays its own; a killed replica's wait this long for another (MPSANDBOX_NOTIFY_LEASE)")
	fs.Int64Var(&c.MaxBody, "max-body", int64(envInt("MAX_BODY", 1<<20)), "largest request body in bytes (MPSANDBOX_MAX_BODY)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", envDur("SHUTDOWN_TIMEOUT", 10*time.Second), "how long in-flight requests may take to finish at SIGTERM (MPSANDBOX_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("TLS_CERT", ""), "serve HTTPS with this PEM certificate (chain); with --tls-key (MPSANDBOX_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("TLS_KEY", ""), "the PEM private key of --tls-cert (MPSANDBOX_TLS_KEY)")
	fs.BoolVar(&c.TLSSelfSigned, "tls-self-signed", envBool("TLS_SELF_SIGNED", false), "serve HTTPS with a certificate from a local CA kept in <data-dir>/tls; clients trust GET /sandbox/v1/ca.pem (MPSANDBOX_TLS_SELF_SIGNED)")
	fs.Var(nameList{&c.PublicNames}, "public-name", "a host name or IP the sandbox is reached by, for --tls-self-signed's certificate (localhost and 127.0.0.1 always); repeat or comma-separate (MPSANDBOX_PUBLIC_NAME)")
	fs.StringVar(&c.MetricsToken, "metrics-token", env("METRICS_TOKEN", ""), "bound to a non-loopback address, GET /metrics wants this bearer token or the admin token; it opens nothing else (MPSANDBOX_METRICS_TOKEN)")
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
	if c.MaxBody < 1024 {
		errs = append(errs, "--max-body must be at least 1024 bytes")
	}
	if len(c.PublicNames) == 0 {
		_ = nameList{&c.PublicNames}.Set(env("PUBLIC_NAME", ""))
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
