package proofs_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/internal/merkleref"
	"github.com/warrantlog/warrant/proofs"
)

// Fuzz targets for hostile input (README "Bounds"): chain bundles,
// inclusion and consistency proofs, the Cedar context and the default
// policy, and the revocation, policy and key-binding payloads. Their seed
// corpora are in testdata/fuzz/<FuzzName>/; the bundle seeds derive from
// ../ledger/testdata/golden (regenerate them with
// WARRANT_WRITE_FUZZ_SEEDS=1 go test ./proofs -run TestWriteHostileFuzzSeeds
// after the golden bundle changes). Run one with, for example,
//
//	go test ./proofs -run '^$' -fuzz '^FuzzVerifyBundle$' -fuzztime 20s

const (
	goldenBundle = "../ledger/testdata/golden/chain.bundle"
	goldenVKey   = "../ledger/testdata/golden/log.vkey"
	// defaultPolicyFile is the policy every new log starts with.
	defaultPolicyFile = "../ledger/default.cedar"
)

func readTestFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenVerifier is the note verifier of the golden log.
func goldenVerifier(t testing.TB) note.Verifier {
	t.Helper()
	v, err := proofs.ParseVerifierKey(strings.TrimSpace(string(readTestFile(t, goldenVKey))))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// goldenSigner is the golden log's note signer, derived as
// ledger.TestGoldenBundle derives it.
func goldenSigner(t testing.TB) note.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)), "golden.example/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// witnessPolicy requires a cosignature by a fixed witness key that never
// signs anything here: no bundle can satisfy it.
func witnessPolicy(t testing.TB) *proofs.WitnessPolicy {
	t.Helper()
	_, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), "witness.example")
	if err != nil {
		t.Fatal(err)
	}
	// formats/witness wants the cosignature/v1 form of the key.
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proofs.ParseWitnessPolicy([]byte("witness w "+cv+" https://witness.example/\nquorum w\n"), string(readTestFile(t, goldenVKey)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzParseBundle(f *testing.F) {
	f.Add(readTestFile(f, goldenBundle))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := proofs.ParseBundle(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		if !bytes.Equal(b.Marshal(), data) {
			t.Fatalf("accepted bundle is not canonical: %q", data)
		}
		if b.Format != proofs.BundleFormat || len(b.Proofs) == 0 {
			t.Fatalf("accepted bundle %+v", b)
		}
		b2, err := proofs.ParseBundle(b.Marshal())
		if err != nil || !reflect.DeepEqual(b, b2) {
			t.Fatalf("re-parsing an accepted bundle: %v", err)
		}
	})
}

func FuzzVerifyBundle(f *testing.F) {
	f.Add(readTestFile(f, goldenBundle))
	v := goldenVerifier(f)
	policy := witnessPolicy(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		vc, err := proofs.VerifyBundle(data, v, proofs.BundleOptions{})
		if err != nil {
			checkReason(t, err)
			return
		}
		b, err := proofs.ParseBundle(data)
		if err != nil {
			t.Fatalf("VerifyBundle accepted what ParseBundle refuses: %v", err)
		}
		if len(vc.Links) == 0 || vc.Checkpoint == nil {
			t.Fatalf("verified chain without links or checkpoint")
		}
		last := vc.Links[len(vc.Links)-1].Leaf.Delegation
		if last == nil || last.ID != b.Delegation {
			t.Fatalf("the chain ends at %+v, not at %q", last, b.Delegation)
		}
		if vc.Links[0].Leaf.Delegation.Parent != "" {
			t.Fatal("the chain does not start at a root grant")
		}
		for i, l := range vc.Links {
			if l.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
				t.Fatalf("link %d is not accepted", i)
			}
			if i > 0 && l.Leaf.Delegation.Parent != vc.Links[i-1].Leaf.Delegation.ID {
				t.Fatalf("link %d does not follow link %d", i, i-1)
			}
			if vc.Entries[l.Index] != l.Leaf {
				t.Fatalf("link %d is not among the bundle's entries", i)
			}
		}
		// Deterministic, and the checkpoint is not witnessed.
		vc2, err := proofs.VerifyBundle(data, v, proofs.BundleOptions{})
		if err != nil || len(vc2.Links) != len(vc.Links) || vc2.Checkpoint.Size != vc.Checkpoint.Size {
			t.Fatalf("second verification differs: %v", err)
		}
		if _, err := proofs.VerifyBundle(data, v, proofs.BundleOptions{WitnessPolicy: policy}); proofs.Reason(err) != proofs.ReasonBundleWitness {
			t.Fatalf("verified under a witness policy nobody satisfies: %v", err)
		}
	})
}

// proofOps edits a list of proof hashes with ops, three bytes each: (op,
// position, value). op%4: 0 flips bit value%8 of byte value of a hash, 1
// drops a hash, 2 inserts a hash derived from value, 3 swaps two hashes.
func proofOps(hashes [][]byte, ops []byte) [][]byte {
	ops = ops[:min(len(ops), 3*64)] // at most 64 edits: enough, and fast
	out := make([][]byte, len(hashes))
	for i, h := range hashes {
		out[i] = bytes.Clone(h)
	}
	for len(ops) >= 3 {
		op, pos, val := ops[0], int(ops[1]), ops[2]
		ops = ops[3:]
		switch op % 4 {
		case 0:
			if len(out) > 0 {
				out[pos%len(out)][int(val)%32] ^= 1 << (val % 8)
			}
		case 1:
			if len(out) > 0 {
				out = slices.Delete(out, pos%len(out), pos%len(out)+1)
			}
		case 2:
			h := sha256.Sum256([]byte{val})
			out = slices.Insert(out, pos%(len(out)+1), h[:])
		case 3:
			if len(out) > 1 {
				i, j := pos%len(out), int(val)%len(out)
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// refLeaves returns n leaf hashes derived from seed.
func refLeaves(seed []byte, n int) [][]byte {
	seed = seed[:min(len(seed), 64)]
	out := make([][]byte, n)
	for i := range out {
		out[i] = merkleref.LeafHash(append(slices.Clone(seed), strconv.Itoa(i)...))
	}
	return out
}

// splitHashes reads data as a list of (up to 64) hashes of 32 bytes; a
// short tail becomes a short hash.
func splitHashes(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 && len(out) < 64 {
		n := min(32, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// maxRefSize bounds the trees built with the (quadratic) reference.
const maxRefSize = 300

func FuzzVerifyInclusion(f *testing.F) {
	f.Add(uint64(7), uint64(3), []byte("leaves"), []byte{})
	f.Add(uint64(1), uint64(0), []byte("one"), []byte{})
	f.Add(uint64(8), uint64(7), []byte("pow2"), []byte{0, 1, 5})
	f.Add(uint64(300), uint64(255), []byte("big"), []byte{1, 0, 0})
	f.Add(uint64(5), uint64(4), []byte("x"), []byte{2, 2, 9})
	f.Add(uint64(6), uint64(1), []byte("x"), []byte{3, 0, 1})
	f.Add(^uint64(0), ^uint64(0)-1, bytes.Repeat([]byte{0xaa}, 64*32), []byte("root"))
	f.Add(uint64(1)<<40, uint64(12345), bytes.Repeat([]byte{1}, 40*32), []byte{})
	f.Fuzz(func(t *testing.T, size, index uint64, seed, ops []byte) {
		if size > 0 && size <= maxRefSize {
			// A real tree: the reference proof verifies; an edited proof
			// verifies exactly when it is the reference proof.
			index %= size
			leaves := refLeaves(seed, int(size))
			root := merkleref.Root(leaves)
			ref := merkleref.Inclusion(int(index), leaves)
			if err := proofs.VerifyInclusion(index, size, leaves[index], ref, root); err != nil {
				t.Fatalf("reference proof of %d in %d refused: %v", index, size, err)
			}
			cand := proofOps(ref, ops)
			err := proofs.VerifyInclusion(index, size, leaves[index], cand, root)
			refRoot := merkleref.RootFromInclusion(int(index), int(size), leaves[index], cand)
			if (err == nil) != bytes.Equal(refRoot, root) {
				t.Fatalf("VerifyInclusion(%d, %d) = %v, but the reference recomputes root %x (want %x)", index, size, err, refRoot, root)
			}
			if err == nil && !equalProofs(cand, ref) {
				t.Fatalf("an edited proof verified: %x", cand)
			}
			if err != nil {
				checkReason(t, err)
			}
			// Another leaf never verifies with the reference proof.
			if size > 1 {
				other := (index + 1) % size
				if proofs.VerifyInclusion(other, size, leaves[index], ref, root) == nil && !bytes.Equal(leaves[other], leaves[index]) {
					if !equalProofs(merkleref.Inclusion(int(other), leaves), ref) {
						t.Fatalf("proof of %d verified at index %d", index, other)
					}
				}
			}
			return
		}
		// Arbitrary sizes and hashes: no panic, a reason on refusal, and
		// agreement with the reference where its int arithmetic holds.
		hashes := splitHashes(seed)
		leaf := sha256.Sum256(ops)
		root := sha256.Sum256(append([]byte("root"), ops...))
		err := proofs.VerifyInclusion(index, size, leaf[:], hashes, root[:])
		if err != nil {
			checkReason(t, err)
		}
		if err == nil && index < size && size < 1<<62 {
			if got := merkleref.RootFromInclusion(int(index), int(size), leaf[:], hashes); !bytes.Equal(got, root[:]) {
				t.Fatalf("verified, but the reference recomputes %x", got)
			}
		}
	})
}

func FuzzVerifyConsistency(f *testing.F) {
	f.Add(uint64(3), uint64(7), []byte("leaves"), []byte{})
	f.Add(uint64(0), uint64(7), []byte("empty"), []byte{})
	f.Add(uint64(7), uint64(7), []byte("same"), []byte{})
	f.Add(uint64(4), uint64(8), []byte("pow2"), []byte{0, 0, 1})
	f.Add(uint64(1), uint64(300), []byte("big"), []byte{1, 3, 0})
	f.Add(uint64(5), uint64(6), []byte("x"), []byte{2, 0, 4})
	f.Add(uint64(9), uint64(3), []byte("backwards"), []byte{})
	f.Add(^uint64(0)-5, ^uint64(0), bytes.Repeat([]byte{0xcc}, 64*32), []byte("r"))
	f.Fuzz(func(t *testing.T, size1, size2 uint64, seed, ops []byte) {
		if size2 <= maxRefSize {
			leaves := refLeaves(seed, int(size2))
			root2 := merkleref.Root(leaves)
			if size1 > size2 {
				err := proofs.VerifyConsistency(size1, size2, nil, root2, root2)
				if proofs.Reason(err) != proofs.ReasonConsistencyInvalid {
					t.Fatalf("VerifyConsistency(%d > %d) = %v", size1, size2, err)
				}
				return
			}
			root1 := merkleref.Root(leaves[:size1])
			ref := merkleref.Consistency(int(size1), leaves)
			if err := proofs.VerifyConsistency(size1, size2, ref, root1, root2); err != nil {
				t.Fatalf("reference proof %d -> %d refused: %v", size1, size2, err)
			}
			cand := proofOps(ref, ops)
			err := proofs.VerifyConsistency(size1, size2, cand, root1, root2)
			if err == nil && !equalProofs(cand, ref) {
				t.Fatalf("an edited consistency proof %d -> %d verified: %x", size1, size2, cand)
			}
			if err != nil {
				checkReason(t, err)
				if equalProofs(cand, ref) {
					t.Fatalf("the reference proof refused: %v", err)
				}
			}
			// A different old root never verifies.
			if size1 > 0 {
				bad := bytes.Clone(root1)
				bad[0] ^= 1
				if proofs.VerifyConsistency(size1, size2, ref, bad, root2) == nil {
					t.Fatalf("consistency %d -> %d verified with another old root", size1, size2)
				}
			}
			return
		}
		hashes := splitHashes(seed)
		r1 := sha256.Sum256(append([]byte("1"), ops...))
		r2 := sha256.Sum256(append([]byte("2"), ops...))
		if err := proofs.VerifyConsistency(size1, size2, hashes, r1[:], r2[:]); err == nil {
			t.Fatalf("arbitrary consistency proof %d -> %d verified", size1, size2)
		} else {
			checkReason(t, err)
		}
	})
}

func equalProofs(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y []byte) bool { return bytes.Equal(x, y) })
}

// defaultPolicy is the policy every log starts with.
func defaultPolicy(t testing.TB) *proofs.Policy {
	t.Helper()
	p, err := proofs.ParsePolicy(readTestFile(t, defaultPolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// domain is the trust domain as the policy context computes it: "" for
// anything that is not a SPIFFE ID.
func domain(id string) string {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return ""
	}
	return sid.TrustDomain().Name()
}

// FuzzPolicyContext builds the Cedar context and decision of arbitrary
// delegation fields (valid or not: the builder must not trust them) and
// checks that both are deterministic and that the default policy decides
// exactly as its text says: deny cross_domain when the trust domains
// differ, tier_escalation when a draft-tier non-human hands execute-tier
// work, approval_required for restricted data or an admin/delete scope
// without a human approval, and allow otherwise.
func FuzzPolicyContext(f *testing.F) {
	type seed struct {
		issuer, delegate, task, parent, scopes, classes, dests, nb, exp, purpose string
		depth                                                                    int
		approved                                                                 bool
		approvers, issuerTier, delegateTier                                      string
		flags                                                                    uint8
	}
	for _, s := range []seed{
		{"spiffe://example.org/human/alice", "spiffe://example.org/agent/planner", "/tickets", "", "tickets:read", "", "", "2026-01-02T03:04:05Z", "2026-01-02T04:04:05Z", "triage", 1, true, "", "draft", "execute", 0b1111},
		{"spiffe://example.org/agent/planner", "spiffe://partner.example/agent/x", "/tickets/triage", "dlg_1", "tickets:admin\ntickets:read", "restricted", "crm", "2026-01-02T03:04:05Z", "2026-01-02T03:14:05Z", "", 2, false, "", "execute", "execute", 0b0101},
		{"spiffe://example.org/agent/drafter", "spiffe://example.org/agent/exec", "/", "dlg_2", "delete", "pii", "", "bad", "time", "", 3, false, "spiffe://example.org/human/bob", "draft", "execute", 0b0101},
		{"not a spiffe id", "", "", "", "", "", "", "", "", "\xff\xfe", -1, false, "", "", "", 0},
		{"spiffe://example.org/a", "spiffe://example.org/b", "/a//b/", "p", ":\n::\nx:", "restricted\nrestricted", "", "2026-01-02T03:04:05Z", "2025-01-02T03:04:05Z", "", 1 << 40, true, "\n", "unknown", "draft", 0b1010},
	} {
		f.Add(s.issuer, s.delegate, s.task, s.parent, s.scopes, s.classes, s.dests, s.nb, s.exp, s.purpose, s.depth, s.approved, s.approvers, s.issuerTier, s.delegateTier, s.flags)
	}
	pol := defaultPolicy(f)
	f.Fuzz(func(t *testing.T, issuer, delegate, task, parent, scopes, classes, dests, nb, exp, purpose string,
		depth int, approved bool, approvers, issuerTier, delegateTier string, flags uint8) {
		d := &proofs.Delegation{
			ID: "dlg_fuzz", Issuer: issuer, Delegate: delegate, RootSubject: issuer, Parent: parent, Task: task,
			Scopes: lines(scopes), DataClasses: lines(classes), Destinations: lines(dests),
			NotBefore: nb, ExpiresAt: exp, Nonce: "nonce-fuzz", Purpose: purpose,
		}
		in := proofs.PolicyInput{D: d, Depth: depth, HumanApproved: approved, Approvers: lines(approvers)}
		if flags&1 != 0 {
			in.Issuer = &proofs.Binding{Agent: issuer, Tier: issuerTier, Human: flags&2 != 0}
		}
		if flags&4 != 0 {
			in.Delegate = &proofs.Binding{Agent: delegate, Tier: delegateTier, Human: flags&8 != 0}
		}
		c1, c2 := proofs.PolicyContext(in), proofs.PolicyContext(in)
		if !c1.Equal(c2) {
			t.Fatalf("PolicyContext is not deterministic:\n%v\n%v", c1, c2)
		}
		if c1.Len() != 15 {
			t.Fatalf("context has %d attributes, want 15: %v", c1.Len(), c1)
		}
		for k, want := range map[string]cedar.Value{
			"task":            cedar.String(task),
			"purpose":         cedar.String(purpose),
			"root_grant":      cedar.Boolean(parent == ""),
			"depth":           cedar.Long(depth),
			"human_approved":  cedar.Boolean(approved),
			"issuer_domain":   cedar.String(domain(issuer)),
			"delegate_domain": cedar.String(domain(delegate)),
		} {
			if got, ok := c1.Get(cedar.String(k)); !ok || !got.Equal(want) {
				t.Fatalf("context %s = %v, want %v", k, got, want)
			}
		}

		d1, d2 := pol.Evaluate(in), pol.Evaluate(in)
		if !reflect.DeepEqual(d1, d2) {
			t.Fatalf("Evaluate is not deterministic: %+v vs %+v", d1, d2)
		}
		if d1.Allowed != (len(d1.Reasons) == 0) {
			t.Fatalf("decision %+v: allowed exactly when no reasons", d1)
		}
		if !slices.IsSorted(d1.Reasons) || len(slices.Compact(slices.Clone(d1.Reasons))) != len(d1.Reasons) ||
			!slices.IsSorted(d1.PolicyIDs) || len(slices.Compact(slices.Clone(d1.PolicyIDs))) != len(d1.PolicyIDs) {
			t.Fatalf("decision %+v: reasons and policy ids must be sorted and unique", d1)
		}
		// The default policy's text, as an oracle.
		var want []string
		if domain(issuer) != domain(delegate) {
			want = append(want, proofs.ReasonCrossDomain)
		}
		if in.Issuer != nil && !in.Issuer.Human && in.Issuer.Tier == proofs.TierDraft && in.Delegate != nil && in.Delegate.Tier == proofs.TierExecute {
			want = append(want, proofs.ReasonTierEscalation)
		}
		highImpact := slices.Contains(d.DataClasses, "restricted")
		for _, s := range d.Scopes {
			action := s[strings.LastIndexByte(s, ':')+1:]
			highImpact = highImpact || action == "admin" || action == "delete"
		}
		// An approval counts from a human issuer or an approver of the
		// issuer's own trust domain (human_approved is not what it reads).
		approvedHere := in.Issuer != nil && in.Issuer.Human
		for _, a := range in.Approvers {
			approvedHere = approvedHere || domain(a) == domain(issuer)
		}
		if highImpact && !approvedHere {
			want = append(want, proofs.ReasonApprovalRequired)
		}
		slices.Sort(want)
		if !slices.Equal(d1.Reasons, want) {
			t.Fatalf("default policy decided %+v; its text says reasons %v\ninput %+v", d1, want, d)
		}
	})
}

func FuzzParseRevocation(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := proofs.ParseRevocation(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		b, err := proofs.MarshalPayload(r)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("accepted revocation is not canonical: %q, %v\ninput %q", b, err, data)
		}
		if r.Delegation == "" || len(r.Nonce) < 8 || len(r.Reason) > 1024 {
			t.Fatalf("accepted revocation %+v", r)
		}
		if r.Issuer != "" {
			if id, err := spiffeid.FromString(r.Issuer); err != nil || id.String() != r.Issuer {
				t.Fatalf("accepted issuer %q: %v", r.Issuer, err)
			}
		}
		if _, err := proofs.ParseTime("issued_at", r.IssuedAt); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParsePolicyUpdate(f *testing.F) {
	probe := proofs.PolicyInput{D: &proofs.Delegation{
		ID: "dlg_probe", Issuer: "spiffe://example.org/human/alice", Delegate: "spiffe://example.org/agent/planner",
		RootSubject: "spiffe://example.org/human/alice", Task: "/tickets", Scopes: []string{"tickets:read"},
		NotBefore: "2026-01-02T03:04:05Z", ExpiresAt: "2026-01-02T03:14:05Z", Nonce: "nonce-probe",
	}, Depth: 1, HumanApproved: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, p, err := proofs.ParsePolicyUpdate(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		b, err := proofs.MarshalPayload(u)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("accepted policy update is not canonical: %q, %v\ninput %q", b, err, data)
		}
		if p.Digest != proofs.HashID([]byte(u.Text)) || !bytes.Equal(p.Text, []byte(u.Text)) {
			t.Fatalf("policy digest %s does not name its text", p.Digest)
		}
		p2, err := proofs.ParsePolicy([]byte(u.Text))
		if err != nil || p2.Digest != p.Digest {
			t.Fatalf("re-parsing the accepted policy: %v", err)
		}
		// Whatever the policy says, evaluating it is total and deterministic.
		d1, d2 := p.Evaluate(probe), p2.Evaluate(probe)
		if !reflect.DeepEqual(d1, d2) || d1.Allowed != (len(d1.Reasons) == 0) {
			t.Fatalf("evaluating the accepted policy: %+v vs %+v", d1, d2)
		}
	})
}

func FuzzParseKeyBinding(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		kb, err := proofs.ParseKeyBinding(data)
		if err != nil {
			checkReason(t, err)
			return
		}
		b, err := proofs.MarshalPayload(kb)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("accepted key binding is not canonical: %q, %v\ninput %q", b, err, data)
		}
		if _, err := proofs.ParsePublicKeyDER(kb.PublicKey); err != nil {
			t.Fatalf("accepted key binding with a bad key: %v", err)
		}
		if kb.Tier != proofs.TierDraft && kb.Tier != proofs.TierExecute {
			t.Fatalf("accepted tier %q", kb.Tier)
		}
	})
}

// hostileSeedTargets are the []byte targets above whose seeds are named
// valid-* (accepted) and invalid-* (refused).
func hostileSeedTargets(t testing.TB) map[string]func([]byte) error {
	v := goldenVerifier(t)
	return map[string]func([]byte) error{
		"FuzzParseBundle":  func(b []byte) error { _, err := proofs.ParseBundle(b); return err },
		"FuzzVerifyBundle": func(b []byte) error { _, err := proofs.VerifyBundle(b, v, proofs.BundleOptions{}); return err },
		"FuzzParseRevocation": func(b []byte) error {
			_, err := proofs.ParseRevocation(b)
			return err
		},
		"FuzzParsePolicyUpdate": func(b []byte) error { _, _, err := proofs.ParsePolicyUpdate(b); return err },
		"FuzzParseKeyBinding":   func(b []byte) error { _, err := proofs.ParseKeyBinding(b); return err },
		"FuzzParseWitnessPolicy": func(b []byte) error {
			vkey, _ := witnessVector(t)
			_, err := proofs.ParseWitnessPolicy(b, vkey, nil)
			return err
		},
		"FuzzOpenWitnessedCheckpoint": func(b []byte) error {
			vkey, policy := witnessVector(t)
			v, _ := proofs.ParseVerifierKey(vkey)
			p, err := proofs.ParseWitnessPolicy(policy, vkey, nil)
			if err != nil {
				return err
			}
			_, err = proofs.OpenWitnessedCheckpoint(b, v, p)
			return err
		},
	}
}

// TestHostileFuzzSeeds checks that the seed corpora say what their names
// say, and that every target has seeds.
func TestHostileFuzzSeeds(t *testing.T) {
	for name, parse := range hostileSeedTargets(t) {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if err != nil {
			t.Fatal(err)
		}
		var valid, invalid int
		for _, file := range files {
			err := parse(readSeed(t, file))
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
				} else {
					t.Logf("%s: %v", base, err)
				}
			}
		}
		if valid == 0 || invalid == 0 {
			t.Errorf("%s: %d valid and %d invalid seeds, want some of each", name, valid, invalid)
		}
	}
	for _, name := range []string{"FuzzVerifyInclusion", "FuzzVerifyConsistency", "FuzzPolicyContext"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if len(files) == 0 {
			t.Errorf("%s has no seed corpus in testdata", name)
		}
		for _, file := range files {
			if b := readTestFile(t, file); !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				t.Errorf("%s: not a corpus file", file)
			}
		}
	}
}

// TestWriteHostileFuzzSeeds writes the seed corpora of the targets above
// when WARRANT_WRITE_FUZZ_SEEDS=1 (after a deliberate change to the golden
// bundle or the payload formats).
func TestWriteHostileFuzzSeeds(t *testing.T) {
	if os.Getenv("WARRANT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set WARRANT_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpora")
	}
	write := func(target, name string, values ...any) {
		t.Helper()
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			case int:
				fmt.Fprintf(&b, "int(%d)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			case uint8:
				fmt.Fprintf(&b, "uint8(%d)\n", v)
			default:
				t.Fatalf("seed value %T", v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Bundles, from the golden one.
	golden := readTestFile(t, goldenBundle)
	b, err := proofs.ParseBundle(golden)
	if err != nil {
		t.Fatal(err)
	}
	edited := func(fn func(b *proofs.Bundle)) []byte {
		c := *b
		c.Proofs = slices.Clone(b.Proofs)
		c.Consistency = slices.Clone(b.Consistency)
		fn(&c)
		return c.Marshal()
	}
	twoCheckpoints, oneCheckpointUnlinked := goldenTwoCheckpoints(t, b)
	var pretty bytes.Buffer
	json.Indent(&pretty, golden, "", "  ")
	bundles := map[string][]byte{
		"valid-golden":                 golden,
		"valid-two-checkpoints":        twoCheckpoints,
		"invalid-unlinked-checkpoint":  oneCheckpointUnlinked,
		"invalid-trailing-newline":     append(slices.Clone(golden), '\n'),
		"invalid-pretty":               pretty.Bytes(),
		"invalid-unknown-field":        bytes.Replace(golden, []byte(`{"format"`), []byte(`{"comment":"x","format"`), 1),
		"invalid-format":               bytes.Replace(golden, []byte(proofs.BundleFormat), []byte("warrant-chain-bundle/v2"), 1),
		"invalid-no-proofs":            edited(func(b *proofs.Bundle) { b.Proofs = nil }),
		"invalid-target-absent":        edited(func(b *proofs.Bundle) { b.Delegation = "dlg_golden_other" }),
		"invalid-missing-binding":      edited(func(b *proofs.Bundle) { b.Proofs = slices.Delete(b.Proofs, 3, 4) }),
		"invalid-missing-parent":       edited(func(b *proofs.Bundle) { b.Proofs = slices.Delete(b.Proofs, 5, 6) }),
		"invalid-missing-config":       edited(func(b *proofs.Bundle) { b.Proofs = b.Proofs[1:] }),
		"invalid-unsorted":             edited(func(b *proofs.Bundle) { b.Proofs[5], b.Proofs[6] = b.Proofs[6], b.Proofs[5] }),
		"invalid-repeated-proof":       edited(func(b *proofs.Bundle) { b.Proofs = append(b.Proofs, b.Proofs[6]) }),
		"invalid-leaf-bit-flipped":     edited(func(b *proofs.Bundle) { b.Proofs[6] = flipExtra(b.Proofs[6]) }),
		"invalid-truncated":            golden[:len(golden)/2],
		"invalid-html-escaped-newline": bytes.Replace(golden, []byte(`\n`), []byte(`\u000a`), 1),
	}
	for name, data := range bundles {
		write("FuzzVerifyBundle", name, data)
		if name == "valid-two-checkpoints" || name == "invalid-unlinked-checkpoint" {
			continue
		}
		if strings.HasPrefix(name, "invalid-missing") || name == "invalid-target-absent" || name == "invalid-unsorted" ||
			name == "invalid-repeated-proof" || name == "invalid-leaf-bit-flipped" {
			name = "valid-" + strings.TrimPrefix(name, "invalid-") // well-formed: only verification refuses it
		}
		write("FuzzParseBundle", name, data)
	}
	write("FuzzParseBundle", "valid-minimal", []byte(`{"format":"warrant-chain-bundle/v1","delegation":"","proofs":[""]}`))
	write("FuzzParseBundle", "invalid-null-proofs", []byte(`{"format":"warrant-chain-bundle/v1","delegation":"d","proofs":null}`))
	write("FuzzParseBundle", "invalid-duplicate-key", []byte(`{"format":"warrant-chain-bundle/v1","format":"warrant-chain-bundle/v1","delegation":"d","proofs":["p"]}`))
	write("FuzzParseBundle", "invalid-consistency-base64", []byte(`{"format":"warrant-chain-bundle/v1","delegation":"d","proofs":["p"],"consistency":[{"from":"a","to":"b","proof":["AA"]}]}`))

	// Revocations.
	revs := map[string]string{
		"valid-by-issuer":       `{"delegation":"dlg_1","issuer":"spiffe://example.org/agent/planner","reason":"compromised","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0001"}`,
		"valid-by-admin":        `{"delegation":"dlg_1","reason":"","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002"}`,
		"invalid-whitespace":    `{"delegation": "dlg_1","reason":"","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002"}`,
		"invalid-unknown-field": `{"delegation":"dlg_1","reason":"","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002","cascade":false}`,
		"invalid-field-order":   `{"reason":"","delegation":"dlg_1","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002"}`,
		"invalid-time":          `{"delegation":"dlg_1","reason":"","issued_at":"2026-01-02T03:04:05+00:00","nonce":"nonce-rev-0002"}`,
		"invalid-short-nonce":   `{"delegation":"dlg_1","reason":"","issued_at":"2026-01-02T03:04:05Z","nonce":"n"}`,
		"invalid-issuer":        `{"delegation":"dlg_1","issuer":"spiffe://EXAMPLE.org/a","reason":"","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002"}`,
		"invalid-no-delegation": `{"delegation":"","reason":"","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002"}`,
		"invalid-long-reason":   `{"delegation":"dlg_1","reason":"` + strings.Repeat("r", 1025) + `","issued_at":"2026-01-02T03:04:05Z","nonce":"nonce-rev-0002"}`,
		"invalid-utf8":          "{\"delegation\":\"dlg_1\",\"reason\":\"\xff\",\"issued_at\":\"2026-01-02T03:04:05Z\",\"nonce\":\"nonce-rev-0002\"}",
		"invalid-null":          `null`,
	}
	for name, s := range revs {
		write("FuzzParseRevocation", name, []byte(s))
	}

	// Policy updates.
	upd := func(text, nonce string) []byte {
		b, err := proofs.MarshalPayload(&proofs.PolicyUpdate{Text: text, IssuedAt: "2026-01-02T03:04:05Z", Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	def := string(readTestFile(t, defaultPolicyFile))
	small := "@id(\"deny-all\")\n@reason(\"frozen\")\nforbid (principal, action, resource);\n"
	for name, data := range map[string][]byte{
		"valid-default":              upd(def, "nonce-pol-0001"),
		"valid-small":                upd(small, "nonce-pol-0002"),
		"valid-context":              upd("@id(\"p\")\npermit (principal, action, resource) when { context.depth < 3 && context.scopes.contains(\"x\") };\n", "nonce-pol-0003"),
		"invalid-cedar-syntax":       upd("permit (principal, action resource);", "nonce-pol-0004"),
		"invalid-no-id":              upd("permit (principal, action, resource);", "nonce-pol-0005"),
		"invalid-duplicate-id":       upd("@id(\"a\")\npermit (principal, action, resource);\n@id(\"a\")\nforbid (principal, action, resource);", "nonce-pol-0006"),
		"invalid-reason-on-permit":   upd("@id(\"a\")\n@reason(\"nope\")\npermit (principal, action, resource);", "nonce-pol-0007"),
		"invalid-reason-code":        upd("@id(\"a\")\n@reason(\"Not Snake\")\nforbid (principal, action, resource);", "nonce-pol-0008"),
		"invalid-empty":              upd("// nothing\n", "nonce-pol-0009"),
		"invalid-too-large":          upd(small+strings.Repeat("/", proofs.MaxPolicyBytes), "nonce-pol-0010"),
		"invalid-whitespace":         append([]byte(" "), upd(small, "nonce-pol-0011")...),
		"invalid-html-escape":        bytes.Replace(upd(small, "nonce-pol-0012"), []byte(`\"`), []byte(`\u0022`), 1),
		"invalid-unknown-field":      bytes.Replace(upd(small, "nonce-pol-0013"), []byte(`{"text"`), []byte(`{"version":2,"text"`), 1),
		"invalid-nonce":              upd(small, "short"),
		"valid-deep-nesting":         upd("@id(\"a\")\npermit (principal, action, resource) when { "+strings.Repeat("(", 2000)+"true"+strings.Repeat(")", 2000)+" };", "nonce-pol-0014"),
		"invalid-utf8-in-policy":     upd("@id(\"a\")\npermit (principal, action, resource) when { context.purpose == \"\xff\" };", "nonce-pol-0015"),
		"valid-unicode-in-policy":    upd("@id(\"a\")\npermit (principal, action, resource) when { context.purpose == \"ünïcødé ✓\" };", "nonce-pol-0016"),
		"valid-error-at-evaluation":  upd("@id(\"a\")\npermit (principal, action, resource);\n@id(\"b\")\nforbid (principal, action, resource) when { context.depth + 9223372036854775807 > 0 };", "nonce-pol-0017"),
		"valid-missing-attribute":    upd("@id(\"a\")\npermit (principal, action, resource);\n@id(\"b\")\nforbid (principal, action, resource) when { context.nope };", "nonce-pol-0018"),
		"invalid-annotation-no-text": upd("@id\npermit (principal, action, resource);", "nonce-pol-0019"),
	} {
		write("FuzzParsePolicyUpdate", name, data)
	}

	// Key bindings.
	k := newTestSigner(t, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)))
	kb := func(mod func(kb *proofs.KeyBinding)) []byte {
		v := &proofs.KeyBinding{Agent: "spiffe://example.org/agent/planner", PublicKey: k.der, Tier: proofs.TierExecute, IssuedAt: "2026-01-02T03:04:05Z", Nonce: "nonce-kb-0001"}
		mod(v)
		b, err := proofs.MarshalPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p256 := newP256Signer(t)
	for name, data := range map[string][]byte{
		"valid-execute":      kb(func(*proofs.KeyBinding) {}),
		"valid-human":        kb(func(v *proofs.KeyBinding) { v.Tier, v.Human = proofs.TierDraft, true }),
		"valid-revoked":      kb(func(v *proofs.KeyBinding) { v.Revoked = true }),
		"valid-p256":         kb(func(v *proofs.KeyBinding) { v.PublicKey = p256.der }),
		"invalid-tier":       kb(func(v *proofs.KeyBinding) { v.Tier = "root" }),
		"invalid-key":        kb(func(v *proofs.KeyBinding) { v.PublicKey = []byte("not a key") }),
		"invalid-agent":      kb(func(v *proofs.KeyBinding) { v.Agent = "spiffe://example.org/../x" }),
		"invalid-false-kept": bytes.Replace(kb(func(*proofs.KeyBinding) {}), []byte(`"tier":"execute"`), []byte(`"tier":"execute","human":false`), 1),
		"invalid-whitespace": append(kb(func(*proofs.KeyBinding) {}), ' '),
	} {
		write("FuzzParseKeyBinding", name, data)
	}

	// Proofs and the policy context (no valid/invalid split: every input
	// has a defined answer).
	write("FuzzVerifyInclusion", "seed-small", uint64(7), uint64(3), []byte("leaves"), []byte{})
	write("FuzzVerifyInclusion", "seed-edited", uint64(13), uint64(12), []byte("edit"), []byte{0, 1, 2, 1, 0, 0, 2, 5, 5, 3, 0, 1})
	write("FuzzVerifyInclusion", "seed-huge", ^uint64(0), uint64(1)<<63, bytes.Repeat([]byte{0x5a}, 63*32+7), []byte("r"))
	write("FuzzVerifyConsistency", "seed-small", uint64(3), uint64(7), []byte("leaves"), []byte{})
	write("FuzzVerifyConsistency", "seed-edited", uint64(6), uint64(11), []byte("edit"), []byte{0, 0, 9, 2, 1, 1})
	write("FuzzVerifyConsistency", "seed-huge", uint64(1)<<62, ^uint64(0), bytes.Repeat([]byte{0x33}, 64*32), []byte("r"))
	write("FuzzPolicyContext", "seed-root-grant", "spiffe://example.org/human/alice", "spiffe://example.org/agent/planner", "/tickets", "",
		"tickets:read", "", "", "2026-01-02T03:04:05Z", "2026-01-02T04:04:05Z", "triage", 1, true, "", "draft", "execute", uint8(0b1111))
	write("FuzzPolicyContext", "seed-everything-forbidden", "spiffe://example.org/agent/drafter", "spiffe://partner.example/agent/x", "/tickets/x", "dlg_1",
		"tickets:admin\ntickets:delete", "restricted", "crm", "2026-01-02T03:04:05Z", "2026-01-02T03:14:05Z", "", 2, false, "", "draft", "execute", uint8(0b0101))
	write("FuzzPolicyContext", "seed-garbage", "\xff", "spiffe://", "//", "\x00", "\n\n", ":", "", "x", "y", "\xc3", -9, false, "\xff", "", "", uint8(255))
}

// goldenTwoCheckpoints rebuilds the golden bundle with the root grant's
// proof against a smaller checkpoint (signed with the golden log's key),
// tied to the largest by a consistency proof; and the same without the
// consistency proof.
func goldenTwoCheckpoints(t *testing.T, b *proofs.Bundle) (linked, unlinked []byte) {
	t.Helper()
	var leaves [][]byte
	var tps []*proofs.TLogProof
	for _, p := range b.Proofs {
		tp, err := proofs.ParseTLogProof([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		tps = append(tps, tp)
		leaves = append(leaves, tp.ExtraData)
	}
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		if tps[i].Index != uint64(i) {
			t.Fatalf("the golden bundle no longer holds entries 0..%d in order", len(leaves)-1)
		}
		hashes[i] = merkleref.LeafHash(l)
	}
	const small = 6 // the root grant is entry 5
	body := proofs.CheckpointBody("golden.example/log", small, merkleref.Root(hashes[:small]))
	signed, err := note.Sign(&note.Note{Text: string(body)}, goldenSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := proofs.NewTLogProof(5, leaves[5], merkleref.Inclusion(5, hashes[:small]), signed)
	if err != nil {
		t.Fatal(err)
	}
	c := *b
	c.Proofs = slices.Clone(b.Proofs)
	c.Proofs[5] = string(tp.Marshal())
	unlinked = c.Marshal()
	c.Consistency = []proofs.ConsistencyLink{{From: string(signed), To: string(tps[6].Checkpoint), Proof: merkleref.Consistency(small, hashes)}}
	return c.Marshal(), unlinked
}

// flipExtra flips a bit in the leaf carried by a tlog-proof (a digit of its
// log time, so that it still parses), keeping the proof canonical.
func flipExtra(p string) string {
	tp, err := proofs.ParseTLogProof([]byte(p))
	if err != nil {
		panic(err)
	}
	i := bytes.Index(tp.ExtraData, []byte(`"log_time":"2026`)) + len(`"log_time":"2026`) + 7
	tp.ExtraData[i] ^= 1
	return string(tp.Marshal())
}

// TestOfflineInputBounds checks the bounds on what `warrant verify` reads
// (README "Bounds"): a tlog-proof file of at most MaxTLogProofBytes and 64
// proof hashes, a chain bundle of at most MaxBundleBytes.
func TestOfflineInputBounds(t *testing.T) {
	hash := "UOe+PJjIi51cGOFzsYkkVKPjmrZqgsIdSyoPIH8/ftk="
	proof := func(hashes int) []byte {
		return []byte("c2sp.org/tlog-proof@v1\nindex 1\n" + strings.Repeat(hash+"\n", hashes) + "\nfuzz.example/log\n4\n" + hash + "\n\n— fuzz.example/log AAAA\n")
	}
	if _, err := proofs.ParseTLogProof(proof(64)); err != nil {
		t.Errorf("64 proof hashes: %v", err)
	}
	wantReason(t, func() error { _, err := proofs.ParseTLogProof(proof(65)); return err }(), proofs.ReasonTLogProofMalformed)
	big := append(proof(1), bytes.Repeat([]byte("x"), proofs.MaxTLogProofBytes)...)
	wantReason(t, func() error { _, err := proofs.ParseTLogProof(big); return err }(), proofs.ReasonTLogProofMalformed)
	bundle := []byte(`{"format":"warrant-chain-bundle/v1","delegation":"d","proofs":["` + strings.Repeat("p", proofs.MaxBundleBytes) + `"]}`)
	_, err := proofs.ParseBundle(bundle)
	wantReason(t, err, proofs.ReasonBundleMalformed)
	if err != nil && !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized bundle: %v; want the limit named", err)
	}
}
