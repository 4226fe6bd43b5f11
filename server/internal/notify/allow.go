package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// DefaultAllow is the operator's allow-list when --notify-allow is not
// given: this machine's loopback only.
const DefaultAllow = "127.0.0.0/8,::1,localhost"

// Policy is where notifications may go at all: the operator's decision
// (--notify-allow), which a merchant's notify_hosts can only narrow. Its
// entries are host names (exact, or "*.example.com" for any name below
// it), IP addresses and CIDR prefixes, each name or address optionally
// with ":port". Link-local and cloud-metadata addresses are refused
// whatever it says.
type Policy struct {
	entries []entry
	text    string
}

type entry struct {
	name     string       // lower case; "*.x" matches below x
	prefix   netip.Prefix // for addresses and CIDRs
	port     string       // "" for any port
	wildcard bool
}

// ParsePolicy reads a comma-separated allow-list.
func ParsePolicy(list string) (*Policy, error) {
	p := &Policy{}
	var bad []string
	var shown []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		e, err := parseEntry(raw)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		p.entries = append(p.entries, e)
		shown = append(shown, raw)
	}
	if len(bad) > 0 {
		return nil, errors.New("--notify-allow: " + strings.Join(bad, "; "))
	}
	p.text = strings.Join(shown, ", ")
	return p, nil
}

// MustPolicy is ParsePolicy for lists known to be valid.
func MustPolicy(list string) *Policy {
	p, err := ParsePolicy(list)
	if err != nil {
		panic(err)
	}
	return p
}

func parseEntry(raw string) (entry, error) {
	if pfx, err := netip.ParsePrefix(raw); err == nil {
		// A prefix inside the never-allowed ranges is a mistake; a wider one
		// is fine: never() is applied to each address anyway.
		if never(pfx.Addr()) && (pfx.IsSingleIP() || pfx.Addr().IsLinkLocalUnicast()) {
			return entry{}, fmt.Errorf("%q: link-local and cloud-metadata addresses are never allowed", raw)
		}
		return entry{prefix: pfx.Masked()}, nil
	}
	host, port := splitListed(raw)
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return entry{}, fmt.Errorf("%q: the port must be a number from 1 to 65535", raw)
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if never(ip) {
			return entry{}, fmt.Errorf("%q: link-local and cloud-metadata addresses are never allowed", raw)
		}
		return entry{prefix: netip.PrefixFrom(ip, ip.BitLen()), port: port}, nil
	}
	name := strings.ToLower(host)
	wildcard := strings.HasPrefix(name, "*.")
	check := strings.TrimPrefix(name, "*.")
	if check == "" || strings.ContainsAny(check, "*/ @?#[]") {
		return entry{}, fmt.Errorf("%q is neither a host name, an address nor a CIDR prefix", raw)
	}
	if metadataName(check) {
		return entry{}, fmt.Errorf("%q: cloud-metadata names are never allowed", raw)
	}
	return entry{name: name, port: port, wildcard: wildcard}, nil
}

// String lists the entries.
func (p *Policy) String() string { return p.text }

// splitListed splits an allow-list entry into host and port ("" for any
// port); IPv6 entries may be bracketed, with or without a port.
func splitListed(h string) (host, port string) {
	if hh, p, err := net.SplitHostPort(h); err == nil {
		return hh, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ""
}

// never reports the addresses no allow-list opens: link-local (which holds
// the cloud metadata service at 169.254.169.254), the unspecified address,
// multicast, and the metadata addresses outside link-local (Alibaba
// Cloud's 100.100.100.200, AWS's IPv6 fd00:ec2::254).
func never(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || metadataAddrs[ip]
}

var metadataAddrs = map[netip.Addr]bool{
	netip.MustParseAddr("100.100.100.200"): true, // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"):   true, // AWS, IPv6
	netip.MustParseAddr("169.254.169.254"): true, // AWS, GCP, Azure (link-local too)
}

// metadataName reports the names of cloud metadata services.
func metadataName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "metadata" || host == "metadata.google.internal" || host == "instance-data" ||
		strings.HasSuffix(host, ".metadata.google.internal")
}

// match reports whether the entry allows host (a lower-case name or an
// address) on port.
func (e entry) match(host string, ip netip.Addr, port string) bool {
	if e.port != "" && e.port != port {
		return false
	}
	if ip.IsValid() {
		return e.prefix.IsValid() && e.prefix.Contains(ip)
	}
	if e.wildcard {
		return strings.HasSuffix(host, e.name[1:])
	}
	return e.name == host
}

// target is a checked notification URL: what the dialer must hold its
// resolved address to.
type target struct {
	// trusted: an exact name the operator listed, whose DNS the operator
	// vouches for; any address it resolves to but never() is fine.
	trusted bool
}

// Allowed checks a notification URL for merchant m: http or https, a host
// the operator's policy allows, and, when the merchant lists notify hosts,
// one of them (host:port or host). It answers a CodeForbidden
// *sandbox.Error naming the host and the list that refused it.
func (p *Policy) Allowed(m *sandbox.Merchant, rawURL string) error {
	_, err := p.check(m, rawURL)
	return err
}

func (p *Policy) check(m *sandbox.Merchant, rawURL string) (target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return target{}, sandbox.Errorf(sandbox.CodeForbidden, "notify_url %q is not a URL: %v", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, sandbox.Errorf(sandbox.CodeForbidden, "notify_url %q: scheme %q is not allowed, only http and https", rawURL, u.Scheme)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return target{}, sandbox.Errorf(sandbox.CodeForbidden, "notify_url %q has no host", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	ip, _ := netip.ParseAddr(host)
	ip = ip.Unmap()
	if ip.IsValid() && never(ip) || !ip.IsValid() && metadataName(host) {
		return target{}, sandbox.Errorf(sandbox.CodeForbidden, "notify host %q is never allowed: link-local and cloud-metadata addresses are refused", u.Host)
	}
	var t target
	ok := false
	for _, e := range p.entries {
		if e.match(host, ip, port) {
			ok = true
			t.trusted = t.trusted || !ip.IsValid() && !e.wildcard
		}
	}
	if !ok {
		return target{}, sandbox.Errorf(sandbox.CodeForbidden, "notify host %q is not allowed by this sandbox (its operator's --notify-allow is %s)", u.Host, p)
	}
	if len(m.NotifyHosts) == 0 {
		return t, nil
	}
	uport := u.Port()
	for _, h := range m.NotifyHosts {
		lh, lp := splitListed(h)
		if strings.EqualFold(lh, host) && (lp == "" || lp == uport || lp == port) {
			return t, nil
		}
	}
	return target{}, sandbox.Errorf(sandbox.CodeForbidden, "notify host %q is not allowed for merchant %s: allowed hosts are %s",
		u.Host, m.MchID, strings.Join(m.NotifyHosts, ", "))
}

// HostViolations checks a merchant's notify_hosts against the policy: a
// merchant can only narrow what the operator allows. Each entry refused is
// a violation at path/<index>.
func (p *Policy) HostViolations(path string, hosts []string) []sandbox.Violation {
	var vs []sandbox.Violation
	for i, h := range hosts {
		if why := p.narrows(h); why != "" {
			vs = append(vs, sandbox.Violation{Path: fmt.Sprintf("%s/%d", path, i), Message: why})
		}
	}
	return vs
}

// narrows says why a listed host[:port] is not within the policy, "" when
// it is.
func (p *Policy) narrows(listed string) string {
	host, port := splitListed(listed)
	host = strings.ToLower(host)
	ip, _ := netip.ParseAddr(host)
	ip = ip.Unmap()
	if ip.IsValid() && never(ip) || !ip.IsValid() && metadataName(host) {
		return fmt.Sprintf("%q: link-local and cloud-metadata addresses are never allowed", listed)
	}
	for _, e := range p.entries {
		if (e.port == "" || port == "" || e.port == port) && e.match(host, ip, e.port) {
			return ""
		}
	}
	return fmt.Sprintf("%q is outside what this sandbox allows (its operator's --notify-allow is %s): a merchant's notify_hosts can only narrow that", listed, p)
}

// NotifyURLViolations implements sandbox.NotifyTargets: the products' create
// calls refuse a notify_url the worker would refuse, at once.
func (w *Worker) NotifyURLViolations(m *sandbox.Merchant, path, rawURL string) []sandbox.Violation {
	if err := w.policy.Allowed(m, rawURL); err != nil {
		return []sandbox.Violation{{Path: path, Message: sandbox.AsError(err).Message}}
	}
	return nil
}

// targetKey carries a request's checked target to the dialer.
type targetKey struct{}

var (
	errNever     = errors.New("refused: link-local and cloud-metadata addresses are never notification targets")
	errNotListed = errors.New("refused: the name resolved to an address --notify-allow does not list (DNS rebinding?)")
)

// guardDial holds the address a name resolved to against the policy, at
// connect time: the check saw a name, the dialer sees the address, so a
// name that resolves elsewhere than it did (DNS rebinding, a doctored
// hosts file) is still stopped. Never-allowed addresses are always
// refused; an address that is not public must be listed (a CIDR or an
// address), unless it came from an exact name the operator listed.
func (p *Policy) guardDial(ctx context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errNever
	}
	ip := ap.Addr().Unmap()
	if never(ip) {
		return errNever
	}
	t, _ := ctx.Value(targetKey{}).(target)
	if t.trusted || isPublic(ip) {
		return nil
	}
	port := fmt.Sprint(ap.Port())
	for _, e := range p.entries {
		if e.prefix.IsValid() && e.match("", ip, port) {
			return nil
		}
	}
	return errNotListed
}

// isPublic reports whether ip is a global unicast address outside the
// private, shared (CGNAT) and loopback ranges.
func isPublic(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !cgnat.Contains(ip)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// defaultClient keeps connections to receivers alive (a merchant's receiver
// gets many notifications), bounds every attempt to the 5 s WeChat gives a
// merchant to answer, ignores proxy settings (the target must be the
// checked one) and guards the dial.
func defaultClient(workers int, p *Policy) *http.Client {
	d := &net.Dialer{Timeout: attemptTimeout, KeepAlive: 30 * time.Second, ControlContext: p.guardDial}
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
