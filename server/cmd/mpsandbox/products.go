package main

import (
	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/embedpay"
	"github.com/mpsandbox/mpsandbox/server/internal/issuer"
	"github.com/mpsandbox/mpsandbox/server/internal/payscore"
	"github.com/mpsandbox/mpsandbox/server/internal/repayment"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// module is what a product package gives the server: its side of the
// mini-program contract, its notifications, and its upstream routes.
type module interface {
	sandbox.Product
	sandbox.NotifyBuilder
	// Register mounts the product's upstream API (at the real paths) with
	// its own error dialect and journalling.
	Register(r gin.IRouter)
}

// adminModule is a module with admin routes of its own, mounted under
// /sandbox/v1 after the admin access check (use httpapi.ScopeOf there).
type adminModule interface {
	RegisterAdmin(g gin.IRouter)
}

// buildModules builds every simulated product. Each product issue adds its
// line here.
func buildModules(d sandbox.Deps) ([]module, error) {
	var mods []module
	for _, build := range []func(sandbox.Deps) (module, error){
		func(d sandbox.Deps) (module, error) { return embedpay.New(d) },
		func(d sandbox.Deps) (module, error) { return payscore.New(d) },
		func(d sandbox.Deps) (module, error) { return repayment.New(d) },
		func(d sandbox.Deps) (module, error) { return issuer.New(d) },
	} {
		m, err := build(d)
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
	}
	return mods, nil
}
