package main

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestServerDefault: --server defaults as the warrant command line's does
// (WARRANT_SERVER, else http://127.0.0.1:8750, the port the READMEs use),
// and a server without a scheme is a usage error, as there.
func TestServerDefault(t *testing.T) {
	args := []string{"--key", "k", "--delegation", "d", "--mcp", "http://127.0.0.1:8790/mcp", "--log-key", "x", "tickets.read"}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	o, err := parseArgs(args, env(nil))
	if err != nil || o.server != "http://127.0.0.1:8750" {
		t.Fatalf("no --server, no WARRANT_SERVER: %+v %v, want http://127.0.0.1:8750", o, err)
	}
	readme, err := os.ReadFile("../mcp-tickets/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`WARRANT_SERVER:-([^}]+)}`).FindSubmatch(readme); m == nil || string(m[1]) != o.server {
		t.Fatalf("the README's default server %q is not mcp-agent's %q", m, o.server)
	}
	if o, err := parseArgs(args, env(map[string]string{"WARRANT_SERVER": "http://127.0.0.1:9"})); err != nil || o.server != "http://127.0.0.1:9" {
		t.Fatalf("WARRANT_SERVER: %+v %v", o, err)
	}
	if o, err := parseArgs(append([]string{"--server", "https://w.example"}, args...), env(map[string]string{"WARRANT_SERVER": "http://127.0.0.1:9"})); err != nil || o.server != "https://w.example" {
		t.Fatalf("--server over WARRANT_SERVER: %+v %v", o, err)
	}
	var ue usageError
	if _, err := parseArgs(args, env(map[string]string{"WARRANT_SERVER": "127.0.0.1:8750"})); !errors.As(err, &ue) || !strings.Contains(err.Error(), "WARRANT_SERVER") {
		t.Fatalf("a server without a scheme: %v, want a usage error", err)
	}
}
