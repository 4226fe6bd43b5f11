package httpapi

import (
	"crypto/subtle"
	"net"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Access decides who may use the admin API and the QA page.
type Access struct {
	// Open is true when the server is bound to loopback only: then nobody
	// is asked for a token.
	Open bool
	// AdminToken sees every merchant.
	AdminToken string
	// MerchantByToken finds the merchant a merchant-scoped token belongs to.
	MerchantByToken func(token string) (mchid string, ok bool)
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

// Require authenticates admin requests: open on loopback, else a bearer
// admin token (everything) or merchant token (that merchant only).
func (a Access) Require() gin.HandlerFunc {
	return func(c *gin.Context) {
		if a.Open {
			c.Set(keyScope, Scope{All: true})
			c.Next()
			return
		}
		token := bearer(c.GetHeader("Authorization"))
		if token == "" {
			token = c.Query("token") // EventSource cannot set headers
		}
		switch {
		case token == "":
			Fail(c, sandbox.Errorf(sandbox.CodeUnauthorized, "this sandbox is bound to a non-loopback address: send Authorization: Bearer <admin token>"))
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
