package proofs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors from the generator")

// TestVectors checks the committed cross-language vectors: first that the
// generator still produces them byte for byte (so the formats have not
// drifted), then each vector on its own against the real verifiers, the
// way another implementation would use them.
func TestVectors(t *testing.T) {
	vs := buildVectors(t)
	if *updateVectors {
		if err := os.MkdirAll(vectorsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range vs.files {
			if err := os.WriteFile(filepath.Join(vectorsDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range vs.files {
			if !yield(n) {
				return
			}
		}
	}) {
		got, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatalf("%v (run with -update to create the vectors)", err)
		}
		if !bytes.Equal(got, vs.files[name]) {
			t.Errorf("testdata/vectors/%s differs from what the code produces now: a format changed (regenerate with -update only if the change is intended and documented)", name)
		}
	}
	if t.Failed() {
		return
	}
	var keys keysFile
	var envs envelopesFile
	var lg logFile
	var inv invalidFile
	var canon canonicalFile
	readVec(t, vecKeys, &keys)
	readVec(t, vecEnvelopes, &envs)
	readVec(t, vecLog, &lg)
	readVec(t, vecInvalid, &inv)
	readVec(t, vecCanonical, &canon)

	pubs := map[string]*proofs.PublicKey{}
	t.Run("keys", func(t *testing.T) {
		for _, k := range keys.Keys {
			der, err := base64.StdEncoding.DecodeString(k.PublicDER)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(der)
			if want := "sha256:" + hex.EncodeToString(sum[:]); k.KeyID != want || proofs.KeyID(der) != want {
				t.Errorf("%s: key id %s, SHA-256 of the SPKI DER gives %s", k.Name, k.KeyID, want)
			}
			pk, err := proofs.ParsePublicKeyPEM([]byte(k.PublicPEM))
			if err != nil || !bytes.Equal(pk.DER, der) {
				t.Fatalf("%s: PEM public key: %v", k.Name, err)
			}
			pubs[k.Name] = pk
		}
		v, err := note.NewVerifier(keys.LogKey.VerifierKey)
		if err != nil || v.Name() != keys.LogKey.Origin {
			t.Errorf("log verifier key: %v", err)
		}
		if _, err := note.NewSigner(keys.LogKey.SignerKey); err != nil {
			t.Errorf("log signer key: %v", err)
		}
	})

	t.Run("canonical_json", func(t *testing.T) {
		for _, c := range canon.Strings {
			got, _ := json.Marshal(c.Value)
			if string(got) != c.Encoded {
				t.Errorf("%s: encoding/json writes %s, vector says %s", c.Name, got, c.Encoded)
			}
		}
	})

	t.Run("envelopes", func(t *testing.T) {
		for _, e := range envs.Envelopes {
			payload, _ := base64.StdEncoding.DecodeString(e.PayloadB64)
			if string(payload) != e.PayloadText {
				t.Errorf("%s: payload_text is not payload_b64", e.Name)
			}
			pae, _ := base64.StdEncoding.DecodeString(e.PAEB64)
			if !bytes.Equal(pae, proofs.PAE(e.PayloadType, payload)) {
				t.Errorf("%s: PAE differs", e.Name)
			}
			env, c, err := proofs.ParseEnvelopeCanonical([]byte(e.Envelope))
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			if string(c) != e.Envelope || proofs.HashID(c) != e.EnvelopeHash {
				t.Errorf("%s: the envelope is not canonical, or its hash differs", e.Name)
			}
			if !bytes.Equal(env.Payload, payload) || env.PayloadType != e.PayloadType {
				t.Errorf("%s: envelope payload differs from payload_b64", e.Name)
			}
			for _, s := range e.Signers {
				if err := env.Verify(pubs[s]); err != nil {
					t.Errorf("%s: signature by %s: %v", e.Name, s, err)
				}
			}
			if err := parsePayload(e.PayloadType, payload); err != nil {
				t.Errorf("%s: payload: %v", e.Name, err)
			}
		}
	})

	logKey, err := note.NewVerifier(lg.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("log", func(t *testing.T) {
		replay := proofs.NewReplay()
		var hashes [][]byte
		for i, e := range lg.Entries {
			p, err := proofs.ParseLeaf([]byte(e.Leaf))
			if err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			if err := replay.Apply(uint64(i), p); err != nil {
				t.Errorf("entry %d: %v", i, err)
			}
			if p.ID() != e.ID || p.Kind != e.Kind || e.Index != uint64(i) {
				t.Errorf("entry %d: id %s kind %s, vector says %s %s", i, p.ID(), p.Kind, e.ID, e.Kind)
			}
			h := sha256.Sum256(append([]byte{0}, e.Leaf...))
			if hex.EncodeToString(h[:]) != e.LeafHash || !bytes.Equal(proofs.LeafHash([]byte(e.Leaf)), h[:]) {
				t.Errorf("entry %d: leaf hash", i)
			}
			hashes = append(hashes, h[:])
		}
		roots := map[uint64][]byte{}
		for _, r := range lg.Roots {
			roots[r.Size], _ = hex.DecodeString(r.Root)
		}
		if !bytes.Equal(roots[0], proofs.EmptyRoot()) {
			t.Errorf("root of the empty tree")
		}
		for _, c := range lg.Checkpoints {
			cp, err := proofs.OpenCheckpoint([]byte(c.Note), logKey)
			if err != nil {
				t.Fatalf("checkpoint %d: %v", c.Size, err)
			}
			if cp.Size != c.Size || hex.EncodeToString(cp.Root) != c.Root || !bytes.Equal(cp.Root, roots[c.Size]) {
				t.Errorf("checkpoint %d: size or root differs", c.Size)
			}
		}
		for _, p := range lg.Inclusion {
			if err := proofs.VerifyInclusion(p.Index, p.TreeSize, hashes[p.Index], unhex(t, p.Hashes), roots[p.TreeSize]); err != nil {
				t.Errorf("inclusion %d in %d: %v", p.Index, p.TreeSize, err)
			}
		}
		if len(lg.Tiles) != 2 {
			t.Fatalf("%d tiles", len(lg.Tiles))
		}
		tile, _ := base64.StdEncoding.DecodeString(lg.Tiles[0].Content)
		if !bytes.Equal(tile, bytes.Join(hashes, nil)) {
			t.Errorf("%s is not the leaf hashes", lg.Tiles[0].Path)
		}
		bundle, _ := base64.StdEncoding.DecodeString(lg.Tiles[1].Content)
		for i, e := range lg.Entries {
			n := int(bundle[0])<<8 | int(bundle[1])
			if n != len(e.Leaf) || string(bundle[2:2+n]) != e.Leaf {
				t.Fatalf("%s: entry %d differs", lg.Tiles[1].Path, i)
			}
			bundle = bundle[2+n:]
		}
		if len(bundle) != 0 {
			t.Errorf("%s: data after the entries", lg.Tiles[1].Path)
		}
		for _, p := range lg.Consistency {
			if err := proofs.VerifyConsistency(p.From, p.To, unhex(t, p.Hashes), roots[p.From], roots[p.To]); err != nil {
				t.Errorf("consistency %d to %d: %v", p.From, p.To, err)
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		tp := readRaw(t, vecTLogProof)
		ve, err := proofs.VerifyTLogProof(tp, logKey)
		if err != nil {
			t.Fatalf("tlog-proof: %v", err)
		}
		if ve.Leaf.ID() != "dlg_triage" || ve.Index != 6 {
			t.Errorf("tlog-proof proves entry %d (%s)", ve.Index, ve.Leaf.ID())
		}
		vc, err := proofs.VerifyBundle(readRaw(t, vecBundle), logKey, proofs.BundleOptions{})
		if err != nil {
			t.Fatalf("bundle: %v", err)
		}
		if len(vc.Links) != 2 || vc.Links[1].Leaf.ID() != "dlg_triage" {
			t.Errorf("bundle proves %d links", len(vc.Links))
		}
		rep, err := proofs.AuditExport(bytes.NewReader(readRaw(t, vecExport)), logKey, nil, nil)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if len(rep.Discrepancies) != 0 || rep.Size != uint64(len(lg.Entries)) {
			t.Errorf("export audit: %+v", rep)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for _, c := range inv.Cases {
			in := []byte(c.InputText)
			if c.InputB64 != "" {
				in, _ = base64.StdEncoding.DecodeString(c.InputB64)
			}
			var err error
			switch c.Check {
			case "payload":
				err = parsePayload(c.PayloadType, in)
			case "envelope":
				_, err = proofs.ParseEnvelope(in)
			case "signature":
				var env *proofs.Envelope
				if env, err = proofs.ParseEnvelope(in); err == nil {
					err = env.Verify(pubs[c.Key])
				}
			case "leaf":
				_, err = proofs.ParseLeaf(in)
			case "public_key":
				_, err = proofs.ParsePublicKeyDER(in)
			case "checkpoint":
				_, err = proofs.OpenCheckpoint(in, logKey)
			case "tlog_proof":
				_, err = proofs.VerifyTLogProof(in, logKey)
			case "inclusion":
				leaf, _ := hex.DecodeString(lg.Entries[6].LeafHash)
				root, _ := hex.DecodeString(lg.Roots[c.TreeSize].Root)
				err = proofs.VerifyInclusion(c.Index, c.TreeSize, leaf, unhex(t, c.Hashes), root)
			case "consistency":
				r1, _ := hex.DecodeString(lg.Roots[c.Size1].Root)
				r2, _ := hex.DecodeString(lg.Roots[c.TreeSize].Root)
				err = proofs.VerifyConsistency(c.Size1, c.TreeSize, unhex(t, c.Hashes), r1, r2)
			default:
				t.Fatalf("%s: unknown check %q", c.Name, c.Check)
			}
			if got := proofs.Reason(err); err == nil || got != c.Reason {
				t.Errorf("%s (%s): got %q (%v), want %q", c.Name, c.Check, got, err, c.Reason)
			}
		}
	})
}

// parsePayload parses a payload by its type, as the log does.
func parsePayload(payloadType string, b []byte) error {
	var err error
	switch payloadType {
	case proofs.PayloadTypeDelegation:
		_, err = proofs.ParseDelegation(b)
	case proofs.PayloadTypeAgent:
		_, err = proofs.ParseKeyBinding(b)
	case proofs.PayloadTypeRevocation:
		_, err = proofs.ParseRevocation(b)
	case proofs.PayloadTypePolicy:
		_, _, err = proofs.ParsePolicyUpdate(b)
	default:
		return proofs.Errorf(proofs.ReasonPayloadTypeUnknown, "%s", payloadType)
	}
	return err
}

func readRaw(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readVec(t *testing.T, name string, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readRaw(t, name)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t *testing.T, hs []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(hs))
	for i, h := range hs {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}
