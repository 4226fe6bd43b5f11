package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mpsandbox/mpsandbox/bench/internal/drive"
)

// containerRuns is how many times the container is started: the first on
// a fresh volume, the rest on the data it left.
const containerRuns = 6

// container reads the image size and times `docker run` to the first 200
// from /readyz. The container uses the host's network, as the e2e suite
// does, so that loopback reaches it wherever this runs.
func (b *bench) container() error {
	out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Size}}", b.c.Image).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker image inspect %s: %v: %s (run make image)", b.c.Image, err, out)
	}
	if b.r.ImageBytes, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err != nil {
		return err
	}
	volume := fmt.Sprintf("mpsandbox-bench-%d", os.Getpid())
	defer exec.Command("docker", "volume", "rm", "-f", volume).Run()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range containerRuns {
		port, err := drive.FreePort()
		if err != nil {
			return err
		}
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
		start := time.Now()
		run := exec.Command("docker", "run", "-d", "--rm", "--network", "host",
			"-e", "MPSANDBOX_ADDR=127.0.0.1:"+strconv.Itoa(port), "-v", volume+":/data", b.c.Image)
		out, err := run.Output()
		if err != nil {
			return fmt.Errorf("docker run: %v", err)
		}
		id := strings.TrimSpace(string(out))
		ready := time.Duration(0)
		for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready = time.Since(start)
					break
				}
			}
		}
		_ = exec.Command("docker", "stop", "-t", "10", id).Run()
		if ready == 0 {
			return fmt.Errorf("container %s never answered %s", id, url)
		}
		if i == 0 {
			b.r.ContainerFresh = ready
		} else {
			b.r.ContainerStarts = append(b.r.ContainerStarts, ready)
		}
	}
	fmt.Fprintf(os.Stderr, "container: fresh %v, existing volume median %v; image %d bytes\n", b.r.ContainerFresh, median(b.r.ContainerStarts), b.r.ImageBytes)
	return nil
}
