package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mpsandbox/mpsandbox/server/internal/httpapi"
	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/tlsca"
)

// tlsDir is where --tls-self-signed keeps its CA, under the data dir.
const tlsDir = "tls"

// listenTLS wraps ln in TLS when the configuration asks for HTTPS: the
// certificate of --tls-cert/--tls-key, or one --tls-self-signed's local CA
// issues at this start for the public names, localhost and loopback. It
// returns the CA certificate, which GET /sandbox/v1/ca.pem serves, when
// there is one.
func (m *Main) listenTLS(ctx context.Context, ln net.Listener, cfg Config) (net.Listener, []byte, error) {
	if !cfg.TLS() {
		return ln, nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
		return tls.NewListener(ln, conf), nil, nil
	}
	ca, err := m.localCA(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	names := slices.Compact(append(slices.Clone(cfg.PublicNames), "localhost", "127.0.0.1", "::1"))
	pair, err := ca.Issue(names, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	conf.Certificates = []tls.Certificate{pair}
	m.Logger.Info("tls_certificate_issued", "names", names, "not_after", pair.Leaf.NotAfter)
	return tls.NewListener(ln, conf), ca.PEM(), nil
}

// localCA is --tls-self-signed's CA: kept in the data dir, or, on
// PostgreSQL, in the database, so that every replica issues its
// certificate from the same CA and a client trusting one trusts them all.
func (m *Main) localCA(ctx context.Context, cfg Config) (*tlsca.CA, error) {
	const hint = "clients trust the sandbox once they trust GET /sandbox/v1/ca.pem; the CA is kept and reused"
	if m.db != nil {
		bundle, created, err := m.db.Shared(ctx, sharedCA, func() ([]byte, error) {
			ca, err := tlsca.Create(time.Now())
			if err != nil {
				return nil, err
			}
			return ca.Bundle(), nil
		})
		if err != nil {
			return nil, fmt.Errorf("local CA: %w", err)
		}
		if created {
			m.Logger.Warn("tls_ca_created", "dir", "database", "hint", hint)
		}
		return tlsca.FromBundle(bundle)
	}
	dir := ""
	if !cfg.InMemory {
		dir = filepath.Join(cfg.DataDir, tlsDir)
	}
	ca, created, err := tlsca.LoadOrCreate(dir)
	if err != nil {
		return nil, err
	}
	if created {
		m.Logger.Warn("tls_ca_created", "dir", dir, "hint", hint)
	}
	return ca, nil
}

// registerCA mounts "GET /sandbox/v1/ca.pem": the local CA's certificate,
// without a token, since a phone or a build machine has to fetch it before
// it can trust anything else.
func registerCA(engine *gin.Engine, caPEM []byte) {
	engine.GET("/sandbox/v1/ca.pem", httpapi.UseRenderer(httpapi.RenderAdmin), httpapi.Handle(func(c *gin.Context) error {
		if caPEM == nil {
			return sandbox.Errorf(sandbox.CodeNotFound, "no local CA: the server was started without --tls-self-signed")
		}
		c.Header("Content-Disposition", `attachment; filename="mpsandbox-ca.pem"`)
		c.Data(http.StatusOK, "application/x-pem-file", caPEM)
		return nil
	}))
}
