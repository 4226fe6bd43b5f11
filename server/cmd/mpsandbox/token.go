package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// adminTokenFile holds the generated admin token in the data dir.
const adminTokenFile = "admin-token"

// Names of the values replicas share through the PostgreSQL store.
const (
	sharedAdminToken = "admin_token"
	sharedCA         = "tls_ca"
	sharedClockStart = "clock_start"
)

// generatedAdminToken is the admin token of a server bound off loopback
// without --admin-token: made once, written to <data-dir>/admin-token (mode
// 0600) and logged that once, then read back at every start, so that a
// restart does not lock out the team that copied it. --in-memory makes one
// per run.
func (m *Main) generatedAdminToken(cfg Config) (string, error) {
	const hint = "bound to a non-loopback address: the admin API and the QA page require Authorization: Bearer <admin_token>; set MPSANDBOX_ADMIN_TOKEN on a shared server"
	if cfg.InMemory {
		token := randomToken()
		m.Logger.Warn("admin_token_generated", "admin_token", token, "hint", hint)
		return token, nil
	}
	path := filepath.Join(cfg.DataDir, adminTokenFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		token := strings.TrimSpace(string(raw))
		if token == "" {
			return "", fmt.Errorf("admin token file %s is empty: delete it to have a new token made, or set --admin-token", path)
		}
		m.Logger.Info("admin_token_loaded", "file", path)
		return token, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return "", fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	token := randomToken()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("admin token %s: %w", path, err)
	}
	// Printed once, as Jupyter does: a shared sandbox is never open by accident.
	m.Logger.Warn("admin_token_generated", "admin_token", token, "file", path, "hint", hint)
	return token, nil
}

// sharedAdminToken is the generated admin token of replicas on one
// database (--database-url without --admin-token): the first to start
// makes it and logs it; every other, and every restart, reads the same one
// from the store, so that a client holding it may reach any replica. On
// loopback it is logged at every start, as a generated one is there.
func (m *Main) sharedAdminToken(ctx context.Context, open bool) (string, error) {
	raw, created, err := m.db.Shared(ctx, sharedAdminToken, func() ([]byte, error) { return []byte(randomToken()), nil })
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	token := string(raw)
	const hint = "kept in the database: every replica on it answers to this token; set MPSANDBOX_ADMIN_TOKEN to choose one"
	switch {
	case created:
		m.Logger.Warn("admin_token_generated", "admin_token", token, "from", "database", "hint", hint)
	case open:
		m.Logger.Info("admin_token_loaded", "admin_token", token, "from", "database", "hint", hint)
	default:
		m.Logger.Info("admin_token_loaded", "from", "database")
	}
	return token, nil
}
