package e2e

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Received is one request a Receiver got.
type Received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Receiver stands in for a merchant's notify_url: an HTTP server on
// 127.0.0.1 (reachable from the host-networked container) that records what
// it receives and answers as respond says.
type Receiver struct {
	// URL is the server's base URL, http://127.0.0.1:<port>; a notify_url
	// is URL plus any path.
	URL string

	respond func(Received) (status int, body []byte)
	got     chan Received
}

// newReceiver starts a Receiver, closed when the test ends. respond picks
// the answer to each request; nil answers 200 with no body. It is fixed
// here, not settable later, because the handler runs on the server's
// goroutines.
func newReceiver(tb testing.TB, respond func(Received) (status int, body []byte)) *Receiver {
	tb.Helper()
	r := &Receiver{respond: respond, got: make(chan Received, 256)}
	// httptest listens on 127.0.0.1:0 (tcp6 only where there is no IPv4).
	srv := httptest.NewServer(r)
	tb.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// newReceiverOn is newReceiver listening on addr ("172.17.0.1:0"), for a
// sandbox that reaches this host through a bridge rather than loopback.
func newReceiverOn(tb testing.TB, addr string, respond func(Received) (status int, body []byte)) (*Receiver, int) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("receiver on %s: %v", addr, err)
	}
	r := &Receiver{respond: respond, got: make(chan Received, 256)}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: r}}
	srv.Start()
	tb.Cleanup(srv.Close)
	r.URL = srv.URL
	return r, ln.Addr().(*net.TCPAddr).Port
}

// ServeHTTP records the request, then answers it.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := Received{Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body}
	if len(r.got) == cap(r.got) {
		// A test that lets 256 deliveries pile up unread has lost track;
		// answering 503 makes the sandbox retry instead of hiding one.
		http.Error(w, "receiver full", http.StatusServiceUnavailable)
		return
	}
	status, answer := http.StatusOK, []byte(nil)
	if r.respond != nil {
		status, answer = r.respond(rec)
	}
	w.WriteHeader(status)
	w.Write(answer)
	// Recorded once answered, so that Next returns requests the sandbox has
	// its answer to; what the sandbox then does with it (store the attempt,
	// schedule a retry) still takes a moment a test must wait for.
	w.(http.Flusher).Flush()
	select {
	case r.got <- rec:
	default: // filled up by concurrent deliveries since the check above
	}
}

// Next returns the next request received, or fails the test after timeout.
func (r *Receiver) Next(tb testing.TB, timeout time.Duration) Received {
	tb.Helper()
	select {
	case rec := <-r.got:
		return rec
	case <-time.After(timeout):
		tb.Fatalf("receiver: nothing within %v", timeout)
		return Received{}
	}
}
