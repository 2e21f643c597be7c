package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/warrantlog/warrant/ledger"
)

// TestTokenCommand: the delegate exchanges its delegation for an access
// token with `warrant token`; the CLI contract holds (one JSON line, the
// reason code of a denial, exit codes); the log audits clean after.
func TestTokenCommand(t *testing.T) {
	e := newE2E(t)
	e.srv.kill(syscall.SIGTERM)
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens")
	const api = "https://tickets.example/api"
	// On loopback the issuer defaults to the listen address.
	var meta struct {
		Issuer        string `json:"issuer"`
		Introspection string `json:"introspection_endpoint"`
	}
	if resp, err := http.Get(e.url() + "/.well-known/oauth-authorization-server"); err != nil {
		t.Fatal(err)
	} else {
		json.NewDecoder(resp.Body).Decode(&meta)
		resp.Body.Close()
	}
	if meta.Issuer != e.url() || meta.Introspection != e.url()+"/oauth2/introspect" {
		t.Fatalf("metadata %+v, want issuer %s", meta, e.url())
	}
	d := e.delegate("alice.state", "--dest", api)
	out := mustWarrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--json", "--state", "planner.state")
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("--json printed more than one line: %q", out)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
		Index       uint64 `json:"issuance_index"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil || strings.Count(tr.AccessToken, ".") != 2 || tr.TokenType != "DPoP" || tr.Scope != "tickets:read" || tr.Index <= d.Index {
		t.Fatalf("token --json: %q (%v)", out, err)
	}
	if got := mustWarrant(t, e.dir, e.env, "get", strconv.FormatUint(tr.Index, 10), "--json", "--state", "planner.state"); !strings.Contains(got, `"kind":"token"`) || !strings.Contains(got, `"requester":"`+planner+`"`) {
		t.Fatalf("get of the issuance entry: %s", got)
	}
	if tok := mustWarrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state"); strings.Count(strings.TrimSpace(tok), ".") != 2 {
		t.Fatalf("token prints %q, want the JWT", tok)
	}
	// A denial is recorded and reported by its reason code, exit 1.
	r := warrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", "https://crm.example", "--state", "planner.state")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: audience_not_allowed: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("denied exchange: exit %d, stderr %q", r.code, r.stderr)
	}
	// Alice is not the delegate.
	r = warrant(t, e.dir, e.env, "token", "--key", "alice.key", "--delegation", d.ID, "--resource", api, "--state", "alice.state")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: token_not_delegate: ") {
		t.Fatalf("exchange by the issuer: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := warrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID); r.code != 2 {
		t.Fatalf("token without --resource: exit %d, stderr %q", r.code, r.stderr)
	}
	// The tokens issued under the delegation are in its blast radius; the
	// issuer's own attempt is marked as an outsider's.
	radius := mustWarrant(t, e.dir, e.env, "blast-radius", planner, "--state", "planner.state")
	if strings.Count(radius, "TOKEN ") != 4 || strings.Count(radius, "TOKEN EXCHANGE ") != 2 || !strings.Contains(radius, "TOKEN EXCHANGE for "+api+" by "+alice+" DENIED (token_not_delegate) [OUTSIDER") {
		t.Fatalf("blast-radius does not show the tokens:\n%s", radius)
	}
	out = mustWarrant(t, e.dir, e.env, "audit", "--server", e.url(), "--json")
	var rep struct {
		Verified      bool           `json:"verified"`
		Entries       map[string]int `json:"entries"`
		Discrepancies []any          `json:"discrepancies"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Verified || len(rep.Discrepancies) != 0 || rep.Entries["token"] != 4 {
		t.Fatalf("audit after the exchanges: %s", out)
	}
}

// TestRotateTokenKeyCommand: the command rotates a data directory's token
// key, prints one JSON line, and fails without a key to rotate.
func TestRotateTokenKeyCommand(t *testing.T) {
	dir := t.TempDir()
	env := userEnv(t, dir, freeAddr(t))
	if r := warrant(t, dir, env, "rotate-token-key", "--data", "nothing-here"); r.code != 1 || !strings.HasPrefix(r.stderr, "error: io_error: ") {
		t.Fatalf("rotate without a key: exit %d, %q", r.code, r.stderr)
	}
	if _, err := ledger.LoadOrCreateTokenKey(dir); err != nil {
		t.Fatal(err)
	}
	out := mustWarrant(t, dir, env, "rotate-token-key", "--data", ".", "--json")
	var ids struct{ Previous, Current string }
	if err := json.Unmarshal([]byte(out), &ids); err != nil || strings.Count(out, "\n") != 1 || ids.Previous == ids.Current || !strings.HasPrefix(ids.Current, "sha256:") {
		t.Fatalf("rotate-token-key --json: %q", out)
	}
	prev, err := ledger.LoadPreviousTokenKeys(dir)
	if err != nil || len(prev) != 1 || prev[0].ID != ids.Previous {
		t.Fatalf("previous key %v %v, want %s", prev, err, ids.Previous)
	}
}

// TestTokenInspectCommand: `warrant token inspect` verifies a token
// against the JWKS and the log (signing key recorded, issuance entry
// proven), tells whether its chain is in force (from the chain's entries,
// or by introspection with --key), and refuses a forged token; trace
// shows the tokens issued under a delegation.
func TestTokenInspectCommand(t *testing.T) {
	e := newE2E(t)
	e.srv.kill(syscall.SIGTERM)
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens")
	const api = "https://tickets.example/api"
	d := e.delegate("alice.state", "--dest", api)
	token := strings.TrimSpace(mustWarrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state"))

	type inspection struct {
		Claims struct {
			Aud, Scope, JTI string
			Warrant         struct {
				Delegation    string `json:"delegation"`
				IssuanceIndex uint64 `json:"issuance_index"`
			} `json:"warrant"`
		} `json:"claims"`
		KeyID      string   `json:"key_id"`
		KeyEntry   uint64   `json:"key_entry"`
		Issuance   uint64   `json:"issuance_index"`
		Active     bool     `json:"active"`
		Expired    bool     `json:"expired"`
		Source     string   `json:"in_force_source"`
		NotInForce []string `json:"not_in_force"`
	}
	// inspect runs token inspect --json: exit 0 for a token in force, 1
	// (after the JSON, with the reason on stderr) for one that is not.
	inspect := func(args ...string) inspection {
		t.Helper()
		r := warrant(t, e.dir, e.env, append([]string{"token", "inspect", token, "--json", "--state", "planner.state"}, args...)...)
		out := r.stdout
		if want := strings.Contains(out, `"active":true`); (r.code == 0) != want || (r.code != 0 && (r.code != 1 || !strings.HasPrefix(r.stderr, "error: token_not_in_force: "))) {
			t.Fatalf("token inspect %v: exit %d, stdout %q, stderr %q", args, r.code, out, r.stderr)
		}
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("--json printed more than one line: %q", out)
		}
		var in inspection
		if err := json.Unmarshal([]byte(out), &in); err != nil {
			t.Fatalf("token inspect --json: %q: %v", out, err)
		}
		return in
	}
	in := inspect()
	if !in.Active || in.Expired || in.Source != "trace" || in.Claims.Aud != api || in.Claims.Warrant.Delegation != d.ID ||
		in.Issuance != in.Claims.Warrant.IssuanceIndex || in.KeyEntry >= in.Issuance || !strings.HasPrefix(in.KeyID, "sha256:") {
		t.Fatalf("inspection %+v", in)
	}
	if in := inspect("--key", "alice.key"); !in.Active || in.Source != "introspection" {
		t.Fatalf("inspection by introspection %+v", in)
	}
	text := mustWarrant(t, e.dir, e.env, "token", "inspect", token, "--state", "planner.state")
	for _, w := range []string{"signature: verified under token key " + in.KeyID, "recorded in log-config entry", "in force: yes"} {
		if !strings.Contains(text, w) {
			t.Errorf("token inspect does not say %q:\n%s", w, text)
		}
	}
	// trace lists the token under the delegation.
	if tr := mustWarrant(t, e.dir, e.env, "trace", d.ID, "--state", "planner.state"); !strings.Contains(tr, "TOKEN "+in.Claims.JTI+" for "+api) {
		t.Fatalf("trace does not show the token:\n%s", tr)
	}

	// A token altered, or signed by another key, fails verification: exit 1.
	parts := strings.Split(token, ".")
	other := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	r := warrant(t, e.dir, e.env, "token", "inspect", other, "--state", "planner.state")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: signature_invalid: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("forged token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := warrant(t, e.dir, e.env, "token", "inspect", "not-a-token"); r.code != 1 || !strings.HasPrefix(r.stderr, "error: payload_malformed: ") {
		t.Fatalf("not a JWT: exit %d, stderr %q", r.code, r.stderr)
	}

	// Once the delegation is revoked, the chain is no longer in force, by
	// either account.
	mustWarrant(t, e.dir, e.env, "revoke", "--key", "alice.key", "--issuer", alice, "--id", d.ID, "--reason", "done", "--state", "alice.state")
	if in := inspect(); in.Active || !slices.Contains(in.NotInForce, "delegation_revoked") {
		t.Fatalf("after the revocation, from the trace: %+v", in)
	}
	if in := inspect("--key", "alice.key"); in.Active || in.Source != "introspection" {
		t.Fatalf("after the revocation, by introspection: %+v", in)
	}
}
