// Package journal records every exchange — each request to the sandbox and
// each notification attempt it makes — in the store, without making the
// request wait for a disk write, and streams them live to the QA page.
package journal

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Defaults for Options.
const (
	DefaultBuffer     = 8192
	DefaultBatchSize  = 512
	DefaultMaxEntries = 100000
	DefaultMaxAge     = 24 * time.Hour
	DefaultMaxBody    = 64 << 10
	DefaultMaxBytes   = 256 << 20
	// DefaultUnverifiedRate is how many unverified exchanges a second one
	// source may have journalled.
	DefaultUnverifiedRate = 20
	// DefaultQueueBytes bounds the exchanges waiting to be written, in
	// bytes, besides Buffer's count.
	DefaultQueueBytes = 64 << 20
)

const (
	// subscriberBuffer bounds what a live subscriber may lag behind; past it
	// the subscriber is dropped rather than slowing the writer or holding
	// entries in memory.
	subscriberBuffer = 256
	// pruneInterval and pruneEveryEntries bound history between prunes: by
	// time, and by how many entries were appended since the last one.
	pruneInterval     = time.Minute
	pruneEveryEntries = 10000
	// batchLinger is how long the writer gathers entries before it writes
	// them: the bench's jump path journals one every 150 µs, which came to
	// the store a handful at a time. The QA page's live journal and a
	// journal read see an entry this much later; Flush waits no longer.
	batchLinger = 10 * time.Millisecond
	// shutdownWrite bounds each append and the final flush when Run's
	// context has ended.
	shutdownWrite = 10 * time.Second
)

// Options configure a Journal. Zero values take the defaults.
type Options struct {
	// Buffer bounds the queue of exchanges waiting to be written.
	Buffer int
	// BatchSize is the number of exchanges per AppendExchanges call.
	BatchSize int
	// MaxEntries is the history kept, by count.
	MaxEntries int
	// MaxAge is the history kept, by age.
	MaxAge time.Duration
	// MaxBytes is the history kept, by the bytes of the stored entries.
	MaxBytes int64
	// MaxBody is the bytes kept of each body and of the diagnostics; longer
	// ones are cut and marked. Every other field has a fixed bound.
	MaxBody int
	// UnverifiedRate is how many unverified exchanges (a bad or missing
	// signature) one source may have journalled per second; the rest are
	// counted, not stored.
	UnverifiedRate int
	// QueueBytes bounds the bytes of the exchanges waiting to be written.
	QueueBytes int64
	// Logger receives write and prune failures; nil discards them.
	Logger *slog.Logger
	// Shared says that other processes append to the same store (replicas
	// on PostgreSQL): subscribers are then fed from the store, with every
	// process's entries, not from this process's writes (tail.go). The
	// app passes Committed to the store's OnCommit.
	Shared bool
	// TailPoll is how often a shared journal reads the store for entries
	// no announcement told it of.
	TailPoll time.Duration
}

func (o *Options) defaults() {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.UnverifiedRate <= 0 {
		o.UnverifiedRate = DefaultUnverifiedRate
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TailPoll <= 0 {
		o.TailPoll = DefaultTailPoll
	}
}

// Stats counts what the journal did since it was created.
type Stats struct {
	Recorded int64 // exchanges accepted by Record
	Waited   int64 // Record calls that found the queue full and waited for room
	Dropped  int64 // Record calls after the journal closed
	Written  int64 // exchanges appended to the store
	Failed   int64 // exchanges lost because the store refused a batch
	Missed   int64 // subscribers dropped for falling behind
	Pruned   int64 // entries deleted from the store by pruning
	Limited  int64 // unverified exchanges not stored: their source was over UnverifiedRate
}

// item is one queue entry: an exchange, or a Flush marker closed once
// everything queued before it is in the store.
type item struct {
	x    *sandbox.Exchange
	size int64 // x's share of QueueBytes
	mark chan struct{}
}

// Journal implements sandbox.Journal: Record queues, one writer goroutine
// (Run) appends to the store in batches and publishes to subscribers.
type Journal struct {
	st  sandbox.Store
	o   Options
	log *slog.Logger

	q chan item
	// queued holds QueueBytes: Record acquires an entry's size, the
	// writer releases it once the entry is written.
	queued  *semaphore.Weighted
	stopCtx context.Context
	stopFn  context.CancelFunc
	// pruneKick asks the pruner for a prune; the pruner runs beside the
	// writer so that appends never wait for one.
	pruneKick chan struct{}
	// tailKick wakes a shared journal's tail; heard is the newest id it
	// was told the store holds.
	tailKick chan struct{}
	heard    atomic.Int64
	// tailMarked closes once the tail knows where the store ends.
	tailMarked chan struct{}
	tailOnce   sync.Once
	limiter    *sourceLimiter
	// gate orders Record against shutdown: senders hold it shared, and the
	// writer takes it exclusively to set closed, after which nothing can
	// enter q and the final drain is complete.
	gate     sync.RWMutex
	closed   bool
	stopping chan struct{}
	stopOnce sync.Once
	started  atomic.Bool
	done     chan struct{}

	mu         sync.Mutex
	subs       map[*subscriber]struct{}
	subsClosed bool

	// Replaced by tests to exercise the timers without waiting.
	pruneInterval time.Duration
	pruneEvery    int
	ping          time.Duration

	recorded, waited, dropped, written, failed, missed, pruned, limited atomic.Int64
}

type subscriber struct {
	f  sandbox.JournalFilter
	ch chan *sandbox.Exchange
	// lagged is set, before ch is closed, when the subscriber fell more
	// than subscriberBuffer entries behind.
	lagged atomic.Bool
}

// New returns a journal over st. Nothing is written until Run runs.
func New(st sandbox.Store, o Options) *Journal {
	o.defaults()
	stopCtx, stopFn := context.WithCancel(context.Background())
	return &Journal{
		st:            st,
		o:             o,
		log:           o.Logger,
		q:             make(chan item, o.Buffer),
		queued:        semaphore.NewWeighted(o.QueueBytes),
		stopCtx:       stopCtx,
		stopFn:        stopFn,
		pruneKick:     make(chan struct{}, 1),
		tailKick:      make(chan struct{}, 1),
		tailMarked:    make(chan struct{}),
		limiter:       newSourceLimiter(o.UnverifiedRate),
		stopping:      make(chan struct{}),
		done:          make(chan struct{}),
		subs:          map[*subscriber]struct{}{},
		pruneInterval: pruneInterval,
		pruneEvery:    min(pruneEveryEntries, o.MaxEntries),
		ping:          15 * time.Second,
	}
}

// Record masks secrets in x, cuts every field to its bound (a small one
// when x is unverified), sets its Time when zero and queues it; it never
// does I/O. The journal owns x afterwards. When the queue is full (by count
// or bytes) Record waits for room, so that every exchange is journalled and
// memory stays bounded; after Close it drops x. An unverified exchange
// whose source is over UnverifiedRate is counted and dropped: a flood of
// unsigned requests cannot fill the journal.
func (j *Journal) Record(x *sandbox.Exchange) {
	if x == nil {
		return
	}
	if x.Time.IsZero() {
		x.Time = time.Now()
	}
	if x.Unverified && !j.limiter.allow(x.Source, x.Time) {
		j.limited.Add(1)
		return
	}
	bound(x, j.budgetOf(x))
	if j.enqueue(item{x: x, size: min(size(x), j.o.QueueBytes)}) {
		j.recorded.Add(1)
	} else {
		j.dropped.Add(1)
	}
}

// enqueue puts it on the queue, waiting for room unless the journal stops;
// it reports whether it did.
func (j *Journal) enqueue(it item) bool {
	j.gate.RLock()
	defer j.gate.RUnlock()
	if j.closed {
		return false
	}
	if it.size > 0 && !j.queued.TryAcquire(it.size) {
		j.waited.Add(1)
		if j.queued.Acquire(j.stopCtx, it.size) != nil {
			return false
		}
	}
	select {
	case j.q <- it:
		return true
	default:
	}
	j.waited.Add(1)
	select {
	case j.q <- it:
		return true
	case <-j.stopping:
		j.queued.Release(it.size)
		return false
	}
}

// Flush waits until everything recorded before the call is in the store.
func (j *Journal) Flush(ctx context.Context) error {
	mark := make(chan struct{})
	if !j.enqueue(item{mark: mark}) {
		mark = j.done // closed: the final drain wrote everything
	}
	select {
	case <-mark:
		return nil
	case <-j.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the journal's counters.
func (j *Journal) Stats() Stats {
	return Stats{
		Recorded: j.recorded.Load(),
		Waited:   j.waited.Load(),
		Dropped:  j.dropped.Load(),
		Written:  j.written.Load(),
		Failed:   j.failed.Load(),
		Missed:   j.missed.Load(),
		Pruned:   j.pruned.Load(),
		Limited:  j.limited.Load(),
	}
}

// Run is the writer loop. It returns when ctx ends or the journal is
// closed, after writing everything queued. Only the first call runs.
func (j *Journal) Run(ctx context.Context) {
	if !j.started.CompareAndSwap(false, true) {
		return
	}
	defer j.finish(ctx)
	pruner := make(chan struct{})
	go func() { defer close(pruner); j.runPruner(ctx) }()
	defer func() { <-pruner }()
	if j.o.Shared {
		tail := make(chan struct{})
		go func() { defer close(tail); j.runTail(ctx) }()
		defer func() { <-tail }()
	}
	w := j.newWriter()
	for {
		select {
		case it := <-j.q:
			w.take(ctx, it)
		case <-ctx.Done():
			return
		case <-j.stopping:
			return
		}
	}
}

// Close stops accepting exchanges, writes what is queued and waits for the
// writer. Subscribers' channels are closed.
func (j *Journal) Close() {
	j.stop()
	if j.started.CompareAndSwap(false, true) {
		j.finish(context.Background()) // Run never ran: drain here
		return
	}
	<-j.done
}

func (j *Journal) stop() {
	j.stopOnce.Do(func() {
		close(j.stopping)
		j.stopFn()
	})
}

// runPruner prunes every pruneInterval and whenever the writer asks, until
// ctx ends or the journal stops.
func (j *Journal) runPruner(ctx context.Context) {
	tick := time.NewTicker(j.pruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-j.pruneKick:
		case <-ctx.Done():
			return
		case <-j.stopping:
			return
		}
		j.prune(ctx)
	}
}

// askPrune wakes the pruner; it never blocks.
func (j *Journal) askPrune() {
	select {
	case j.pruneKick <- struct{}{}:
	default:
	}
}

// finish closes the queue, writes what remains and ends the subscriptions.
func (j *Journal) finish(ctx context.Context) {
	j.stop()
	j.gate.Lock() // waits for senders, which stopping has released
	j.closed = true
	j.gate.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWrite)
	defer cancel()
	w := j.newWriter()
drain:
	for {
		select {
		case it := <-j.q:
			w.take(ctx, it)
		default:
			break drain
		}
	}
	j.mu.Lock()
	for s := range j.subs {
		close(s.ch)
	}
	clear(j.subs)
	j.subsClosed = true
	j.mu.Unlock()
	close(j.done)
}

// writer holds the batch buffers of the one goroutine that writes.
type writer struct {
	j          *Journal
	batch      []*sandbox.Exchange
	marks      []chan struct{}
	sincePrn   int
	bytesSince int64       // appended since the last prune was asked for
	held       int64       // QueueBytes the batch holds
	timer      *time.Timer // linger's, made once
}

func (j *Journal) newWriter() *writer {
	return &writer{j: j, batch: make([]*sandbox.Exchange, 0, j.o.BatchSize)}
}

// take writes it and whatever else comes within the journal's linger, in
// batches. Nobody waits for an entry to be written — a request is answered
// before its exchange is stored — so the wait costs no caller anything,
// while a batch of many entries costs the store one op and the journal's
// pages once instead of once per handful (docs/PERFORMANCE.md, issue 15).
// A Flush marker, a full batch and shutdown end the wait.
func (w *writer) take(ctx context.Context, it item) {
	w.add(it)
	w.linger(ctx)
more:
	for len(w.batch) < w.j.o.BatchSize {
		select {
		case it = <-w.j.q:
			w.add(it)
		default:
			break more
		}
	}
	w.write(ctx)
}

// linger adds what is queued within the journal's linger.
func (w *writer) linger(ctx context.Context) {
	if len(w.marks) > 0 {
		return
	}
	if w.timer == nil {
		w.timer = time.NewTimer(batchLinger)
	} else {
		w.timer.Reset(batchLinger)
	}
	defer w.timer.Stop()
	for len(w.batch) < w.j.o.BatchSize && len(w.marks) == 0 {
		select {
		case it := <-w.j.q:
			w.add(it)
		case <-w.timer.C:
			return
		case <-ctx.Done():
			return
		case <-w.j.stopping:
			return
		}
	}
}

func (w *writer) add(it item) {
	if it.mark != nil {
		w.marks = append(w.marks, it.mark)
		return
	}
	w.batch = append(w.batch, it.x)
	w.held += it.size
}

// write appends the batch, publishes it, prunes when due and releases the
// Flush markers that were queued behind it.
func (w *writer) write(ctx context.Context) {
	j := w.j
	if len(w.batch) > 0 {
		// A batch taken from the queue is written even when Run's context
		// ends meanwhile (shutdown): a store that honours cancellation would
		// otherwise drop it. The write is bounded all the same.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWrite)
		err := j.st.AppendExchanges(actx, w.batch)
		cancel()
		if err != nil {
			j.failed.Add(int64(len(w.batch)))
			j.log.Error("journal_append_failed", "entries", len(w.batch), "error", err)
		} else {
			j.written.Add(int64(len(w.batch)))
			if j.o.Shared {
				j.wakeTail(w.batch[len(w.batch)-1].ID)
			} else {
				j.publish(w.batch)
			}
			w.sincePrn += len(w.batch)
			for _, x := range w.batch {
				w.bytesSince += size(x)
			}
			// A prune is asked for every pruneEvery entries and every
			// eighth of MaxBytes, so that history stays near its bounds.
			if w.sincePrn >= j.pruneEvery || w.bytesSince >= j.o.MaxBytes/8 {
				w.sincePrn, w.bytesSince = 0, 0
				j.askPrune()
			}
		}
		clear(w.batch) // let the exchanges go
		w.batch = w.batch[:0]
		j.queued.Release(w.held)
		w.held = 0
	}
	for _, m := range w.marks {
		close(m)
	}
	clear(w.marks)
	w.marks = w.marks[:0]
}

// prune bounds the history in the store by count, age and bytes.
func (j *Journal) prune(ctx context.Context) {
	n, err := j.st.PruneJournal(ctx, j.o.MaxEntries, time.Now().Add(-j.o.MaxAge), j.o.MaxBytes)
	if err != nil {
		j.log.Error("journal_prune_failed", "error", err)
		return
	}
	j.pruned.Add(int64(n))
}

// Subscribe returns a channel of the exchanges matching f as they are
// written (AfterID, BeforeID and Limit are ignored). A subscriber that
// falls more than 256 entries behind is dropped instead of slowing the
// journal: its channel is closed and Lagged reports true. The channel is
// also closed when the journal closes or Cancel is called.
func (j *Journal) Subscribe(f sandbox.JournalFilter) *Subscription {
	j.awaitTail()
	s := &subscriber{f: f, ch: make(chan *sandbox.Exchange, subscriberBuffer)}
	sub := &Subscription{C: s.ch, s: s, j: j}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.subsClosed {
		close(s.ch)
		return sub
	}
	j.subs[s] = struct{}{}
	return sub
}

// Subscription is a live feed of the journal.
type Subscription struct {
	C <-chan *sandbox.Exchange
	s *subscriber
	j *Journal
}

// Lagged reports whether C was closed because the subscriber fell behind.
func (s *Subscription) Lagged() bool { return s.s.lagged.Load() }

// Cancel ends the subscription.
func (s *Subscription) Cancel() {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	if _, ok := s.j.subs[s.s]; ok {
		delete(s.j.subs, s.s)
		close(s.s.ch)
	}
}

func (j *Journal) publish(xs []*sandbox.Exchange) {
	j.mu.Lock()
	defer j.mu.Unlock()
subs:
	for s := range j.subs {
		for _, x := range xs {
			if !matches(&s.f, x) {
				continue
			}
			select {
			case s.ch <- x:
			default:
				s.lagged.Store(true)
				delete(j.subs, s)
				close(s.ch)
				j.missed.Add(1)
				continue subs
			}
		}
	}
}

// matches reports whether x passes the filter's field conditions.
func matches(f *sandbox.JournalFilter, x *sandbox.Exchange) bool {
	return (f.Product == "" || f.Product == x.Product) &&
		(f.MchID == "" || f.MchID == x.MchID) &&
		(f.SessionID == "" || f.SessionID == x.SessionID) &&
		(f.NotifyID == "" || f.NotifyID == x.NotifyID) &&
		(f.Direction == "" || f.Direction == x.Direction)
}
