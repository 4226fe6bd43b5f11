// Package app is the one wiring of the sandbox: New builds every component
// (store, clock, merchants, schemas, scenarios, journal, notification
// worker, mini-program sessions, products, admin API, QA page) from Options
// and a list of product constructors; Register mounts their routes, Start
// runs the workers and Close stops them and closes the store. The server
// (cmd/mpsandbox) passes every product; a product's tests pass their own
// (through app/apptest), so app never imports a product package.
package app

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/fixtures"
	"github.com/mpsandbox/mpsandbox/scenarios"
	"github.com/mpsandbox/mpsandbox/schemas"
	"github.com/mpsandbox/mpsandbox/sdk"
	"github.com/mpsandbox/mpsandbox/server/internal/admin"
	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/journal"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/metrics"
	"github.com/mpsandbox/mpsandbox/server/internal/miniprogram"
	"github.com/mpsandbox/mpsandbox/server/internal/notify"
	"github.com/mpsandbox/mpsandbox/server/internal/openapi"
	"github.com/mpsandbox/mpsandbox/server/internal/report"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/scenario"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
	"github.com/mpsandbox/mpsandbox/server/internal/web"
)

// Constructor builds one product from the shared components.
type Constructor func(sandbox.Deps) (sandbox.Product, error)

// Product adapts a product package's New to a Constructor.
func Product[P sandbox.Product](build func(sandbox.Deps) (P, error)) Constructor {
	return func(d sandbox.Deps) (sandbox.Product, error) {
		p, err := build(d)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// Options is what the sandbox is built from. A zero field takes the
// component's default; only a store (Store or StorePath) is required.
type Options struct {
	// Store is an opened store; the App owns it from then on and Close
	// closes it. When nil, New opens the SQLite database at StorePath
	// (":memory:" for a throwaway one).
	Store     sandbox.Store
	StorePath string
	// Logger receives every component's log; nil discards.
	Logger *slog.Logger

	// ClockScale is sandbox seconds per real second (default 1).
	ClockScale float64
	// SharedStore says that other processes use Store too (replicas on
	// PostgreSQL): the live journal stream then reads every process's
	// entries from the store.
	SharedStore bool
	// ClockStart, when set, is the instant the scaled clock runs from
	// (default: now): replicas on one database share it.
	ClockStart time.Time
	// Now is the real time the merchants' clocks run on (default
	// time.Now). Tests freeze it so that only an advance moves a clock.
	Now func() time.Time

	// Schemas is a loaded schema set; nil loads the embedded schemas.
	Schemas *schema.Set
	// Scenarios is the scenario folder (default the embedded scenarios).
	Scenarios fs.FS
	// Catalog is a loaded scenario catalog, used instead of loading
	// Scenarios: an immutable catalog can serve many sandboxes of one
	// process, each of which would otherwise parse and validate every file.
	Catalog *scenario.Catalog

	// Merchants are written to the store as they are before the directory
	// loads (a store with merchants gets no demo merchant): tests' fixed
	// credentials.
	Merchants []*sandbox.Merchant
	// MerchantsFile is a YAML file of merchants created at start when
	// missing (--merchants-file).
	MerchantsFile string
	// CredentialsSeed makes generated credentials a function of it and the
	// mchid (--credentials-seed); empty draws them from crypto/rand.
	CredentialsSeed string

	// JournalMaxEntries and JournalMaxAge bound the journal's history
	// (default: the journal's).
	JournalMaxEntries int
	JournalMaxAge     time.Duration
	// JournalMaxBytes bounds the journal's history by its stored bytes.
	JournalMaxBytes int64
	// ManualTimeout is how long a manual session waits for a person
	// (default: the mini-program service's).
	ManualTimeout time.Duration
	// MaxPoll is the longest real wait of the notification worker and of
	// the session scheduler between their scans (default: theirs).
	MaxPoll time.Duration
	// NotifyLease is how long a notification the worker claimed stays its
	// own before another process sharing the store may take it over
	// (default: the worker's).
	NotifyLease time.Duration

	// NotifyAllow is where notifications may go (default
	// notify.DefaultAllow: loopback only).
	NotifyAllow *notify.Policy

	// Access guards the admin API; a nil MerchantByToken is the
	// directory's.
	Access httpapi.Access
	// Shutdown closes when the server starts shutting down: long polls and
	// event streams end then.
	Shutdown <-chan struct{}

	// Products builds the simulated products, in this order.
	Products []Constructor

	// Metrics, when set, times the store's commits, counts notification
	// attempts and reads the queues and sizes at each scrape.
	Metrics *metrics.Metrics
}

// App is the wired sandbox.
type App struct {
	Store     sandbox.Store
	Clock     *sandbox.Clock
	Merchants *merchant.Directory
	Schemas   *schema.Set
	Scenarios *scenario.Catalog
	Journal   *journal.Journal
	Worker    *notify.Worker
	Sessions  *miniprogram.Service
	Products  []sandbox.Product
	Admin     *admin.API
	Report    *report.Builder
	Page      *web.Page

	raw     sandbox.Store // the store unwrapped, for its own probes
	cancel  context.CancelFunc
	workers sync.WaitGroup
	closing sync.Once
	err     error
}

// New builds every component. On error, nothing is left open (a Store
// given in o is closed too).
func New(ctx context.Context, o Options) (*App, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	st := o.Store
	if st == nil {
		var err error
		if st, err = sqlite.Open(ctx, sqlite.Options{Path: o.StorePath, Logger: o.Logger}); err != nil {
			return nil, err
		}
	}
	raw := st
	if o.Metrics != nil {
		st = o.Metrics.Store(st)
	}
	a, err := build(ctx, o, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	a.raw = raw
	a.observe(o.Metrics, o.Logger)
	return a, nil
}

func build(ctx context.Context, o Options, st sandbox.Store) (*App, error) {
	a := &App{Store: st, Schemas: o.Schemas}
	if a.Schemas == nil {
		set, err := schema.Load(schemas.FS)
		if err != nil {
			return nil, fmt.Errorf("schemas: %w", err)
		}
		a.Schemas = set
	}
	a.Scenarios = o.Catalog
	var err error
	if a.Scenarios == nil {
		scenarioFS := o.Scenarios
		if scenarioFS == nil {
			scenarioFS = scenarios.FS
		}
		if a.Scenarios, err = scenario.Load(scenarioFS, a.Schemas); err != nil {
			return nil, fmt.Errorf("scenarios: %w", err)
		}
	}

	if len(o.Merchants) > 0 {
		if err := st.Commit(ctx, &sandbox.Batch{Merchants: o.Merchants}); err != nil {
			return nil, fmt.Errorf("merchants: %w", err)
		}
	}
	a.Clock = sandbox.NewClock(o.ClockScale, o.Now)
	if !o.ClockStart.IsZero() {
		a.Clock.StartAt(o.ClockStart)
	}
	var fileMerchants []merchant.FileEntry
	if o.MerchantsFile != "" {
		if fileMerchants, err = readMerchantsFile(o.MerchantsFile); err != nil {
			return nil, err
		}
	}
	listsDemo := slices.ContainsFunc(fileMerchants, func(e merchant.FileEntry) bool { return e.MchID == fixtures.DemoMchID })
	if a.Merchants, err = merchant.Load(ctx, st, a.Clock, merchant.WithCredentialsSeed(o.CredentialsSeed), merchant.WithoutDemo(listsDemo)); err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	if err := importMerchants(ctx, a.Merchants, a.Scenarios, o.MerchantsFile, fileMerchants); err != nil {
		return nil, err
	}

	a.Journal = journal.New(st, journal.Options{MaxEntries: o.JournalMaxEntries, MaxAge: o.JournalMaxAge, MaxBytes: o.JournalMaxBytes,
		Logger: o.Logger, Shared: o.SharedStore})
	builders := map[string]sandbox.NotifyBuilder{}
	a.Worker = notify.New(notify.Options{
		Store: st, Clock: a.Clock, Journal: a.Journal, Logger: o.Logger, Builders: builders, MaxPoll: o.MaxPoll,
		Lease: o.NotifyLease, Allow: o.NotifyAllow, Attempted: attempted(o.Metrics),
	})
	deps := sandbox.Deps{
		Store: st, Clock: a.Clock, Merchants: a.Merchants, Scenarios: a.Scenarios, Validator: a.Schemas,
		Journal: a.Journal, NotifyTargets: a.Worker, Logger: o.Logger,
	}
	var adminRoutes []func(gin.IRouter)
	for _, build := range o.Products {
		p, err := build(deps)
		if err != nil {
			return nil, err
		}
		a.Products = append(a.Products, p)
		if nb, ok := p.(sandbox.NotifyBuilder); ok {
			builders[p.Name()] = nb
		}
		if ar, ok := p.(sandbox.AdminRoutes); ok {
			adminRoutes = append(adminRoutes, ar.RegisterAdmin)
		}
	}
	a.Sessions, err = miniprogram.New(miniprogram.Options{
		Store: st, Clock: a.Clock, Merchants: a.Merchants, Scenarios: a.Scenarios, Products: a.Products,
		ManualTimeout: o.ManualTimeout, MaxPoll: o.MaxPoll, Shutdown: o.Shutdown, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}

	// One commit path: whatever commits, the store tells the directory
	// (merchant.Load registers it), the notification worker and the
	// sessions, which re-read what they need from it.
	st.OnCommit(a.Worker.Committed)
	st.OnCommit(a.Sessions.Committed)
	st.OnCommit(a.Journal.Committed)

	acks := map[string]func(int, []byte) bool{}
	for name, b := range builders {
		acks[name] = b.Acknowledged
	}
	names := make([]string, len(a.Products))
	for i, p := range a.Products {
		names[i] = p.Name()
	}
	a.Report = &report.Builder{Store: st, Scenarios: a.Scenarios, Products: names, Acknowledged: acks, TargetProduct: a.Sessions.TargetProduct, Flush: a.Journal.Flush}
	adminRoutes = append(adminRoutes, a.Report.Register)

	access := o.Access
	if access.MerchantByToken == nil {
		access.MerchantByToken = a.Merchants.ByToken
	}
	a.Admin = &admin.API{
		Store: st, Merchants: a.Merchants, Scenarios: a.Scenarios, Schemas: a.Schemas, Sessions: a.Sessions, Products: a.Products,
		Journal: a.Journal, Notifications: a.Worker, Clock: a.Clock,
		Access: access, Extra: adminRoutes, Shutdown: o.Shutdown,
	}
	if a.Page, err = web.New(); err != nil {
		return nil, fmt.Errorf("qa page: %w", err)
	}
	return a, nil
}

// Register mounts every route of the sandbox: each product's upstream API,
// the mini-program contract, the admin API (with the products' own admin
// routes), the OpenAPI document, the QA page and the wx.* shim.
func (a *App) Register(r gin.IRouter) {
	for _, p := range a.Products {
		if routes, ok := p.(sandbox.Routes); ok {
			routes.Register(r)
		}
	}
	a.Sessions.Register(r, a.Schemas, a.Journal)
	a.Admin.Register(r)
	// The OpenAPI document of /sandbox/v1 and /miniprogram/v1, open like
	// the schemas it bundles are public: a client generator fetches it.
	r.GET(openapi.Path, openapi.Handler(schemas.FS, sandbox.APIVersion))
	a.Page.Register(r)
	// The wx.* shim a merchant copies into a develop or trial mini-program (sdk/README.md).
	shim := []byte(sdk.Module())
	r.GET("/sdk/mpsandbox-wx.js", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/javascript; charset=utf-8", shim)
	})
}

// Start runs the journal writer, the notification worker and the session
// scheduler until Close.
func (a *App) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	for _, run := range []func(context.Context){a.Journal.Run, a.Worker.Run, a.Sessions.Run} {
		a.workers.Add(1)
		go func() {
			defer a.workers.Done()
			run(ctx)
		}()
	}
}

// Close stops the workers, flushes the journal and closes the store, in
// that order. Stop serving requests first.
func (a *App) Close() error {
	a.closing.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.workers.Wait()
		a.Journal.Close()
		a.err = a.Store.Close()
	})
	return a.err
}

// EngineOptions are the server's request middleware settings.
type EngineOptions struct {
	Logger *slog.Logger // nil discards
	// AccessLog logs one line per request.
	AccessLog bool
	// MaxBody is the largest request body (default httpapi.DefaultMaxBody).
	MaxBody int64
	// BodyTime bounds how long a request body may take (default: httpapi's).
	BodyTime httpapi.BodyTime
}

// NewEngine returns the server's gin engine: request ids, panic recovery,
// the access log when asked, the body limit, and house-style answers for
// an unknown route or method.
func NewEngine(o EngineOptions) *gin.Engine {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBody <= 0 {
		o.MaxBody = httpapi.DefaultMaxBody
	}
	engine := gin.New()
	engine.HandleMethodNotAllowed = true
	engine.ContextWithFallback = true
	mw := []gin.HandlerFunc{httpapi.RequestIDs(), httpapi.Recovery(o.Logger)}
	if o.AccessLog {
		mw = append(mw, httpapi.AccessLog(o.Logger))
	}
	engine.Use(append(mw, httpapi.ReadBody(o.MaxBody, o.BodyTime))...)
	engine.NoRoute(httpapi.Handle(func(c *gin.Context) error {
		return sandbox.Errorf(sandbox.CodeNotFound, "no route %s %s; the surfaces are /v3/…, /gate/1.0/…, /miniprogram/v1/…, /sandbox/v1/… (see the README)", c.Request.Method, c.Request.URL.Path)
	}))
	engine.NoMethod(httpapi.Handle(func(c *gin.Context) error {
		return &sandbox.Error{Code: sandbox.CodeUnsupported, Status: http.StatusMethodNotAllowed,
			Message: fmt.Sprintf("method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path)}
	}))
	return engine
}
