package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/log"
)

// Options shape one sandbox container.
type Options struct {
	// Public binds the server to 0.0.0.0 instead of 127.0.0.1, which makes
	// the admin API demand a token.
	Public bool
	// AdminToken is passed as MPSANDBOX_ADMIN_TOKEN and sent as a bearer
	// token by the Sandbox's helpers.
	AdminToken string
	// DataDir bind-mounts a host directory on /data instead of a fresh named
	// volume, for a test that wants to look at the files. The container then
	// runs as the calling user, as the Dockerfile says a bind mount needs.
	DataDir string
	// Env adds environment variables (MPSANDBOX_CLOCK_SCALE, …).
	Env map[string]string
}

// Sandbox is one running mpsandbox container on the host network.
type Sandbox struct {
	// URL is the base URL, http://127.0.0.1:<port>.
	URL string
	// Token is sent as "Authorization: Bearer" by JSON; empty sends none.
	Token string
	// Volume is the named volume on /data, empty with Options.DataDir.
	Volume string

	c      testcontainers.Container
	client *http.Client
}

// startSandbox starts a container and waits until /readyz answers 200. The
// container (and its volume) are removed when the test ends; its log is
// printed first if the test failed.
//
// Host networking: the server listens on a port picked here, on the host's
// own loopback, so notify receivers on 127.0.0.1 are reachable from the
// server exactly as they would be from a binary run by hand. It also avoids
// testcontainers' host-port access, which would pull an sshd image.
func startSandbox(tb testing.TB, opts Options) *Sandbox {
	tb.Helper()
	port := freePort(tb)
	host := "127.0.0.1"
	if opts.Public {
		host = "0.0.0.0"
	}
	env := map[string]string{"MPSANDBOX_ADDR": net.JoinHostPort(host, strconv.Itoa(port))}
	if opts.AdminToken != "" {
		env["MPSANDBOX_ADMIN_TOKEN"] = opts.AdminToken
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	s := &Sandbox{
		URL:    "http://127.0.0.1:" + strconv.Itoa(port),
		Token:  opts.AdminToken,
		client: &http.Client{Timeout: 30 * time.Second},
	}
	var dataMount mount.Mount
	if opts.DataDir != "" {
		dataMount = mount.Mount{Type: mount.TypeBind, Source: opts.DataDir, Target: "/data"}
	} else {
		s.Volume = "mpsandbox-e2e-" + strings.ToLower(rand.Text())
		dataMount = mount.Mount{Type: mount.TypeVolume, Source: s.Volume, Target: "/data"}
	}

	req := testcontainers.ContainerRequest{
		Image: testImage,
		Env:   env,
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
			hc.Mounts = append(hc.Mounts, dataMount)
		},
		WaitingFor: readyz{url: s.URL, every: 5 * time.Millisecond, timeout: 30 * time.Second},
	}
	if opts.DataDir != "" {
		req.ConfigModifier = func(c *container.Config) {
			c.User = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
		// Its progress lines go to the test's log: shown with -v or on failure.
		Logger: log.TestLogger(tb),
	})
	s.c = c
	// Registered before the error check: a container that started but never
	// became ready must still go, and its log is the only clue.
	tb.Cleanup(func() { s.terminate(tb) })
	if err != nil {
		tb.Fatalf("start sandbox: %v", err)
	}
	tb.Logf("sandbox %s ready in %v", s.URL, time.Since(began).Round(time.Millisecond))
	return s
}

func (s *Sandbox) terminate(tb testing.TB) {
	tb.Helper()
	if s.c == nil {
		return
	}
	if tb.Failed() {
		s.dumpLog(tb)
	}
	var opts []testcontainers.TerminateOption
	if s.Volume != "" {
		opts = append(opts, testcontainers.RemoveVolumes(s.Volume))
	}
	if err := testcontainers.TerminateContainer(s.c, opts...); err != nil {
		tb.Errorf("terminate sandbox: %v", err)
	}
}

func (s *Sandbox) dumpLog(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := s.c.Logs(ctx)
	if err != nil {
		tb.Logf("container log: %v", err)
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	tb.Logf("container log:\n%s", b)
}

// Stop stops the container gracefully (SIGTERM), keeping its data.
func (s *Sandbox) Stop(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Longer than the server's own --shutdown-timeout (10 s), so a SIGKILL
	// never cuts a graceful shutdown short.
	timeout := 15 * time.Second
	if err := s.c.Stop(ctx, &timeout); err != nil {
		tb.Fatalf("stop sandbox: %v", err)
	}
}

// Start starts a stopped container again and waits until it is ready. It
// keeps its port, its environment and its /data.
func (s *Sandbox) Start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.c.Start(ctx); err != nil {
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
	code, _, err := s.c.Exec(ctx, cmd)
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
// marshalled as JSON) and the sandbox's token.
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
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
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

// freePort asks the kernel for a free loopback port. It is released before
// the container binds it; on a shared host another process could take it in
// between, which is the accepted price of host networking.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
