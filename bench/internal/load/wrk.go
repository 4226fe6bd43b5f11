package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WrkScript is a wrk Lua script that posts JSON bodies to one path, cycling
// through bodies, counts answers that are not want, and prints one JSON
// line of figures at the end (latencies in µs).
func WrkScript(path string, bodies [][]byte, want int) string {
	var b strings.Builder
	b.WriteString("local bodies = {\n")
	for _, body := range bodies {
		b.WriteString("  " + strconv.Quote(string(body)) + ",\n")
	}
	fmt.Fprintf(&b, `}
local path = %q
local want = %d
local n = 0
local bad = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, path, nil, bodies[(n %% #bodies) + 1])
end
response = function(status, headers, body)
  if status ~= want then
    bad = bad + 1
    if bad == 1 then io.stderr:write("first unexpected answer: " .. status .. " " .. body .. "\n") end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,"non_want":%%d,"socket_errors":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
`, path, want)
	return b.String()
}

// wrkFigures is the line WrkScript's done prints.
type wrkFigures struct {
	Requests     int64 `json:"requests"`
	DurationUS   int64 `json:"duration_us"`
	P50US        int64 `json:"p50_us"`
	P99US        int64 `json:"p99_us"`
	MaxUS        int64 `json:"max_us"`
	NonWant      int64 `json:"non_want"`
	SocketErrors int64 `json:"socket_errors"`
}

// Wrk runs wrk with one thread and conns connections against base with the
// script, first for warmup (discarded), then for dur. Answers with a status
// of 400 or more and socket errors count as failures; the first unexpected
// answer is in FirstFailure. cpu, when not nil, reads the server's CPU time
// before and after the measured run.
func Wrk(dir, base, script string, conns int, warmup, dur time.Duration, cpu func() (time.Duration, error)) (Result, error) {
	file := filepath.Join(dir, "wrk.lua")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		return Result{}, err
	}
	run := func(d time.Duration) (wrkFigures, string, error) {
		cmd := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s",
			"--timeout", "10s", "-s", file, base)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return wrkFigures{}, "", fmt.Errorf("wrk: %v: %s %s", err, out.String(), errOut.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var f wrkFigures
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
			return f, "", fmt.Errorf("wrk output %q: %v", out.String(), err)
		}
		return f, strings.TrimSpace(errOut.String()), nil
	}
	if warmup >= time.Second {
		if _, _, err := run(warmup); err != nil {
			return Result{}, err
		}
	}
	var cpu0, cpu1 time.Duration
	var err error
	if cpu != nil {
		if cpu0, err = cpu(); err != nil {
			return Result{}, err
		}
	}
	f, stderr, err := run(dur)
	if err != nil {
		return Result{}, err
	}
	if cpu != nil {
		if cpu1, err = cpu(); err != nil {
			return Result{}, err
		}
	}
	bad := f.NonWant + f.SocketErrors
	r := Result{
		Requests: f.Requests - bad, Failures: bad, Elapsed: time.Duration(f.DurationUS) * time.Microsecond,
		P50: time.Duration(f.P50US) * time.Microsecond, P99: time.Duration(f.P99US) * time.Microsecond,
		Max: time.Duration(f.MaxUS) * time.Microsecond, FirstFailure: stderr, ServerCPU: cpu1 - cpu0,
	}
	return r, nil
}
