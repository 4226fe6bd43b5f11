// Package embedded runs the whole sandbox — every product, the mini-program
// contract, the admin API and the QA page — inside another Go process, on a
// loopback listener. It is the public door to server/internal for code
// outside server/ (the testkit), and it holds what the binary and an
// embedded sandbox share: the product list, the probe routes and the
// version of the HTTP surface.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/fixtures/testkeys"
	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/schemas"

	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/embedpay"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/issuer"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/payscore"
	"github.com/mpsandbox/mpsandbox/server/internal/repayment"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

// APIVersion is the semantic version of the sandbox's HTTP surface and of
// the testkit (see CHANGELOG.md).
const APIVersion = sandbox.APIVersion

// Products builds every simulated product, in this order. The binary and an
// embedded sandbox both serve exactly this list.
var Products = []app.Constructor{
	app.Product(embedpay.New),
	app.Product(payscore.New),
	app.Product(repayment.New),
	app.Product(issuer.New),
}

// RegisterProbes mounts GET /healthz (the process answers), GET /readyz
// (200 once ready reports true and no error; 503 "starting" before, 503
// "not_ready" with the error as reason when the sandbox cannot serve, such
// as a store that cannot write) and GET /version (the build, the HTTP
// surface's APIVersion and the Go release).
func RegisterProbes(r gin.IRouter, ready func() (bool, error), build string) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		ok, err := ready()
		switch {
		case !ok:
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "starting"})
		case err != nil:
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not_ready", "reason": err.Error()})
		default:
			c.JSON(http.StatusOK, gin.H{"status": "ready"})
		}
	})
	r.GET("/version", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"version": build, "api_version": APIVersion, "go": runtime.Version()})
	})
}

// shared is what every embedded sandbox of a process shares, made by
// loadShared on the first start and read-only from then on: the demo
// merchant's credentials, the schema set (each schema compiled on first
// use) and the scenario catalog.
type shared struct {
	demo    *fixtures.Merchant
	schemas *schema.Set
	catalog *scenario.Catalog
}

// loadShared makes the shared parts once per process. The demo merchant
// has the public test keys of fixtures/testkeys: generating its three
// RSA-2048 keys would cost a few hundred milliseconds of CPU, which the
// first sandbox of every test process would wait for. An embedded sandbox
// is a loopback test server, so public keys do; the binary generates fresh
// ones for every new data dir. Each sandbox still has its own store; only
// the demo merchant's test credentials are the same within a process. Its
// two certificates (an RSA signature each) are made while the schemas and
// the scenarios load.
var loadShared = sync.OnceValues(func() (*shared, error) {
	var sh shared
	var demoErr error
	var wg sync.WaitGroup
	wg.Go(func() { sh.demo, demoErr = fixtures.DemoMerchantWithKeys(testkeys.FS) })
	var err error
	if sh.schemas, err = schema.Load(schemas.FS); err != nil {
		err = fmt.Errorf("schemas: %w", err)
	} else if sh.catalog, err = scenario.Load(scenarios.FS, sh.schemas); err != nil {
		err = fmt.Errorf("scenarios: %w", err)
	}
	wg.Wait()
	if demoErr != nil {
		err = errors.Join(err, fmt.Errorf("demo merchant: %w", demoErr))
	}
	if err != nil {
		return nil, err
	}
	return &sh, nil
})

// Options shape an embedded sandbox. The zero value is an in-memory sandbox
// on a free loopback port with the demo merchant, its admin API open.
type Options struct {
	// Addr is the loopback address to listen on (default 127.0.0.1:0).
	Addr string
	// DataDir keeps mpsandbox.db in this directory; empty keeps everything
	// in memory.
	DataDir string
	// ClockScale is sandbox seconds per real second (default 1).
	ClockScale float64
	// AdminToken, when set, is accepted as a bearer token on the admin API
	// (which stays open: the listener is loopback).
	AdminToken string
	// Logger receives the sandbox's log; nil discards it.
	Logger *slog.Logger
	// MaxPoll is the longest real wait of the notification worker and the
	// session scheduler between scans (default theirs).
	MaxPoll time.Duration
}

// Server is a running embedded sandbox.
type Server struct {
	// URL is its base URL, http://127.0.0.1:<port>.
	URL string

	app      *app.App
	engine   *gin.Engine
	server   *http.Server
	shutdown chan struct{}
}

// Start wires the sandbox, listens on a loopback address and serves until
// Close. It refuses a non-loopback Addr: an embedded sandbox is for tests
// on this machine, and its admin API asks for nothing.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if !httpapi.IsLoopbackAddr(o.Addr) {
		return nil, fmt.Errorf("embedded sandbox: %s is not a loopback address", o.Addr)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	path := sqlite.MemoryPath
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", o.DataDir, err)
		}
		path = filepath.Join(o.DataDir, "mpsandbox.db")
	}
	// The store opens while the shared parts load, which on a process's
	// first start is the longer of the two.
	var sh *shared
	var shErr error
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		sh, shErr = loadShared()
	}()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path, Logger: o.Logger})
	<-loaded
	if err != nil || shErr != nil {
		if st != nil {
			st.Close()
		}
		return nil, errors.Join(err, shErr)
	}
	m := merchant.FromFixture(sh.demo)
	m.CreatedAt = time.Now().UTC()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), shutdown: make(chan struct{})}
	s.app, err = app.New(ctx, app.Options{
		Store: st, Logger: o.Logger, Merchants: []*sandbox.Merchant{m}, Schemas: sh.schemas, Catalog: sh.catalog, ClockScale: o.ClockScale, MaxPoll: o.MaxPoll,
		Access: httpapi.Access{Open: true, AdminToken: o.AdminToken}, Shutdown: s.shutdown, Products: Products,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	s.engine = app.NewEngine(app.EngineOptions{Logger: o.Logger})
	RegisterProbes(s.engine, func() (bool, error) { return true, nil }, "embedded")
	s.app.Register(s.engine)
	s.app.Start()
	s.server = &http.Server{Handler: s.engine, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("serve_failed", "error", err)
		}
	}()
	return s, nil
}

// Close ends long polls and event streams, stops serving (in-flight
// requests get 5 s), stops the workers, flushes the journal and closes the
// store.
func (s *Server) Close() error {
	close(s.shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(s.server.Shutdown(ctx), s.app.Close())
}
