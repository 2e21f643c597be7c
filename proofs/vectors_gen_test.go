package proofs_test

// This file builds the cross-language test vectors in testdata/vectors (see
// its README.md). vectors_test.go checks the committed files against the
// real code; `go test ./proofs -run TestVectors -update` rewrites them.
//
// Everything is derived from fixed seeds, so a rebuild is byte-identical,
// with one exception: ECDSA signatures are randomised, so a rebuild keeps
// the committed ECDSA signature whenever it still verifies over the same
// PAE bytes.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/internal/merkleref"
	"github.com/warrantlog/warrant/proofs"
)

// vectorsDir is the repository's top-level testdata/vectors: the vectors
// describe wire formats, not this package, and other languages' test
// suites, the docs and the ledger's raw-HTTP test read them too.
var vectorsDir = filepath.Join("..", "testdata", "vectors")

// Vector files.
const (
	vecKeys      = "keys.json"
	vecCanonical = "canonical_json.json"
	vecEnvelopes = "envelopes.json"
	vecLog       = "log.json"
	vecInvalid   = "invalid.json"
	vecTLogProof = "dlg_triage.tlog-proof"
	vecBundle    = "dlg_triage.bundle"
	vecExport    = "log.export"
)

// vecOrigin is the vector log's origin (and its note key's name).
const vecOrigin = "example.org/warrant-vectors"

// vecTime is the base time of the vector log: every payload time and log
// time is derived from it.
var vecTime = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

type keyVector struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	PrivateHex  string `json:"private_hex"`
	PrivatePEM  string `json:"private_pkcs8_pem"`
	PublicDER   string `json:"public_spki_der_b64"`
	PublicPEM   string `json:"public_pem"`
	KeyID       string `json:"key_id"`
	Description string `json:"description"`
}

type logKeyVector struct {
	Origin      string `json:"origin"`
	SeedHex     string `json:"ed25519_seed_hex"`
	SignerKey   string `json:"note_signer_key"`
	VerifierKey string `json:"note_verifier_key"`
}

type keysFile struct {
	Keys   []keyVector  `json:"keys"`
	LogKey logKeyVector `json:"log_key"`
}

type canonicalCase struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	ValueHex string `json:"value_utf8_hex"`
	Encoded  string `json:"encoded"`
}

type canonicalFile struct {
	Strings []canonicalCase `json:"strings"`
}

type envelopeVector struct {
	Name          string   `json:"name"`
	Description   string   `json:"description"`
	Signers       []string `json:"signers"`
	Deterministic bool     `json:"deterministic"`
	PayloadType   string   `json:"payload_type"`
	PayloadText   string   `json:"payload_text"`
	PayloadB64    string   `json:"payload_b64"`
	PAEB64        string   `json:"pae_b64"`
	Envelope      string   `json:"envelope"`
	EnvelopeHash  string   `json:"envelope_sha256"`
}

type envelopesFile struct {
	Envelopes []envelopeVector `json:"envelopes"`
}

type entryVector struct {
	Index    uint64 `json:"index"`
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Envelope string `json:"envelope_name,omitempty"`
	Leaf     string `json:"leaf"`
	LeafHash string `json:"leaf_hash_hex"`
}

type rootVector struct {
	Size uint64 `json:"size"`
	Root string `json:"root_hex"`
}

type checkpointVector struct {
	Size uint64 `json:"size"`
	Root string `json:"root_hex"`
	Note string `json:"note"`
}

type inclusionVector struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"tree_size"`
	Hashes   []string `json:"hashes_hex"`
}

type consistencyVector struct {
	From   uint64   `json:"from_size"`
	To     uint64   `json:"to_size"`
	Hashes []string `json:"hashes_hex"`
}

// tileVector is a C2SP tlog-tiles resource of the vector log.
type tileVector struct {
	Path    string `json:"path"`
	Content string `json:"content_b64"`
}

type logFile struct {
	Origin      string              `json:"origin"`
	VerifierKey string              `json:"note_verifier_key"`
	Entries     []entryVector       `json:"entries"`
	Roots       []rootVector        `json:"roots"`
	Checkpoints []checkpointVector  `json:"checkpoints"`
	Inclusion   []inclusionVector   `json:"inclusion_proofs"`
	Consistency []consistencyVector `json:"consistency_proofs"`
	Tiles       []tileVector        `json:"tiles"`
}

// invalidCase is one input that must be refused with Reason. Check names
// the function that judges it (see the README).
type invalidCase struct {
	Name        string `json:"name"`
	Check       string `json:"check"`
	PayloadType string `json:"payload_type,omitempty"`
	Key         string `json:"key,omitempty"`
	InputText   string `json:"input_text,omitempty"`
	InputB64    string `json:"input_b64,omitempty"`
	Reason      string `json:"reason"`
	// For the "inclusion" and "consistency" checks.
	Index    uint64   `json:"index,omitempty"`
	Size1    uint64   `json:"from_size,omitempty"`
	TreeSize uint64   `json:"tree_size,omitempty"`
	Hashes   []string `json:"hashes_hex,omitempty"`
}

type invalidFile struct {
	Cases []invalidCase `json:"cases"`
}

// vecSigner is a vector key with its private half.
type vecSigner struct {
	keyVector
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	der []byte
}

func (s *vecSigner) sign(t testing.TB, payloadType string, payload []byte) []byte {
	t.Helper()
	msg := proofs.PAE(payloadType, payload)
	if s.ed != nil {
		return ed25519.Sign(s.ed, msg)
	}
	sig, err := signLowS(s.ec, msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (s *vecSigner) public(t testing.TB) *proofs.PublicKey {
	t.Helper()
	k, err := proofs.ParsePublicKeyDER(s.der)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seed derives a vector key's 32 secret bytes from its name.
func seed(name string) []byte {
	s := sha256.Sum256([]byte("warrant test vectors: " + name))
	return s[:]
}

func newVecSigner(t testing.TB, name, typ, desc string) *vecSigner {
	t.Helper()
	s := &vecSigner{keyVector: keyVector{Name: name, Type: typ, Description: desc, PrivateHex: hex.EncodeToString(seed(name))}}
	var priv any
	switch typ {
	case "ed25519":
		s.ed = ed25519.NewKeyFromSeed(seed(name))
		priv = s.ed
	case "ecdsa-p256":
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed(name))
		if err != nil {
			t.Fatal(err)
		}
		s.ec = k
		priv = k
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var pub any
	if s.ed != nil {
		pub = s.ed.Public()
	} else {
		pub = s.ec.Public()
	}
	s.der, err = x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s.PrivatePEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
	s.PublicDER = base64.StdEncoding.EncodeToString(s.der)
	s.PublicPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: s.der}))
	sum := sha256.Sum256(s.der)
	s.KeyID = "sha256:" + hex.EncodeToString(sum[:])
	return s
}

// noteSignerKey builds a note signer key from an Ed25519 seed, as
// note.GenerateKey would (Go 1.26 ignores a caller's random source).
func noteSignerKey(t testing.TB, name string, seed []byte) (skey, vkey string) {
	t.Helper()
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(vkey, "+")
	skey = "PRIVATE+KEY+" + name + "+" + parts[len(parts)-2] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	return skey, vkey
}

// vectorSet is everything the generator builds, by file name.
type vectorSet struct {
	files   map[string][]byte
	signers map[string]*vecSigner
}

func marshalVec(t testing.TB, v any) []byte {
	t.Helper()
	// Vector files are for people too: no HTML escaping in them (the
	// canonical encodings they hold are strings, unaffected).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// committedECDSA returns the signatures of the committed ECDSA envelopes by
// name, so that a rebuild can keep them.
func committedECDSA() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(vectorsDir, vecEnvelopes))
	if err != nil {
		return out
	}
	var f envelopesFile
	if json.Unmarshal(b, &f) != nil {
		return out
	}
	for _, e := range f.Envelopes {
		if !e.Deterministic {
			out[e.Name] = e.Envelope
		}
	}
	return out
}

func vecPayload(t testing.TB, v any) []byte {
	t.Helper()
	b, err := proofs.MarshalPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexes(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// logTime is the log time of vector entry i: entries 0 and 1 are written
// together by the server when it first starts; later ones a little over a
// second apart, with nanoseconds to show the fixed nine-digit fraction.
func logTime(i int) time.Time {
	if i < 2 {
		return vecTime
	}
	return vecTime.Add(time.Duration(i)*time.Second + time.Duration(i)*111111111)
}

// buildVectors builds every vector file.
func buildVectors(t testing.TB) *vectorSet {
	t.Helper()
	vs := &vectorSet{files: map[string][]byte{}, signers: map[string]*vecSigner{}}
	keys := []*vecSigner{
		newVecSigner(t, "registrar", "ed25519", "the log's registrar key: signs key bindings"),
		newVecSigner(t, "admin", "ed25519", "the log's admin key: signs policy updates and administrative revocations"),
		newVecSigner(t, "alice", "ed25519", "spiffe://example.org/human/alice, a human principal"),
		newVecSigner(t, "planner", "ed25519", "spiffe://example.org/agent/planner, execute tier"),
		newVecSigner(t, "executor", "ecdsa-p256", "spiffe://example.org/agent/executor, execute tier"),
	}
	kf := keysFile{}
	for _, k := range keys {
		vs.signers[k.Name] = k
		kf.Keys = append(kf.Keys, k.keyVector)
	}
	logSeed := seed("log")
	skey, vkey := noteSignerKey(t, vecOrigin, logSeed)
	kf.LogKey = logKeyVector{Origin: vecOrigin, SeedHex: hex.EncodeToString(logSeed), SignerKey: skey, VerifierKey: vkey}
	vs.files[vecKeys] = marshalVec(t, kf)
	noteSigner, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}

	vs.files[vecCanonical] = marshalVec(t, canonicalStrings(t))

	// Envelopes.
	const (
		alice    = "spiffe://example.org/human/alice"
		planner  = "spiffe://example.org/agent/planner"
		executor = "spiffe://example.org/agent/executor"
	)
	keptECDSA := committedECDSA()
	var envs []envelopeVector
	envByName := map[string][]byte{}
	addEnv := func(name, desc, payloadType string, payload []byte, signers ...string) {
		env := &proofs.Envelope{PayloadType: payloadType, Payload: payload}
		det := true
		for _, sn := range signers {
			s := vs.signers[sn]
			det = det && s.ed != nil
			env.Signatures = append(env.Signatures, proofs.Signature{KeyID: s.KeyID, Sig: s.sign(t, payloadType, payload)})
		}
		canon := env.Canonical()
		if kept, ok := keptECDSA[name]; ok && !det {
			// Keep the committed randomised signature if it still holds.
			if old, err := proofs.ParseEnvelope([]byte(kept)); err == nil && old.PayloadType == payloadType && bytes.Equal(old.Payload, payload) && len(old.Signatures) == len(signers) {
				ok := true
				for _, sn := range signers {
					ok = ok && old.Verify(vs.signers[sn].public(t)) == nil
				}
				if ok {
					canon = []byte(kept)
				}
			}
		}
		envByName[name] = canon
		envs = append(envs, envelopeVector{
			Name: name, Description: desc, Signers: signers, Deterministic: det,
			PayloadType: payloadType, PayloadText: string(payload), PayloadB64: base64.StdEncoding.EncodeToString(payload),
			PAEB64: base64.StdEncoding.EncodeToString(proofs.PAE(payloadType, payload)), Envelope: string(canon), EnvelopeHash: proofs.HashID(canon),
		})
	}
	binding := func(agent, key, tier string, human bool, i int) []byte {
		return vecPayload(t, &proofs.KeyBinding{Agent: agent, PublicKey: vs.signers[key].der, Tier: tier, Human: human,
			IssuedAt: proofs.FormatTime(logTime(i)), Nonce: fmt.Sprintf("bind-%s-0001", key)})
	}
	addEnv("binding_alice", "registrar binds alice (human, draft tier): entry 2 of the log", proofs.PayloadTypeAgent, binding(alice, "alice", proofs.TierDraft, true, 2), "registrar")
	addEnv("binding_planner", "registrar binds the planner (execute tier): entry 3", proofs.PayloadTypeAgent, binding(planner, "planner", proofs.TierExecute, false, 3), "registrar")
	addEnv("binding_executor", "registrar binds the executor's ECDSA P-256 key (execute tier): entry 4", proofs.PayloadTypeAgent, binding(executor, "executor", proofs.TierExecute, false, 4), "registrar")
	root := &proofs.Delegation{
		ID: "dlg_root", Issuer: alice, Delegate: planner, RootSubject: alice, Task: "/tickets",
		Scopes:       []string{"tickets:write", "tickets:read"}, // MarshalPayload sorts them
		DataClasses:  []string{"internal", "confidential"},
		Destinations: []string{"https://tickets.example.org/api"},
		NotBefore:    proofs.FormatTime(vecTime), ExpiresAt: proofs.FormatTime(vecTime.Add(time.Hour)),
		Nonce: "nonce-root-0001", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Purpose: "Triage <urgent> & \"quoted\" tickets \u2014 caf\u00e9 \U0001F600\u2028second line\ttab",
	}
	addEnv("delegation_root", "alice's root grant to the planner; its purpose exercises string escaping: entry 5", proofs.PayloadTypeDelegation, vecPayload(t, root), "alice")
	triage := &proofs.Delegation{
		ID: "dlg_triage", Issuer: planner, Delegate: executor, RootSubject: alice, Parent: "dlg_root", Task: "/tickets/triage",
		Scopes: []string{"tickets:read"}, DataClasses: []string{"internal"}, Destinations: []string{"https://tickets.example.org/api"},
		NotBefore: proofs.FormatTime(vecTime), ExpiresAt: proofs.FormatTime(vecTime.Add(10 * time.Minute)),
		Nonce: "nonce-triage-0001", A2ATaskID: "a2a-task-7", MCPRequestID: "mcp-req-42",
	}
	addEnv("delegation_triage", "the planner delegates triage to the executor under dlg_root: entry 6 (accepted)", proofs.PayloadTypeDelegation, vecPayload(t, triage), "planner")
	wide := &proofs.Delegation{
		ID: "dlg_wide", Issuer: planner, Delegate: executor, RootSubject: alice, Parent: "dlg_root", Task: "/tickets",
		Scopes:    []string{"tickets:admin"},
		NotBefore: proofs.FormatTime(vecTime), ExpiresAt: proofs.FormatTime(vecTime.Add(10 * time.Minute)),
		Nonce: "nonce-wide-0001",
	}
	addEnv("delegation_denied", "the planner tries to hand on tickets:admin, which it does not hold: entry 7, denied (scope_widened, approval_required)", proofs.PayloadTypeDelegation, vecPayload(t, wide), "planner")
	rev := &proofs.Revocation{Delegation: "dlg_triage", Issuer: alice, Reason: "ticket closed", IssuedAt: proofs.FormatTime(logTime(8)), Nonce: "nonce-revoke-0001"}
	addEnv("revocation", "alice (issuer of an ancestor) revokes dlg_triage: entry 8", proofs.PayloadTypeRevocation, vecPayload(t, rev), "alice")
	polText := "@id(\"allow\")\npermit (principal, action == Action::\"delegate\", resource);\n\n@id(\"no-restricted\")\n@reason(\"restricted_data\")\nforbid (principal, action, resource)\nwhen { context.data_classes.contains(\"restricted\") && context.depth > 1 };\n"
	pu := &proofs.PolicyUpdate{Text: polText, IssuedAt: proofs.FormatTime(logTime(9)), Nonce: "nonce-policy-0001"}
	addEnv("policy_update", "the admin replaces the policy (its text has && and > to escape): entry 9", proofs.PayloadTypePolicy, vecPayload(t, pu), "admin")
	// Envelopes that are not in the log.
	sub := &proofs.Delegation{
		ID: "dlg_sub", Issuer: executor, Delegate: planner, RootSubject: alice, Parent: "dlg_triage", Task: "/tickets/triage/read",
		Scopes: []string{"tickets:read"}, NotBefore: proofs.FormatTime(vecTime), ExpiresAt: proofs.FormatTime(vecTime.Add(5 * time.Minute)), Nonce: "nonce-sub-0001",
	}
	addEnv("delegation_ecdsa", "signed by the executor's ECDSA P-256 key (DER, low S); not in the log. ECDSA signatures are randomised: check that it verifies, do not compare bytes", proofs.PayloadTypeDelegation, vecPayload(t, sub), "executor")
	appr := &proofs.Delegation{
		ID: "dlg_delete", Issuer: planner, Delegate: executor, RootSubject: alice, Parent: "dlg_root", Task: "/tickets",
		Scopes: []string{"tickets:read"}, DataClasses: []string{"restricted"}, NotBefore: proofs.FormatTime(vecTime), ExpiresAt: proofs.FormatTime(vecTime.Add(10 * time.Minute)), Nonce: "nonce-delete-0001",
	}
	addEnv("delegation_approved", "signed by the planner and co-signed by alice (a human approval); signatures sorted by keyid; not in the log", proofs.PayloadTypeDelegation, vecPayload(t, appr), "planner", "alice")
	vs.files[vecEnvelopes] = marshalVec(t, envelopesFile{Envelopes: envs})

	// The log: built with the real rules, replayed as it is built.
	regPub, admPub := vs.signers["registrar"], vs.signers["admin"]
	cfg := &proofs.LogConfig{
		Origin:        vecOrigin,
		RegistrarKeys: []proofs.ConfigKey{{ID: regPub.KeyID, PublicKey: regPub.der}},
		AdminKeys:     []proofs.ConfigKey{{ID: admPub.KeyID, PublicKey: admPub.der}},
		Limits:        proofs.DefaultLimits(),
		Rules:         proofs.DefaultRuleLimits(),
	}
	// Entry 1 is the shipped default policy, as a new server writes it: the
	// ledger's raw-HTTP test replays the vector log against a real server
	// and needs the same bytes.
	defaultPolicy, err := os.ReadFile(filepath.Join("..", "ledger", "default.cedar"))
	if err != nil {
		t.Fatal(err)
	}
	replay := proofs.NewReplay()
	var leaves [][]byte
	var entries []entryVector
	addLeaf := func(l *proofs.Leaf, envName string) {
		i := len(leaves)
		l.Version, l.LogTime = proofs.LeafVersion, proofs.FormatLogTime(logTime(i))
		raw, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := replay.Apply(uint64(i), p); err != nil {
			t.Fatalf("entry %d does not replay: %v", i, err)
		}
		leaves = append(leaves, raw)
		entries = append(entries, entryVector{Index: uint64(i), Kind: l.Kind, ID: p.ID(), Envelope: envName, Leaf: string(raw), LeafHash: hex.EncodeToString(merkleref.LeafHash(raw))})
	}
	addLeaf(&proofs.Leaf{Kind: proofs.KindLogConfig, Config: cfg}, "")
	addLeaf(&proofs.Leaf{Kind: proofs.KindPolicy, Policy: &proofs.LogPolicy{Text: string(defaultPolicy)}}, "")
	// decide computes the decision the rules give the envelope at the next
	// index, as the sequencer would.
	decide := func(name string) *proofs.Leaf {
		i := len(leaves)
		env, err := proofs.ParseEnvelope(envByName[name])
		if err != nil {
			t.Fatal(err)
		}
		l := &proofs.Leaf{Envelope: envByName[name], Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted}}
		switch env.PayloadType {
		case proofs.PayloadTypeAgent:
			l.Kind = proofs.KindKeyBinding
		case proofs.PayloadTypePolicy:
			l.Kind = proofs.KindPolicy
		case proofs.PayloadTypeRevocation:
			l.Kind = proofs.KindRevocation
			r, err := proofs.ParseRevocation(env.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if l.Decision, err = proofs.DecideRevocation(replay, r, false, cfg.Rules); err != nil {
				t.Fatal(err)
			}
		case proofs.PayloadTypeDelegation:
			l.Kind = proofs.KindDelegation
			d, err := proofs.ParseDelegation(env.Payload)
			if err != nil {
				t.Fatal(err)
			}
			sigs, err := proofs.CheckSignatures(env, replay.Binding(d.Issuer), func(id string) *proofs.Binding {
				for _, agent := range []string{alice, planner, executor} {
					if b := replay.Binding(agent); b != nil && b.Key.ID == id {
						return b
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if l.Decision, err = proofs.DecideDelegation(replay, d, sigs, logTime(i), cfg.Rules, replay.Policy()); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	for _, name := range []string{"binding_alice", "binding_planner", "binding_executor", "delegation_root", "delegation_triage", "delegation_denied", "revocation", "policy_update"} {
		addLeaf(decide(name), name)
	}
	if entries[7].Kind != proofs.KindDelegation || !strings.Contains(entries[7].Leaf, `"outcome":"denied"`) {
		t.Fatalf("entry 7 should be a denial: %s", entries[7].Leaf)
	}

	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = merkleref.LeafHash(l)
	}
	n := uint64(len(leaves))
	lf := logFile{Origin: vecOrigin, VerifierKey: vkey, Entries: entries}
	for s := uint64(0); s <= n; s++ {
		lf.Roots = append(lf.Roots, rootVector{Size: s, Root: hex.EncodeToString(merkleref.Root(hashes[:s]))})
	}
	signCP := func(size uint64) []byte {
		body := proofs.CheckpointBody(vecOrigin, size, merkleref.Root(hashes[:size]))
		signed, err := note.Sign(&note.Note{Text: string(body)}, noteSigner)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	cps := map[uint64][]byte{}
	for _, s := range []uint64{2, 7, n} {
		cps[s] = signCP(s)
		lf.Checkpoints = append(lf.Checkpoints, checkpointVector{Size: s, Root: hex.EncodeToString(merkleref.Root(hashes[:s])), Note: string(cps[s])})
	}
	for i := uint64(0); i < n; i++ {
		lf.Inclusion = append(lf.Inclusion, inclusionVector{Index: i, TreeSize: n, Hashes: hexes(merkleref.Inclusion(int(i), hashes[:n]))})
	}
	lf.Inclusion = append(lf.Inclusion, inclusionVector{Index: 5, TreeSize: 7, Hashes: hexes(merkleref.Inclusion(5, hashes[:7]))})
	for _, c := range [][2]uint64{{1, n}, {2, n}, {7, n}, {3, 7}, {4, 8}} {
		lf.Consistency = append(lf.Consistency, consistencyVector{From: c[0], To: c[1], Hashes: hexes(merkleref.Consistency(int(c[0]), hashes[:c[1]]))})
	}
	// The tlog-tiles resources of the size-n tree: the partial level-0 tile
	// (the leaf hashes) and the partial entry bundle (each leaf after its
	// 2-byte big-endian length).
	var tile, bundle []byte
	for i, l := range leaves {
		tile = append(tile, hashes[i]...)
		bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(l)))
		bundle = append(bundle, l...)
	}
	lf.Tiles = []tileVector{
		{Path: fmt.Sprintf("tile/0/000.p/%d", n), Content: base64.StdEncoding.EncodeToString(tile)},
		{Path: fmt.Sprintf("tile/entries/000.p/%d", n), Content: base64.StdEncoding.EncodeToString(bundle)},
	}
	vs.files[vecLog] = marshalVec(t, lf)

	// A tlog-proof of dlg_triage (entry 6) against the size-n checkpoint,
	// and the chain bundle of dlg_triage.
	tlogProof := func(i uint64) []byte {
		p, err := proofs.NewTLogProof(i, leaves[i], merkleref.Inclusion(int(i), hashes[:n]), cps[n])
		if err != nil {
			t.Fatal(err)
		}
		return p.Marshal()
	}
	vs.files[vecTLogProof] = tlogProof(6)
	b := &proofs.Bundle{Format: proofs.BundleFormat, Delegation: "dlg_triage"}
	for i := uint64(0); i <= 6; i++ {
		b.Proofs = append(b.Proofs, string(tlogProof(i)))
	}
	vs.files[vecBundle] = b.Marshal()

	// The export of the whole log.
	var exp bytes.Buffer
	exp.WriteString("warrant-export/v1\n")
	exp.Write(binary.BigEndian.AppendUint32(nil, uint32(len(cps[n]))))
	exp.Write(cps[n])
	for _, l := range leaves {
		exp.Write(binary.BigEndian.AppendUint16(nil, uint16(len(l))))
		exp.Write(l)
	}
	vs.files[vecExport] = exp.Bytes()

	vs.files[vecInvalid] = marshalVec(t, invalidCases(t, vs, envByName, leaves, hashes, cps, noteSigner))
	return vs
}

// canonicalStrings shows how a string value is written in canonical JSON.
func canonicalStrings(t testing.TB) canonicalFile {
	t.Helper()
	var f canonicalFile
	for _, c := range []struct{ name, v string }{
		{"plain ASCII", "tickets:read"},
		{"HTML-significant characters are \\u-escaped", "<a href=\"x\">&</a>"},
		{"quote and backslash", "say \"hi\" \\ bye"},
		{"slash is not escaped", "a/b"},
		{"short escapes for \\b \\f \\n \\r \\t", "\b\f\n\r\t"},
		{"other control characters as lowercase \\u00xx", "\x00\x01\x1b\x1f"},
		{"DEL is raw", "\x7f"},
		{"non-ASCII is raw UTF-8", "café \u00e9\u4e2d\U0001F600"},
		{"U+2028 and U+2029 are escaped", "line\u2028para\u2029end"},
		{"U+FFFD is raw", "\ufffd"},
	} {
		enc, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		f.Strings = append(f.Strings, canonicalCase{Name: c.name, Value: c.v, ValueHex: hex.EncodeToString([]byte(c.v)), Encoded: string(enc)})
	}
	return f
}

// edit returns s with old replaced by new exactly once.
func edit(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("edit: %q occurs %d times in %s", old, strings.Count(s, old), s)
	}
	return strings.Replace(s, old, new, 1)
}

func invalidCases(t testing.TB, vs *vectorSet, envs map[string][]byte, leaves, hashes [][]byte, cps map[uint64][]byte, logSigner note.Signer) invalidFile {
	t.Helper()
	var f invalidFile
	text := func(name, check, pt, in, reason string) {
		f.Cases = append(f.Cases, invalidCase{Name: name, Check: check, PayloadType: pt, InputText: in, Reason: reason})
	}
	raw := func(name, check, pt string, in []byte, reason string) {
		f.Cases = append(f.Cases, invalidCase{Name: name, Check: check, PayloadType: pt, InputB64: base64.StdEncoding.EncodeToString(in), Reason: reason})
	}
	payloadOf := func(name string) string {
		env, err := proofs.ParseEnvelope(envs[name])
		if err != nil {
			t.Fatal(err)
		}
		return string(env.Payload)
	}
	const pd, pa, pr = proofs.PayloadTypeDelegation, proofs.PayloadTypeAgent, proofs.PayloadTypeRevocation
	root := payloadOf("delegation_root")
	tri := payloadOf("delegation_triage")

	// Payloads: canonical JSON.
	text("payload with a space after a colon", "payload", pd, edit(t, tri, `"id":"dlg_triage"`, `"id": "dlg_triage"`), proofs.ReasonPayloadNonCanonical)
	text("payload with a trailing newline", "payload", pd, tri+"\n", proofs.ReasonPayloadNonCanonical)
	text("payload fields in alphabetical instead of schema order", "payload", pd, edit(t, tri, `{"id":"dlg_triage","issuer":"spiffe://example.org/agent/planner",`, `{"issuer":"spiffe://example.org/agent/planner","id":"dlg_triage",`), proofs.ReasonPayloadNonCanonical)
	text("duplicate key (the second id wins in many parsers)", "payload", pd, edit(t, tri, `{"id":"dlg_triage",`, `{"id":"dlg_triage","id":"dlg_other",`), proofs.ReasonPayloadNonCanonical)
	text("case-folded key", "payload", pd, edit(t, tri, `{"id":`, `{"ID":`), proofs.ReasonPayloadNonCanonical)
	text("unknown field", "payload", pd, edit(t, tri, `{"id":"dlg_triage",`, `{"id":"dlg_triage","extra":"x",`), proofs.ReasonPayloadMalformed)
	text("empty optional field present (parent on a root grant)", "payload", pd, edit(t, root, `"root_subject":"spiffe://example.org/human/alice",`, `"root_subject":"spiffe://example.org/human/alice","parent":"",`), proofs.ReasonPayloadNonCanonical)
	text("empty list present instead of omitted", "payload", pd, edit(t, tri, `"task":"/tickets/triage",`, `"task":"/tickets/triage","data_classes":[],`), proofs.ReasonPayloadNonCanonical)
	text("null instead of an omitted field", "payload", pd, edit(t, tri, `"parent":"dlg_root",`, `"parent":null,`), proofs.ReasonPayloadNonCanonical)
	text("raw < instead of \\u003c", "payload", pd, edit(t, root, `\u003curgent\u003e`, `<urgent>`), proofs.ReasonPayloadNonCanonical)
	text("uppercase hex in an escape", "payload", pd, edit(t, root, `\u003curgent`, `\u003Curgent`), proofs.ReasonPayloadNonCanonical)
	text("escaped ASCII letter", "payload", pd, edit(t, tri, `"task":"/tickets/triage"`, `"task":"/tick\u0065ts/triage"`), proofs.ReasonPayloadNonCanonical)
	text("escaped slash", "payload", pd, edit(t, tri, `"task":"/tickets/triage"`, `"task":"\/tickets/triage"`), proofs.ReasonPayloadNonCanonical)
	text("escaped non-ASCII instead of raw UTF-8", "payload", pd, edit(t, root, "café", `caf\u00e9`), proofs.ReasonPayloadNonCanonical)
	text("raw U+2028 instead of \\u2028", "payload", pd, edit(t, root, `\u2028`, "\u2028"), proofs.ReasonPayloadNonCanonical)
	text("\\u0009 instead of \\t", "payload", pd, edit(t, root, `\t`, `\u0009`), proofs.ReasonPayloadNonCanonical)
	text("invalid escape", "payload", pd, edit(t, root, `\t`, `\x09`), proofs.ReasonPayloadMalformed)
	text("lone surrogate escape", "payload", pd, edit(t, root, `\ttab`, `\ud800tab`), proofs.ReasonPayloadNonCanonical)
	raw("invalid UTF-8 byte", "payload", pd, []byte(edit(t, root, "café", "caf\xe9")), proofs.ReasonPayloadNonCanonical)
	text("scopes not sorted", "payload", pd, edit(t, root, `["tickets:read","tickets:write"]`, `["tickets:write","tickets:read"]`), proofs.ReasonPayloadNonCanonical)
	text("duplicate scope", "payload", pd, edit(t, root, `["tickets:read","tickets:write"]`, `["tickets:read","tickets:read"]`), proofs.ReasonPayloadNonCanonical)
	text("time with a fraction", "payload", pd, edit(t, tri, `"not_before":"2026-01-02T15:04:05Z"`, `"not_before":"2026-01-02T15:04:05.5Z"`), proofs.ReasonTimeMalformed)
	text("time with a numeric offset", "payload", pd, edit(t, tri, `"not_before":"2026-01-02T15:04:05Z"`, `"not_before":"2026-01-02T15:04:05+00:00"`), proofs.ReasonTimeMalformed)
	text("number where a string belongs", "payload", pd, edit(t, tri, `"nonce":"nonce-triage-0001"`, `"nonce":1`), proofs.ReasonPayloadMalformed)
	text("SPIFFE ID not in canonical form", "payload", pd, edit(t, tri, `"delegate":"spiffe://example.org/agent/executor"`, `"delegate":"spiffe://Example.org/agent/executor"`), proofs.ReasonIdentityMalformed)
	text("task with a .. segment", "payload", pd, edit(t, tri, `"task":"/tickets/triage"`, `"task":"/tickets/../admin"`), proofs.ReasonPayloadMalformed)
	text("nonce shorter than 8 bytes", "payload", pd, edit(t, tri, `"nonce":"nonce-triage-0001"`, `"nonce":"short"`), proofs.ReasonPayloadMalformed)
	text("required field present but empty (task)", "payload", pd, edit(t, tri, `"task":"/tickets/triage"`, `"task":""`), proofs.ReasonFieldMissing)
	text("required field absent (its canonical form writes it)", "payload", pd, edit(t, tri, `"task":"/tickets/triage",`, ``), proofs.ReasonPayloadNonCanonical)
	kb := payloadOf("binding_planner")
	text("false boolean present instead of omitted", "payload", pa, edit(t, kb, `"tier":"execute",`, `"tier":"execute","human":false,`), proofs.ReasonPayloadNonCanonical)
	text("unknown tier", "payload", pa, edit(t, kb, `"tier":"execute"`, `"tier":"admin"`), proofs.ReasonPayloadMalformed)
	rv := payloadOf("revocation")
	text("required field omitted although empty is allowed (revocation reason)", "payload", pr, edit(t, rv, `"reason":"ticket closed",`, ``), proofs.ReasonPayloadNonCanonical)

	// Envelopes.
	env := string(envs["delegation_triage"])
	text("duplicate envelope key", "envelope", "", edit(t, env, `"payloadType":`, `"payloadType":"x","payloadType":`), proofs.ReasonEnvelopeMalformed)
	text("unknown envelope field", "envelope", "", edit(t, env, `"signatures":`, `"extra":1,"signatures":`), proofs.ReasonEnvelopeMalformed)
	text("unknown signature field", "envelope", "", edit(t, env, `"sig":`, `"extra":"","sig":`), proofs.ReasonEnvelopeMalformed)
	text("data after the envelope", "envelope", "", env+"{}", proofs.ReasonEnvelopeMalformed)
	text("no signatures", "envelope", "", env[:strings.Index(env, `"signatures":`)]+`"signatures":[]}`, proofs.ReasonSignatureMissing)
	text("payload missing", "envelope", "", `{"payloadType":"application/vnd.warrant.delegation.v1+json","signatures":`+env[strings.Index(env, `"signatures":`)+len(`"signatures":`):], proofs.ReasonEnvelopeMalformed)
	text("payloadType with a space", "envelope", "", edit(t, env, `"application/vnd.warrant.delegation.v1+json"`, `"application/vnd.warrant.delegation.v1+json; x"`), proofs.ReasonEnvelopeMalformed)
	sigPart := env[strings.Index(env, `[{`)+1 : strings.LastIndex(env, `]`)]
	text("two signatures with the same keyid", "envelope", "", edit(t, env, sigPart, sigPart+","+sigPart), proofs.ReasonEnvelopeMalformed)
	many := []string{}
	for i := range 5 {
		many = append(many, strings.Replace(sigPart, `"keyid":"sha256:`, fmt.Sprintf(`"keyid":"k%d-sha256:`, i), 1))
	}
	text("five signatures", "envelope", "", edit(t, env, sigPart, strings.Join(many, ",")), proofs.ReasonTooManySignatures)
	raw("envelope not UTF-8", "envelope", "", []byte(edit(t, env, `"payloadType":"`, "\"payloadType\":\"\xff")), proofs.ReasonEnvelopeMalformed)

	// Signatures: parse the envelope, then verify it under Key.
	sigCase := func(name, key string, e *proofs.Envelope, reason string) {
		f.Cases = append(f.Cases, invalidCase{Name: name, Check: "signature", Key: key, InputText: string(e.Canonical()), Reason: reason})
	}
	parse := func(b []byte) *proofs.Envelope {
		e, err := proofs.ParseEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := parse(envs["delegation_triage"])
	e.Signatures[0].Sig = flip(e.Signatures[0].Sig, 3)
	sigCase("Ed25519 signature with a flipped bit", "planner", e, proofs.ReasonSignatureInvalid)
	e = parse(envs["delegation_triage"])
	e.Signatures[0].KeyID = vs.signers["alice"].KeyID
	sigCase("keyid names another key (alice's) than the signer's (planner's)", "alice", e, proofs.ReasonSignatureInvalid)
	e = parse(envs["delegation_triage"])
	sigCase("no signature by the key asked for", "alice", e, proofs.ReasonSignatureMissing)
	e = parse(envs["delegation_triage"])
	e.PayloadType = proofs.PayloadTypeRevocation
	sigCase("payload type changed after signing (PAE covers it)", "planner", e, proofs.ReasonSignatureInvalid)
	e = parse(envs["delegation_ecdsa"])
	e.Signatures[0].Sig = highS(t, e.Signatures[0].Sig)
	sigCase("ECDSA signature with a high S (valid only in its low-S form)", "executor", e, proofs.ReasonSignatureHighS)
	e = parse(envs["delegation_ecdsa"])
	e.Signatures[0].Sig = rawRS(t, e.Signatures[0].Sig)
	sigCase("ECDSA signature as raw r||s instead of DER", "executor", e, proofs.ReasonSignatureInvalid)

	// Leaves.
	l6 := string(leaves[6])
	text("leaf with a space", "leaf", "", edit(t, l6, `"kind":"delegation"`, `"kind": "delegation"`), proofs.ReasonLeafNonCanonical)
	text("log_time with microseconds", "leaf", "", strings.Replace(l6, `.666666666Z"`, `.666666Z"`, 1), proofs.ReasonLeafMalformed)
	text("leaf version 2", "leaf", "", edit(t, l6, `{"v":1,`, `{"v":2,`), proofs.ReasonLeafMalformed)
	text("leaf version written 1.0", "leaf", "", edit(t, l6, `{"v":1,`, `{"v":1.0,`), proofs.ReasonLeafMalformed)
	text("unknown leaf field", "leaf", "", edit(t, l6, `{"v":1,`, `{"v":1,"x":0,`), proofs.ReasonLeafMalformed)
	text("kind does not match the payload type", "leaf", "", edit(t, l6, `"kind":"delegation"`, `"kind":"revocation"`), proofs.ReasonPayloadTypeMismatch)
	text("accepted decision with reasons", "leaf", "", edit(t, l6, `"outcome":"accepted",`, `"outcome":"accepted","reasons":["x"],`), proofs.ReasonLeafMalformed)

	// Key ids and keys: a P-384 key is not accepted.
	p384, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), append(seed("p384"), seed("p384b")[:16]...))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(p384.Public())
	if err != nil {
		t.Fatal(err)
	}
	raw("ECDSA P-384 public key", "public_key", "", der, proofs.ReasonKeyInvalid)

	// Checkpoints (verify under the vector log key).
	n := uint64(len(leaves))
	cp := string(cps[n])
	text("checkpoint with a changed size", "checkpoint", "", edit(t, cp, fmt.Sprintf("\n%d\n", n), fmt.Sprintf("\n%d\n", n+1)), proofs.ReasonCheckpointSignature)
	ext, err := note.Sign(&note.Note{Text: string(proofs.CheckpointBody(vecOrigin, n, merkleref.Root(hashes))) + "extension line\n"}, logSigner)
	if err != nil {
		t.Fatal(err)
	}
	text("checkpoint with an extension line", "checkpoint", "", string(ext), proofs.ReasonCheckpointInvalid)

	// Proofs.
	incl := merkleref.Inclusion(6, hashes)
	f.Cases = append(f.Cases,
		invalidCase{Name: "inclusion proof for the wrong index", Check: "inclusion", Index: 5, TreeSize: n, Hashes: hexes(incl), Reason: proofs.ReasonInclusionInvalid},
		invalidCase{Name: "inclusion proof missing its last hash", Check: "inclusion", Index: 6, TreeSize: n, Hashes: hexes(incl[:len(incl)-1]), Reason: proofs.ReasonInclusionInvalid},
		invalidCase{Name: "consistency proof with a changed hash", Check: "consistency", Size1: 7, TreeSize: n, Hashes: hexes(flipFirst(merkleref.Consistency(7, hashes))), Reason: proofs.ReasonConsistencyInvalid},
	)
	tp := string(vs.files[vecTLogProof])
	extraLine := tp[strings.Index(tp, "extra "):]
	extraLine = extraLine[:strings.Index(extraLine, "\n")+1]
	text("tlog-proof without the leaf (no extra line)", "tlog_proof", "", edit(t, tp, extraLine, ""), proofs.ReasonTLogProofNoLeaf)
	text("tlog-proof with another header", "tlog_proof", "", edit(t, tp, "c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v2\n"), proofs.ReasonTLogProofMalformed)
	text("tlog-proof whose leaf is another entry's", "tlog_proof", "", edit(t, tp, extraLine, "extra "+base64.StdEncoding.EncodeToString(leaves[5])+"\n"), proofs.ReasonInclusionInvalid)
	return f
}

func flipFirst(hs [][]byte) [][]byte {
	out := append([][]byte(nil), hs...)
	out[0] = flip(out[0], 0)
	return out
}

// highS returns the high-S twin of a low-S DER ECDSA P-256 signature.
func highS(t testing.TB, der []byte) []byte {
	t.Helper()
	var sig ecdsaSig
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		t.Fatal(err)
	}
	sig.S = new(big.Int).Sub(elliptic.P256().Params().N, sig.S)
	out, err := asn1.Marshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawRS returns r||s (32 bytes each) of a DER ECDSA P-256 signature.
func rawRS(t testing.TB, der []byte) []byte {
	t.Helper()
	var sig ecdsaSig
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out
}
