package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestWitnessedBatchAndToken: against a server that witnesses
// asynchronously (three litewitness processes, quorum two of three), whose
// answers carry the checkpoint its log just signed, a client with the
// witness policy gets receipts proven against a witnessed checkpoint from
// the SDK's AppendBatch (every entry of the batch) and from the token
// exchange (the SDK's ExchangeToken and `warrant token`), and its trusted
// state is that witnessed checkpoint. With two witnesses unreachable no
// witnessed checkpoint comes: AppendBatch returns its results, verified
// under the log key, with a witness_unavailable error, and `warrant token`
// fails witness_unavailable saying the issuance entry is committed.
func TestWitnessedBatchAndToken(t *testing.T) {
	e := newE2E(t)
	e.srv.kill(syscall.SIGTERM)
	const api = "https://tickets.example/api"
	var policy strings.Builder
	var vkeys [3]string
	for i := range 3 {
		url, vkey := startLiteWitness(t, fmt.Sprintf("witness.example/w%d", i+1), e.vkey)
		vkeys[i] = vkey
		fmt.Fprintf(&policy, "witness w%d %s %s\n", i+1, vkey, url)
	}
	policy.WriteString("group two 2 w1 w2 w3\nquorum two\n")
	policyPath := filepath.Join(e.dir, "witnesses.policy")
	if err := os.WriteFile(policyPath, []byte(policy.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens",
		"--witness-policy", policyPath, "--witness-mode", "async")
	e.env = append(e.env, "WARRANT_WITNESS_POLICY="+policyPath)
	logKey, err := proofs.ParseVerifierKey(e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := proofs.ParseWitnessPolicy([]byte(policy.String()), e.vkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	witnessed := func(note []byte) bool {
		_, err := proofs.OpenWitnessedCheckpoint(note, logKey, wp)
		return err == nil
	}
	// The state file holds the trusted checkpoint as its note.
	trustedWitnessed := func(state string) *proofs.Checkpoint {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(e.dir, state))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := proofs.OpenWitnessedCheckpoint(b, logKey, wp)
		if err != nil {
			t.Fatalf("the trusted state %s is not witnessed: %v\n%s", state, err, b)
		}
		return cp
	}

	d := e.delegate("alice.state", "--dest", api)

	// warrant token: the issuance entry is proven against a witnessed
	// checkpoint, which becomes the trusted state.
	out := mustWarrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--json", "--state", "planner.state")
	var tr struct {
		AccessToken string `json:"access_token"`
		Index       uint64 `json:"issuance_index"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil || strings.Count(tr.AccessToken, ".") != 2 || strings.Count(out, "\n") != 1 {
		t.Fatalf("token --json: %q (%v)", out, err)
	}
	if cp := trustedWitnessed("planner.state"); cp.Size <= tr.Index {
		t.Fatalf("the trusted checkpoint (size %d) does not cover the issuance entry %d", cp.Size, tr.Index)
	}

	// The SDK: ExchangeToken and AppendBatch.
	load := func(name string) *client.Signer {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(e.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		s, err := client.LoadSigner(b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	aliceKey, plannerKey := load("alice.key"), load("planner.key")
	ctx := context.Background()
	c := client.New(e.url(), logKey, client.WithWitnessPolicy(wp), client.WithWitnessWait(2*time.Minute))
	tok, err := c.ExchangeToken(ctx, plannerKey, d.ID, api, nil)
	if err != nil {
		t.Fatalf("ExchangeToken: %v", err)
	}
	if en := tok.Entry; en == nil || en.Index != tok.Index || !witnessed(en.Checkpoint.Note) ||
		proofs.VerifyInclusion(en.Index, en.Checkpoint.Size, proofs.LeafHash(en.Leaf.Raw), en.InclusionProof, en.Checkpoint.Root) != nil {
		t.Fatalf("ExchangeToken's issuance entry is not proven against a witnessed checkpoint: %+v", tok.Entry)
	}
	batch := func(ids ...string) [][]byte {
		var envs [][]byte
		for _, id := range ids {
			env, err := aliceKey.SignDelegation(&proofs.Delegation{ID: id, Issuer: alice, Delegate: planner, Task: "/tickets",
				Scopes: []string{"tickets:read"}, ExpiresAt: proofs.FormatTime(time.Now().Add(time.Hour))}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, env)
		}
		return envs
	}
	res, err := c.AppendBatch(ctx, batch("dlg_b1", "dlg_b2", "dlg_b3"))
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	for i, r := range res {
		en := r.Entry
		if r.Err != nil || en == nil || !witnessed(en.Checkpoint.Note) || en.Checkpoint.Size <= en.Index ||
			proofs.VerifyInclusion(en.Index, en.Checkpoint.Size, proofs.LeafHash(en.Leaf.Raw), en.InclusionProof, en.Checkpoint.Root) != nil {
			t.Fatalf("AppendBatch result %d is not proven against a witnessed checkpoint: %+v", i, r)
		}
	}
	if trusted, err := c.Trusted(); err != nil || trusted == nil || !witnessed(trusted.Note) || trusted.Size <= res[2].Entry.Index {
		t.Fatalf("the SDK's trusted state after AppendBatch: %v %v", trusted, err)
	}

	// Two witnesses unreachable: the server keeps their keys but cannot
	// reach them, so no checkpoint reaches the quorum.
	e.srv.kill(syscall.SIGTERM)
	lines := strings.SplitAfter(policy.String(), "\n")
	lines[1] = fmt.Sprintf("witness w2 %s http://%s\n", vkeys[1], freeAddr(t))
	lines[2] = fmt.Sprintf("witness w3 %s http://%s\n", vkeys[2], freeAddr(t))
	downPolicy := filepath.Join(e.dir, "down.policy")
	if err := os.WriteFile(downPolicy, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv = startServer(t, e.dir, e.env, e.addr, "--registrar-key", "registrar.pub", "--tokens",
		"--witness-policy", downPolicy, "--witness-mode", "async")
	c = client.New(e.url(), logKey, client.WithWitnessPolicy(wp), client.WithWitnessWait(2*time.Second))
	res, err = c.AppendBatch(ctx, batch("dlg_b4", "dlg_b5"))
	if proofs.Reason(err) != proofs.ReasonWitnessUnavailable || !strings.Contains(err.Error(), "are committed") || len(res) != 2 {
		t.Fatalf("AppendBatch with two witnesses down: %d results, %v", len(res), err)
	}
	for i, r := range res {
		if r.Entry == nil || r.Entry.Leaf.Delegation == nil || r.Entry.Leaf.Delegation.ID != fmt.Sprintf("dlg_b%d", i+4) || witnessed(r.Entry.Checkpoint.Note) {
			t.Fatalf("AppendBatch result %d with two witnesses down: %+v", i, r)
		}
	}
	r := warrant(t, e.dir, e.env, "token", "--key", "planner.key", "--delegation", d.ID, "--resource", api, "--state", "planner.state")
	if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasPrefix(r.stderr, "error: "+proofs.ReasonWitnessUnavailable+": entry ") ||
		!strings.Contains(r.stderr, "is committed, accepted") {
		t.Fatalf("token with two witnesses down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
