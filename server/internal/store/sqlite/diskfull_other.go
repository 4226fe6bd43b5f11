//go:build !unix

package sqlite

// writeProblem says why writing under dir may fail.
func writeProblem(dir string) string {
	return "writing under " + dir + " failed: the disk is full or failing"
}
