// Package metrics is the sandbox's /metrics, in Prometheus's text format
// (github.com/prometheus/client_golang): requests by product, route and
// status; notification attempts by outcome and attempt number; queue
// depths, pending sessions and the journal's size, counted when scraped;
// store commit latency. Labels never carry a merchant, an order or a
// session: their number stays bounded whatever strangers send.
package metrics

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

const namespace = "mpsandbox"

// Metrics is one registry and the sandbox's instruments in it.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	notified *prometheus.CounterVec
	commits  prometheus.Histogram
}

// New registers the instruments, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "Requests answered, by product (none outside the products), route template and status."},
			[]string{"product", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help: "Time to answer a request, by product and route template.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)},
			[]string{"product", "route"}),
		notified: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "notification_attempts_total",
			Help: "Notification attempts, by product, attempt number and the outcome the attempt left the notification in (delivered, pending for a retry, failed, refused)."},
			[]string{"product", "attempt", "outcome"}),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "store_commit_duration_seconds",
			Help: "Time from Commit to its durable answer, queueing for the writer included.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.notified, m.commits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Middleware counts every request once answered. The route is gin's
// template ("/v3/payscore/serviceorder/:out_order_no/complete"), or
// "unmatched"; the product is the one the route journals under.
func (m *Metrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		product := httpapi.ProductOf(c)
		if product == "" {
			product = "none"
		}
		m.requests.WithLabelValues(product, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.latency.WithLabelValues(product, route).Observe(time.Since(start).Seconds())
	}
}

// Notified counts one notification attempt by the state it left the
// notification in.
func (m *Metrics) Notified(n *sandbox.Notification) {
	m.notified.WithLabelValues(n.Product, strconv.Itoa(n.Attempts), string(n.State)).Inc()
}

// Store times the store's commits.
func (m *Metrics) Store(st sandbox.Store) sandbox.Store { return timedStore{st, m.commits} }

type timedStore struct {
	sandbox.Store
	h prometheus.Histogram
}

func (s timedStore) Commit(ctx context.Context, b *sandbox.Batch) error {
	start := time.Now()
	err := s.Store.Commit(ctx, b)
	s.h.Observe(time.Since(start).Seconds())
	return err
}

// Gauge registers a value read at each scrape.
func (m *Metrics) Gauge(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, read))
}

// Counter registers a count read at each scrape (it only grows).
func (m *Metrics) Counter(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, read))
}

// Sizes registers gauges whose values come from one read of the store,
// made at most every interval however often /metrics is scraped, and each
// time within a second.
func (m *Metrics) Sizes(interval time.Duration, read func(context.Context) (map[string]float64, error), help map[string]string, log *slog.Logger) {
	var mu sync.Mutex
	var at time.Time
	last := map[string]float64{}
	for name, h := range help {
		m.Gauge(name, h, func() float64 {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(at) >= interval {
				at = time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				v, err := read(ctx)
				cancel()
				if err != nil {
					log.Warn("metrics_read_failed", "error", err.Error())
				} else {
					last = v
				}
			}
			return last[name]
		})
	}
}

// Handler serves the registry. Bound to loopback anyone may read it;
// otherwise the bearer token must be the admin token or, when one is set,
// the metrics token (--metrics-token), which opens nothing else.
func (m *Metrics) Handler(open bool, tokens ...string) gin.HandlerFunc {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return func(c *gin.Context) {
		if !open && !anyToken(c.GetHeader("Authorization"), tokens) {
			httpapi.Fail(c, sandbox.Errorf(sandbox.CodeUnauthorized,
				"this sandbox is bound to a non-loopback address: /metrics wants Authorization: Bearer <metrics token or admin token>"))
			return
		}
		h.ServeHTTP(c.Writer, c.Request)
	}
}

func anyToken(header string, tokens []string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || got == "" {
		return false
	}
	for _, t := range tokens {
		if t != "" && subtle.ConstantTimeCompare([]byte(got), []byte(t)) == 1 {
			return true
		}
	}
	return false
}
