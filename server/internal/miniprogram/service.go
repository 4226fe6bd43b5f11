// Package miniprogram is the client-side contract every product shares: a
// wx.* call launches a session in a simulated mini-program, the simulated
// user acts (at once, later on the clock, or when a person decides), and the
// caller sees the return as App.onShow would.
package miniprogram

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/merchant"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Options wires a Service.
type Options struct {
	Store     sandbox.Store
	Clock     *sandbox.Clock
	Merchants *merchant.Directory
	Scenarios sandbox.Scenarios
	Products  []sandbox.Product
	// ManualTimeout is how long a manual session waits for a person, on the
	// merchant clock, before it resolves as the user leaving (default 30m).
	ManualTimeout time.Duration
	// MaxPoll is the longest real wait between scans for due sessions.
	MaxPoll time.Duration
	// Shutdown closes when the server starts shutting down; long polls
	// return then.
	Shutdown <-chan struct{}
	Logger   *slog.Logger
}

// resolvers bounds the due sessions resolved at once.
const resolvers = 16

// scanGrain is the shortest sleep between scans while sessions keep
// falling due: a busy jump path makes one due every fraction of a
// millisecond, and a scan every millisecond paid two queries for a handful
// of them. Each due session still resolves as of its DueAt (resolve is
// given that instant), at most about scanGrain later in real time.
// (docs/PERFORMANCE.md, issue 15: 5 ms against 1 ms, two builds under the
// same load, 3 % less CPU per jump.)
const scanGrain = 5 * time.Millisecond

// sessionLease is how long a due session the scheduler claimed stays its
// own before a replica sharing the store may take it over (its holder
// died): the resolve itself takes milliseconds, and its commit ends the
// lease.
const sessionLease = 10 * time.Second

// Service launches and resolves sessions.
type Service struct {
	o        Options
	products map[string]sandbox.Product
	targets  map[sandbox.Target]sandbox.Product
	known    map[string][]string // api → known target keys, for error messages
	// owner names this scheduler in its claims of due sessions.
	owner string

	mu      sync.Mutex
	waiters map[string][]chan struct{}
	wake    chan struct{}

	// A commit wakes Run only for a pending session due before Run would
	// look again on its own, so that a busy jump path does not pay a scan
	// per launch. sched guards what Run has planned: while it scans, the
	// earliest due time committed meanwhile; else when it scans next.
	sched         sync.Mutex
	scanning      bool
	dueDuringScan time.Time // real time; zero: none
	nextScan      time.Time // real time
}

// New builds a Service; two products claiming one target is a programming
// error reported here.
func New(o Options) (*Service, error) {
	if o.ManualTimeout <= 0 {
		o.ManualTimeout = 30 * time.Minute
	}
	if o.MaxPoll <= 0 {
		o.MaxPoll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		o: o, products: map[string]sandbox.Product{}, targets: map[sandbox.Target]sandbox.Product{},
		known: map[string][]string{}, waiters: map[string][]chan struct{}{}, wake: make(chan struct{}, 1),
		owner: httpapi.NewID("sch_"),
	}
	for _, api := range sandbox.APIs {
		s.known[api] = []string{}
	}
	for _, p := range o.Products {
		s.products[p.Name()] = p
		for _, t := range p.Targets() {
			if other, dup := s.targets[t]; dup {
				return nil, fmt.Errorf("target %s %q claimed by %s and %s", t.API, t.Key, other.Name(), p.Name())
			}
			s.targets[t] = p
			s.known[t.API] = append(s.known[t.API], t.Key)
		}
	}
	for _, keys := range s.known {
		sort.Strings(keys)
	}
	if o.Clock != nil {
		o.Clock.OnAdvance(s.Wake)
	}
	return s, nil
}

// Product returns a registered product by name.
func (s *Service) Product(name string) (sandbox.Product, bool) {
	p, ok := s.products[name]
	return p, ok
}

// targetKey extracts what identifies the target in a call's args.
func targetKey(api string, args map[string]any) (key, path string) {
	str := func(k string) string { v, _ := args[k].(string); return v }
	switch api {
	case sandbox.APIOpenBusinessView:
		return str("businessType"), "/args/businessType"
	case sandbox.APIPluginNavigate:
		u := str("url")
		rest, ok := strings.CutPrefix(u, "plugin://")
		if !ok {
			return "", "/args/url"
		}
		alias, _, _ := strings.Cut(rest, "/")
		return alias, "/args/url"
	case sandbox.APIAppLaunchMiniProgram:
		return str("userName"), "/args/userName"
	case sandbox.APIRequestPayment:
		return "", ""
	default:
		return strings.TrimSpace(str("appId")), "/args/appId"
	}
}

// TargetProduct names the product that serves the target of a wx.* call's
// args, "" when none does: what a call refused before it became a session
// was for.
func (s *Service) TargetProduct(api string, args json.RawMessage) string {
	var a map[string]any
	_ = json.Unmarshal(args, &a)
	key, _ := targetKey(api, a)
	if p, ok := s.targets[sandbox.Target{API: api, Key: key}]; ok {
		return p.Name()
	}
	return ""
}

// Launch handles one wx.* call: it finds the merchant's product for the
// target, lets it validate the call, picks the scenario and schedules the
// user, and — for an auto scenario whose user acts at once — resolves the
// session in the same commit. When a concurrent commit wins a
// compare-and-swap of the launch's (the merchant using up a once scenario,
// the record the user acts on), it launches again on what that commit left.
// The warnings are the inferred rules the call broke (the product's
// Launched.Warnings); a strict merchant's call is refused with them instead.
func (s *Service) Launch(ctx context.Context, call *sandbox.Call) (*sandbox.Session, []sandbox.Violation, error) {
	for try := 1; ; try++ {
		sess, warnings, err := s.launch(ctx, call)
		if err == nil || !sandbox.IsCode(err, sandbox.CodeConflict) || try == sandbox.UpdateTries {
			return sess, warnings, err
		}
		if call.Merchant, err = s.o.Merchants.Refresh(ctx, call.Merchant.MchID); err != nil {
			return nil, nil, err
		}
	}
}

func (s *Service) launch(ctx context.Context, call *sandbox.Call) (*sandbox.Session, []sandbox.Violation, error) {
	known, ok := s.known[call.API]
	if !ok {
		return nil, nil, sandbox.Errorf(sandbox.CodeNotFound, "%s is not simulated by this sandbox; it simulates %s", call.API, strings.Join(sandbox.APIs, ", "))
	}
	key, path := targetKey(call.API, call.Doc)
	p, ok := s.targets[sandbox.Target{API: call.API, Key: key}]
	if !ok {
		msg := fmt.Sprintf("%q is not a target this sandbox simulates for %s; known: %s", key, call.API, strings.Join(known, ", "))
		if key == "" {
			msg = fmt.Sprintf("missing; %s targets: %s", call.API, strings.Join(known, ", "))
		}
		return nil, nil, sandbox.Invalid("unknown target", sandbox.Violation{Path: path, Message: msg})
	}
	l, err := p.Launch(ctx, call)
	if err != nil {
		return nil, nil, err
	}
	if err := sandbox.Advice(call.Merchant, l.Warnings); err != nil {
		return nil, nil, err
	}
	sc, err := s.pick(p.Name(), call, l)
	if err != nil {
		return nil, nil, err
	}
	// Read after the product's checks: whatever it saw on the clock is no
	// later than the launch.
	now := s.o.Clock.Now(call.Merchant.MchID)
	sess := &sandbox.Session{
		ID: newSessionID(time.Now()), MchID: call.Merchant.MchID, Product: p.Name(), API: call.API, Target: key,
		Scenario: sc.ID, Mode: sc.Mode, Ref: l.Ref, State: sandbox.SessionPending, Args: call.Args,
		DueAt: now.Add(s.o.ManualTimeout),
	}
	if sess.Mode == sandbox.ModeAuto {
		step := sc.User
		if up, ok := p.(sandbox.UserPlanner); ok {
			step = up.UserStep(sc, sess)
		}
		sess.Action, sess.DueAt = step.Action, now.Add(step.After.D())
	}
	batch := l.Batch
	if batch == nil {
		batch = &sandbox.Batch{}
	}
	// A scenario activated for the next launch only is used up now.
	if act, ok := call.Merchant.Active[p.Name()]; ok && act.Once && act.ID == sess.Scenario {
		m, err := s.o.Merchants.Edit(call.Merchant.MchID)
		if err != nil {
			return nil, nil, err
		}
		delete(m.Active, p.Name())
		batch.Merchants = append(batch.Merchants, m)
	}
	if sess.Mode == sandbox.ModeAuto && !sess.DueAt.After(now) {
		more, err := p.Resolve(ctx, sess, sess.Action, sess.DueAt)
		if err != nil {
			return nil, nil, err
		}
		merge(batch, more)
	}
	batch.Sessions = append(batch.Sessions, sess)
	if err := s.o.Store.Commit(ctx, batch); err != nil {
		return nil, nil, err
	}
	return sess, l.Warnings, nil
}

// pick chooses the session's scenario: the call's explicit one, else the
// one the call's records were made under while the catalogue has it, else
// a magic value, the merchant's active one, the product's default.
func (s *Service) pick(product string, call *sandbox.Call, l *sandbox.Launched) (*sandbox.Scenario, error) {
	explicit := call.Scenario
	if explicit == "" && l.Scenario != "" {
		if sc, ok := s.o.Scenarios.Get(l.Scenario); ok && sc.Product == product {
			return sc, nil
		}
	}
	sc, err := s.o.Scenarios.Pick(product, explicit, l.Magic, call.Merchant)
	if err != nil && explicit != "" {
		return nil, sandbox.Invalid("unknown scenario", sandbox.Violation{Path: "/caller/scenario", Message: sandbox.AsError(err).Message})
	}
	return sc, err
}

// Resolve applies a person's (or an admin call's) choice to a pending
// session.
func (s *Service) Resolve(ctx context.Context, id, action string) (*sandbox.Session, error) {
	sess, err := s.o.Store.GetSession(ctx, id)
	if err != nil {
		return nil, err
	}
	if sess.State != sandbox.SessionPending {
		return nil, sandbox.Errorf(sandbox.CodeConflict, "session %s is already %s (action %q)", id, sess.State, sess.Action)
	}
	p, ok := s.products[sess.Product]
	if !ok {
		return nil, sandbox.Errorf(sandbox.CodeInternal, "session %s belongs to unknown product %q", id, sess.Product)
	}
	if !slices.Contains(p.Actions(sess), action) {
		return nil, sandbox.Invalid("unknown action", sandbox.Violation{Path: "/action",
			Message: fmt.Sprintf("%q is not an action of this %s session; choose one of: %s", action, sess.Product, strings.Join(p.Actions(sess), ", "))})
	}
	return sess, s.resolve(ctx, p, sess, action, s.o.Clock.Now(sess.MchID))
}

// resolve applies action at the instant at: the merchant's clock for a
// person's choice, the session's DueAt for a scheduled action.
func (s *Service) resolve(ctx context.Context, p sandbox.Product, sess *sandbox.Session, action string, at time.Time) error {
	batch, err := p.Resolve(ctx, sess, action, at)
	if err != nil {
		return err
	}
	if batch == nil {
		batch = &sandbox.Batch{}
	}
	batch.Sessions = append(batch.Sessions, sess)
	return s.o.Store.Commit(ctx, batch)
}

// Committed is the store's after-commit hook: a session that is no longer
// pending releases its long polls; a pending one due before Run would look
// again wakes it.
func (s *Service) Committed(c sandbox.Committed) {
	for _, sess := range c.Sessions {
		if sess.State != sandbox.SessionPending {
			s.release(sess.ID)
		}
	}
	s.wakeFor(c.Sessions)
}

// wakeFor wakes Run when one of the sessions is pending and due before Run
// would look again on its own.
func (s *Service) wakeFor(sessions []sandbox.CommittedSession) {
	var due time.Time
	now := time.Now()
	for _, sess := range sessions {
		if sess.State != sandbox.SessionPending {
			continue
		}
		at := now.Add(s.o.Clock.RealDuration(sess.DueAt.Sub(s.o.Clock.Now(sess.MchID))))
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	if due.IsZero() {
		return
	}
	s.sched.Lock()
	wake := false
	switch {
	case s.scanning:
		// The scan may have read past it: Run plans with it when done.
		if s.dueDuringScan.IsZero() || due.Before(s.dueDuringScan) {
			s.dueDuringScan = due
		}
	default:
		wake = due.Before(s.nextScan)
	}
	s.sched.Unlock()
	if wake {
		s.Wake()
	}
}

func merge(into, from *sandbox.Batch) {
	if from == nil {
		return
	}
	into.Merchants = append(into.Merchants, from.Merchants...)
	into.Creates = append(into.Creates, from.Creates...)
	into.Updates = append(into.Updates, from.Updates...)
	into.Sessions = append(into.Sessions, from.Sessions...)
	into.Notifications = append(into.Notifications, from.Notifications...)
}

// Wait returns the session once it is no longer pending, or as it stands
// when wait has passed.
func (s *Service) Wait(ctx context.Context, id string, wait time.Duration) (*sandbox.Session, error) {
	deadline := time.Now().Add(wait)
	for {
		ch := s.subscribe(id)
		sess, err := s.o.Store.GetSession(ctx, id)
		if err != nil || sess.State != sandbox.SessionPending || wait <= 0 {
			s.unsubscribe(id, ch)
			return sess, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			s.unsubscribe(id, ch)
			return sess, nil
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		s.unsubscribe(id, ch)
		if ctx.Err() != nil {
			return sess, nil
		}
	}
}

func (s *Service) subscribe(id string) chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	return ch
}

func (s *Service) unsubscribe(id string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[id]
	for i, w := range ws {
		if w == ch {
			s.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(s.waiters[id]) == 0 {
		delete(s.waiters, id)
	}
}

func (s *Service) release(id string) {
	s.mu.Lock()
	ws := s.waiters[id]
	delete(s.waiters, id)
	s.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// Wake makes Run look for due sessions now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run resolves sessions when they fall due on their merchant's clock: an
// auto scenario's delayed user action, a manual session's timeout.
func (s *Service) Run(ctx context.Context) {
	for {
		s.sched.Lock()
		s.scanning, s.dueDuringScan = true, time.Time{}
		s.sched.Unlock()
		sleep := s.scan(ctx)
		s.sched.Lock()
		next := time.Now().Add(sleep)
		if !s.dueDuringScan.IsZero() && s.dueDuringScan.Before(next) {
			next = s.dueDuringScan
		}
		s.scanning, s.nextScan = false, next
		s.sched.Unlock()
		t := time.NewTimer(max(time.Until(next), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// scan resolves what is due and returns how long to sleep.
func (s *Service) scan(ctx context.Context) time.Duration {
	sleep := s.o.MaxPoll
	for _, m := range s.o.Merchants.List() {
		now := s.o.Clock.Now(m.MchID)
		// Claimed, so that replicas sharing the store resolve each due
		// session once; a store one process owns returns DueSessions.
		due, err := s.o.Store.ClaimSessions(ctx, m.MchID, now, s.owner, sessionLease, 100)
		if err != nil {
			if ctx.Err() == nil {
				s.o.Logger.Error("due_sessions_failed", "mchid", m.MchID, "error", err)
			}
			return sleep
		}
		// Resolved side by side, so that their commits share the store's
		// group commits: one at a time, the resolver falls behind a busy
		// jump path.
		var wg sync.WaitGroup
		sem := make(chan struct{}, resolvers)
		for _, sess := range due {
			p, ok := s.products[sess.Product]
			if !ok {
				continue
			}
			action := sess.Action
			if sess.Mode == sandbox.ModeManual {
				action = sandbox.ActionTimeout
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := s.resolve(ctx, p, sess, action, sess.DueAt); err != nil && !sandbox.IsCode(err, sandbox.CodeConflict) {
					s.o.Logger.Error("resolve_failed", "session_id", sess.ID, "mchid", m.MchID, "error", err)
				}
			}()
		}
		wg.Wait()
		if len(due) == 100 {
			return 0 // more to do
		}
		// A time already past belongs to a session another replica holds
		// (its claim: its commit or its lease's end settles it), to one
		// whose resolve failed, or to a notification (not ours): MaxPoll
		// covers them, instead of a scan a millisecond until they go.
		if at, err := s.o.Store.NextDue(ctx, m.MchID); err == nil && at.After(now) {
			if d := s.o.Clock.RealDuration(at.Sub(now)); d < sleep {
				sleep = max(d, min(scanGrain, sleep))
			}
		}
	}
	return sleep
}
