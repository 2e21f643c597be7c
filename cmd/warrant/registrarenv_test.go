package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestRegisterRegistrarKeyFromEnv checks that register takes its registrar
// key from WARRANT_REGISTRAR_KEY, the variable scripts/cluster.sh up prints,
// and that --registrar-key still wins over it.
func TestRegisterRegistrarKeyFromEnv(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := runHere("keygen", "--out", filepath.Join(dir, "agent")); code != 0 {
		t.Fatal(stderr)
	}
	// No server listens at the address: past the usage check, register
	// fails reaching it (exit 1), or, with no key at all, is a usage error.
	checkRegistrarKeyFromEnv(t, dir, "register", "--server", "http://127.0.0.1:1", "--log-key", "example.test+00000000+AQ", "--agent", "spiffe://example.org/a", "--pub", filepath.Join(dir, "agent.pub"))
}

// TestBenchRegistrarKeyFromEnv checks that bench, like register, takes its
// registrar key from WARRANT_REGISTRAR_KEY (the variable scripts/cluster.sh
// up prints), and that --registrar-key still wins over it.
func TestBenchRegistrarKeyFromEnv(t *testing.T) {
	_, logKey, err := note.GenerateKey(rand.Reader, "bench.example/log")
	if err != nil {
		t.Fatal(err)
	}
	checkRegistrarKeyFromEnv(t, t.TempDir(), "bench", "--mode", "append", "--server", "http://127.0.0.1:1", "--log-key", logKey, "--metrics", "none", "--duration", "1ms", "--presign", "1", "--concurrency", "1")
}

// checkRegistrarKeyFromEnv runs args (a command that needs a registrar
// key, pointed at no server) without a key, with WARRANT_REGISTRAR_KEY
// naming a key made in dir, and with --registrar-key naming a missing file
// as well: a usage error naming the variable, past the usage check, and
// the flag's file failing.
func checkRegistrarKeyFromEnv(t *testing.T, dir string, args ...string) {
	t.Helper()
	if _, stderr, code := runHere("keygen", "--out", filepath.Join(dir, "reg")); code != 0 {
		t.Fatal(stderr)
	}
	run1 := func(vars map[string]string, args ...string) (string, int) {
		var o, e bytes.Buffer
		env := &cmdEnv{stdout: &o, stderr: &e, getenv: func(k string) string { return vars[k] }}
		code := run(context.Background(), env, args)
		return e.String(), code
	}
	cmd := args[0]
	if stderr, code := run1(nil, args...); code != 2 || !strings.Contains(stderr, "WARRANT_REGISTRAR_KEY") {
		t.Errorf("%s without a registrar key: exit %d, %q; want a usage error naming WARRANT_REGISTRAR_KEY", cmd, code, stderr)
	}
	withEnv := map[string]string{"WARRANT_REGISTRAR_KEY": filepath.Join(dir, "reg.key")}
	if stderr, code := run1(withEnv, args...); code == 2 || strings.Contains(stderr, "usage") {
		t.Errorf("%s with WARRANT_REGISTRAR_KEY: exit %d, %q; want it past the usage check", cmd, code, stderr)
	}
	// The flag wins: a missing file named by the flag is what fails.
	missing := filepath.Join(dir, "missing.key")
	if stderr, code := run1(withEnv, append(args, "--registrar-key", missing)...); code == 0 || !strings.Contains(stderr, "missing.key") {
		t.Errorf("%s --registrar-key %s with the env set: exit %d, %q; want the flag's file to fail", cmd, missing, code, stderr)
	}
}
