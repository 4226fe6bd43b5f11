package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// repoRoot is the repository, from this package's directory.
const repoRoot = "../../.."

// upstreamPrefixes are the simulated APIs and the mini-program contract,
// documented per product in docs/products/, not route by route in the
// README.
var upstreamPrefixes = []string{"/v3/", "/gate/", "/vehicle/", "/miniprogram/"}

// TestREADMEListsEveryRouteAndFlag keeps the README's route tables and flag
// table true: every route the server mounts outside the upstream APIs
// (admin routes relative to /sandbox/v1) is a row "| `METHOD /path` | body |
// what |" whose body is JSON for a route that takes one, and every flag of
// `mpsandbox --help` is in the README as `--name`.
func TestREADMEListsEveryRouteAndFlag(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	rows := map[string][]string{}
	for _, line := range strings.Split(readme, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) >= 3 && strings.HasPrefix(cells[0], "| `") {
			rows[strings.Trim(cells[0], "| `")] = cells[1:]
		}
	}

	m, _ := start(t, nil)
	param := regexp.MustCompile(`[:*]([a-z_]+)`)
	for _, r := range m.server.Handler.(*gin.Engine).Routes() {
		if r.Method == "HEAD" || hasAnyPrefix(r.Path, upstreamPrefixes) {
			continue
		}
		route := r.Method + " " + param.ReplaceAllString(strings.TrimPrefix(r.Path, "/sandbox/v1"), "{$1}")
		cells, ok := rows[route]
		if !ok {
			t.Errorf("README has no row | `%s` | body | what |", route)
			continue
		}
		body := strings.Trim(cells[0], " `")
		switch {
		case r.Method == "GET" || r.Method == "DELETE":
			if body != "—" {
				t.Errorf("%s: body %q, want —", route, body)
			}
		case strings.HasPrefix(body, "{"):
			if j, _, _ := strings.Cut(body, "`"); !json.Valid([]byte(j)) {
				t.Errorf("%s: the body example %s is not JSON", route, j)
			}
		case body == "" || body == "—":
			t.Errorf("%s takes a body: the README shows none", route)
		}
	}

	out, err := exec.Command(testproc.Binary(t), "--help").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Usage") {
		t.Fatalf("mpsandbox --help: %v\n%s", err, out)
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1)
	if len(flags) < 10 {
		t.Fatalf("found %d flags in --help:\n%s", len(flags), out)
	}
	for _, f := range flags {
		if !strings.Contains(readme, "`--"+f[1]+"`") {
			t.Errorf("README does not list the flag `--%s`", f[1])
		}
	}
}

// TestDocsStandAlone: nothing in the repository outside tests points at
// files a user does not have.
func TestDocsStandAlone(t *testing.T) {
	outside := regexp.MustCompile(`\.\./shared/|DOMAIN\.md|\bseed 00[0-3]\b`)
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "build", "data", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".png") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if outside.MatchString(line) {
				t.Errorf("%s:%d cites a file outside the repository: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TestLogKeys: every log call names a merchant, a session and an error by
// the one key each (mchid, session_id, error), as the README promises.
func TestLogKeys(t *testing.T) {
	call := regexp.MustCompile(`\.(Debug|Info|Warn|Error)\("[a-z_]+",.*"(merchant|session|err|mch_id|sessionID)",`)
	err := filepath.WalkDir(filepath.Join(repoRoot, "server"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if m := call.FindStringSubmatch(line); m != nil {
				t.Errorf("%s:%d logs %q: use mchid, session_id or error", path, i+1, m[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
