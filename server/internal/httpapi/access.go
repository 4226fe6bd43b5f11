package httpapi

import (
	"crypto/subtle"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Access decides who may use the admin API.
type Access struct {
	// Open is true when the server is bound to loopback only: then a local
	// client — on loopback, naming a local Host, not forwarded by a proxy —
	// is asked for no token. Anyone else needs one.
	Open bool
	// AdminToken sees every merchant.
	AdminToken string
	// MerchantByToken finds the merchant a merchant-scoped token belongs to.
	MerchantByToken func(token string) (mchid string, ok bool)
	// Hosts are the names the server answers to besides the local ones
	// (localhost, loopback addresses): the bound address and the operator's
	// --public-name names. A request naming another Host is refused, so that
	// a rebound DNS name cannot reach the admin API. Empty and not Open (a
	// wildcard bind with no names given): any Host is served.
	Hosts []string
}

// IsLoopbackAddr reports whether a listen address binds loopback only.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Scope is what a caller of the admin API may see: every merchant, or one.
type Scope struct {
	All   bool
	MchID string
}

// Sees reports whether the scope covers the merchant.
func (s Scope) Sees(mchid string) bool { return s.All || s.MchID == mchid }

// Require guards the admin API, in order:
//   - the Host must be a local name or one of Hosts (DNS rebinding);
//   - an Origin, when sent, must be this server's (a web page elsewhere);
//   - a call that changes state must send Content-Type: application/json
//     or an X-Requested-With header, which no page of another origin can
//     send without the sandbox's consent (cross-site request forgery);
//   - a local client of a loopback-bound server needs no token (one it
//     sends is honoured); anyone else sends Authorization: Bearer <admin token> (everything) or
//     <merchant token> (that merchant only). ?token= is accepted only on
//     the event stream, which EventSource opens without headers.
func (a Access) Require() gin.HandlerFunc {
	hosts := map[string]bool{}
	for _, h := range a.Hosts {
		hosts[strings.ToLower(h)] = true
	}
	return func(c *gin.Context) {
		host := hostName(c.Request.Host)
		if (a.Open || len(hosts) > 0) && !isLocalName(host) && !hosts[host] {
			Fail(c, &sandbox.Error{Code: sandbox.CodeForbidden, Status: http.StatusMisdirectedRequest, Message: fmt.Sprintf(
				"Host %q is not a name of this sandbox; it answers to localhost and loopback addresses%s (an operator adds names with --public-name)",
				c.Request.Host, listed(a.Hosts))})
			return
		}
		if o := c.GetHeader("Origin"); o != "" && !sameOrigin(o, c.Request.Host) {
			Fail(c, sandbox.Errorf(sandbox.CodeForbidden, "cross-origin request from %q refused: the admin API serves its own page and non-browser clients only", o))
			return
		}
		if changesState(c.Request.Method) && !isJSON(c.GetHeader("Content-Type")) && c.GetHeader("X-Requested-With") == "" {
			Fail(c, sandbox.Errorf(sandbox.CodeUnsupported,
				"%s %s changes state: send Content-Type: application/json (or an X-Requested-With header), which a web page of another site cannot send",
				c.Request.Method, c.Request.URL.Path))
			return
		}
		token := bearer(c.GetHeader("Authorization"))
		if token == "" && c.Request.Method == http.MethodGet && strings.HasSuffix(c.Request.URL.Path, "/stream") {
			token = c.Query("token") // EventSource cannot set headers
		}
		// A token sent is honoured even where none is needed: a merchant
		// token sees its merchant only, on loopback too.
		if token == "" && a.Open && isLocalClient(c, host) {
			c.Set(keyScope, Scope{All: true})
			c.Next()
			return
		}
		switch {
		case token == "":
			why := "this sandbox is bound to a non-loopback address"
			if a.Open {
				why = "this request is not from a local client naming a local host (a proxy, or another name)"
			}
			Fail(c, sandbox.Errorf(sandbox.CodeUnauthorized, "%s: send Authorization: Bearer <admin token>", why))
			return
		case a.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.AdminToken)) == 1:
			c.Set(keyScope, Scope{All: true})
		default:
			mchid, ok := "", false
			if a.MerchantByToken != nil {
				mchid, ok = a.MerchantByToken(token)
			}
			if !ok {
				Fail(c, sandbox.Errorf(sandbox.CodeUnauthorized, "the bearer token is neither the admin token nor a merchant token"))
				return
			}
			c.Set(keyScope, Scope{MchID: mchid})
		}
		c.Next()
	}
}

func listed(hosts []string) string {
	if len(hosts) == 0 {
		return ""
	}
	return " and " + strings.Join(hosts, ", ")
}

// hostName is the lower-case host of a Host header, without port or
// brackets.
func hostName(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"))
}

// isLocalName reports whether a host names this machine's loopback.
func isLocalName(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// isLocalClient reports whether the request comes from this machine,
// naming it, and not through a proxy (which would otherwise open the
// admin API to whoever reaches the proxy).
func isLocalClient(c *gin.Context, host string) bool {
	ip, err := netip.ParseAddr(c.RemoteIP())
	if err != nil || !ip.Unmap().IsLoopback() || !isLocalName(host) {
		return false
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip"} {
		if c.GetHeader(h) != "" {
			return false
		}
	}
	return true
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

func changesState(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// ScopeOf returns the caller's scope (everything when no access check ran).
func ScopeOf(c *gin.Context) Scope {
	v, ok := c.Get(keyScope)
	if !ok {
		return Scope{All: true}
	}
	s, _ := v.(Scope)
	return s
}

func bearer(h string) string {
	const p = "Bearer "
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return strings.TrimSpace(h[len(p):])
	}
	return ""
}
