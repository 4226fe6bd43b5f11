// Command mpsandbox is the sandbox server: it plays WeChat Pay (pay score,
// vehicle-owner service), P云 and an ETC issuer plugin for merchants'
// staging, CI and QA. `mpsandbox healthcheck` probes a running server.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// gcPercent is the collector's GOGC unless the environment sets one. The
// sandbox keeps little alive and allocates some 30 KB per jump, so at Go's
// default of 100 it collects every few hundred requests; 200 halves that
// work for a few MiB more under load. 300 went past the 60 MiB target in
// make bench (63.4 MiB after a minute of jumps; docs/PERFORMANCE.md, issue 15).
const gcPercent = 200

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpsandbox:", err)
		os.Exit(2)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(cfg, os.Stderr)
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mpsandbox:", err)
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "mpsandbox: shutdown:", err)
		os.Exit(1)
	}
}

// healthcheck GETs /readyz of the configured address and exits 0 when the
// server is ready; the container's HEALTHCHECK runs it (a scratch image has
// no curl).
func healthcheck(args []string) int {
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 2
	}
	addr := cfg.Addr
	for _, any := range []string{"0.0.0.0:", "[::]:", ":"} {
		if strings.HasPrefix(addr, any) {
			addr = "127.0.0.1:" + strings.TrimPrefix(addr, any)
			break
		}
	}
	client := &http.Client{Timeout: 2 * time.Second}
	scheme := "http"
	if cfg.TLS() {
		// The probe asks the process on its own loopback whether it is
		// ready; the name in the certificate is the clients' concern.
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	resp, err := client.Get(scheme + "://" + addr + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: /readyz answered", resp.Status)
		return 1
	}
	return 0
}
