package main

import (
	"encoding/json"
	"fmt"
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

// TestWithdrawRevokeIssuedCLI: finding 10 of issue 11. `register
// --withdraw --revoke-issued` withdraws a key and revokes what it issued;
// `get` shows the withdrawal and the revoked status; a label spelt in
// upper case is refused with its reason code.
func TestWithdrawRevokeIssuedCLI(t *testing.T) {
	e := newE2E(t)
	mustWarrant(t, e.dir, e.env, "keygen", "--out", "executor")
	const executor = "spiffe://example.org/agent/executor"
	mustWarrant(t, e.dir, e.env, "register", "--registrar-key", "registrar.key", "--agent", executor, "--pub", "executor.pub", "--tier", "execute")
	mustWarrant(t, e.dir, e.env, "delegate", "--key", "alice.key", "--issuer", alice, "--to", planner, "--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "root")
	mustWarrant(t, e.dir, e.env, "delegate", "--key", "planner.key", "--issuer", planner, "--to", executor, "--task", "/tickets", "--scope", "tickets:read", "--ttl", "10m", "--parent", "root", "--id", "kid")

	r := warrant(t, e.dir, e.env, "delegate", "--key", "planner.key", "--issuer", planner, "--to", executor, "--task", "/tickets", "--scope", "tickets:READ", "--ttl", "10m", "--parent", "root")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: case_non_canonical: ") {
		t.Errorf("upper-case scope: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := warrant(t, e.dir, e.env, "register", "--registrar-key", "registrar.key", "--agent", planner, "--pub", "planner.pub", "--revoke-issued"); r.code != 2 {
		t.Errorf("--revoke-issued without --withdraw: exit %d, stderr %q", r.code, r.stderr)
	}
	out := mustWarrant(t, e.dir, e.env, "register", "--registrar-key", "registrar.key", "--agent", planner, "--pub", "planner.pub", "--withdraw", "--revoke-issued", "--json")
	var w appended
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	out = mustWarrant(t, e.dir, e.env, "get", fmt.Sprint(w.Index))
	if !strings.Contains(out, "withdrew the key of "+planner+" and revoked every delegation it issued") || !strings.Contains(out, `"revoke_issued": true`) {
		t.Errorf("get of the withdrawal:\n%s", out)
	}
	out = mustWarrant(t, e.dir, e.env, "get", "kid")
	if !strings.Contains(out, "status revoked (via kid)") {
		t.Errorf("get kid:\n%s", out)
	}
}

// TestBlastRadiusOutsiders: finding 10 of issue 11. Another registered
// agent's denied attempt under planner's delegation is marked in the blast
// radius, and --no-denials leaves it out.
func TestBlastRadiusOutsiders(t *testing.T) {
	e := newE2E(t)
	const mallory = "spiffe://example.org/agent/mallory"
	mustWarrant(t, e.dir, e.env, "keygen", "--out", "mallory")
	mustWarrant(t, e.dir, e.env, "register", "--registrar-key", "registrar.key", "--agent", mallory, "--pub", "mallory.pub", "--tier", "execute")
	mustWarrant(t, e.dir, e.env, "delegate", "--key", "alice.key", "--issuer", alice, "--to", planner, "--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "root")
	r := warrant(t, e.dir, e.env, "delegate", "--key", "mallory.key", "--issuer", mallory, "--to", planner, "--task", "/tickets", "--scope", "tickets:read", "--ttl", "10m", "--parent", "root", "--root-subject", alice, "--id", "intrusion")
	if r.code != 1 || !strings.Contains(r.stderr, "not_parent_delegate") {
		t.Fatalf("intrusion: exit %d, stderr %q", r.code, r.stderr)
	}
	tree := mustWarrant(t, e.dir, e.env, "blast-radius", planner)
	if !strings.Contains(tree, "intrusion") || !strings.Contains(tree, "OUTSIDER") {
		t.Errorf("blast radius does not mark the intrusion:\n%s", tree)
	}
	var j struct {
		Count int `json:"count"`
		Roots []struct {
			ID       string `json:"id"`
			Children []struct {
				ID       string `json:"id"`
				Outsider bool   `json:"outsider"`
			} `json:"children"`
		} `json:"roots"`
	}
	out := mustWarrant(t, e.dir, e.env, "blast-radius", planner, "--json")
	if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.Roots) != 1 || len(j.Roots[0].Children) != 1 || !j.Roots[0].Children[0].Outsider {
		t.Errorf("blast-radius --json: %v\n%s", err, out)
	}
	out = mustWarrant(t, e.dir, e.env, "blast-radius", planner, "--json", "--no-denials")
	j.Roots = nil
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.Count != 1 || len(j.Roots) != 1 || len(j.Roots[0].Children) != 0 {
		t.Errorf("blast-radius --no-denials: %v\n%s", err, out)
	}
}
