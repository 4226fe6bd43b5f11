package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpsandbox/mpsandbox/testkit"
)

// pgHome is Debian's PostgreSQL 15, which the local image is made of.
const pgHome = "/usr/lib/postgresql/15"

// TestComposeReplicated runs docker-compose.yml's replicated profile as it
// is — PostgreSQL and two sandbox replicas sharing its database — with a
// PostgreSQL image built here from Debian's installed PostgreSQL 15 (no
// registry to pull postgres:15 from): both replicas become ready, a P云
// trade is prepared on replica-1 and opened on replica-2, replica-1 answers
// the query with the trade paid, and the trade-notify reaches the receiver
// on the host once, though both replicas deliver notifications.
func TestComposeReplicated(t *testing.T) {
	p := newComposeProject(t, "mpsandboxrep", "--profile", "replicated")
	password, token := "pw"+p.tag, "e2e-replicated-"+p.tag
	ports := []string{strconv.Itoa(composePort(t)), strconv.Itoa(composePort(t))}
	p.env = []string{"MPSANDBOX_IMAGE=" + testImage, "MPSANDBOX_POSTGRES_IMAGE=" + postgresImage(t, password),
		"MPSANDBOX_POSTGRES_PASSWORD=" + password, "MPSANDBOX_ADMIN_TOKEN=" + token,
		"MPSANDBOX_REPLICA_PORT_1=" + ports[0], "MPSANDBOX_REPLICA_PORT_2=" + ports[1]}
	notifyURL, forms := hostReceiver(t)
	// The services named, as the file's header says: the SQLite service
	// stays stopped.
	p.up(t, "postgres", "replica-1", "replica-2")
	if out, _ := p.run("ps", "-q", "mpsandbox"); strings.TrimSpace(out) != "" {
		t.Errorf("the SQLite service runs too: %q", out)
	}
	var replicas []*composeClient
	for i, port := range ports {
		if out, _ := p.run("port", fmt.Sprintf("replica-%d", i+1), "8080"); strings.TrimSpace(out) != "127.0.0.1:"+port {
			t.Errorf("replica-%d published on %q, want 127.0.0.1:%s only", i+1, strings.TrimSpace(out), port)
		}
		replicas = append(replicas, newComposeClient("http://127.0.0.1:"+port, token))
	}
	for _, r := range replicas {
		r.waitReady(t, 90*time.Second)
	}
	a, b := replicas[0], replicas[1]

	var c testkit.Credentials
	a.call(t, http.MethodGet, "/sandbox/v1/merchants/"+demoMchID+"/credentials", "", nil, &c)
	params := map[string]string{"app_id": c.PCloudAppID, "merchant": c.PCloudMerchant, "pay_order": "REPLICATED-1", "subject": "停车支付",
		"value": "101", "notify_url": notifyURL, "trade_scene": "GENERIC", "sign_type": "MD5"}
	var prepared map[string]any
	a.call(t, http.MethodPost, "/gate/1.0/payment/trade/prepare", "application/x-www-form-urlencoded", pcloudForm(params, c.PCloudAppSecret), &prepared)
	var launched map[string]any
	b.call(t, http.MethodPost, "/miniprogram/v1/openEmbeddedMiniProgram", "application/json", jumpBody(c.AppID, prepared["pay_id"]), &launched)

	var deliveries []url.Values
	select {
	case f := <-forms:
		deliveries = append(deliveries, f)
	case <-time.After(60 * time.Second):
		t.Fatal("no trade-notify reached the receiver on the host within 60 s")
	}
	// Both replicas scan for due notifications every second; a second
	// delivery would come within a few scans.
	for again := time.After(5 * time.Second); again != nil; {
		select {
		case f := <-forms:
			deliveries = append(deliveries, f)
		case <-again:
			again = nil
		}
	}
	if len(deliveries) != 1 {
		t.Errorf("the trade-notify arrived %d times, want once", len(deliveries))
	}
	sent := map[string]string{}
	for k := range deliveries[0] {
		sent[k] = deliveries[0].Get(k)
	}
	if sent["pay_order"] != "REPLICATED-1" || sent["status"] != "1" || !strings.EqualFold(testkit.PCloudSign(sent, c.PCloudAppSecret), sent["sign"]) {
		t.Errorf("trade-notify: %v, want REPLICATED-1 paid, signed with the merchant's secret", sent)
	}

	// The other replica sees the trade paid: one database.
	query := map[string]string{"app_id": c.PCloudAppID, "merchant": c.PCloudMerchant, "pay_order": "REPLICATED-1", "sign_type": "MD5"}
	var status map[string]any
	a.call(t, http.MethodPost, "/gate/1.0/payment/trade/query", "application/x-www-form-urlencoded", pcloudForm(query, c.PCloudAppSecret), &status)
	if fmt.Sprint(status["status"]) != "1" {
		t.Errorf("trade query on replica-1 after the jump on replica-2: %v, want status 1 (paid)", status)
	}
}

// postgresImage builds mpsandbox-postgres:e2e from e2e/testdata/postgres:
// Debian's PostgreSQL 15 with the shared libraries ldd names, and a cluster
// initialised here with the replicated profile's user and database and the
// given password (the official image makes them from POSTGRES_* at its first
// start; this one carries them).
func postgresImage(t *testing.T, password string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgHome, "bin", "postgres")); err != nil {
		t.Fatalf("the compose test builds its PostgreSQL image from Debian's PostgreSQL 15: %v (apt-get install postgresql-15)", err)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the image runs as the postgres user of this machine: %v", err)
	}
	dir, err := os.MkdirTemp("", "mpsandbox-pgimage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := func(stdin string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"usr/lib/postgresql", "usr/share/postgresql", "usr/share/zoneinfo/Etc", "etc", "lib/x86_64-linux-gnu", "lib64"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run("", "cp", "-a", pgHome, filepath.Join(rootfs, "usr/lib/postgresql/"))
	run("", "cp", "-a", "/usr/share/postgresql/15", filepath.Join(rootfs, "usr/share/postgresql/"))
	run("", "cp", "-L", "/usr/share/zoneinfo/UTC", filepath.Join(rootfs, "usr/share/zoneinfo/UTC"))
	run("", "cp", "-L", "/usr/share/zoneinfo/UTC", filepath.Join(rootfs, "usr/share/zoneinfo/Etc/UTC"))
	// The JIT provider needs LLVM (over 100 MB); the image runs with jit=off.
	jit, _ := filepath.Glob(filepath.Join(rootfs, "usr/lib/postgresql/15/lib/llvmjit*"))
	for _, f := range jit {
		os.RemoveAll(f)
	}
	// Every library the server, pg_isready and the server's modules load.
	objects := []string{filepath.Join(pgHome, "bin", "postgres"), filepath.Join(pgHome, "bin", "pg_isready")}
	modules, _ := filepath.Glob(filepath.Join(pgHome, "lib", "*.so"))
	for _, m := range modules {
		if !strings.HasPrefix(filepath.Base(m), "llvmjit") {
			objects = append(objects, m)
		}
	}
	libs := map[string]bool{}
	for _, o := range objects {
		out, err := exec.Command("ldd", o).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", o, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					libs[f] = true
				}
			}
		}
	}
	for lib := range libs {
		dst := filepath.Join(rootfs, "lib/x86_64-linux-gnu", filepath.Base(lib))
		if strings.HasPrefix(lib, "/lib64/") {
			dst = filepath.Join(rootfs, lib)
		}
		run("", "cp", "-L", lib, dst)
	}
	passwd := fmt.Sprintf("postgres:x:%s:%s::/var/lib/postgresql:/nonexistent\n", u.Uid, u.Gid)
	group := fmt.Sprintf("postgres:x:%s:\n", u.Gid)
	for name, body := range map[string]string{"etc/passwd": passwd, "etc/group": group} {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The cluster, initialised as the postgres user (PostgreSQL refuses
	// root), with the profile's user, password and database; it accepts
	// password connections from any address, as the official image does.
	pgdata := filepath.Join(dir, "pgdata")
	if err := os.Mkdir(pgdata, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, pgdata, pwfile} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(pgdata, "data")
	as := []string{"runuser", "-u", "postgres", "--"}
	if os.Geteuid() != 0 {
		as = nil
	}
	cmd := func(args ...string) (string, []string) {
		argv := append(append([]string{}, as...), args...)
		return argv[0], argv[1:]
	}
	name, args := cmd(filepath.Join(pgHome, "bin", "initdb"), "-D", data, "-U", "mpsandbox", "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	run("", name, args...)
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = hba.WriteString("host all all all scram-sha-256\n")
	if cerr := hba.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	name, args = cmd(filepath.Join(pgHome, "bin", "postgres"), "--single", "-D", data, "postgres")
	run("CREATE DATABASE mpsandbox;\n", name, args...)

	if err := copyFile(filepath.Join(dir, "Dockerfile"), filepath.Join("testdata", "postgres", "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	const image = "mpsandbox-postgres:e2e"
	build := exec.Command("docker", "build", "-q", "--build-arg", "UID="+u.Uid, "--build-arg", "GID="+u.Gid, "-t", image, dir)
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build %s: %v\n%s", image, err, out)
	}
	// Removed once compose is down (cleanups run last first): each build
	// carries a fresh password, nothing to reuse.
	t.Cleanup(func() { exec.Command("docker", "rmi", image).Run() })
	return image
}
