package proofs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// witnessVector returns the log key text and policy of testdata/witness.
func witnessVector(t testing.TB) (string, []byte) {
	t.Helper()
	vkey, err := os.ReadFile(filepath.Join("testdata", "witness", "log.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(filepath.Join("testdata", "witness", "policy"))
	if err != nil {
		t.Fatal(err)
	}
	return string(vkey), policy
}

func FuzzParseWitnessPolicy(f *testing.F) {
	vkey, policy := witnessVector(f)
	f.Add(policy)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := proofs.ParseWitnessPolicy(data, vkey, nil)
		if err != nil {
			checkReason(t, err)
			if proofs.Reason(err) != proofs.ReasonWitnessPolicyInvalid {
				t.Fatalf("reason %q", proofs.Reason(err))
			}
			return
		}
		if p.Quorum == "" || len(p.Witnesses) > 128 {
			t.Fatalf("accepted policy %+v", p)
		}
		seen := map[string]bool{}
		for _, w := range p.Witnesses {
			if seen[w.Name] || w.Verifier == nil || !strings.Contains(string(data), w.VKey) {
				t.Fatalf("accepted policy with witness %+v", w)
			}
			seen[w.Name] = true
		}
		p2, err := proofs.ParseWitnessPolicy(data, vkey, nil)
		if err != nil || p2.Digest() != p.Digest() || len(p2.Witnesses) != len(p.Witnesses) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

func FuzzOpenWitnessedCheckpoint(f *testing.F) {
	vkey, policy := witnessVector(f)
	v, err := proofs.ParseVerifierKey(vkey)
	if err != nil {
		f.Fatal(err)
	}
	p, err := proofs.ParseWitnessPolicy(policy, vkey, nil)
	if err != nil {
		f.Fatal(err)
	}
	signed, err := os.ReadFile(filepath.Join("testdata", "witness", "checkpoint"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := proofs.OpenWitnessedCheckpoint(data, v, p)
		if err != nil {
			checkReason(t, err)
			return
		}
		if !bytes.Equal(cp.Note, data) {
			t.Fatal("the checkpoint's note is not the input")
		}
		// The quorum is both witnesses: each must have a line.
		for _, w := range p.Witnesses {
			if !bytes.Contains(data, []byte("\n\u2014 "+w.Verifier.Name()+" ")) {
				t.Fatalf("accepted without a line by %s", w.Name)
			}
		}
		if _, err := proofs.OpenCheckpoint(data, v); err != nil {
			t.Fatalf("accepted with the policy, refused without: %v", err)
		}
	})
}
