package main

import (
	"github.com/mpsandbox/mpsandbox/server/internal/app"
	"github.com/mpsandbox/mpsandbox/server/internal/embedpay"
	"github.com/mpsandbox/mpsandbox/server/internal/issuer"
	"github.com/mpsandbox/mpsandbox/server/internal/payscore"
	"github.com/mpsandbox/mpsandbox/server/internal/repayment"
)

// products builds every simulated product. Each product issue adds its
// line here.
var products = []app.Constructor{
	app.Product(embedpay.New),
	app.Product(payscore.New),
	app.Product(repayment.New),
	app.Product(issuer.New),
}
