package main

import (
	"strings"
	"testing"
)

// TestBenchUsage: bench's cluster flags are checked before anything is
// read or sent: --metrics takes auto, none or http(s) URLs, and the
// fairness and witness modes take one server, not a list.
func TestBenchUsage(t *testing.T) {
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	for _, args := range [][]string{
		{"bench", "--metrics", "ftp://127.0.0.1:1/metrics"},
		{"bench", "--metrics", ","},
		{"bench", "--mode", "fairness", "--server", "http://127.0.0.1:1,http://127.0.0.1:2"},
		{"bench", "--mode", "witness", "--server", "http://127.0.0.1:1,http://127.0.0.1:2"},
	} {
		r := warrant(t, dir, env, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("warrant %s: exit %d, stderr %q; want one usage error line", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
