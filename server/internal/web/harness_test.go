package web

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write docs/screenshots/*.png from the browser tests' own browser")

// screenshotDir is where -update-screenshots writes, relative to this
// package.
const screenshotDir = "../../../docs/screenshots"

func TestMain(m *testing.M) {
	flag.Parse()
	testproc.Main(m)
}

// server is a running mpsandbox process.
type server struct {
	*testproc.Proc
	token string // sent as a bearer token when set
}

// startSandbox runs the real binary in memory on addr (port 0) and waits
// for its ready line; the process is killed when the test ends.
func startSandbox(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	return &server{Proc: testproc.Start(t, testproc.Options{Addr: addr, Flags: append([]string{"--access-log=false"}, args...)})}
}

// do sends a request to the sandbox and returns the status and body.
func (s *server) do(tb testing.TB, method, path, contentType string, body []byte) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

// json sends in (when not nil) as JSON, expects status want and decodes
// the answer into out (when not nil).
func (s *server) json(tb testing.TB, method, path string, in any, want int, out any) {
	tb.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			tb.Fatal(err)
		}
	}
	status, got := s.do(tb, method, path, "application/json", body)
	if status != want {
		tb.Fatalf("%s %s: status got %d, want %d: %s", method, path, status, want, got)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			tb.Fatalf("%s %s: %v: %s", method, path, err, got)
		}
	}
}

// chromium finds Debian's chromium. Without it the browser tests fail,
// naming the install: a skipped browser test passes a suite that checked
// nothing of the page.
func chromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("chromium is not installed, and the QA page's browser tests need it: apt-get install chromium (.ci/run installs it)")
	return ""
}

// browser is a headless chromium with a fresh profile, as the issue asks:
// nothing reaches beyond loopback (no background networking, component
// updates or QUIC).
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	// jsErrors are uncaught exceptions and console.error calls of every
	// tab; a test fails if there are any.
	jsErrors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true), // a container's /dev/shm is small
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("lang", "zh-CN"),
		chromedp.WindowSize(int(desktop.w), int(desktop.h)),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser and binds its life to ctx, which has
	// no deadline; each step gets its own (see do).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{ctx: ctx}
	b.watch(ctx)
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.jsErrors) > 0 {
			t.Errorf("the page logged JavaScript errors:\n%s", strings.Join(b.jsErrors, "\n"))
		}
	})
	return b
}

// watch collects a tab's uncaught exceptions and console.error calls. The
// browser's own log (a 401 answer, say) is not the page's error.
func (b *browser) watch(ctx context.Context) {
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source == "") {
				b.mu.Lock()
				b.jsErrors = append(b.jsErrors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
}

// tab opens another tab in the same browser (same profile, own
// sessionStorage).
func (b *browser) tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	b.watch(ctx)
	return ctx
}

// stepTimeout bounds one step; waits for the page end well within it.
const stepTimeout = 30 * time.Second

// do runs steps in a tab, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v%s", what, err, pageState(ctx))
	}
}

// pageState describes what the tab shows, for a failure message.
func pageState(tab context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tab), 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
	if err != nil {
		return ""
	}
	return "\nthe page at " + s
}

// get runs one step that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, step chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, step)
	if err != nil {
		t.Fatalf("%s: %v%s", what, err, pageState(ctx))
	}
	return v
}

// size is a viewport the screenshots are made at.
type size struct {
	name string
	w, h int64
}

var (
	desktop = size{"desktop", 1280, 860}
	phone   = size{"360", 360, 780}
)

// screenshot writes docs/screenshots/<name>-<size>.png at desktop width
// and at 360 px, when -update-screenshots is set. The page is left at
// desktop width.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A toast from the last click is not part of the view.
	do(t, ctx, "hide the toast", chromedp.Evaluate[chromedp.Void](`document.getElementById('toast').hidden = true`))
	for _, sz := range []size{desktop, phone} {
		do(t, ctx, "resize for "+name, chromedp.EmulateViewport(sz.w, sz.h))
		// The new width is laid out at the next frames.
		get(t, ctx, "settle "+name, chromedp.Evaluate[bool](
			`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise))
		png := get(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(screenshotDir, name+"-"+sz.name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do(t, ctx, "back to desktop", chromedp.EmulateViewport(desktop.w, desktop.h))
}
