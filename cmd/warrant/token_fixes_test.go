package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTokenCLIErrors: what a new user meets. A server without --tokens
// is said to issue no tokens (not a mismatch); --token-lifetime out of
// range is a usage error naming it; a non-JWT argument to token inspect is
// a verification failure (exit 1), not a usage error; a key withdrawal
// says what it does to the tokens of the delegations the agent issued.
func TestTokenCLIErrors(t *testing.T) {
	e := newE2E(t)
	const api = "https://tickets.example/api"
	d := e.delegate("alice.state", "--dest", api)
	r := warrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: unavailable: ") || !strings.Contains(r.stderr, "does not issue tokens") ||
		!strings.Contains(r.stderr, "serve --tokens") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("token against a server without --tokens: exit %d, stderr %q", r.code, r.stderr)
	}
	e.srv.kill(syscall.SIGTERM)
	r = warrant(t, e.dir, e.env, "serve", "--registrar-key", "registrar.pub", "--tokens", "--token-lifetime", "20m", "--data", filepath.Join(e.dir, "other-data"))
	if r.code != 2 || !strings.HasPrefix(r.stderr, "error: usage: ") || !strings.Contains(r.stderr, "--token-lifetime") {
		t.Fatalf("serve --token-lifetime 20m: exit %d, stderr %q", r.code, r.stderr)
	}
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens")

	r = warrant(t, e.dir, e.env, "token", "inspect", "garbage", "--state", "planner.state")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: payload_malformed: the token is not a JWT") {
		t.Fatalf("token inspect garbage: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := warrant(t, e.dir, e.env, "token", "inspect"); r.code != 2 {
		t.Fatalf("token inspect without a token: exit %d, stderr %q", r.code, r.stderr)
	}

	// Alice withdraws her key: the message says what follows, and it does.
	token := strings.TrimSpace(mustWarrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state"))
	out := mustWarrant(t, e.dir, e.env, "register", "--registrar-key", "registrar.key", "--agent", alice, "--pub", "alice.pub", "--human", "--withdraw")
	if strings.Contains(out, "stay in force") || !strings.Contains(out, "no token is issued for them") || !strings.Contains(out, "introspect inactive") {
		t.Fatalf("withdrawal message: %q", out)
	}
	r = warrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: binding_not_in_force: ") {
		t.Fatalf("exchange after the issuer's withdrawal: exit %d, stderr %q", r.code, r.stderr)
	}
	r = warrant(t, e.dir, e.env, "token", "inspect", token, "--key", "planner.key", "--state", "planner.state")
	if r.code != 1 || !strings.Contains(r.stdout, "in force: NO (inactive, from introspection)") ||
		!strings.HasPrefix(r.stderr, "error: token_not_in_force: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("inspect after the issuer's withdrawal: exit %d\nstdout %s\nstderr %q", r.code, r.stdout, r.stderr)
	}
}
