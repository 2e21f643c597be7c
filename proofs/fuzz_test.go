package proofs_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// The fuzz targets' seed corpora are in testdata/fuzz/<FuzzName>/. The
// checkpoint and tlog-proof seeds are signed by fuzzLog's fixed key, so that
// valid seeds stay valid.

const fuzzOrigin = "fuzz.example/log"

// fuzzLog returns the fixed note key pair of the fuzz seeds.
func fuzzLog(t testing.TB) *testLog {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5e}, ed25519.SeedSize))
	skey, vkey := noteKeys(fuzzOrigin, priv)
	return newTestLogFromKeys(t, skey, vkey)
}

// checkReason fails unless err carries a reason code.
func checkReason(t *testing.T, err error) {
	t.Helper()
	if proofs.Reason(err) == "" {
		t.Fatalf("error without a reason code: %v", err)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := proofs.ParseEnvelope(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		if len(env.Signatures) == 0 || len(env.Signatures) > proofs.MaxSignatures {
			t.Fatalf("accepted %d signatures", len(env.Signatures))
		}
		for i := 1; i < len(env.Signatures); i++ {
			if env.Signatures[i-1].KeyID >= env.Signatures[i].KeyID {
				t.Fatalf("signatures not sorted and distinct: %q, %q", env.Signatures[i-1].KeyID, env.Signatures[i].KeyID)
			}
		}
		c := env.Canonical()
		env2, err := proofs.ParseEnvelope(c)
		if err != nil {
			if len(c) > proofs.MaxEnvelopeBytes {
				t.Skip("known bug: canonical form over MaxEnvelopeBytes (TestCanonicalReparsesAtSizeLimit)")
			}
			t.Fatalf("ParseEnvelope(Canonical()) = %v\ninput:     %q\ncanonical: %q", err, data, c)
		}
		if c2 := env2.Canonical(); !bytes.Equal(c, c2) {
			t.Fatalf("Canonical() not stable:\n%q\n%q", c, c2)
		}
		if env2.PayloadType != env.PayloadType || !bytes.Equal(env2.Payload, env.Payload) {
			t.Fatalf("round trip changed the envelope")
		}
	})
}

func FuzzParseLeaf(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := proofs.ParseLeaf(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		b, err := p.Leaf.Marshal()
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("accepted leaf is not canonical: Marshal() = %q, %v\ninput %q", b, err, data)
		}
		if p.ID() == "" {
			t.Fatal("empty ID()")
		}
		switch p.Kind {
		case proofs.KindLogConfig:
			if p.Config == nil || p.Env != nil {
				t.Fatalf("log_config leaf: %+v", p)
			}
		case proofs.KindKeyBinding:
			if p.KeyBinding == nil || p.Env.PayloadType != proofs.PayloadTypeAgent {
				t.Fatalf("key_binding leaf: %+v", p)
			}
		case proofs.KindDelegation:
			if p.Delegation == nil || p.Env.PayloadType != proofs.PayloadTypeDelegation || p.ID() != p.Delegation.ID {
				t.Fatalf("delegation leaf: %+v", p)
			}
		}
		if p.Env != nil && !bytes.Equal(p.Env.Canonical(), p.Envelope) {
			t.Fatalf("envelope not canonical: %q", p.Envelope)
		}
	})
}

func FuzzParseDelegation(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := proofs.ParseDelegation(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted delegation does not validate: %v", err)
		}
		b, err := proofs.MarshalPayload(d)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("accepted payload is not canonical: MarshalPayload() = %q, %v\ninput %q", b, err, data)
		}
	})
}

func FuzzParseTLogProof(f *testing.F) {
	log := fuzzLog(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := proofs.ParseTLogProof(data)
		if err != nil {
			checkReason(t, err)
		} else if !bytes.Equal(p.Marshal(), data) {
			t.Fatalf("accepted tlog-proof is not canonical: %q", data)
		}
		e, err := proofs.VerifyTLogProof(data, log.verifier)
		if err != nil {
			checkReason(t, err)
			return
		}
		if p == nil {
			t.Fatal("VerifyTLogProof accepted what ParseTLogProof refused")
		}
		if e.Index != p.Index || !bytes.Equal(e.Leaf.Raw, p.ExtraData) || e.Checkpoint.Origin != fuzzOrigin {
			t.Fatalf("verified entry %d does not match the proof", e.Index)
		}
		hashes := make([][]byte, len(p.Hashes))
		for i := range p.Hashes {
			hashes[i] = p.Hashes[i][:]
		}
		if err := proofs.VerifyInclusion(e.Index, e.Checkpoint.Size, proofs.LeafHash(e.Leaf.Raw), hashes, e.Checkpoint.Root); err != nil {
			t.Fatalf("verified entry is not included: %v", err)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	log := fuzzLog(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := proofs.OpenCheckpoint(data, log.verifier)
		if err != nil {
			checkReason(t, err)
			return
		}
		if cp.Origin != fuzzOrigin || len(cp.Root) != 32 || !bytes.Equal(cp.Note, data) {
			t.Fatalf("accepted checkpoint %v", cp)
		}
		body := proofs.CheckpointBody(cp.Origin, cp.Size, cp.Root)
		if !bytes.HasPrefix(data, append(body, '\n')) {
			t.Fatalf("accepted checkpoint text is not CheckpointBody(%v):\n%q", cp, data)
		}
	})
}

// TestFuzzSeeds checks that the seed corpora say what their names say:
// "valid-*" seeds are accepted and "invalid-*" seeds refused.
func TestFuzzSeeds(t *testing.T) {
	log := fuzzLog(t)
	targets := map[string]func([]byte) error{
		"FuzzParseEnvelope": func(b []byte) error { _, err := proofs.ParseEnvelope(b); return err },
		"FuzzParseDSSE":     func(b []byte) error { _, err := proofs.ParseDSSE(b); return err },
		"FuzzParseLeaf":     func(b []byte) error { _, err := proofs.ParseLeaf(b); return err },
		"FuzzParseDelegation": func(b []byte) error {
			_, err := proofs.ParseDelegation(b)
			return err
		},
		"FuzzParseTLogProof": func(b []byte) error { _, err := proofs.VerifyTLogProof(b, log.verifier); return err },
		"FuzzOpenCheckpoint": func(b []byte) error { _, err := proofs.OpenCheckpoint(b, log.verifier); return err },
	}
	for name, parse := range targets {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if err != nil {
			t.Fatal(err)
		}
		var valid, invalid int
		for _, file := range files {
			data := readSeed(t, file)
			err := parse(data)
			switch base := filepath.Base(file); {
			case strings.HasPrefix(base, "valid-"):
				valid++
				if err != nil {
					t.Errorf("%s: refused: %v", file, err)
				}
			case strings.HasPrefix(base, "invalid-"):
				invalid++
				if err == nil {
					t.Errorf("%s: accepted", file)
				}
			}
		}
		if valid == 0 || invalid == 0 {
			t.Errorf("%s: %d valid and %d invalid seeds, want some of each", name, valid, invalid)
		}
	}
}

// readSeed reads a one-value []byte corpus file ("go test fuzz v1").
func readSeed(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	header, value, ok := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n")
	if !ok || header != "go test fuzz v1" || !strings.HasPrefix(value, "[]byte(") || !strings.HasSuffix(value, ")") {
		t.Fatalf("%s: not a []byte corpus file", file)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(value, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return []byte(s)
}
