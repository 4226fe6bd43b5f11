// Package testkit starts an mpsandbox for a merchant's Go tests and drives
// it: the sandbox's merchants and their typed credentials, a transport that
// sends WeChat Pay's and P云's real hosts to it (so the merchant's own
// client is used unchanged), scenarios, the sandbox clock, the mini-program
// calls, a notify receiver that verifies and decrypts what it gets, and the
// journal.
//
// Two ways to start the same sandbox: Start runs it inside the test process
// (in memory, on a free loopback port, no Docker; ready in about 40 ms for
// the process's first sandbox and under 10 ms for the next on a lightly
// loaded machine, as make bench measures in docs/PERFORMANCE.md);
// RunContainer starts the image with testcontainers-go, for suites that
// must test the shipped artefact. Both return a *Sandbox.
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/mpsandbox/mpsandbox/server/embedded"
)

// Version is the semantic version of the testkit and of the HTTP surface it
// drives; GET /version reports the server's as api_version.
const Version = embedded.APIVersion

// DemoMchID is the merchant every fresh sandbox has.
const DemoMchID = "1230000109"

// The real hosts Transport sends to the sandbox.
const (
	WeChatPayHost = "api.mch.weixin.qq.com"
	PCloudHost    = "api.4pyun.com"
	// PCloudAltHost is the other host P云's trade-prepare documentation
	// names (4pyun-doc openapi/api/trade-prepare.md).
	PCloudAltHost = "papi.4pyun.com"
)

// maxAnswer bounds what the client reads of one answer.
const maxAnswer = 8 << 20

// Sandbox is a running sandbox, in process or in a container.
type Sandbox struct {
	url    string
	token  string
	client *http.Client

	// container is nil for an in-process sandbox.
	container testcontainers.Container
	volume    string
	stop      func() error
	closing   sync.Once
	closeErr  error
}

// config is what the options set.
type config struct {
	adminToken string
	clockScale float64
	dataDir    string
	logger     *slog.Logger
	tb         testing.TB

	image  string
	env    map[string]string
	public bool
}

// Option shapes a sandbox. Each says which way of starting it applies to.
type Option func(*config)

// WithAdminToken sets the admin API's bearer token, which the Sandbox then
// sends. In a container bound to 0.0.0.0 (WithPublic) the admin API
// requires it; on loopback it is accepted but not required.
func WithAdminToken(token string) Option { return func(c *config) { c.adminToken = token } }

// WithClockScale sets sandbox seconds per real second (default 1).
func WithClockScale(scale float64) Option { return func(c *config) { c.clockScale = scale } }

// WithDataDir keeps the sandbox's SQLite file in dir: in process, instead
// of memory; in a container, bind-mounted on /data instead of a fresh named
// volume (the container then runs as the calling user).
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithLogger sends an in-process sandbox's log to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithTestLog sends RunContainer's progress lines to tb's log (shown with
// -v or on failure) instead of standard error.
func WithTestLog(tb testing.TB) Option { return func(c *config) { c.tb = tb } }

// WithImage names the image RunContainer starts (default DefaultImage).
func WithImage(image string) Option { return func(c *config) { c.image = image } }

// WithEnv adds an environment variable to the container
// (MPSANDBOX_JOURNAL_MAX_ENTRIES, …).
func WithEnv(key, value string) Option {
	return func(c *config) {
		if c.env == nil {
			c.env = map[string]string{}
		}
		c.env[key] = value
	}
}

// WithPublic binds the container's server to 0.0.0.0 instead of
// 127.0.0.1, which makes its admin API demand a token.
func WithPublic() Option { return func(c *config) { c.public = true } }

func configure(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Start runs a sandbox inside the test process, as Run does, and closes it
// when the test ends.
func Start(tb testing.TB, opts ...Option) *Sandbox {
	tb.Helper()
	s, err := Run(context.Background(), opts...)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("testkit: close the sandbox: %v", err)
		}
	})
	return s
}

// Run runs a sandbox inside this process — an in-memory store (unless
// WithDataDir), a free loopback port, every product — and returns once it
// serves. The caller closes it. Container-only options are ignored.
//
// Its demo merchant (DemoMchID) has the three RSA keys of
// fixtures/testkeys, which are public — committed to the repository — so
// that no start waits for key generation: never use them for anything
// real. Its certificates, serial numbers, secrets and token are fresh in
// each process. A container (RunContainer) generates all of its keys.
func Run(ctx context.Context, opts ...Option) (*Sandbox, error) {
	c := configure(opts)
	srv, err := embedded.Start(ctx, embedded.Options{
		DataDir: c.dataDir, ClockScale: c.clockScale, AdminToken: c.adminToken, Logger: c.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start the sandbox: %w", err)
	}
	s := newSandbox(srv.URL, c.adminToken)
	s.stop = srv.Close
	return s, nil
}

func newSandbox(base, token string) *Sandbox {
	return &Sandbox{url: strings.TrimSuffix(base, "/"), token: token, client: &http.Client{}}
}

// URL is the sandbox's base URL, http://127.0.0.1:<port>.
func (s *Sandbox) URL() string { return s.url }

// AdminToken is the bearer token the Sandbox sends to the admin API
// (empty: none).
func (s *Sandbox) AdminToken() string { return s.token }

// Container is the testcontainers container behind a sandbox started by
// RunContainer (stop, start, exec, logs); nil for one started by Start.
func (s *Sandbox) Container() testcontainers.Container { return s.container }

// Close stops the sandbox: an in-process one closes its store, a container
// is terminated with its volume. Start's cleanup calls it; it is safe to
// call again.
func (s *Sandbox) Close() error {
	s.closing.Do(func() {
		if s.stop != nil {
			s.closeErr = s.stop()
		}
	})
	return s.closeErr
}

// Transport returns an http.RoundTripper that sends requests for
// https://api.mch.weixin.qq.com and https://api.4pyun.com (or
// papi.4pyun.com) to the sandbox,
// keeping their paths, queries, headers and bodies: the host is not part of
// a WeChat Pay v3 or P云 signature, so signatures hold. Requests to other
// hosts go out unchanged through http.DefaultTransport.
//
//	client, _ := core.NewClient(ctx, option.WithWechatPayPublicKeyAuthCipher(…),
//		option.WithHTTPClient(&http.Client{Transport: sb.Transport()}))
func (s *Sandbox) Transport() http.RoundTripper {
	u, _ := url.Parse(s.url)
	return hostRewriter{to: u, base: http.DefaultTransport}
}

type hostRewriter struct {
	to   *url.URL
	base http.RoundTripper
}

func (t hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch strings.ToLower(r.URL.Hostname()) {
	case WeChatPayHost, PCloudHost, PCloudAltHost:
	default:
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.to.Scheme, t.to.Host, t.to.Host
	return t.base.RoundTrip(r2)
}

// APIError is an answer of the sandbox's own API other than the one asked
// for: the status, and the house envelope's code, message and fields when
// the body is one.
type APIError struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	Fields       []Field
	RequestID    string
	// Body is the answer as received (bounded).
	Body []byte
}

// Field is one problem with a request, at a JSON pointer.
type Field struct {
	Path  string `json:"path"`
	Issue string `json:"issue"`
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s %s: status %d: %s", e.Method, e.Path, e.Status, bytes.TrimSpace(e.Body))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Path, f.Issue)
	}
	return b.String()
}

// Admin calls the sandbox's admin API: body (nil or a value marshalled as
// JSON) to path (under the sandbox's URL, e.g. /sandbox/v1/merchants), the
// answer decoded into out unless out is nil. A status outside 2xx is an
// *APIError. Every typed method of the testkit goes through it.
func (s *Sandbox) Admin(ctx context.Context, method, path string, body, out any) error {
	status, raw, err := s.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return apiError(method, path, status, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode %.200s: %w", method, path, raw, err)
	}
	return nil
}

// send sends a JSON request with the admin token and reads the answer.
// Every call carries Content-Type: application/json, body or not, which is
// what a state-changing admin call is checked for.
func (s *Sandbox) send(ctx context.Context, method, path string, body any) (int, []byte, error) {
	status, _, raw, err := s.exchange(ctx, method, path, body)
	return status, raw, err
}

// exchange is send that also gives the answer's headers.
func (s *Sandbox) exchange(ctx context.Context, method, path string, body any) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%s %s: marshal the body: %w", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, raw, nil
}

func apiError(method, path string, status int, raw []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: status, Body: raw}
	var env struct {
		Error struct {
			Code      string  `json:"code"`
			Message   string  `json:"message"`
			Fields    []Field `json:"fields"`
			RequestID string  `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil {
		e.Code, e.Message, e.Fields, e.RequestID = env.Error.Code, env.Error.Message, env.Error.Fields, env.Error.RequestID
	}
	return e
}

// Resolve acts as the person on a manual session ("pay", "cancel", …; GET
// /sandbox/v1/sessions/{id} lists a pending session's actions).
func (s *Sandbox) Resolve(ctx context.Context, sessionID, action string) error {
	return s.Admin(ctx, http.MethodPost, "/sandbox/v1/sessions/"+url.PathEscape(sessionID)+"/resolve",
		map[string]string{"action": action}, nil)
}

// Exchange is one journalled request and its answer, in or out.
type Exchange struct {
	ID           int64       `json:"id"`
	Time         time.Time   `json:"time"`
	Direction    string      `json:"direction"`
	Product      string      `json:"product,omitempty"`
	MchID        string      `json:"mchid,omitempty"`
	SessionID    string      `json:"session_id,omitempty"`
	NotifyID     string      `json:"notify_id,omitempty"`
	Attempt      int         `json:"attempt,omitempty"`
	Scenario     string      `json:"scenario,omitempty"`
	RequestID    string      `json:"request_id,omitempty"`
	Method       string      `json:"method"`
	URL          string      `json:"url"`
	Status       int         `json:"status"`
	LatencyMS    float64     `json:"latency_ms"`
	RequestBody  string      `json:"request_body,omitempty"`
	ResponseBody string      `json:"response_body,omitempty"`
	Violations   []Violation `json:"violations,omitempty"`
	Diagnostics  string      `json:"diagnostics,omitempty"`
	Error        string      `json:"error,omitempty"`
}

// JournalFilter selects exchanges; zero fields select everything.
type JournalFilter struct {
	Product, MchID, SessionID, NotifyID string
	// Direction is "in" (requests to the sandbox) or "out" (notification
	// attempts).
	Direction string
	// Before and After are exchange ids: older than Before, newer than After.
	Before, After int64
	// Limit is the most to return (the server's default when zero).
	Limit int
}

// Journal returns the exchanges f selects, newest first.
func (s *Sandbox) Journal(ctx context.Context, f JournalFilter) ([]Exchange, error) {
	q := url.Values{}
	for k, v := range map[string]string{"product": f.Product, "mchid": f.MchID, "session_id": f.SessionID,
		"notify_id": f.NotifyID, "direction": f.Direction} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]int64{"before": f.Before, "after": f.After, "limit": int64(f.Limit)} {
		if v != 0 {
			q.Set(k, fmt.Sprint(v))
		}
	}
	path := "/sandbox/v1/journal"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Exchanges []Exchange `json:"exchanges"`
	}
	err := s.Admin(ctx, http.MethodGet, path, nil, &out)
	return out.Exchanges, err
}
