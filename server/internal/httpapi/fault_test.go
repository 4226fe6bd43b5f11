package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// oneFault is a sandbox.Merchants whose merchant has one fault for every
// call; the directory's matching is tested in the merchant package.
type oneFault struct {
	sandbox.Merchants
	mu    sync.Mutex
	fault sandbox.APIFault
}

func (o *oneFault) TakeAPIFault(context.Context, string, string, string) (*sandbox.APIFault, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.fault
	return &f, nil
}

func faultServer(t *testing.T, f sandbox.APIFault) (*FaultPlayer, *recorder, *httptest.Server) {
	t.Helper()
	p := NewFaultPlayer(&oneFault{fault: f})
	j := &recorder{}
	e := gin.New()
	e.Use(RequestIDs(), ReadBody(1024, BodyTime{}))
	e.GET("/v3/x", UseRenderer(RenderAdmin), Journaled(j, "test"), Handle(func(c *gin.Context) error {
		if err := p.Play(c, "1230000109"); err != nil {
			return err
		}
		c.String(http.StatusOK, "answered")
		return nil
	}))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return p, j, srv
}

// TestTimeoutHoldsThenCloses: the client gets no answer; the connection is
// closed after the hold with no goroutine waiting for it, and the journal
// has the call with no status.
func TestTimeoutHoldsThenCloses(t *testing.T) {
	p, j, srv := faultServer(t, sandbox.APIFault{ID: "flt_1", Path: "/v3/x", Kind: sandbox.FaultTimeout, Remaining: 1, Hold: sandbox.Duration(400 * time.Millisecond)})

	client := &http.Client{Timeout: 100 * time.Millisecond}
	_, err := client.Get(srv.URL + "/v3/x")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("client: got %v, want its timeout", err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /v3/x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if deadline := time.Now().Add(200 * time.Millisecond); p.Held() == 0 {
		for p.Held() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling the server's goroutine
		}
	}
	if p.Held() == 0 {
		t.Error("Held: 0 while a connection is held")
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil || len(got) != 0 {
		t.Fatalf("read: got %q %v, want the connection closed with nothing sent", got, err)
	}
	if held := time.Since(start); held < 350*time.Millisecond {
		t.Errorf("closed after %s, want the 400ms hold", held)
	}
	time.Sleep(50 * time.Millisecond) // the timer's decrement runs beside the close
	if p.Held() != 0 {
		t.Errorf("Held: %d after every hold ended", p.Held())
	}
	if x := j.await(t); x.Status != 0 || !strings.Contains(x.Error, "no answer") {
		t.Errorf("journal: status %d error %q, want no status and the fault named", x.Status, x.Error)
	}
}

// TestTimeoutsAreBounded: past the bound, a held connection is closed at
// once rather than kept.
func TestTimeoutsAreBounded(t *testing.T) {
	p, _, srv := faultServer(t, sandbox.APIFault{ID: "flt_1", Path: "/v3/x", Kind: sandbox.FaultTimeout, Remaining: 1, Hold: sandbox.Duration(time.Minute)})
	p.maxHeld = 1
	first, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET /v3/x HTTP/1.1\r\nHost: x\r\n\r\n")
	for deadline := time.Now().Add(2 * time.Second); p.Held() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polling the server's goroutine
	}
	start := time.Now()
	_, err = (&http.Client{Timeout: 5 * time.Second}).Get(srv.URL + "/v3/x")
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("second call: got %v after %s, want the connection closed at once", err, time.Since(start))
	}
}

func TestErrorFaultsAreRenderedAndSignaturesSpoiled(t *testing.T) {
	for kind, status := range map[string]int{
		sandbox.FaultRateLimited: 429, sandbox.FaultSystemError: 500, sandbox.FaultServiceUnavailable: 503, sandbox.FaultBadSignature: 200,
	} {
		_, j, srv := faultServer(t, sandbox.APIFault{ID: "flt_1", Path: "/v3/x", Kind: kind, Remaining: 2})
		res, err := http.Get(srv.URL + "/v3/x")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != status {
			t.Errorf("%s: got %d, want %d", kind, res.StatusCode, status)
		}
		if x := j.await(t); !strings.Contains(x.Diagnostics, "flt_1") {
			t.Errorf("%s: journal diagnostics %q, want the fault named", kind, x.Diagnostics)
		}
	}
}

// await waits for the journal entry the handler records once the answer
// is out.
func (r *recorder) await(t *testing.T) *sandbox.Exchange {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if x := r.last(); x != nil {
			return x
		}
		time.Sleep(5 * time.Millisecond) // polling the server's goroutine
	}
	t.Fatal("nothing journalled within 2 s")
	return nil
}
