package embedded_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/embedded"
)

func TestStartServesAndCloses(t *testing.T) {
	s, err := embedded.Start(context.Background(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		APIVersion string `json:"api_version"`
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil || v.APIVersion != embedded.APIVersion {
		t.Errorf("GET /version: got %+v (%v), want api_version %s", v, err, embedded.APIVersion)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
}

func TestStartRefusesANonLoopbackAddress(t *testing.T) {
	if s, err := embedded.Start(context.Background(), embedded.Options{Addr: "0.0.0.0:0"}); err == nil {
		s.Close()
		t.Fatal("started on 0.0.0.0, want a refusal: the admin API would be open to the network")
	}
}
