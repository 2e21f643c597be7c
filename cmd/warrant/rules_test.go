package main

import (
	"strings"
	"testing"
)

// TestServeRefusesDepthAboveWalk: finding 6 of issue 11. --max-depth is
// bounded by how far the rules walk a chain (256); serve refuses a larger
// value with a usage error before opening anything.
func TestServeRefusesDepthAboveWalk(t *testing.T) {
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	for _, v := range []string{"0", "257", "300"} {
		r := warrant(t, dir, env, "serve", "--data", t.TempDir(), "--max-depth", v)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") || !strings.Contains(r.stderr, "256") {
			t.Errorf("serve --max-depth %s: exit %d, stderr %q", v, r.code, r.stderr)
		}
	}
}
