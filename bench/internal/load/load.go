// Package load drives HTTP load: a closed-loop Go generator for requests
// that need per-request work (v3 signatures, mixed soak traffic), and a
// runner of Debian's wrk for plain bodies, where a lean C client leaves the
// most CPU to the server under test.
package load

import (
	"context"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one run measured.
type Result struct {
	Requests int64         // completed with the expected status
	Failures int64         // another status or a transport error
	Elapsed  time.Duration // the measured window
	P50, P99 time.Duration
	Max      time.Duration
	// FirstFailure describes one failure, for the report.
	FirstFailure string
	// ServerCPU is the CPU time the server used in the window, when known.
	ServerCPU time.Duration
}

// CPUPerRequest is the server's CPU time per request: unlike requests/s it
// hardly depends on what else the shared machine is running.
func (r Result) CPUPerRequest() time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Requests)
}

// RPS is requests per second over the window.
func (r Result) RPS() float64 { return PerSecond(r.Requests, r.Elapsed) }

// PerSecond is n events over d as a rate (0 for an empty window).
func PerSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Histogram keeps latencies in logarithmic buckets 1 % wide, so that a
// long run needs a fixed few kilobytes and percentiles are within 1 %.
type Histogram struct {
	mu      sync.Mutex
	buckets [histBuckets]int64
	n       int64
	max     time.Duration
}

const (
	histBuckets = 2400 // 1.01^2400 µs is far beyond any timeout
	histGrowth  = 1.01
)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(histBuckets-1, int(math.Log(us)/math.Log(histGrowth))+1)
}

// Add records one latency.
func (h *Histogram) Add(d time.Duration) {
	b := bucketOf(d)
	h.mu.Lock()
	h.buckets[b]++
	h.n++
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Percentile returns the latency below which p % of the samples fall (the
// upper edge of its bucket).
func (h *Histogram) Percentile(p float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(p / 100 * float64(h.n)))
	var seen int64
	for i, c := range h.buckets {
		seen += c
		if seen >= rank {
			return min(h.max, time.Duration(math.Pow(histGrowth, float64(i))*float64(time.Microsecond)))
		}
	}
	return h.max
}

// Max is the largest latency recorded.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}

// Count is the number of samples.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Closed runs conns workers, each sending next(i)'s request as soon as the
// previous answer is read, for warmup and then for dur; only the second
// window is measured. A request counts when its status is want. next gets a
// sequence number unique across workers and returns nil when it has
// nothing more to send. cpu, when not nil, reads the server's CPU time at
// the window's edges.
func Closed(ctx context.Context, client *http.Client, conns int, warmup, dur time.Duration, want int, cpu func() (time.Duration, error), next func(i int64) (*http.Request, error)) Result {
	var (
		seq, ok, failed atomic.Int64
		measuring       atomic.Bool
		firstFailure    atomic.Value
		hist            Histogram
		wg              sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local Histogram
			defer hist.Merge(&local)
			for ctx.Err() == nil {
				req, err := next(seq.Add(1) - 1)
				if req == nil || err != nil {
					if err != nil {
						firstFailure.CompareAndSwap(nil, err.Error())
					}
					return
				}
				start := time.Now()
				status, err := send(client, req.WithContext(ctx))
				took := time.Since(start)
				if !measuring.Load() || ctx.Err() != nil {
					continue
				}
				if err != nil || status != want {
					failed.Add(1)
					if err == nil {
						err = errStatus(status)
					}
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
				local.Add(took)
			}
		}()
	}
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
	}
	var cpu0, cpu1 time.Duration
	if cpu != nil {
		cpu0, _ = cpu()
	}
	measuring.Store(true)
	start := time.Now()
	select {
	case <-time.After(dur):
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	if cpu != nil {
		cpu1, _ = cpu()
	}
	cancel()
	wg.Wait()
	r := Result{Requests: ok.Load(), Failures: failed.Load(), Elapsed: elapsed,
		P50: hist.Percentile(50), P99: hist.Percentile(99), Max: hist.Max(), ServerCPU: cpu1 - cpu0}
	if f, ok := firstFailure.Load().(string); ok {
		r.FirstFailure = f
	}
	return r
}

type errStatus int

func (e errStatus) Error() string { return "status " + http.StatusText(int(e)) }

// send does one request and reads the whole answer, so the connection is
// reused.
func send(client *http.Client, req *http.Request) (int, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// Paced sends fire(i) about rate times a second, each in its own goroutine
// (bounded by maxInFlight), until ctx ends: an open loop for the soak,
// where the load should be steady rather than saturating.
func Paced(ctx context.Context, rate float64, maxInFlight int, fire func(i int64)) {
	if rate <= 0 {
		return
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fire(i)
		}()
	}
}
