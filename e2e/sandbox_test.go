package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// Sandbox is one running mpsandbox container on the host network, started
// by the testkit as a merchant's suite starts it, with the suite's own
// assertion helpers for HTTP.
type Sandbox struct {
	*testkit.Sandbox
	client *http.Client
}

// startSandbox starts the suite's image with testkit.RunContainer (host
// networking, a free loopback port, a wait on /readyz) and opts. The
// container and its volume are removed when the test ends; its log is
// printed first if the test failed.
func startSandbox(tb testing.TB, opts ...testkit.Option) *Sandbox {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	sb, err := testkit.RunContainer(ctx, append([]testkit.Option{testkit.WithImage(testImage), testkit.WithTestLog(tb)}, opts...)...)
	if err != nil {
		tb.Fatalf("start sandbox: %v", err)
	}
	s := &Sandbox{Sandbox: sb, client: &http.Client{Timeout: 30 * time.Second}}
	tb.Cleanup(func() {
		if tb.Failed() {
			s.dumpLog(tb)
		}
		if err := s.Close(); err != nil {
			tb.Errorf("terminate sandbox: %v", err)
		}
	})
	tb.Logf("sandbox %s ready in %v", s.URL(), time.Since(began).Round(time.Millisecond))
	return s
}

func (s *Sandbox) dumpLog(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := s.Container().Logs(ctx)
	if err != nil {
		tb.Logf("container log: %v", err)
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	tb.Logf("container log:\n%s", b)
}

// merchant returns a merchant with its typed credentials.
func (s *Sandbox) merchant(tb testing.TB, mchid string) *testkit.Merchant {
	tb.Helper()
	m, err := s.Merchant(context.Background(), mchid)
	if err != nil {
		tb.Fatalf("merchant %s: %v", mchid, err)
	}
	return m
}

// Stop stops the container gracefully (SIGTERM), keeping its data.
func (s *Sandbox) Stop(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Longer than the server's own --shutdown-timeout (10 s), so a SIGKILL
	// never cuts a graceful shutdown short.
	timeout := 15 * time.Second
	if err := s.Container().Stop(ctx, &timeout); err != nil {
		tb.Fatalf("stop sandbox: %v", err)
	}
}

// Start starts a stopped container again and waits until it is ready. It
// keeps its port, its environment and its /data.
func (s *Sandbox) Start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Container().Start(ctx); err != nil {
		tb.Fatalf("start sandbox again: %v", err)
	}
}

// Restart stops and starts the container.
func (s *Sandbox) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop(tb)
	s.Start(tb)
}

// Exec runs a command in the container and returns its exit code.
func (s *Sandbox) Exec(tb testing.TB, cmd ...string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, err := s.Container().Exec(ctx, cmd)
	if err != nil {
		tb.Fatalf("exec %q: %v", cmd, err)
	}
	return code
}

// Response is an answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req as is (no token added) and reads the whole answer.
func (s *Sandbox) Do(tb testing.TB, req *http.Request) Response {
	tb.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// NewRequest builds a request to path with body (nil, []byte, or a value
// marshalled as JSON) and the sandbox's admin token.
func (s *Sandbox) NewRequest(tb testing.TB, method, path string, body any) *http.Request {
	tb.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatalf("marshal %s body: %v", path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL()+path, r)
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.AdminToken() != "" {
		req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	}
	return req
}

// JSON sends body to path, requires status want, and decodes the answer
// into out (unless out is nil).
func (s *Sandbox) JSON(tb testing.TB, method, path string, body any, want int, out any) Response {
	tb.Helper()
	resp := s.Do(tb, s.NewRequest(tb, method, path, body))
	if resp.Status != want {
		tb.Fatalf("%s %s: status got %d, want %d; body: %s", method, path, resp.Status, want, resp.Body)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, path, resp.Body, err)
		}
	}
	return resp
}
