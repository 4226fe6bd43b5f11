package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/embedded"
	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/metrics"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/postgres"
)

// Main is the running server: Run wires everything and starts serving,
// Close shuts it down in order (in-flight requests, workers, journal, store).
type Main struct {
	Config Config
	Logger *slog.Logger

	// Addr is the address actually listened on (useful with port 0).
	Addr string

	ready    atomic.Bool
	listener net.Listener
	server   *http.Server
	app      *app.App
	// db is the PostgreSQL store of --database-url, opened before the rest.
	db       *postgres.Store
	metrics  *metrics.Metrics
	writable *writable
	// shutdown closes when Close begins, ending event streams and long polls.
	shutdown chan struct{}
	closing  sync.Once
}

// NewMain returns a Main logging to w.
func NewMain(cfg Config, w io.Writer) *Main {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	buf := newLogBuffer(w)
	var h slog.Handler = slog.NewTextHandler(buf, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(buf, opts)
	}
	return &Main{Config: cfg, Logger: slog.New(bufferAccess{h, buf}), shutdown: make(chan struct{})}
}

// Run listens first (so that port 0 works and /healthz answers at once),
// then opens the store, compiles the schemas, loads the scenarios, starts
// the workers and marks the server ready. It returns once serving.
func (m *Main) Run(ctx context.Context) error {
	start := time.Now()
	cfg := m.Config
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	m.Addr = ln.Addr().String()
	ln = httpapi.LimitListener(ln, cfg.MaxConnsPerSource)
	m.listener = ln

	// The PostgreSQL store opens first: replicas on one database share the
	// generated admin token, the local CA and the clock's start through it.
	if cfg.DatabaseURL != "" {
		if m.db, err = postgres.Open(ctx, postgres.Options{URL: cfg.DatabaseURL, Logger: m.Logger}); err != nil {
			ln.Close()
			return err
		}
	}
	fail := func(err error) error {
		m.listener.Close()
		if m.db != nil && m.app == nil {
			m.db.Close()
		}
		return err
	}

	open := httpapi.IsLoopbackAddr(cfg.Addr)
	switch {
	case cfg.AdminToken != "":
	case m.db != nil:
		if cfg.AdminToken, err = m.sharedAdminToken(ctx, open); err != nil {
			return fail(err)
		}
	case open:
		// Local clients need none; one through a proxy or by another name
		// does, so there is always one. Printed once, as Jupyter does.
		cfg.AdminToken = randomToken()
		m.Logger.Info("admin_token_generated", "admin_token", cfg.AdminToken,
			"hint", "local clients need no token; a client through a proxy or by another name sends Authorization: Bearer <admin_token>")
	default:
		if cfg.AdminToken, err = m.generatedAdminToken(cfg); err != nil {
			return fail(err)
		}
	}

	ln, caPEM, err := m.listenTLS(ctx, ln, cfg)
	if err != nil {
		return fail(err)
	}
	m.listener = ln

	gin.SetMode(gin.ReleaseMode)
	engine := app.NewEngine(app.EngineOptions{Logger: m.Logger, AccessLog: cfg.AccessLog, MaxBody: cfg.MaxBody,
		BodyTime: httpapi.BodyTime{Max: cfg.BodyTimeout, MinRate: cfg.BodyMinRate}})
	registerCA(engine, caPEM)
	m.metrics = metrics.New()
	engine.Use(m.metrics.Middleware())
	engine.GET("/metrics", m.metrics.Handler(open, cfg.AdminToken, cfg.MetricsToken))
	if m.db != nil {
		observePostgres(m.metrics, m.db)
	}
	embedded.RegisterProbes(engine, func() (bool, error) {
		if !m.ready.Load() {
			return false, nil
		}
		if err := m.writable.check(); err != nil {
			return true, fmt.Errorf("the store cannot write: %w", err)
		}
		return true, nil
	}, version)
	if err := m.wire(ctx, cfg, engine, open); err != nil {
		return fail(err)
	}
	// No ReadTimeout: it would also cut event streams and long polls (the
	// server's background read would time out); request bodies are bounded
	// by httpapi.ReadBody instead.
	m.server = &http.Server{Handler: engine, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := m.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("serve_failed", "error", err)
		}
	}()
	m.ready.Store(true)
	m.Logger.Info("ready", "addr", m.Addr, "version", version, "startup_ms", time.Since(start).Milliseconds(),
		"data_dir", dataDescription(cfg), "clock_scale", cfg.ClockScale, "admin_open", open, "tls", cfg.TLS())
	return nil
}

func dataDescription(cfg Config) string {
	switch {
	case cfg.DatabaseURL != "":
		return postgres.Redact(cfg.DatabaseURL)
	case cfg.InMemory:
		return ":memory:"
	}
	return cfg.DataDir
}

// wire builds every component (app.New), registers the routes and starts
// the workers.
func (m *Main) wire(ctx context.Context, cfg Config, engine *gin.Engine, open bool) error {
	var st sandbox.Store
	var clockStart time.Time
	path := ":memory:"
	switch {
	case m.db != nil:
		st = m.db
		var err error
		if clockStart, err = m.sharedClockStart(ctx); err != nil {
			return err
		}
	case !cfg.InMemory:
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
		}
		path = filepath.Join(cfg.DataDir, "mpsandbox.db")
	}
	var scenarioFS fs.FS
	if cfg.ScenariosDir != "" {
		scenarioFS = os.DirFS(cfg.ScenariosDir)
	}
	a, err := app.New(ctx, app.Options{
		Store: st, StorePath: path, Logger: m.Logger, ClockScale: cfg.ClockScale, ClockStart: clockStart, SharedStore: m.db != nil, Scenarios: scenarioFS,
		MerchantsFile: cfg.MerchantsFile, JournalMaxEntries: cfg.JournalMaxEntries, JournalMaxAge: cfg.JournalMaxAge,
		JournalMaxBytes: cfg.JournalMaxBytes, NotifyAllow: cfg.NotifyAllow,
		ManualTimeout: cfg.ManualTimeout, NotifyLease: cfg.NotifyLease, Access: httpapi.Access{Open: open, AdminToken: cfg.AdminToken, Hosts: servedHosts(cfg)},
		Shutdown: m.shutdown, Products: embedded.Products,
		CredentialsSeed: cfg.CredentialsSeed, Metrics: m.metrics,
	})
	if err != nil {
		return err
	}
	m.app = a
	m.writable = &writable{probe: a.ProbeWrite, log: m.Logger}
	a.Register(engine)
	a.Start()
	return nil
}

// Close stops serving — /readyz answers 503 at once, new connections are
// refused after --drain-time, in-flight requests finish within the
// shutdown timeout —, stops the workers, flushes the journal and closes
// the store.
func (m *Main) Close() error {
	var err error
	m.closing.Do(func() { err = m.close() })
	return err
}

func (m *Main) close() error {
	m.ready.Store(false)
	if m.Config.DrainTime > 0 && m.server != nil {
		// Not ready, still serving: a balancer watching /readyz stops
		// sending requests before the listener closes.
		m.Logger.Info("draining", "drain_time", m.Config.DrainTime.String())
		time.Sleep(m.Config.DrainTime)
	}
	close(m.shutdown)
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		errs = append(errs, m.server.Shutdown(ctx))
		cancel()
	}
	// The workers stop, the journal is flushed, the store is closed.
	if m.app != nil {
		errs = append(errs, m.app.Close())
	}
	m.Logger.Info("stopped") // and the access lines before it
	return errors.Join(errs...)
}

// servedHosts are the Host names the admin API answers to besides the
// local ones: the bound address (unless a wildcard) and --public-name.
func servedHosts(cfg Config) []string {
	hosts := append([]string(nil), cfg.PublicNames...)
	if h, _, err := net.SplitHostPort(cfg.Addr); err == nil && h != "" {
		if ip, err := netip.ParseAddr(h); err != nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// sharedClockStart is the instant the sandbox clock runs from on every
// replica of the database: the first replica's start. At --clock-scale 1
// it changes nothing; at any other, replicas started at different moments
// would otherwise each tell a different sandbox time.
func (m *Main) sharedClockStart(ctx context.Context) (time.Time, error) {
	raw, _, err := m.db.Shared(ctx, sharedClockStart, func() ([]byte, error) {
		return []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("clock start: %w", err)
	}
	ns, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("clock start %q in the database: %w", raw, err)
	}
	return time.Unix(0, ns), nil
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "mps_" + hex.EncodeToString(b[:])
}
