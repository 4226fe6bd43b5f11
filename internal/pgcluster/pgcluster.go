// Package pgcluster runs throwaway PostgreSQL servers: initdb into a new
// temporary directory, pg_ctl start on a free loopback port with its unix
// socket in that directory and fsync off, never a system service. Under
// root the server runs as the postgres user (PostgreSQL refuses root). The
// tests (server/internal/store/pgtest) and `make bench` use it; .ci/run
// installs Debian's postgresql.
package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// Install is how a Debian machine gets the server binaries.
const Install = "apt-get install postgresql"

// superuser is the cluster's superuser; every connection uses it, with
// trust authentication on loopback.
const superuser = "postgres"

// Cluster is one running throwaway server.
type Cluster struct {
	dir  string // owned by the server's user; holds data/, the socket, log
	bin  string // the directory of initdb, pg_ctl and postgres
	port int
	// as is the command prefix that runs a program as the server's user:
	// PostgreSQL refuses to run as root.
	as []string
}

// Binaries returns the directory of initdb and pg_ctl: on PATH, else the
// newest of Debian's /usr/lib/postgresql/<version>/bin.
func Binaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin (%s)", Install)
}

// version is the major version in a Debian bin path, 0 if none.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start initialises a cluster in a new temporary directory and starts it.
// Remove stops it and deletes the directory.
func Start() (*Cluster, error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mpsandbox-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if err := c.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.Remove()
		return nil, err
	}
	c.watch()
	return c, nil
}

// init runs initdb as a user PostgreSQL accepts.
func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		// The Debian package creates the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, PostgreSQL needs another user to run as, and there is no postgres user: %v (%s creates it)", err, Install)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return err
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	// trust: only loopback and the private socket are listened on.
	return c.run("initdb", "-D", c.data(), "-U", superuser, "-A", "trust", "-E", "UTF8", "--no-locale",
		"--no-sync", "--no-instructions")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// Dir is the cluster's directory: its data, socket and log.
func (c *Cluster) Dir() string { return c.dir }

// run runs one of the server's programs as the server's user.
func (c *Cluster) run(prog string, args ...string) error {
	argv := append(append(append([]string{}, c.as...), filepath.Join(c.bin, prog)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s%s", prog, err, out.Bytes(), c.logTail())
	}
	return nil
}

// logTail is the end of the server log, to explain a failed start.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	return "server log:\n" + string(b[max(0, len(b)-4096):])
}

// Start starts the server (again, after Stop), on the same port once it
// has one, and waits until it accepts connections.
func (c *Cluster) Start() error {
	if c.port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		c.port = p
	}
	// fsync off: a throwaway cluster needs no durability against a power
	// cut, and the tests run faster on a busy disk. synchronous_commit
	// stays on, so a commit is written to the WAL (not flushed) before it
	// is acknowledged and survives Stop, a crash of the server.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off "+
		"-c max_connections=300", c.port, c.dir)
	return c.run("pg_ctl", "start", "-D", c.data(), "-w", "-t", "60", "-l", filepath.Join(c.dir, "log"), "-o", opts)
}

// Stop stops the server at once (pg_ctl's immediate mode, as a crash
// would), closing every connection; Start brings it back.
func (c *Cluster) Stop() error {
	return c.run("pg_ctl", "stop", "-D", c.data(), "-m", "immediate", "-w")
}

// Remove stops the server and deletes its directory.
func (c *Cluster) Remove() {
	c.Stop()
	os.RemoveAll(c.dir)
}

// watch stops the server if this test process dies without Remove (a
// panic, a test timeout), so that no server outlives its tests.
func (c *Cluster) watch() {
	script := fmt.Sprintf(`while [ -d /proc/%d ] && [ -d %q ]; do sleep 1; done; `+
		`[ -d %q ] && { %s %q stop -D %q -m immediate; rm -rf %q; }`,
		os.Getpid(), c.dir, c.dir, strings.Join(c.as, " "), filepath.Join(c.bin, "pg_ctl"), c.data(), c.dir)
	cmd := exec.Command("sh", "-c", script)
	// Its own process group: a signal to the test's group leaves it be.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}

// URL is the connection URL of a database of the cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, db)
}

// CreateDatabase creates a new, empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := c.exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return c.URL(name), nil
}

// DropDatabase drops a database CreateDatabase made, closing its
// connections.
func (c *Cluster) DropDatabase(ctx context.Context, url string) error {
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	return c.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

var dbSeq atomic.Int64

// exec runs one statement on the postgres database.
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
