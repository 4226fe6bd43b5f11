package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// TestBinaryLeavesOutMethodsNothingCalls guards the image's size. The
// linker drops a method no code calls unless some reachable function looks
// methods up by a name known only at run time (reflect's MethodByName, as
// text/template does for every {{.Field}}): then it keeps every exported
// method of every type stored in an interface — gin's Engine.RunQUIC and
// the HTTP/3 stack behind it, Context.BSON, Context.BindYAML and the
// libraries behind those — about 8 MB of a 30 MB binary. The functions
// below are some of those: their names are in the function table even of
// a stripped binary. If this fails, find the culprit with
//
//	CGO_ENABLED=0 go build -ldflags=-dumpdep -o /dev/null ./server/cmd/mpsandbox 2>&1 | grep '<ReflectMethod>'
//
// and keep it out of the server (docs/PERFORMANCE.md, "Notifications,
// start-up, image").
func TestBinaryLeavesOutMethodsNothingCalls(t *testing.T) {
	b, err := os.ReadFile(testproc.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{
		"github.com/gin-gonic/gin.(*Engine).RunQUIC",
		"github.com/gin-gonic/gin.(*Context).BSON",
		"github.com/gin-gonic/gin.(*Context).BindYAML",
		"github.com/gin-gonic/gin.(*Context).ProtoBuf",
	} {
		if bytes.Contains(b, []byte(fn)) {
			t.Errorf("the binary links %s, which nothing calls: a reachable function looks methods up by name", fn)
		}
	}
}
