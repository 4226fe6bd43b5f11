package testkit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
)

// DefaultImage is the image RunContainer starts unless WithImage names
// another: what `make image` builds.
const DefaultImage = "mpsandbox:dev"

// RunContainer starts the sandbox image with testcontainers-go and returns
// once GET /readyz answers 200. The caller closes it (Close terminates the
// container and removes its volume).
//
// Host networking: the server listens on a free port of the host's own
// loopback, so notify receivers on 127.0.0.1 (Receiver) are reachable from
// it exactly as from a binary run by hand, and testcontainers needs no
// port-forwarding helper image. Ryuk, testcontainers' reaper, is an image to
// pull too: unless TESTCONTAINERS_RYUK_DISABLED is set already, RunContainer
// and DockerReachable set it to true (testcontainers reads it at its first
// call: a suite that calls testcontainers itself first must set it), and
// Close removes what RunContainer made.
func RunContainer(ctx context.Context, opts ...Option) (*Sandbox, error) {
	c := configure(opts)
	noReaper()
	if c.image == "" {
		c.image = DefaultImage
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	host := "127.0.0.1"
	if c.public {
		host = "0.0.0.0"
	}
	env := map[string]string{"MPSANDBOX_ADDR": net.JoinHostPort(host, strconv.Itoa(port))}
	if c.adminToken != "" {
		env["MPSANDBOX_ADMIN_TOKEN"] = c.adminToken
	}
	if c.clockScale != 0 {
		env["MPSANDBOX_CLOCK_SCALE"] = strconv.FormatFloat(c.clockScale, 'g', -1, 64)
	}
	for k, v := range c.env {
		env[k] = v
	}
	s := newSandbox("http://127.0.0.1:"+strconv.Itoa(port), c.adminToken)
	var data mount.Mount
	if c.dataDir != "" {
		data = mount.Mount{Type: mount.TypeBind, Source: c.dataDir, Target: "/data"}
	} else {
		s.volume = "mpsandbox-" + strings.ToLower(rand.Text())
		data = mount.Mount{Type: mount.TypeVolume, Source: s.volume, Target: "/data"}
	}
	req := testcontainers.ContainerRequest{
		Image: c.image,
		Env:   env,
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
			hc.Mounts = append(hc.Mounts, data)
		},
		WaitingFor: readyz{url: s.url, every: 5 * time.Millisecond, timeout: 30 * time.Second},
	}
	if c.dataDir != "" {
		// A bind mount keeps the host directory's owner, as the Dockerfile says.
		req.ConfigModifier = func(cc *container.Config) {
			cc.User = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
		}
	}
	logger := tclog.Default()
	if c.tb != nil {
		logger = tclog.TestLogger(c.tb)
	}
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req, Started: true, Logger: logger,
	})
	s.container = ctr
	s.stop = s.terminate
	if err != nil {
		// A container that started but never became ready must still go.
		return nil, errors.Join(fmt.Errorf("testkit: start %s: %w", c.image, err), s.terminate())
	}
	return s, nil
}

// noReaper turns Ryuk off unless TESTCONTAINERS_RYUK_DISABLED says
// otherwise; testcontainers reads it once, at its first call, so every
// testkit entry into testcontainers comes here first.
func noReaper() {
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

// DockerReachable reports why RunContainer cannot start a container here
// (no docker engine, or one that does not answer); nil when it can. A suite
// that runs both ways skips the container half on its error.
func DockerReachable(ctx context.Context) error {
	noReaper()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("docker is not reachable: %w", err)
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("docker is not reachable: %w", err)
	}
	return nil
}

func (s *Sandbox) terminate() error {
	if s.container == nil {
		return nil
	}
	var opts []testcontainers.TerminateOption
	if s.volume != "" {
		opts = append(opts, testcontainers.RemoveVolumes(s.volume))
	}
	return testcontainers.TerminateContainer(s.container, opts...)
}

// freePort asks the kernel for a free loopback port. It is released before
// the container binds it; on a shared host another process could take it in
// between, which is the accepted price of host networking.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testkit: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readyz waits until GET <url>/readyz answers 200, polling the URL itself.
//
// wait.ForHTTP cannot be used: with host networking it does resolve the port
// (MappedPort answers the port asked about), but it polls target.Host(),
// which, when the tests themselves run in a container (/.dockerenv, as in
// CI), is the docker bridge's gateway address, not 127.0.0.1 — and the
// server listens on 127.0.0.1 only. Host networking means the server shares
// the daemon's network namespace, so the URL the tests use is the one to
// poll.
type readyz struct {
	url     string
	every   time.Duration // between polls: short, so a start costs tens of ms
	timeout time.Duration
}

var _ wait.Strategy = readyz{}

// String names the strategy in testcontainers' log.
func (r readyz) String() string { return "GET " + r.url + "/readyz answers 200" }

// WaitUntilReady implements wait.Strategy.
func (r readyz) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	// A server that exits (bad flag, port taken) would otherwise be waited
	// for until the timeout; the state is asked for now and then, not on
	// every poll, to keep the daemon out of the loop.
	checkState := time.NewTicker(250 * time.Millisecond)
	defer checkState.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/readyz not ready: %w (last: %v)", r.url, ctx.Err(), last)
		case <-checkState.C:
			st, err := target.State(ctx)
			if err != nil {
				return fmt.Errorf("container state: %w", err)
			}
			if !st.Running {
				return fmt.Errorf("container %s (exit code %d) before %s/readyz answered", st.Status, st.ExitCode, r.url)
			}
		case <-tick.C:
		}
	}
}
