package httpapi

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// BodyTime bounds how long a request body may take to arrive: a client
// sending a byte every few seconds must not hold a connection and a
// goroutine for ever.
type BodyTime struct {
	// Max is the longest any body may take (default 30 s).
	Max time.Duration
	// MinRate is the bytes a second a body must keep up after Grace
	// (default 1024).
	MinRate int64
	// Grace is the time a body gets before MinRate counts (default 5 s).
	Grace time.Duration
}

// Defaults of BodyTime.
const (
	DefaultBodyTimeout = 30 * time.Second
	DefaultBodyMinRate = 1024
	defaultBodyGrace   = 5 * time.Second
)

func (b BodyTime) withDefaults() BodyTime {
	if b.Max <= 0 {
		b.Max = DefaultBodyTimeout
	}
	if b.MinRate <= 0 {
		b.MinRate = DefaultBodyMinRate
	}
	if b.Grace <= 0 {
		b.Grace = defaultBodyGrace
	}
	return b
}

// timedBody moves the connection's read deadline as the body arrives:
// Grace plus a second per MinRate bytes read so far, never past Max.
type timedBody struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	n     int64
	b     BodyTime
	// failed is set once a deadline could not be set (an HTTP/2 stream, a
	// test recorder): the body is then read without one.
	failed bool
}

func (t *timedBody) Read(p []byte) (int, error) {
	if !t.failed {
		d := t.b.Grace + time.Duration(t.n*int64(time.Second)/t.b.MinRate)
		if err := t.rc.SetReadDeadline(t.start.Add(min(d, t.b.Max))); err != nil {
			t.failed = true
		}
	}
	n, err := t.r.Read(p)
	t.n += int64(n)
	return n, err
}

// done lifts the deadline, so that a long poll or an event stream that
// follows is not cut by it.
func (t *timedBody) done() {
	if !t.failed {
		_ = t.rc.SetReadDeadline(time.Time{})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// LimitListener caps the connections open at once from one source
// address: past perSource, a new connection from it is closed at once, so
// that one client cannot take every file descriptor and goroutine.
func LimitListener(l net.Listener, perSource int) net.Listener {
	return &limitListener{Listener: l, per: perSource, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	per  int
	mu   sync.Mutex
	open map[string]int
	// Refused counts connections closed for being over the cap.
	refused int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		l.mu.Lock()
		if l.open[src] >= l.per {
			l.refused++
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[src]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, src: src}, nil
	}
}

func (l *limitListener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
}

func sourceOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	src  string
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.src) })
	return c.Conn.Close()
}
