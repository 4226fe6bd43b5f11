package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// testImage is the image every test starts. TestMain sets it once, before
// any test runs, and nothing writes it afterwards.
var testImage string

// e2eVersion is stamped into the binary (-X main.version) so a test can see
// that the build the suite made is the one answering.
const e2eVersion = "e2e"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	// Ryuk, testcontainers' reaper, is an image to pull, and there is no
	// registry here; every test terminates its own containers instead.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	testImage = os.Getenv("MPSANDBOX_E2E_IMAGE")
	if testImage == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		img, err := buildImage(ctx)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build image:", err)
			return 1
		}
		testImage = img
	}
	return m.Run()
}

// buildImage prepares a build context in a temporary directory — the same
// files `make image` puts in build/image — and builds it once, tagged
// mpsandbox:e2e, through the docker API testcontainers-go negotiates (the
// engine here speaks API 1.41; the client negotiates down to it). A temporary
// context keeps two runs, or a concurrent `make image`, out of each other's way.
func buildImage(ctx context.Context) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "mpsandbox-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)

	build := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+e2eVersion,
		"-o", filepath.Join(dir, "mpsandbox"), "./server/cmd/mpsandbox")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	certs, err := caBundle()
	if err != nil {
		return "", err
	}
	for dst, src := range map[string]string{
		"Dockerfile":          filepath.Join(root, "Dockerfile"),
		"ca-certificates.crt": certs,
		"zoneinfo.zip":        filepath.Join(strings.TrimSpace(string(goroot)), "lib", "time", "zoneinfo.zip"),
	} {
		if err := copyFile(filepath.Join(dir, dst), src); err != nil {
			return "", err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		return "", err
	}

	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", fmt.Errorf("docker: %w", err)
	}
	defer provider.Close()
	// Each build that changes the binary leaves the previous mpsandbox:e2e
	// untagged; remove it, with its untagged parents (the legacy builder's
	// step images, which would otherwise surface as dangling), so runs do
	// not pile up images. Errors are ignored: there may be no previous
	// image, or a concurrent run may still have a container on it.
	previous, _ := provider.Client().ImageInspect(ctx, "mpsandbox:e2e")
	defer func() {
		current, err := provider.Client().ImageInspect(ctx, "mpsandbox:e2e")
		if previous.ID != "" && err == nil && current.ID != previous.ID {
			provider.Client().ImageRemove(ctx, previous.ID, client.ImageRemoveOptions{PruneChildren: true})
		}
	}()
	apiVersion, revision := testkit.Version, e2eVersion
	var log bytes.Buffer
	img, err := provider.BuildImage(ctx, &testcontainers.ContainerRequest{
		FromDockerfile: testcontainers.FromDockerfile{
			Context:        dir,
			Repo:           "mpsandbox",
			Tag:            "e2e",
			KeepImage:      true,
			BuildArgs:      map[string]*string{"API_VERSION": &apiVersion, "REVISION": &revision},
			BuildLogWriter: &log,
		},
	})
	if err != nil {
		return "", fmt.Errorf("docker build: %w\n%s", err, log.Bytes())
	}
	return img, nil
}

// caBundle finds the host's CA bundle, the file the image carries as
// /etc/ssl/certs/ca-certificates.crt.
func caBundle() (string, error) {
	for _, p := range []string{
		"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
		"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
		"/etc/ssl/cert.pem",                  // macOS, BSDs
	} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no CA bundle found; install ca-certificates")
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
