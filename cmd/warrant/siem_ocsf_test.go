package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/ocsfschema"
	"github.com/warrantlog/warrant/proofs"
)

// TestSIEMOCSFSchemaValid builds a live log holding every entry kind and
// outcome a server can record, follows it with `warrant siem`, makes the
// follower raise real alerts (a fork, a stalled log), and validates every
// record written against the official OCSF 1.3.0 schema files vendored in
// siem/testdata/ocsf-1.3.0.
//
// A denied policy entry is the one kind a live log cannot hold (the server
// records every authentic admin policy as accepted and refuses the rest
// before appending); siem's own tests validate it, and every alert reason,
// from rendered fixtures.
func TestSIEMOCSFSchemaValid(t *testing.T) {
	schema, err := ocsfschema.Load(filepath.Join("..", "..", "siem", "testdata", "ocsf-1.3.0"))
	if err != nil {
		t.Fatal(err)
	}
	// Log configuration, default policy, key bindings of humans and agents.
	g := newGovernance(t)
	// A key binding denied: planner's key for another agent.
	if r := warrant(t, g.dir, g.env, "register", "--registrar-key", "registrar.key", "--agent", id("mallory"), "--pub", "planner.pub", "--tier", "execute"); r.code != 1 || !strings.HasPrefix(r.stderr, "error: key_in_use: ") {
		t.Fatalf("register with a key in use: exit %d %q", r.code, r.stderr)
	}
	// Delegations accepted and denied, a revocation.
	buildTree(t, g)
	// A revocation denied, and one by an admin.
	if r := warrant(t, g.dir, g.env, "revoke", "--key", "executor.key", "--issuer", id("executor"), "--id", "dlg_root", "--reason", "not mine"); r.code != 1 || !strings.HasPrefix(r.stderr, "error: revoke_not_authorized: ") {
		t.Fatalf("unauthorized revocation: exit %d %q", r.code, r.stderr)
	}
	mustWarrant(t, g.dir, g.env, "revoke", "--key", "admin.key", "--id", "dlg_other", "--reason", "incident 42")
	// A key withdrawn: the registrar signs a revoked binding (no CLI verb
	// does this; the SDK does).
	withdrawKey(t, g, "partnerx")
	// A policy set by an admin.
	policy, err := os.ReadFile("../../ledger/default.cedar")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(g.dir, "new.cedar"), append(policy, "\n// revised by the admin\n"...), 0o644)
	mustWarrant(t, g.dir, g.env, "policy", "set", "--key", "admin.key", "new.cedar")
	// A configuration change: the server restarts with a second admin key.
	g.srv.kill(syscall.SIGTERM)
	serveArgs := []string{"--registrar-key", "registrar.pub", "--admin-key", "admin.pub", "--admin-key", "bob.pub"}
	g.srv = startServer(t, g.dir, g.env, g.addr, serveArgs...)

	state, out := filepath.Join(g.dir, "siem.state"), filepath.Join(g.dir, "events.jsonl")
	mustWarrant(t, g.dir, g.env, "siem", "--state", state, "--once", "--out", out)
	size, _ := g.checkpointSize()
	records := readRecords(t, out)
	if uint64(len(records)) != size {
		t.Fatalf("%d records for %d entries", len(records), size)
	}
	codes := map[string]int{}
	for _, rec := range records {
		var m struct {
			Metadata struct {
				EventCode string `json:"event_code"`
			} `json:"metadata"`
		}
		json.Unmarshal(rec, &m)
		codes[m.Metadata.EventCode]++
	}
	t.Logf("event codes: %v", codes)
	for _, want := range []string{"log-config-created", "log-config-updated", "policy-recorded", "policy-updated",
		"key-binding-created", "key-binding-denied", "key-binding-revoked",
		"delegation-accepted", "delegation-denied", "revocation-accepted", "revocation-denied"} {
		if codes[want] == 0 {
			t.Errorf("the live log has no %s record: %v", want, codes)
		}
	}

	// A fork: the follower has seen one more entry of the original log
	// than a copy of it, which then grows differently.
	g.srv.kill(syscall.SIGTERM)
	fork := filepath.Join(g.dir, "fork")
	if b, err := exec.Command("cp", "-a", filepath.Join(g.dir, "warrant-data"), fork).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	g.srv = startServer(t, g.dir, g.env, g.addr, serveArgs...)
	g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "1h", "--id", "dlg_original")
	mustWarrant(t, g.dir, g.env, "siem", "--state", state, "--once", "--out", out)
	g.srv.kill(syscall.SIGTERM)
	g.srv = startServer(t, g.dir, g.env, g.addr, append([]string{"--data", fork}, serveArgs...)...)
	forkState := filepath.Join(g.dir, "fork-client-state")
	g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "1h", "--id", "dlg_forked", "--state", forkState)
	g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "1h", "--id", "dlg_forked2", "--state", forkState)
	if r := warrant(t, g.dir, g.env, "siem", "--state", state, "--once", "--out", out); r.code != 1 || !strings.Contains(r.stderr, "error: fork_detected: ") {
		t.Fatalf("siem against a fork: exit %d stderr %q", r.code, r.stderr)
	}
	// A stalled log: any signed timestamp is older than a microsecond.
	stallOut := filepath.Join(g.dir, "stall.jsonl")
	if r := warrant(t, g.dir, g.env, "siem", "--state", filepath.Join(g.dir, "stall.state"), "--stall-after", "1us", "--poll", "10ms", "--out", stallOut); r.code != 1 || !strings.Contains(r.stderr, "error: log_stalled: ") {
		t.Fatalf("siem with --stall-after 1us: exit %d stderr %q", r.code, r.stderr)
	}

	records = append(readRecords(t, out), readRecords(t, stallOut)...)
	var alerts []string
	for i, rec := range records {
		if err := schema.Validate(rec); err != nil {
			t.Errorf("record %d is not valid OCSF 1.3.0:\n%v\n%s", i, err, rec)
		}
		var m struct {
			ClassUID    int `json:"class_uid"`
			FindingInfo struct {
				Types []string `json:"types"`
			} `json:"finding_info"`
		}
		json.Unmarshal(rec, &m)
		if m.ClassUID == 2004 {
			alerts = append(alerts, m.FindingInfo.Types...)
		}
	}
	slices.Sort(alerts)
	if !slices.Equal(alerts, []string{client.ReasonFork, client.ReasonStalled}) {
		t.Fatalf("alert records %v, want a fork and a stall", alerts)
	}
}

// withdrawKey appends the registrar's revoked key binding of agent name.
func withdrawKey(t *testing.T, g *governance, name string) {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(g.dir, "registrar.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := client.LoadSigner(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(g.dir, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := proofs.ParsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := proofs.MarshalPayload(&proofs.KeyBinding{Agent: id(name), PublicKey: pub.DER, Tier: proofs.TierExecute,
		Revoked: true, IssuedAt: proofs.FormatTime(time.Now()), Nonce: client.NewNonce()})
	if err != nil {
		t.Fatal(err)
	}
	env, err := signer.SignEnvelope(proofs.PayloadTypeAgent, payload)
	if err != nil {
		t.Fatal(err)
	}
	v, err := proofs.ParseVerifierKey(g.vkey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := client.New(g.url(), v).Append(ctx, env)
	if err != nil {
		t.Fatalf("withdrawing %s's key: %v", name, err)
	}
	if e.Leaf.Decision == nil || e.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("withdrawal of %s's key: %+v", name, e.Leaf.Decision)
	}
}

// readRecords returns the lines of a JSON-lines file.
func readRecords(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, slices.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
