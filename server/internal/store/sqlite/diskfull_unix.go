//go:build unix

package sqlite

import (
	"fmt"
	"syscall"
)

// writeProblem says why writing under dir may fail: the process's file
// size limit (ulimit -f), or the free space of its file system.
func writeProblem(dir string) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err == nil && lim.Cur < 1<<62 {
		return fmt.Sprintf("writing failed under the process's file size limit of %d bytes (ulimit -f): files cannot grow past it, as on a full disk", lim.Cur)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return "writing failed: " + err.Error()
	}
	return fmt.Sprintf("writing failed with %d bytes free in %s: the disk is full or failing", uint64(fs.Bavail)*uint64(fs.Bsize), dir)
}
