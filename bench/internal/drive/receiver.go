package drive

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
)

// AckBody is the answer that stops P云's trade-notify retries
// (trade-notify.md 4.5: code "1001").
var AckBody = []byte(`{"code":"1001","message":"通知成功","hint":""}`)

// Receiver is a merchant's notify_url on loopback: each trade-notify form
// is handed to Answer, which says what to reply.
type Receiver struct {
	URL    string
	Answer func(path string, form url.Values) (status int, body []byte)

	srv *http.Server
	ln  net.Listener

	mu    sync.Mutex
	count int
}

// NewReceiver listens on a free loopback port; answer decides each reply
// (nil acknowledges everything).
func NewReceiver(answer func(path string, form url.Values) (int, []byte)) (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if answer == nil {
		answer = func(string, url.Values) (int, []byte) { return http.StatusOK, AckBody }
	}
	r := &Receiver{URL: "http://" + ln.Addr().String(), Answer: answer, ln: ln}
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
	return r, nil
}

// ServeHTTP answers one notification attempt.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	r.mu.Lock()
	r.count++
	r.mu.Unlock()
	status, answer := r.Answer(req.URL.Path, form)
	if answer == nil {
		// A reset connection: the worker sees an error, not an answer.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tcp, ok := conn.(*net.TCPConn); ok {
					tcp.SetLinger(0)
				}
				conn.Close()
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(answer)
}

// Requests is how many attempts reached the receiver.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }
