package witnesstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestWitnessPolicyClients: a real warrant server whose checkpoints three
// real witnesses (transparency-dev's, in process: two Ed25519, one
// ML-DSA-44) cosign, and every client side under a witness policy. A
// policy the cosignatures satisfy is trusted, whichever witnesses it names
// (the others' lines are ignored) and whatever their key type; a policy
// they do not satisfy is refused with witness_quorum_not_met, exit 1, and
// leaves the trusted state as it was: the CLI's state, `verify` of a
// tlog-proof, the SIEM follower (an alert), audit of an export, and the Go
// SDK's FileState.
func TestWitnessPolicyClients(t *testing.T) {
	dir := t.TempDir()
	u := &user{t: t, dir: dir, env: append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir,
		"WARRANT_SERVER=", "WARRANT_LOG_KEY=", "WARRANT_LISTEN=", "WARRANT_WITNESS_POLICY=")}
	for _, k := range []string{"registrar", "alice", "planner"} {
		u.must("keygen", "--out", k)
	}
	server := startServe(t, u, "--registrar-key", "registrar.pub")
	vkeyPath := filepath.Join(dir, "warrant-data", "log.vkey")
	vkey, err := os.ReadFile(vkeyPath)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := proofs.ParseVerifierKey(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	w1 := startWitness(t, "witness.example/w1", logKey)
	w2 := startWitness(t, "witness.example/w2", logKey)
	pq := startMLDSAWitness(t, "witness.example/pq", logKey)
	_, handler := newWitnessingProxy(t, server, logKey, w1.url, w2.url, pq.url)
	proxy := httptest.NewServer(handler)
	t.Cleanup(proxy.Close)
	u.env = append(u.env, "WARRANT_SERVER="+proxy.URL, "WARRANT_LOG_KEY=@"+vkeyPath)

	// Witnesses that never see the log.
	absent := func(name string) string {
		_, v, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		cv, err := fnote.VKeyToCosignatureV1(v)
		if err != nil {
			t.Fatal(err)
		}
		return cv
	}
	a1, a2 := absent("witness.example/a1"), absent("witness.example/a2")
	logLine := "log " + strings.TrimSpace(string(vkey)) + " " + server + "\n"
	policies := map[string]string{
		// Two of the three.
		"two-of-three": logLine + fmt.Sprintf("witness w1 %s %s\nwitness w2 %s\nwitness pq %s\ngroup g 2 w1 w2 pq\nquorum g\n", w1.vkey, w1.url, w2.vkey, pq.vkey),
		// The ML-DSA-44 witness alone: its cosignature counts.
		"pq-only": fmt.Sprintf("witness pq %s\nquorum pq\n", pq.vkey),
		// One Ed25519 witness: the other two lines are by unknown keys.
		"w1-only": fmt.Sprintf("witness w1 %s\nquorum w1\n", w1.vkey),
		// Two of w1 and two witnesses that never cosign: not met.
		"unmet": fmt.Sprintf("witness w1 %s\nwitness a1 %s\nwitness a2 %s\ngroup g 2 w1 a1 a2\nquorum g\n", w1.vkey, a1, a2),
	}
	path := map[string]string{}
	for name, text := range policies {
		path[name] = filepath.Join(dir, name+".policy")
		if err := os.WriteFile(path[name], []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(what string, r result) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 1 || !strings.HasPrefix(lines[len(lines)-1], "error: "+proofs.ReasonWitnessQuorum+": ") {
			t.Fatalf("%s: exit %d, stderr %q; want exit 1 and error: %s", what, r.code, r.stderr, proofs.ReasonWitnessQuorum)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return b
	}

	// The CLI's trusted state, under a policy that is met.
	state := filepath.Join(dir, "trusted.checkpoint")
	u.must("register", "--state", state, "--witness-policy", path["two-of-three"], "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/human/alice", "--pub", "alice.pub", "--human")
	for _, p := range []string{"two-of-three", "pq-only", "w1-only"} {
		u.must("checkpoint", "--state", state, "--witness-policy", path[p])
	}
	// The log grows; a policy that is not met does not move the state.
	u.must("register", "--state", state, "--witness-policy", path["two-of-three"], "--tier", "execute", "--registrar-key", "registrar.key", "--agent", "spiffe://example.org/agent/planner", "--pub", "planner.pub")
	u.must("delegate", "--state", filepath.Join(dir, "other.checkpoint"), "--key", "alice.key", "--issuer", "spiffe://example.org/human/alice", "--to", "spiffe://example.org/agent/planner",
		"--task", "/tickets", "--scope", "tickets:read", "--ttl", "1h", "--id", "dlg_root")
	before := read(state)
	refused("checkpoint --witness-policy unmet", u.run("checkpoint", "--state", state, "--witness-policy", path["unmet"]))
	refused("get under env WARRANT_WITNESS_POLICY", (&user{t: t, dir: dir, env: append(u.env, "WARRANT_WITNESS_POLICY="+path["unmet"])}).run("get", "--state", state, "dlg_root"))
	if after := read(state); !bytes.Equal(before, after) {
		t.Fatalf("a refused checkpoint moved the trusted state:\nbefore %s\nafter %s", before, after)
	}
	// Straight from the server (log-signed only), nothing is met.
	refused("checkpoint from the unwitnessed server", u.run("checkpoint", "--server", server, "--state", state, "--witness-policy", path["pq-only"]))
	if after := read(state); !bytes.Equal(before, after) {
		t.Fatal("a refused checkpoint moved the trusted state")
	}
	var cp struct {
		Size uint64 `json:"size"`
	}
	if err := json.Unmarshal([]byte(u.must("checkpoint", "--state", state, "--witness-policy", path["two-of-three"], "--json")), &cp); err != nil {
		t.Fatal(err)
	}

	// A tlog-proof: verify takes the policy too.
	proofPath := filepath.Join(dir, "dlg_root.tlog")
	u.must("prove", "--state", state, "--witness-policy", path["two-of-three"], "dlg_root", "--out", proofPath)
	for _, p := range []string{"two-of-three", "pq-only", "w1-only"} {
		if out := u.must("verify", proofPath, "--witness-policy", path[p]); !strings.Contains(out, "verified: entry") {
			t.Fatalf("verify under %s:\n%s", p, out)
		}
	}
	refused("verify --witness-policy unmet", u.run("verify", proofPath, "--witness-policy", path["unmet"]))
	plainProof := filepath.Join(dir, "plain.tlog")
	u.must("prove", "--server", server, "--state", filepath.Join(dir, "plain.checkpoint"), "dlg_root", "--out", plainProof)
	refused("verify of an unwitnessed proof", u.run("verify", plainProof, "--witness-policy", path["pq-only"]))

	// The SIEM follower: a checkpoint without the quorum is an alert, and
	// its state stays as it was (here: not written).
	siemState, events := filepath.Join(dir, "siem.state"), filepath.Join(dir, "events.jsonl")
	r := u.run("siem", "--state", siemState, "--once", "--out", events, "--witness-policy", path["unmet"])
	refused("siem --once under an unmet policy", r)
	if !strings.Contains(r.stderr, "ALERT") {
		t.Errorf("siem did not raise an alert: %q", r.stderr)
	}
	if b := read(siemState); bytes.Contains(b, []byte(`"next":`)) && !bytes.Contains(b, []byte(`"next":0`)) {
		t.Fatalf("the refused checkpoint advanced the follower: %s", b)
	}
	if b := read(events); bytes.Count(b, []byte("\n")) > 1 {
		t.Fatalf("entries emitted under a refused checkpoint: %s", b)
	}
	u.must("siem", "--state", siemState, "--once", "--out", events, "--witness-policy", path["two-of-three"])
	if n := bytes.Count(read(events), []byte("\n")); n < int(cp.Size) {
		t.Fatalf("SIEM under a met policy: %d lines for %d entries", n, cp.Size)
	}

	// Audit: online, and of an export whose checkpoint is or is not met.
	if out := u.must("audit", "--state", state, "--witness-policy", path["pq-only"]); !strings.Contains(out, "verified:") {
		t.Fatalf("audit:\n%s", out)
	}
	exportPath := filepath.Join(dir, "log.export")
	u.must("export", "--state", state, "--witness-policy", path["two-of-three"], "--out", exportPath)
	u.must("audit", "--export", exportPath, "--witness-policy", path["w1-only"])
	refused("audit --export under an unmet policy", u.run("audit", "--export", exportPath, "--witness-policy", path["unmet"]))

	// The Go SDK: a FileState moves only under a met policy.
	ctx := context.Background()
	sdkState := filepath.Join(dir, "sdk.checkpoint")
	policy := func(name string) *proofs.WitnessPolicy {
		p, err := proofs.ParseWitnessPolicy([]byte(policies[name]), string(vkey), nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := client.New(proxy.URL, logKey, client.WithState(client.FileState{Path: sdkState}), client.WithWitnessPolicy(policy("unmet")))
	if _, err := c.Checkpoint(ctx); proofs.Reason(err) != proofs.ReasonWitnessQuorum {
		t.Fatalf("SDK under an unmet policy: %v", err)
	}
	if _, err := c.Delegation(ctx, "dlg_root"); proofs.Reason(err) != proofs.ReasonWitnessQuorum {
		t.Fatalf("SDK Delegation under an unmet policy: %v", err)
	}
	if b := read(sdkState); len(b) != 0 {
		t.Fatalf("the SDK trusted a refused checkpoint: %s", b)
	}
	for _, p := range []string{"two-of-three", "pq-only", "w1-only"} {
		c := client.New(proxy.URL, logKey, client.WithState(client.FileState{Path: sdkState}), client.WithWitnessPolicy(policy(p)))
		if _, err := c.Delegation(ctx, "dlg_root"); err != nil {
			t.Fatalf("SDK under %s: %v", p, err)
		}
	}
	trusted := read(sdkState)
	if !bytes.Contains(trusted, []byte("\u2014 "+pq.name+" ")) {
		t.Fatalf("the SDK's trusted state carries no ML-DSA-44 cosignature:\n%s", trusted)
	}
	// The unwitnessed server, under a policy: refused, state untouched.
	direct := client.New(server, logKey, client.WithState(client.FileState{Path: sdkState}), client.WithWitnessPolicy(policy("two-of-three")))
	if _, err := direct.Entry(ctx, 0); proofs.Reason(err) != proofs.ReasonWitnessQuorum {
		t.Fatalf("SDK against the unwitnessed server: %v", err)
	}
	if !bytes.Equal(read(sdkState), trusted) {
		t.Fatal("a refused checkpoint moved the SDK's FileState")
	}
}
