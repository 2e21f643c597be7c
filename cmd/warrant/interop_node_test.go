package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// nodeInteropDir holds the Node agent written without warrant's code
// (examples/node-interop: jose from npm, plain fetch).
const nodeInteropDir = "../../examples/node-interop"

// nodeAgent returns the node binary, skipping the test when node or the
// example's node_modules (`npm ci --prefix examples/node-interop`) are
// missing, unless CI=true, where their absence fails it.
func nodeAgent(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the interoperability test must run)", what)
		}
		t.Skip(what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(nodeInteropDir, "node_modules", "jose", "package.json")); err != nil {
		missing("examples/node-interop/node_modules is missing: run npm ci --prefix examples/node-interop")
	}
	return node
}

// nodeResult is what examples/node-interop/exchange.js prints.
type nodeResult struct {
	OK        bool   `json:"ok"`
	Step      string `json:"step"`
	Error     string `json:"error"`
	Alg       string `json:"alg"`
	JKT       string `json:"jkt"`
	TokenType string `json:"token_type"`
	ExpiresIn int64  `json:"expires_in"`
	Scope     string `json:"scope"`
	Index     uint64 `json:"issuance_index"`
	Header    struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	} `json:"header"`
	Claims struct {
		Iss      string `json:"iss"`
		Sub      string `json:"sub"`
		Aud      string `json:"aud"`
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
		Act      struct {
			Sub string `json:"sub"`
			Act *struct {
				Sub string `json:"sub"`
			} `json:"act"`
		} `json:"act"`
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
		Warrant struct {
			Delegation    string `json:"delegation"`
			IssuanceIndex uint64 `json:"issuance_index"`
		} `json:"warrant"`
	} `json:"claims"`
	Tampered string `json:"tampered_token"`
	Replayed struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"replayed_proof"`
	OtherURL struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"other_url_proof"`
}

func runNodeAgent(t *testing.T, node string, args ...string) (*nodeResult, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"exchange.js"}, args...)...)
	cmd.Dir = nodeInteropDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("node exchange.js: %v\n%s", err, stderr.Bytes())
	}
	var r nodeResult
	if err := json.Unmarshal(out, &r); err != nil || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("node printed %q (stderr %s): %v", out, stderr.Bytes(), err)
	}
	return &r, code
}

// TestNodeJoseInterop: an agent written without warrant's code (Node's
// jose from npm, plain fetch) makes its own DPoP proofs, exchanges
// delegations at a real `warrant serve --tokens`, and verifies the tokens
// from the JWKS alone, with an Ed25519 key (EdDSA proofs) for the planner
// and a P-256 key (ES256) for an executor one hop further down; the
// endpoint refuses its replayed proof and its proof for another URL; the
// log audits clean after.
func TestNodeJoseInterop(t *testing.T) {
	node := nodeAgent(t)
	e := newE2E(t)
	e.srv.kill(syscall.SIGTERM)
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens")
	const api = "https://tickets.example/api"
	const executor = "spiffe://example.org/agent/executor"
	mustWarrant(t, e.dir, e.env, "keygen", "--out", "executor", "--type", "ecdsa-p256")
	mustWarrant(t, e.dir, e.env, "register", "--tier", "execute", "--registrar-key", "registrar.key", "--pub", "executor.pub", "--agent", executor)
	root := e.delegate("alice.state", "--dest", api, "--scope", "tickets:write")
	out := mustWarrant(t, e.dir, e.env, "delegate", "--key", "planner.key", "--issuer", planner, "--to", executor, "--parent", root.ID,
		"--task", "/tickets", "--scope", "tickets:read", "--dest", api, "--ttl", "10m", "--json", "--state", "planner.state")
	var hop appended
	if err := json.Unmarshal([]byte(out), &hop); err != nil || hop.ID == "" {
		t.Fatalf("delegate --json: %q: %v", out, err)
	}

	for _, c := range []struct {
		name, key, delegation, alg, clientID, actor string
		scope                                       string
	}{
		{"planner", "planner.key", root.ID, "EdDSA", planner, "", "tickets:read tickets:write"},
		{"executor", "executor.key", hop.ID, "ES256", executor, planner, "tickets:read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, code := runNodeAgent(t, node, "--server", e.url(), "--delegation", c.delegation,
				"--key", filepath.Join(e.dir, c.key), "--resource", api)
			if code != 0 || !r.OK {
				t.Fatalf("node agent: exit %d, step %s: %s", code, r.Step, r.Error)
			}
			cl := r.Claims
			if r.Alg != c.alg || r.TokenType != "DPoP" || r.Header.Typ != "at+jwt" || r.Header.Alg != "ES256" || r.Header.Kid == "" {
				t.Errorf("alg %s, token type %s, header %+v", r.Alg, r.TokenType, r.Header)
			}
			if cl.Iss != e.url() || cl.Aud != api || cl.Sub != alice || cl.ClientID != c.clientID || cl.Scope != c.scope || r.Scope != c.scope {
				t.Errorf("claims %+v, answer scope %q", cl, r.Scope)
			}
			if cl.Act.Sub != c.clientID || (c.actor == "") != (cl.Act.Act == nil) || (cl.Act.Act != nil && cl.Act.Act.Sub != c.actor) {
				t.Errorf("act claim %+v, want %s acting for %q", cl.Act, c.clientID, c.actor)
			}
			if cl.Cnf.JKT != r.JKT || cl.Warrant.Delegation != c.delegation || cl.Warrant.IssuanceIndex != r.Index || r.Index == 0 {
				t.Errorf("cnf %+v (jose's thumbprint %s), warrant claim %+v, issuance index %d", cl.Cnf, r.JKT, cl.Warrant, r.Index)
			}
			if r.ExpiresIn <= 0 || r.ExpiresIn > 15*60 {
				t.Errorf("expires_in %d", r.ExpiresIn)
			}
			if r.Tampered != "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" {
				t.Errorf("a tampered token: %s", r.Tampered)
			}
			if r.Replayed.Status != 400 || r.Replayed.Error != "invalid_dpop_proof" || r.OtherURL.Status != 400 || r.OtherURL.Error != "invalid_dpop_proof" {
				t.Errorf("replayed proof %+v, proof for another URL %+v", r.Replayed, r.OtherURL)
			}
			// The token is on the log as the CLI sees it.
			if got := mustWarrant(t, e.dir, e.env, "get", jsonUint(r.Index), "--json", "--state", "alice.state"); !bytes.Contains([]byte(got), []byte(`"kind":"token"`)) {
				t.Errorf("issuance entry: %s", got)
			}
		})
	}

	// A delegation the key's agent is not the delegate of: the node agent
	// reports the endpoint's refusal.
	r, code := runNodeAgent(t, node, "--server", e.url(), "--delegation", hop.ID, "--key", filepath.Join(e.dir, "planner.key"), "--resource", api)
	if code != 1 || r.OK || r.Step != "exchange" {
		t.Fatalf("exchange by a non-delegate: exit %d, %+v", code, r)
	}

	out = mustWarrant(t, e.dir, e.env, "audit", "--server", e.url(), "--json")
	var rep struct {
		Verified      bool           `json:"verified"`
		Entries       map[string]int `json:"entries"`
		Discrepancies []any          `json:"discrepancies"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Verified || len(rep.Discrepancies) != 0 || rep.Entries["token"] != 3 {
		t.Fatalf("audit after the exchanges: %s", out)
	}
}

func jsonUint(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
