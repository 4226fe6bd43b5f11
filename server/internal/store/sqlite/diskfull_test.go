//go:build unix

package sqlite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenOnAFullDiskNamesTheCause opens a database in a child process
// whose file size limit is 2 KiB, so that the first write fails as on a full
// disk: the error must say so, not only "disk I/O error".
func TestOpenOnAFullDiskNamesTheCause(t *testing.T) {
	if dir := os.Getenv("MPSANDBOX_TEST_FULL_DISK_DIR"); dir != "" {
		_, err := Open(context.Background(), Options{Path: filepath.Join(dir, "full.db")})
		fmt.Println("open:", err)
		return
	}
	cmd := exec.Command("sh", "-c", `ulimit -f 4 && exec "$0" -test.run='^TestOpenOnAFullDiskNamesTheCause$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "MPSANDBOX_TEST_FULL_DISK_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := string(out); !strings.Contains(got, "open: ") || !strings.Contains(got, "file size limit of 2048 bytes") {
		t.Fatalf("got %q, want the error to name the file size limit", got)
	}
}
