package main

import (
	"strings"
	"testing"
)

// TestServeUICORSOriginUsage checks that serve refuses an --ui-cors-origin
// that is not a web origin as a usage error, before binding or opening
// anything.
func TestServeUICORSOriginUsage(t *testing.T) {
	for _, bad := range []string{"*", "https://explorer.example/", "explorer.example", "https://explorer.example/ui"} {
		dir := t.TempDir()
		_, stderr, code := runHere("serve", "--data", dir, "--listen", "127.0.0.1:0", "--ui-cors-origin", bad)
		if code != 2 || !strings.HasPrefix(stderr, "error: usage: --ui-cors-origin") {
			t.Errorf("--ui-cors-origin %q: exit %d, stderr %q", bad, code, stderr)
		}
	}
}
