package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// TestBackupOnMainListenerNeedsAdmin: without --ops-listen, GET /backup is
// on the public listener and opens only to a request signed by an admin
// key of the server; `warrant backup --admin-key` signs it.
func TestBackupOnMainListenerNeedsAdmin(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	mustWarrant(t, dir, env, "keygen", "--out", "admin")
	mustWarrant(t, dir, env, "keygen", "--out", "stranger")
	startServer(t, dir, env, addr, "--admin-key", "admin.pub")
	env = append(env, "WARRANT_LOG_KEY=@"+filepath.Join(dir, "warrant-data", "log.vkey"))

	r := warrant(t, dir, env, "backup", "--out", "anon.backup")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonAdminAuth+": ") || !strings.Contains(r.stderr, "--admin-key") {
		t.Fatalf("anonymous backup: %+v", r)
	}
	r = warrant(t, dir, env, "backup", "--out", "stranger.backup", "--admin-key", "stranger.key")
	if r.code != 1 || !strings.Contains(r.stderr, "not an admin key") {
		t.Fatalf("backup signed by a key that is not an admin's: %+v", r)
	}
	out := mustWarrant(t, dir, env, "backup", "--out", "admin.backup", "--admin-key", "admin.key", "--json")
	if !strings.Contains(out, `"out":"admin.backup"`) {
		t.Fatalf("admin backup --json: %s", out)
	}
}
