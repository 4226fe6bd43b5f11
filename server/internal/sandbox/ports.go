package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Batch is one atomic write: everything in it is applied, or nothing is.
// Merchants with a non-zero Version are compare-and-swap on it. Creates fail with CodeConflict when the key or an alias exists; Updates,
// Sessions and Notifications with a non-zero Version are compare-and-swap on
// that version and fail with CodeConflict when it is stale. The store sets
// Version (+1), CreatedAt and UpdatedAt on success.
type Batch struct {
	Merchants     []*Merchant // upsert
	Creates       []*Record
	Updates       []*Record
	Sessions      []*Session      // insert when Version is 0, else CAS update
	Notifications []*Notification // insert when Version is 0, else CAS update
}

// Committed says what a successful commit changed, by id only, so that it
// can cross processes as JSON (another replica's commit, delivered by its
// store): a listener re-reads from the store whatever it needs.
type Committed struct {
	// Merchants are the merchants the commit wrote.
	Merchants []string `json:"merchants,omitempty"`
	// Sessions are the sessions the commit wrote, as they now stand.
	Sessions []CommittedSession `json:"sessions,omitempty"`
	// NotifyMerchants are the merchants it left a notification pending
	// for: the notification worker has work.
	NotifyMerchants []string `json:"notify_merchants,omitempty"`
	// Journal is the newest journal entry id an append of another process
	// committed: a store shared by several processes announces their
	// appends so, and the live journal stream reads the store up to it.
	Journal int64 `json:"journal,omitempty"`
}

// CommittedSession is a session a commit wrote: enough to wake a long poll
// (State) and to plan the scheduler's next scan (DueAt).
type CommittedSession struct {
	ID    string       `json:"id"`
	MchID string       `json:"mchid"`
	State SessionState `json:"state"`
	DueAt time.Time    `json:"due_at"`
}

// Committed describes what committing b changes.
func (b *Batch) Committed() Committed {
	var c Committed
	for _, m := range b.Merchants {
		c.Merchants = appendNew(c.Merchants, m.MchID)
	}
	for _, s := range b.Sessions {
		c.Sessions = append(c.Sessions, CommittedSession{ID: s.ID, MchID: s.MchID, State: s.State, DueAt: s.DueAt})
	}
	for _, n := range b.Notifications {
		if n.State == NotifyPending {
			c.NotifyMerchants = appendNew(c.NotifyMerchants, n.MchID)
		}
	}
	return c
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Store is the state behind the sandbox. The SQLite adapter is the embedded
// default; the PostgreSQL adapter serves several processes sharing one
// database.
type Store interface {
	// Commit applies a batch atomically. When it returns nil the batch is
	// durable against a crash of the process, and every OnCommit hook has
	// been called with what it changed.
	//
	// A Merchant with Version 0 is written as it is (created or replaced);
	// one with a Version is compare-and-swap on it, like Updates.
	Commit(ctx context.Context, b *Batch) error
	// OnCommit registers a hook called after every successful commit, in
	// the order registered, before Commit returns. Register hooks before
	// the first Commit that they must see. Hooks must be quick and must not
	// commit.
	OnCommit(hook func(Committed))

	GetMerchant(ctx context.Context, mchid string) (*Merchant, error)
	ListMerchants(ctx context.Context) ([]*Merchant, error)

	GetRecord(ctx context.Context, kind, mchid, key string) (*Record, error)
	// FindRecord finds the merchant's record of a kind by one of its
	// aliases.
	FindRecord(ctx context.Context, kind, mchid, alias string) (*Record, error)
	ListRecords(ctx context.Context, kind, mchid string, limit int) ([]*Record, error)

	GetSession(ctx context.Context, id string) (*Session, error)
	ListSessions(ctx context.Context, f SessionFilter) ([]*Session, error)
	// DueSessions returns pending sessions of the merchant with a DueAt at or
	// before now, oldest first.
	DueSessions(ctx context.Context, mchid string, now time.Time, limit int) ([]*Session, error)

	GetNotification(ctx context.Context, id string) (*Notification, error)
	ListNotifications(ctx context.Context, f NotificationFilter) ([]*Notification, error)
	// DueNotifications returns pending notifications of the merchant with a
	// DueAt at or before now, oldest first.
	DueNotifications(ctx context.Context, mchid string, now time.Time, limit int) ([]*Notification, error)
	// ClaimNotifications returns what DueNotifications does, less the
	// notifications another owner holds, and leases them to owner for
	// lease (real time): processes sharing a store deliver each
	// notification once. A lease ends when it runs out (its holder died)
	// or when a Commit of the notification lands; claiming again renews
	// the owner's own. A store one process owns may ignore owner and lease.
	ClaimNotifications(ctx context.Context, mchid string, now time.Time, owner string, lease time.Duration, limit int) ([]*Notification, error)
	// ClaimSessions is ClaimNotifications for sessions: what DueSessions
	// returns, less the sessions another owner holds, leased to owner, so
	// that processes sharing a store resolve each due session once.
	ClaimSessions(ctx context.Context, mchid string, now time.Time, owner string, lease time.Duration, limit int) ([]*Session, error)
	// ReleaseClaims ends every lease owner holds on notifications and
	// sessions: a process shutting down hands what it claimed but did not
	// finish to the others at once, instead of when the leases run out.
	ReleaseClaims(ctx context.Context, owner string) error
	// NextDue returns the earliest DueAt of a pending notification or
	// session of the merchant, or the zero time when there is none.
	NextDue(ctx context.Context, mchid string) (time.Time, error)

	// AppendExchanges journals exchanges, assigning their IDs.
	AppendExchanges(ctx context.Context, xs []*Exchange) error
	QueryJournal(ctx context.Context, f JournalFilter) ([]*Exchange, error)
	GetExchange(ctx context.Context, id int64) (*Exchange, error)
	// PruneJournal deletes all but the newest keep entries, every entry
	// older than before, and the oldest entries while the stored entries
	// hold more than maxBytes (the bytes of their stored documents),
	// returning how many it deleted. A zero bound is no bound.
	PruneJournal(ctx context.Context, keep int, before time.Time, maxBytes int64) (int, error)

	Close() error
}

// Validator validates documents against the named JSON schemas.
type Validator interface {
	// Validate returns every violation of doc (a decoded JSON value) against
	// the schema name ("embedpay/trade-prepare.request"), with its JSON
	// pointer; none means valid. An unknown name is a CodeInternal error.
	Validate(name string, doc any) ([]Violation, error)
	// ValidateJSON decodes raw and validates it; malformed JSON is reported
	// as a violation at "" rather than an error.
	ValidateJSON(name string, raw []byte) ([]Violation, error)
}

// Journal records exchanges without blocking the request on a disk write.
type Journal interface {
	Record(x *Exchange)
}

// NotifyTargets says where notifications may go: the products' create
// calls ask it about a notify_url, so that one that would be refused fails
// at once.
type NotifyTargets interface {
	// NotifyURLViolations says why notifications to rawURL cannot be sent
	// for m (the operator's --notify-allow, the merchant's notify_hosts,
	// addresses never allowed), as violations at path; none when they can.
	NotifyURLViolations(m *Merchant, path, rawURL string) []Violation
}

// OutboundRequest is a notification attempt a product built and signed.
type OutboundRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Scenario modes.
const (
	ModeAuto   = "auto"
	ModeManual = "manual"
)

// Scenario scripts what the simulated user and upstream do for one product.
// The generic fields are interpreted by the product; Params carries the rest.
type Scenario struct {
	ID          string `json:"id" yaml:"id"`
	Product     string `json:"product" yaml:"product"`
	Title       string `json:"title" yaml:"title"`
	Description string `json:"description" yaml:"description"`
	Default     bool   `json:"default,omitempty" yaml:"default"`
	Mode        string `json:"mode" yaml:"mode"`
	// Magic values select the scenario from the request itself.
	Magic []Magic `json:"magic,omitempty" yaml:"magic"`
	// User is what the simulated user does in the target mini-program.
	User UserStep `json:"user" yaml:"user"`
	// Timeline moves the product's state on the sandbox clock.
	Timeline []Step `json:"timeline,omitempty" yaml:"timeline"`
	// Notify shapes the product's notifications.
	Notify NotifySpec `json:"notify" yaml:"notify"`
	// Params holds product-specific values (OBU numbers, payment outcome…).
	Params map[string]any `json:"params,omitempty" yaml:"params"`
	// File is where the scenario was loaded from.
	File string `json:"file,omitempty" yaml:"-"`
}

// Magic selects a scenario when a request field has a value: Equals matches
// the whole value, Prefix its start.
type Magic struct {
	Field  string `json:"field" yaml:"field"`
	Equals string `json:"equals,omitempty" yaml:"equals"`
	Prefix string `json:"prefix,omitempty" yaml:"prefix"`
}

// UserStep is the simulated user's action and how long it takes.
type UserStep struct {
	Action string   `json:"action" yaml:"action"`
	After  Duration `json:"after,omitempty" yaml:"after"`
}

// Step sets product state values at a time after the launch (or the
// product's own starting event).
type Step struct {
	After Duration       `json:"after" yaml:"after"`
	Set   map[string]any `json:"set" yaml:"set"`
}

// NotifySpec shapes notifications: a delay before the first attempt, faults,
// and how many attempts to fail on purpose.
type NotifySpec struct {
	Delay    Duration `json:"delay,omitempty" yaml:"delay"`
	Faults   []string `json:"faults,omitempty" yaml:"faults"` // duplicate, out_of_order, bad_signature, drop, late
	FailNext int      `json:"fail_next,omitempty" yaml:"fail_next"`
}

// HasFault reports whether the spec lists the fault.
func (n NotifySpec) HasFault(f string) bool {
	for _, x := range n.Faults {
		if x == f {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written as "90s", "2m" in YAML and JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return err
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	// A bare number is seconds; yaml would also read it as the string "2.5".
	var secs float64
	if err := unmarshal(&secs); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Scenarios is the loaded scenario catalogue.
type Scenarios interface {
	Get(id string) (*Scenario, bool)
	// List returns the scenarios of a product ("" for all), sorted by id.
	List(product string) []*Scenario
	// Default returns the product's default scenario.
	Default(product string) *Scenario
	// Pick chooses the scenario for a request: the explicit id (header or
	// caller.scenario) when given — unknown or of another product is a
	// CodeInvalid error —, then a magic value among fields, then the
	// merchant's active scenario, then the product's default.
	Pick(product, explicit string, fields map[string]string, m *Merchant) (*Scenario, error)
}
