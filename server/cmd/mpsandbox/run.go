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
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/sdk"
	"github.com/mpsandbox/mpsandbox/server/internal/admin"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/journal"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/miniprogram"
	"github.com/mpsandbox/mpsandbox/server/internal/notify"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
	"github.com/mpsandbox/mpsandbox/server/internal/web"
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
	store    sandbox.Store
	journal  *journal.Journal
	cancel   context.CancelFunc
	workers  sync.WaitGroup
	// shutdown closes when Close begins, ending event streams and long polls.
	shutdown chan struct{}
	closing  sync.Once
}

// NewMain returns a Main logging to w.
func NewMain(cfg Config, w io.Writer) *Main {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return &Main{Config: cfg, Logger: slog.New(h), shutdown: make(chan struct{})}
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
	m.listener, m.Addr = ln, ln.Addr().String()

	open := httpapi.IsLoopbackAddr(cfg.Addr)
	if !open && cfg.AdminToken == "" {
		cfg.AdminToken = randomToken()
		// Printed once, as Jupyter does: a shared sandbox is never open by accident.
		m.Logger.Warn("admin_token_generated", "admin_token", cfg.AdminToken,
			"hint", "bound to a non-loopback address: the admin API and the QA page require Authorization: Bearer <admin_token>")
	}

	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.HandleMethodNotAllowed = true
	engine.ContextWithFallback = true
	mw := []gin.HandlerFunc{httpapi.RequestIDs(), httpapi.Recovery(m.Logger)}
	if cfg.AccessLog {
		mw = append(mw, httpapi.AccessLog(m.Logger))
	}
	engine.Use(append(mw, httpapi.ReadBody(cfg.MaxBody))...)
	engine.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	engine.GET("/readyz", func(c *gin.Context) {
		if !m.ready.Load() {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "starting"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	engine.GET("/version", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"version": version, "go": runtime.Version()})
	})
	// The wx.* shim a merchant copies into a develop or trial mini-program (sdk/README.md).
	shim := []byte(sdk.Module())
	engine.GET("/sdk/mpsandbox-wx.js", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/javascript; charset=utf-8", shim)
	})
	notFound := httpapi.Handle(func(c *gin.Context) error {
		return sandbox.Errorf(sandbox.CodeNotFound, "no route %s %s; the surfaces are /v3/…, /gate/1.0/…, /miniprogram/v1/…, /sandbox/v1/… (see the README)", c.Request.Method, c.Request.URL.Path)
	})
	engine.NoRoute(notFound)
	engine.NoMethod(httpapi.Handle(func(c *gin.Context) error {
		return &sandbox.Error{Code: sandbox.CodeUnsupported, Status: http.StatusMethodNotAllowed,
			Message: fmt.Sprintf("method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path)}
	}))
	if err := m.wire(ctx, cfg, engine, open); err != nil {
		ln.Close()
		if m.store != nil {
			m.store.Close()
		}
		return err
	}
	m.server = &http.Server{Handler: engine, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := m.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("serve_failed", "error", err)
		}
	}()
	m.ready.Store(true)
	m.Logger.Info("ready", "addr", m.Addr, "version", version, "startup_ms", time.Since(start).Milliseconds(),
		"data_dir", dataDescription(cfg), "clock_scale", cfg.ClockScale, "admin_open", open)
	return nil
}

func dataDescription(cfg Config) string {
	if cfg.InMemory {
		return ":memory:"
	}
	return cfg.DataDir
}

// wire builds every component and registers the routes.
func (m *Main) wire(ctx context.Context, cfg Config, engine *gin.Engine, open bool) error {
	path := ":memory:"
	if !cfg.InMemory {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
		}
		path = filepath.Join(cfg.DataDir, "mpsandbox.db")
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path, Logger: m.Logger})
	if err != nil {
		return err
	}
	m.store = st

	set, err := schema.Load(schemas.FS)
	if err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	var scenarioFS fs.FS = scenarios.FS
	if cfg.ScenariosDir != "" {
		scenarioFS = os.DirFS(cfg.ScenariosDir)
	}
	catalog, err := scenario.Load(scenarioFS, set)
	if err != nil {
		return fmt.Errorf("scenarios: %w", err)
	}

	clock := sandbox.NewClock(cfg.ClockScale, nil)
	dir, err := merchant.Load(ctx, st, clock)
	if err != nil {
		return fmt.Errorf("merchants: %w", err)
	}
	if cfg.MerchantsFile != "" {
		if err := loadMerchantsFile(ctx, dir, cfg.MerchantsFile); err != nil {
			return err
		}
	}

	m.journal = journal.New(st, journal.Options{MaxEntries: cfg.JournalMaxEntries, MaxAge: cfg.JournalMaxAge, Logger: m.Logger})
	builders := map[string]sandbox.NotifyBuilder{}
	worker := notify.New(notify.Options{
		Store: st, Clock: clock, Journal: m.journal, Logger: m.Logger, Builders: builders,
	})
	mods, err := buildModules(sandbox.Deps{
		Store: st, Clock: clock, Merchants: dir, Scenarios: catalog, Validator: set,
		Journal: m.journal, Notifier: worker, Logger: m.Logger,
	})
	if err != nil {
		return err
	}
	var products []sandbox.Product
	var adminRoutes []func(gin.IRouter)
	for _, mod := range mods {
		products = append(products, mod)
		builders[mod.Name()] = mod
		mod.Register(engine)
		if a, ok := mod.(adminModule); ok {
			adminRoutes = append(adminRoutes, a.RegisterAdmin)
		}
	}
	sessions, err := miniprogram.New(miniprogram.Options{
		Store: st, Clock: clock, Merchants: dir, Notifier: worker, Products: products,
		ManualTimeout: cfg.ManualTimeout, Shutdown: m.shutdown, Logger: m.Logger,
	})
	if err != nil {
		return err
	}

	sessions.Register(engine, set, m.journal)
	(&admin.API{
		Store: st, Merchants: dir, Scenarios: catalog, Schemas: set, Sessions: sessions,
		Journal: m.journal, Notifications: worker, Clock: clock,
		Access: httpapi.Access{Open: open, AdminToken: cfg.AdminToken, MerchantByToken: dir.ByToken},
		Extra:  adminRoutes, Shutdown: m.shutdown,
	}).Register(engine)
	page, err := web.New()
	if err != nil {
		return fmt.Errorf("qa page: %w", err)
	}
	page.Register(engine)

	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, run := range []func(context.Context){m.journal.Run, worker.Run, sessions.Run} {
		m.workers.Add(1)
		go func() {
			defer m.workers.Done()
			run(runCtx)
		}()
	}
	return nil
}

// Close stops serving (in-flight requests finish within the shutdown
// timeout), stops the workers, flushes the journal and closes the store.
func (m *Main) Close() error {
	var err error
	m.closing.Do(func() { err = m.close() })
	return err
}

func (m *Main) close() error {
	m.ready.Store(false)
	close(m.shutdown)
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		errs = append(errs, m.server.Shutdown(ctx))
		cancel()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.workers.Wait()
	if m.journal != nil {
		m.journal.Close()
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
	}
	m.Logger.Info("stopped")
	return errors.Join(errs...)
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "mps_" + hex.EncodeToString(b[:])
}
