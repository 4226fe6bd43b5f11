package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mpsandbox/mpsandbox/server/internal/testproc"
)

// k8sManifest is the part of a Kubernetes object the example is checked on.
type k8sManifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		// A Deployment's is {matchLabels: …}, a Service's the labels.
		Selector map[string]any `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
}

// TestKubernetesExampleMatchesTheBinary parses deploy/kubernetes/ and checks
// it against the real binary, so that the example cannot drift from it:
// every variable is one a flag of `mpsandbox --help` reads, the values
// given literally are ones the server accepts, the database URL and the
// admin token come from a Secret, the probes are paths the server answers
// 200 on, the container port is the one MPSANDBOX_ADDR listens on and the
// Service sends to it. No cluster is needed (nor available in CI).
func TestKubernetesExampleMatchesTheBinary(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "kubernetes", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no deploy/kubernetes/*.yaml")
	}
	byKind := map[string][]k8sManifest{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(false)
		for {
			var m k8sManifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			byKind[m.Kind] = append(byKind[m.Kind], m)
		}
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["Service"]) != 1 {
		t.Fatalf("want one Deployment and one Service, got %d and %d", len(byKind["Deployment"]), len(byKind["Service"]))
	}
	d := byKind["Deployment"][0]
	if d.Spec.Replicas < 2 {
		t.Errorf("Deployment replicas %d, want 2 or more", d.Spec.Replicas)
	}
	pods := d.Spec.Template.Metadata.Labels
	selects := func(what string, selector any) {
		labels, _ := selector.(map[string]any)
		if len(labels) == 0 {
			t.Errorf("%s has no selector", what)
		}
		for k, v := range labels {
			if pods[k] != v {
				t.Errorf("%s's selector %s=%v does not select the Deployment's pods (%v)", what, k, v, pods)
			}
		}
	}
	selects("the Deployment", d.Spec.Selector["matchLabels"])
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]

	// The variables: each one a flag's, per the binary's own --help.
	help, err := exec.Command(testproc.Binary(t), "--help").CombinedOutput()
	if err != nil && !strings.Contains(string(help), "Usage") {
		t.Fatalf("mpsandbox --help: %v\n%s", err, help)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\((MPSANDBOX_[A-Z0-9_]+)\)`).FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	if len(known) < 10 {
		t.Fatalf("found %d variables in --help:\n%s", len(known), help)
	}
	env := map[string]string{}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if !known[e.Name] {
			t.Errorf("env %s is no flag's variable (mpsandbox --help)", e.Name)
		}
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "" && e.ValueFrom.SecretKeyRef.Key != "" {
			fromSecret[e.Name] = true
		}
	}
	for _, name := range []string{"MPSANDBOX_DATABASE_URL", "MPSANDBOX_ADMIN_TOKEN"} {
		if !fromSecret[name] {
			t.Errorf("%s does not come from a Secret (valueFrom.secretKeyRef)", name)
		}
	}
	// The values as the server reads them (the Secret's as a real one
	// would hold them): accepted, and the port is the container's.
	env["MPSANDBOX_DATABASE_URL"] = "postgres://mpsandbox:secret@db.example.com:5432/mpsandbox?sslmode=require"
	env["MPSANDBOX_ADMIN_TOKEN"] = "a-token-from-the-secret"
	cfg, err := parseConfig(c.Args, func(name string) string { return env[name] })
	if err != nil {
		t.Fatalf("the server refuses the example's settings: %v", err)
	}
	if cfg.DatabaseURL == "" || cfg.AdminToken == "" {
		t.Errorf("the example's settings give database URL %q, admin token %q", cfg.DatabaseURL, cfg.AdminToken)
	}
	_, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", cfg.Addr, err)
	}
	portNames := map[string]bool{}
	for _, p := range c.Ports {
		if p.ContainerPort != 0 && port == strconv.Itoa(p.ContainerPort) {
			portNames[p.Name] = true
		}
	}
	if len(portNames) == 0 {
		t.Errorf("no container port is %s, the port of the listen address %s", port, cfg.Addr)
	}

	// The probes: paths the server answers 200 on, on that port.
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	}
	_, base := start(t, nil)
	for what, p := range map[string]*k8sProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			t.Errorf("no %s probe", what)
			continue
		}
		if !portNames[p.HTTPGet.Port] {
			t.Errorf("the %s probe's port %q is not the container's listening port", what, p.HTTPGet.Port)
		}
		res, err := http.Get(base + p.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("the %s probe's GET %s: %d, want 200", what, p.HTTPGet.Path, res.StatusCode)
		}
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" {
		t.Errorf("resource requests %v, want cpu and memory", c.Resources.Requests)
	}

	s := byKind["Service"][0]
	selects("the Service", s.Spec.Selector)
	if len(s.Spec.Ports) == 0 || !portNames[s.Spec.Ports[0].TargetPort] {
		t.Errorf("the Service's targetPort %+v is not the container's listening port", s.Spec.Ports)
	}
}
