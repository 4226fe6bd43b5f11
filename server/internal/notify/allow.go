package notify

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// loopbackOnlyText names the default allow-list in errors.
const loopbackOnlyText = "loopback only (127.0.0.0/8, ::1, localhost): the merchant lists no notify hosts"

// Allowed checks a notification target against the merchant's allow-list:
// http or https only; with NotifyHosts empty, a loopback host
// (127.0.0.0/8, ::1, localhost); otherwise the URL's host:port or host must
// be listed. It answers a CodeForbidden *sandbox.Error naming the host and
// the list, so that the sandbox never becomes a way to reach an arbitrary
// address.
func Allowed(m *sandbox.Merchant, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return sandbox.Errorf(sandbox.CodeForbidden, "notify_url %q is not a URL: %v", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return sandbox.Errorf(sandbox.CodeForbidden, "notify_url %q: scheme %q is not allowed, only http and https", rawURL, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return sandbox.Errorf(sandbox.CodeForbidden, "notify_url %q has no host", rawURL)
	}
	if len(m.NotifyHosts) == 0 {
		if isLoopbackHost(host) {
			return nil
		}
		return sandbox.Errorf(sandbox.CodeForbidden, "notify host %q is not allowed for merchant %s: %s", u.Host, m.MchID, loopbackOnlyText)
	}
	port := u.Port()
	for _, h := range m.NotifyHosts {
		lh, lp := splitListed(h)
		if strings.EqualFold(lh, host) && (lp == "" || lp == port) {
			return nil
		}
	}
	return sandbox.Errorf(sandbox.CodeForbidden, "notify host %q is not allowed for merchant %s: allowed hosts are %s",
		u.Host, m.MchID, strings.Join(m.NotifyHosts, ", "))
}

// splitListed splits an allow-list entry into host and port ("" for any
// port); IPv6 entries may be bracketed, with or without a port.
func splitListed(h string) (host, port string) {
	if hh, p, err := net.SplitHostPort(h); err == nil {
		return hh, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ""
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// loopbackOnlyKey marks a request's context: its merchant allows loopback
// only, so the dialer must refuse any other address.
type loopbackOnlyKey struct{}

var errNotLoopback = errors.New("refused: the merchant allows loopback notify targets only")

// guardDial refuses to connect to a non-loopback address when the request's
// merchant allows loopback only: Allowed saw a name, the dialer sees the
// address it resolved to, so a name that resolves elsewhere (DNS rebinding,
// a doctored hosts file) is still stopped.
func guardDial(ctx context.Context, network, address string, _ syscall.RawConn) error {
	if ctx.Value(loopbackOnlyKey{}) == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return errNotLoopback
	}
	return nil
}

// defaultClient keeps connections to receivers alive (a merchant's receiver
// gets many notifications), bounds every attempt to the 5 s WeChat gives a
// merchant to answer, ignores proxy settings (the target must be the
// checked one) and guards the dial.
func defaultClient(workers int) *http.Client {
	d := &net.Dialer{Timeout: attemptTimeout, KeepAlive: 30 * time.Second, ControlContext: guardDial}
	return &http.Client{
		Timeout: attemptTimeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			MaxIdleConns:          4 * workers,
			MaxIdleConnsPerHost:   workers,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   attemptTimeout,
			ResponseHeaderTimeout: attemptTimeout,
			ForceAttemptHTTP2:     true,
		},
	}
}

// noRedirect stops the client at a redirect: following it would reach a
// host nobody checked against the allow-list. The redirect status is then
// the answer, which no product acknowledges.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
