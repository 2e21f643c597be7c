package main

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// TestVerifyWitnessPolicy: `verify` takes --witness-policy (or env
// WARRANT_WITNESS_POLICY) for tlog-proofs and chain bundles alike, and
// answers per the CLI contract: a policy its checkpoint does not satisfy is
// exit 1 with the reason code, a policy that does not parse or does not fit
// the log is witness_policy_invalid, a missing file io_error. (Cosigned
// checkpoints, satisfied policies and every other command are tested
// against real witnesses in witnesstest/.)
func TestVerifyWitnessPolicy(t *testing.T) {
	dir := t.TempDir()
	vectors := filepath.Join(repoRoot, "testdata", "vectors")
	var log struct {
		VKey string `json:"note_verifier_key"`
	}
	raw, err := os.ReadFile(filepath.Join(vectors, "log.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &log); err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	proof, bundle := abs(filepath.Join(vectors, "dlg_triage.tlog-proof")), abs(filepath.Join(vectors, "dlg_triage.bundle"))
	_, wv, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(wv)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := write("none.policy", "log "+log.VKey+"\nquorum none\n")
	needsW1 := write("w1.policy", "witness w1 "+cv+"\nquorum w1\n")
	bad := write("bad.policy", "witness w1 "+cv+"\ngroup g 2 w1 w1\nquorum g\n")
	otherLog := write("other-log.policy", "log "+strings.Replace(log.VKey, "example.org/warrant-vectors", "example.org/other", 1)+"\nquorum none\n")
	env := append(os.Environ(), "WARRANT_LOG_KEY="+log.VKey, "WARRANT_WITNESS_POLICY=")
	wantFail := func(reason string, r result) {
		t.Helper()
		if r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+reason+": ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("exit %d, stderr %q; want exit 1 and one line error: %s", r.code, r.stderr, reason)
		}
	}
	for _, file := range []string{proof, bundle} {
		out := mustWarrant(t, dir, env, "verify", file, "--witness-policy", none, "--json")
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"verified":true`) {
			t.Errorf("verify %s under quorum none: %q", filepath.Base(file), out)
		}
		wantFail(proofs.ReasonWitnessPolicyInvalid, warrant(t, dir, env, "verify", file, "--witness-policy", bad))
		wantFail(proofs.ReasonWitnessPolicyInvalid, warrant(t, dir, env, "verify", "--witness-policy", otherLog, file))
		wantFail(proofs.ReasonIOError, warrant(t, dir, env, "verify", file, "--witness-policy", filepath.Join(dir, "missing.policy")))
	}
	wantFail(proofs.ReasonWitnessQuorum, warrant(t, dir, env, "verify", proof, "--witness-policy", needsW1))
	wantFail(proofs.ReasonWitnessQuorum, warrant(t, dir, append(env, "WARRANT_WITNESS_POLICY="+needsW1), "verify", proof))
	wantFail(proofs.ReasonBundleWitness, warrant(t, dir, env, "verify", bundle, "--witness-policy", needsW1))
	// Every client command takes the flag; a bad policy is refused before
	// any request.
	wantFail(proofs.ReasonWitnessPolicyInvalid, warrant(t, dir, env, "checkpoint", "--server", "http://127.0.0.1:1", "--state", filepath.Join(dir, "state"), "--witness-policy", bad))
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("a refused policy wrote the trusted state: %v", err)
	}
}
