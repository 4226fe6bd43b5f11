// Command refserver is the ceiling every `make bench` figure is compared
// with: a bare net/http handler that reads and decodes the same JSON body as
// the jump path (POST /miniprogram/v1/openEmbeddedMiniProgram) and writes a
// fixed answer of the same size class. It has no router, no middleware, no
// validation, no store and no journal, so its requests/s are what the Go HTTP
// stack and encoding/json alone cost on this machine.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

// callBody mirrors the body of a wx.* call: what the reference decodes.
type callBody struct {
	Caller struct {
		AppID      string          `json:"appId"`
		Platform   string          `json:"platform"`
		SDKVersion string          `json:"sdkVersion"`
		AppJSON    json.RawMessage `json:"appJson"`
	} `json:"caller"`
	Args struct {
		AppID string `json:"appId"`
		Path  string `json:"path"`
	} `json:"args"`
}

// answer is the size of the sandbox's launch answer.
var answer = []byte(`{"errMsg":"openEmbeddedMiniProgram:ok","session_id":"ses_000000000000000000000000","scenario":"embedpay.closed","mode":"auto","state":"pending","return_url":"/miniprogram/v1/sessions/ses_000000000000000000000000/return"}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(1)
	}
	http.Serve(ln, http.HandlerFunc(handle))
}

func handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/readyz" {
		w.Write([]byte(`{"status":"ready"}`))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var call callBody
	if err := json.Unmarshal(body, &call); err != nil || call.Args.Path == "" {
		http.Error(w, `{"errMsg":"openEmbeddedMiniProgram:fail bad body"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Request-Id", "req_000000000000000000000000")
	w.Write(answer)
}
