package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
		r := warrant(t, dir, env, "verify", file, "--witness-policy", none, "--json")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"verified":true`) {
			t.Errorf("verify %s under quorum none: exit %d %q", filepath.Base(file), r.code, r.stdout)
		}
		if !strings.HasPrefix(r.stderr, "warning: --witness-policy "+none+" has quorum none: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("verify %s under quorum none: stderr %q, want one warning", filepath.Base(file), r.stderr)
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

// TestVerifyReportsWitnesses: `verify` under a satisfied witness policy
// says which witnesses cosigned and that the quorum is met (text and
// --json); a corrupted cosignature by a witness the policy names is
// reported as that witness's bad cosignature, not as a checkpoint the log
// did not sign.
func TestVerifyReportsWitnesses(t *testing.T) {
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
	logKey, err := proofs.ParseVerifierKey(log.VKey)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := os.ReadFile(filepath.Join(vectors, "dlg_triage.tlog-proof"))
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint is the proof's last part, after its first blank line.
	at := strings.Index(string(proof), "\n\n") + 2
	n, err := note.Open(proof[at:], note.VerifierList(logKey))
	if err != nil {
		t.Fatal(err)
	}
	ws, cvs := []note.Signer{}, []string{}
	for _, name := range []string{"witness.example/w1", "witness.example/w2", "witness.example/w3"} {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		cv, err := fnote.VKeyToCosignatureV1(vkey)
		if err != nil {
			t.Fatal(err)
		}
		ws, cvs = append(ws, s), append(cvs, cv)
	}
	cosigned, err := note.Sign(n, ws[0], ws[2]) // w1 and w3; w2 did not
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("cosigned.tlog-proof", append(append([]byte{}, proof[:at]...), cosigned...))
	policy := write("two.policy", []byte(fmt.Sprintf("witness w1 %s\nwitness w2 %s\nwitness w3 %s\ngroup two 2 w1 w2 w3\nquorum two\n", cvs[0], cvs[1], cvs[2])))
	env := append(os.Environ(), "WARRANT_LOG_KEY="+log.VKey, "WARRANT_WITNESS_POLICY=")

	out := mustWarrant(t, dir, env, "verify", good, "--witness-policy", policy)
	if !strings.Contains(out, "witnesses: cosigned by w1, w3 (2 of the policy's 3); quorum two is met\n") {
		t.Errorf("verify under a satisfied policy does not name the cosigners and the quorum:\n%s", out)
	}
	out = mustWarrant(t, dir, env, "verify", good, "--witness-policy", policy, "--json")
	var j struct {
		Witnesses struct {
			CosignedBy []string `json:"cosigned_by"`
			Of         int      `json:"policy_witnesses"`
			Quorum     string   `json:"quorum"`
			Met        bool     `json:"quorum_met"`
		} `json:"witnesses"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	if fmt.Sprint(j.Witnesses.CosignedBy) != "[w1 w3]" || j.Witnesses.Of != 3 || j.Witnesses.Quorum != "two" || !j.Witnesses.Met {
		t.Errorf("verify --json witnesses: %+v", j.Witnesses)
	}
	// Without a policy nothing is said about witnesses.
	if out := mustWarrant(t, dir, env, "verify", good); strings.Contains(out, "witnesses:") {
		t.Errorf("verify without a policy reports witnesses:\n%s", out)
	}

	// Corrupt w3's cosignature (a signature byte; the key hash and the
	// base64 stay well-formed).
	lines := strings.Split(strings.TrimSuffix(string(cosigned), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "\u2014 witness.example/w3 ") {
		t.Fatalf("last line %q", last)
	}
	b := []byte(last)
	i := len("\u2014 witness.example/w3 ") + 40
	b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
	lines[len(lines)-1] = string(b)
	bad := write("bad-cosignature.tlog-proof", append(append([]byte{}, proof[:at]...), []byte(strings.Join(lines, "\n")+"\n")...))
	r := warrant(t, dir, env, "verify", bad, "--witness-policy", policy)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: "+proofs.ReasonCheckpointSignature+": ") ||
		!strings.Contains(r.stderr, "bad cosignature by witness witness.example/w3+") ||
		strings.Contains(r.stderr, "not signed by example.org/warrant-vectors") {
		t.Errorf("verify with w3's cosignature corrupted: exit %d, stderr %q; want exit 1, a bad cosignature by w3, the log not blamed", r.code, r.stderr)
	}
}

// TestQuorumNoneWarns: a client policy whose quorum is none is valid
// tlog-policy but checks nothing; every client command accepts it with one
// warning line on stderr (serve refuses it), the command's output as
// usual.
func TestQuorumNoneWarns(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	startServer(t, dir, env, addr)
	vkeyPath := filepath.Join(dir, "warrant-data", "log.vkey")
	vkey, err := os.ReadFile(vkeyPath)
	if err != nil {
		t.Fatal(err)
	}
	pn := filepath.Join(dir, "pn.txt")
	if err := os.WriteFile(pn, []byte("log "+strings.TrimSpace(string(vkey))+"\nquorum none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(env, "WARRANT_LOG_KEY=@"+vkeyPath)
	warning := "warning: --witness-policy " + pn + " has quorum none: it requires no cosignature"
	for _, args := range [][]string{
		{"checkpoint", "--witness-policy", pn},
		{"checkpoint", "--json"},
		{"audit"},
		{"export", "--out", filepath.Join(dir, "log.export")},
	} {
		for _, viaEnv := range []bool{false, true} {
			e := env
			if viaEnv {
				e = append(e, "WARRANT_WITNESS_POLICY="+pn)
			} else if !slices.Contains(args, "--witness-policy") {
				continue
			}
			os.Remove(filepath.Join(dir, "log.export"))
			r := warrant(t, dir, e, args...)
			if r.code != 0 || strings.Count(r.stderr, "warning: ") != 1 || !strings.Contains(r.stderr, warning) {
				t.Errorf("warrant %v (policy via env %v): exit %d, stderr %q; want exit 0 and one warning", args, viaEnv, r.code, r.stderr)
			}
		}
	}
	// A real quorum: no warning.
	if r := warrant(t, dir, env, "checkpoint"); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Errorf("checkpoint without a policy: exit %d, stderr %q", r.code, r.stderr)
	}
}
