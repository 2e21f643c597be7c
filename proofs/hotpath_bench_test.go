package proofs_test

// Benchmarks of the per-request and per-entry hot paths of package proofs:
// what the ledger runs for every append (the stateless stage: canonicalise,
// parse, verify; the stateful stage: rules and policy), what a client runs
// for every answer (checkpoint, inclusion, consistency, leaf), and what an
// auditor runs for every entry of a replayed log.
//
//	go test ./proofs -run '^$' -bench . -benchtime 2s

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// Agents of the hot-path benchmarks.
const (
	hpAlice    = "spiffe://example.org/human/alice"
	hpPlanner  = "spiffe://example.org/agent/planner"
	hpWorker   = "spiffe://example.org/agent/worker"
	hpReviewer = "spiffe://example.org/agent/reviewer"
)

// hpBase is the log time of the benchmarks' state.
var hpBase = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// hpDelegation is a typical mid-chain delegation: planner hands worker
// triage under the root grant "dlg_root". Signed with Ed25519, its
// canonical envelope is about 740 bytes.
func hpDelegation(id, nonce string) *proofs.Delegation {
	return &proofs.Delegation{
		ID: id, Issuer: hpPlanner, Delegate: hpWorker, RootSubject: hpAlice, Parent: "dlg_root",
		Task:      "/tickets/triage",
		Scopes:    []string{"tickets:read", "tickets:write"},
		NotBefore: proofs.FormatTime(hpBase.Add(-time.Second)), ExpiresAt: proofs.FormatTime(hpBase.Add(10 * time.Minute)),
		Nonce: nonce,
	}
}

// hpSignedDelegation returns the canonical envelope of d signed by s.
func hpSignedDelegation(b *testing.B, d *proofs.Delegation, s *testSigner) []byte {
	b.Helper()
	payload, err := proofs.MarshalPayload(d)
	if err != nil {
		b.Fatal(err)
	}
	return envelope(b, proofs.PayloadTypeDelegation, payload, s).Canonical()
}

// BenchmarkParseEnvelope canonicalises a delegation envelope of about 600
// bytes: the first thing the log does with every request.
func BenchmarkParseEnvelope(b *testing.B) {
	raw := hpSignedDelegation(b, hpDelegation("dlg_bench_000001", "0123456789abcdef"), newEd25519Signer(b))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := proofs.ParseEnvelope(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDelegation decodes and validates a delegation payload (the
// canonical-JSON round trip and the field checks).
func BenchmarkParseDelegation(b *testing.B) {
	payload, err := proofs.MarshalPayload(hpDelegation("dlg_bench_000001", "0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := proofs.ParseDelegation(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCanonicalVerify runs the whole stateless stage of an append, as
// ledger.Log.Append does it for a delegation: parse and canonicalise the
// envelope, hash the canonical form (the dedup key), parse the payload,
// verify the issuer's DSSE signature.
func benchCanonicalVerify(b *testing.B, s *testSigner) {
	raw := hpSignedDelegation(b, hpDelegation("dlg_bench_000001", "0123456789abcdef"), s)
	key, err := proofs.ParsePublicKeyDER(s.der)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		env, err := proofs.ParseEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = proofs.EnvelopeHash(env.Canonical())
		if _, err := proofs.ParseDelegation(env.Payload); err != nil {
			b.Fatal(err)
		}
		sig := env.Signature(key.ID)
		if sig == nil {
			b.Fatal("no signature by the issuer")
		}
		if err := key.VerifyDSSE(env.PayloadType, env.Payload, sig.Sig); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}

func BenchmarkCanonicalVerifyEd25519(b *testing.B) { benchCanonicalVerify(b, newEd25519Signer(b)) }

func BenchmarkCanonicalVerifyECDSA(b *testing.B) { benchCanonicalVerify(b, newP256Signer(b)) }

// hpState is an in-memory proofs.ChainState.
type hpState struct {
	bindings *proofs.Bindings
	dels     map[string]*proofs.DelegationRecord
	nonces   map[string]bool
	next     uint64
}

func (s *hpState) Binding(agent string) *proofs.Binding { return s.bindings.Agent(agent) }
func (s *hpState) Delegation(id string) (*proofs.DelegationRecord, error) {
	return s.dels[id], nil
}
func (s *hpState) Revoked(id string) (bool, error) { return false, nil }
func (s *hpState) IDUsed(id string) (bool, error)  { return s.dels[id] != nil, nil }
func (s *hpState) IssuedRevoked(agent string) (uint64, bool) {
	return s.bindings.IssuedRevoked(agent)
}
func (s *hpState) NonceUsed(issuer, nonce string) (bool, error) {
	return s.nonces[issuer+"\x00"+nonce], nil
}

// hpChainState returns a state with alice (human), planner, worker and
// reviewer registered (execute tier), the root grant "dlg_root" (alice to
// planner, /tickets) and its child "dlg_child" (planner to worker,
// /tickets/triage), and the default policy.
func hpChainState(b *testing.B) (*hpState, *proofs.Policy) {
	b.Helper()
	st := &hpState{bindings: proofs.NewBindings(), dels: map[string]*proofs.DelegationRecord{}, nonces: map[string]bool{}}
	for _, a := range []struct {
		id    string
		human bool
	}{{hpAlice, true}, {hpPlanner, false}, {hpWorker, false}, {hpReviewer, false}} {
		k := newEd25519Signer(b)
		key, err := proofs.ParsePublicKeyDER(k.der)
		if err != nil {
			b.Fatal(err)
		}
		kb := &proofs.KeyBinding{Agent: a.id, PublicKey: k.der, Tier: proofs.TierExecute, Human: a.human, IssuedAt: proofs.FormatTime(hpBase), Nonce: fmt.Sprintf("binding-%d", st.next)}
		st.bindings = st.bindings.With(kb, key, st.next)
		st.next++
	}
	root := &proofs.Delegation{
		ID: "dlg_root", Issuer: hpAlice, Delegate: hpPlanner, RootSubject: hpAlice, Task: "/tickets",
		Scopes:    []string{"tickets:admin", "tickets:read", "tickets:write"},
		NotBefore: proofs.FormatTime(hpBase.Add(-time.Hour)), ExpiresAt: proofs.FormatTime(hpBase.Add(6 * time.Hour)),
		Nonce: "root-nonce-0001",
	}
	child := hpDelegation("dlg_child", "child-nonce-0001")
	for _, d := range []*proofs.Delegation{root, child} {
		st.dels[d.ID] = &proofs.DelegationRecord{Index: st.next, D: d}
		st.nonces[d.Issuer+"\x00"+d.Nonce] = true
		st.next++
	}
	text, err := os.ReadFile("../ledger/default.cedar")
	if err != nil {
		b.Fatal(err)
	}
	pol, err := proofs.ParsePolicy(text)
	if err != nil {
		b.Fatal(err)
	}
	return st, pol
}

// hpRequests are new delegations at depth 1 (a root grant), 2 (under
// dlg_root) and 3 (under dlg_child), all of which the rules accept.
func hpRequests() map[int]*proofs.Delegation {
	depth1 := hpDelegation("dlg_new_1", "new-nonce-0001")
	depth1.Issuer, depth1.Delegate, depth1.Parent, depth1.Task = hpAlice, hpPlanner, "", "/tickets"
	depth2 := hpDelegation("dlg_new_2", "new-nonce-0002")
	depth3 := hpDelegation("dlg_new_3", "new-nonce-0003")
	depth3.Issuer, depth3.Delegate, depth3.Parent, depth3.Task = hpWorker, hpReviewer, "dlg_child", "/tickets/triage/auto"
	depth3.Scopes = []string{"tickets:read"}
	return map[int]*proofs.Delegation{1: depth1, 2: depth2, 3: depth3}
}

// BenchmarkDecideDelegation is the stateful stage of an append: the chain
// rules and the default Cedar policy, against an in-memory state holding a
// root grant and a child, for a new delegation at depth 1, 2 and 3.
func BenchmarkDecideDelegation(b *testing.B) {
	st, pol := hpChainState(b)
	lim := proofs.DefaultRuleLimits()
	reqs := hpRequests()
	for depth := 1; depth <= 3; depth++ {
		d := reqs[depth]
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			dec, err := proofs.DecideDelegation(st, d, proofs.SignatureCheck{}, hpBase, lim, pol)
			if err != nil || dec.Outcome != proofs.OutcomeAccepted {
				b.Fatalf("setup: %+v %v, want accepted", dec, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := proofs.DecideDelegation(st, d, proofs.SignatureCheck{}, hpBase, lim, pol); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPolicyEvaluate is the Cedar part of a decision alone (depth 3).
func BenchmarkPolicyEvaluate(b *testing.B) {
	st, pol := hpChainState(b)
	d := hpRequests()[3]
	in := proofs.PolicyInput{D: d, Issuer: st.Binding(d.Issuer), Delegate: st.Binding(d.Delegate), Depth: 3}
	if pd := pol.Evaluate(in); !pd.Allowed {
		b.Fatalf("setup: denied %v", pd.Reasons)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if pd := pol.Evaluate(in); !pd.Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkParseLeaf parses an accepted delegation leaf: what a client does
// with every entry it reads and an auditor with every entry it replays.
func BenchmarkParseLeaf(b *testing.B) {
	raw := hpSignedDelegation(b, hpDelegation("dlg_bench_000001", "0123456789abcdef"), newEd25519Signer(b))
	leaf := &proofs.Leaf{
		Version: proofs.LeafVersion, Kind: proofs.KindDelegation, LogTime: proofs.FormatLogTime(hpBase.Add(123456789)),
		Envelope: raw,
		Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted, PolicyDigest: proofs.HashID([]byte("policy")),
			PolicyIDs: []string{"allow-delegation"}, CedarVersion: proofs.CedarVersion},
	}
	lb, err := leaf.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(lb)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := proofs.ParseLeaf(lb); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalLeaf encodes an accepted delegation leaf around its
// canonical envelope: what the sequencer does for every entry it appends.
func BenchmarkMarshalLeaf(b *testing.B) {
	raw := hpSignedDelegation(b, hpDelegation("dlg_bench_000001", "0123456789abcdef"), newEd25519Signer(b))
	leaf := &proofs.Leaf{
		Version: proofs.LeafVersion, Kind: proofs.KindDelegation, LogTime: proofs.FormatLogTime(hpBase.Add(123456789)),
		Envelope: raw,
		Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted, PolicyDigest: proofs.HashID([]byte("policy")),
			PolicyIDs: []string{"allow-delegation"}, CedarVersion: proofs.CedarVersion},
	}
	lb, err := leaf.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(lb)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := leaf.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// hpTree is a complete in-memory RFC 6962 tree: levels[l] holds the hashes
// of the perfect subtrees of height l, 32 bytes each, left to right.
type hpTree struct {
	size   uint64
	levels [][]byte
}

const hpTreeSize = 1_000_000

var (
	hpTreeOnce sync.Once
	hpTreeVal  *hpTree
)

// bigTree returns a tree of hpTreeSize leaves, built once (about 2M hashes).
func bigTree() *hpTree {
	hpTreeOnce.Do(func() {
		t := &hpTree{size: hpTreeSize}
		l0 := make([]byte, 0, hpTreeSize*32)
		for i := 0; i < hpTreeSize; i++ {
			l0 = append(l0, proofs.LeafHash(fmt.Appendf(nil, "leaf %d", i))...)
		}
		t.levels = append(t.levels, l0)
		for prev := l0; len(prev) >= 64; {
			next := make([]byte, 0, len(prev)/64*32)
			for o := 0; o+64 <= len(prev); o += 64 {
				next = append(next, proofs.HashChildren(prev[o:o+32], prev[o+32:o+64])...)
			}
			t.levels = append(t.levels, next)
			prev = next
		}
		hpTreeVal = t
	})
	return hpTreeVal
}

func (t *hpTree) node(id compact.NodeID) []byte {
	o := id.Index * 32
	return t.levels[id.Level][o : o+32]
}

// root is the root of the first size leaves, folded from a compact range.
func (t *hpTree) root(b *testing.B, size uint64) []byte {
	var hashes [][]byte
	for _, id := range compact.RangeNodes(0, size, nil) {
		hashes = append(hashes, t.node(id))
	}
	r, err := proofs.NewRange(0, size, hashes)
	if err != nil {
		b.Fatal(err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		b.Fatal(err)
	}
	return root
}

// proof turns proof node ids into hashes, as the ledger does from its tiles.
func (t *hpTree) proof(b *testing.B, nodes proof.Nodes) [][]byte {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		hashes[i] = t.node(id)
	}
	p, err := nodes.Rehash(hashes, proofs.HashChildren)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkVerifyInclusion verifies inclusion proofs of random entries of a
// 1,000,000-entry tree (20 hashes per proof).
func BenchmarkVerifyInclusion(b *testing.B) {
	t := bigTree()
	root := t.root(b, t.size)
	type incl struct {
		index uint64
		leaf  []byte
		proof [][]byte
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	cases := make([]incl, 256)
	for i := range cases {
		idx := rng.Uint64N(t.size)
		nodes, err := proof.Inclusion(idx, t.size)
		if err != nil {
			b.Fatal(err)
		}
		cases[i] = incl{idx, t.node(compact.NewNodeID(0, idx)), t.proof(b, nodes)}
		if err := proofs.VerifyInclusion(idx, t.size, cases[i].leaf, cases[i].proof, root); err != nil {
			b.Fatalf("setup: %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &cases[i%len(cases)]
		if err := proofs.VerifyInclusion(c.index, t.size, c.leaf, c.proof, root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyConsistency verifies consistency proofs from random
// earlier sizes to the 1,000,000-entry tree.
func BenchmarkVerifyConsistency(b *testing.B) {
	t := bigTree()
	root2 := t.root(b, t.size)
	type cons struct {
		size1 uint64
		root1 []byte
		proof [][]byte
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	cases := make([]cons, 64)
	for i := range cases {
		size1 := 1 + rng.Uint64N(t.size-1)
		nodes, err := proof.Consistency(size1, t.size)
		if err != nil {
			b.Fatal(err)
		}
		cases[i] = cons{size1, t.root(b, size1), t.proof(b, nodes)}
		if err := proofs.VerifyConsistency(size1, t.size, cases[i].proof, cases[i].root1, root2); err != nil {
			b.Fatalf("setup: %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &cases[i%len(cases)]
		if err := proofs.VerifyConsistency(c.size1, t.size, c.proof, c.root1, root2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCheckpoint verifies and parses a signed checkpoint: every
// client answer carries one.
func BenchmarkOpenCheckpoint(b *testing.B) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/warrant/bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	verifier, err := proofs.ParseVerifierKey(vkey)
	if err != nil {
		b.Fatal(err)
	}
	root := proofs.LeafHash([]byte("root"))
	signed, err := note.Sign(&note.Note{Text: string(proofs.CheckpointBody(signer.Name(), 1_000_000, root))}, signer)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := proofs.OpenCheckpoint(signed, verifier); err != nil {
			b.Fatal(err)
		}
	}
}

// hpReplayLog is a log's leaves for replay benchmarks: a prefix (config,
// default policy, key bindings of alice, planner and worker, the root
// grant dlg_root) and a pool of distinct accepted delegations planner ->
// worker under dlg_root, each signed, with the decision the rules give.
type hpReplayLog struct {
	prefix    [][]byte
	prefixP   []*proofs.ParsedLeaf
	pool      [][]byte
	poolP     []*proofs.ParsedLeaf
	cp        *proofs.Checkpoint // covers prefix and pool
	poolBytes int
}

func newHPReplayLog(b *testing.B, poolSize int) *hpReplayLog {
	b.Helper()
	text, err := os.ReadFile("../ledger/default.cedar")
	if err != nil {
		b.Fatal(err)
	}
	registrar := newEd25519Signer(b)
	keys := map[string]*testSigner{}
	rp := proofs.NewReplay() // the builder's mirror of the log's state
	out := &hpReplayLog{}
	now := hpBase
	add := func(l proofs.Leaf, pool bool) {
		b.Helper()
		now = now.Add(time.Millisecond + 1234*time.Nanosecond)
		l.Version, l.LogTime = proofs.LeafVersion, proofs.FormatLogTime(now)
		raw, err := l.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := rp.Apply(rp.Next(), p); err != nil {
			b.Fatalf("building the replay log: %v", err)
		}
		if pool {
			out.pool, out.poolP = append(out.pool, raw), append(out.poolP, p)
			out.poolBytes += len(raw)
		} else {
			out.prefix, out.prefixP = append(out.prefix, raw), append(out.prefixP, p)
		}
	}
	add(proofs.Leaf{Kind: proofs.KindLogConfig, Config: &proofs.LogConfig{
		Origin:        "example.com/warrant/bench",
		RegistrarKeys: []proofs.ConfigKey{{ID: registrar.id, PublicKey: registrar.der}},
		Limits:        proofs.DefaultLimits(),
		Rules:         proofs.DefaultRuleLimits(),
	}}, false)
	add(proofs.Leaf{Kind: proofs.KindPolicy, Policy: &proofs.LogPolicy{Text: string(text)}}, false)
	for i, a := range []struct {
		id    string
		human bool
	}{{hpAlice, true}, {hpPlanner, false}, {hpWorker, false}} {
		k := newEd25519Signer(b)
		keys[a.id] = k
		payload, err := proofs.MarshalPayload(&proofs.KeyBinding{Agent: a.id, PublicKey: k.der, Tier: proofs.TierExecute, Human: a.human, IssuedAt: proofs.FormatTime(hpBase), Nonce: fmt.Sprintf("binding-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		env := envelope(b, proofs.PayloadTypeAgent, payload, registrar)
		add(proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: env.Canonical(), Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted}}, false)
	}
	delegate := func(d *proofs.Delegation, pool bool) {
		b.Helper()
		env := envelope(b, proofs.PayloadTypeDelegation, mustPayload(b, d), keys[d.Issuer])
		sigs, err := proofs.CheckSignatures(env, rp.Binding(d.Issuer), func(string) *proofs.Binding { return nil })
		if err != nil {
			b.Fatal(err)
		}
		// The decision is taken at the log time add will assign.
		at := now.Add(time.Millisecond + 1234*time.Nanosecond)
		dec, err := proofs.DecideDelegation(rp, d, sigs, at, rp.Config().Rules, rp.Policy())
		if err != nil || dec.Outcome != proofs.OutcomeAccepted {
			b.Fatalf("building the replay log: %+v %v", dec, err)
		}
		add(proofs.Leaf{Kind: proofs.KindDelegation, Envelope: env.Canonical(), Decision: dec}, pool)
	}
	root := hpDelegation("dlg_root", "root-nonce-0001")
	root.Issuer, root.Delegate, root.Parent, root.Task = hpAlice, hpPlanner, "", "/tickets"
	root.NotBefore, root.ExpiresAt = proofs.FormatTime(hpBase.Add(-time.Second)), proofs.FormatTime(hpBase.Add(7*time.Hour))
	delegate(root, false)
	for i := 0; i < poolSize; i++ {
		delegate(hpDelegation(fmt.Sprintf("dlg_%06d", i), fmt.Sprintf("nonce-%06d", i)), true)
	}
	rng := proofs.NewEmptyRange(0)
	for _, l := range append(append([][]byte{}, out.prefix...), out.pool...) {
		if err := rng.Append(proofs.LeafHash(l), nil); err != nil {
			b.Fatal(err)
		}
	}
	rootHash, err := rng.GetRootHash(nil)
	if err != nil {
		b.Fatal(err)
	}
	out.cp = &proofs.Checkpoint{Origin: "example.com/warrant/bench", Size: rng.End(), Root: rootHash}
	return out
}

func mustPayload(b *testing.B, v any) []byte {
	b.Helper()
	p, err := proofs.MarshalPayload(v)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// hpReplayPool is the pool size of the replay benchmarks: a fresh replay
// of the prefix is set up (off the clock) every hpReplayPool entries.
const hpReplayPool = 2048

// BenchmarkReplayApply replays one accepted delegation leaf (already
// parsed) against the replayed state: its signature, the chain rules and
// the recorded policy, and the comparison with the recorded decision.
func BenchmarkReplayApply(b *testing.B) {
	lg := newHPReplayLog(b, hpReplayPool)
	fresh := func() *proofs.Replay {
		rp := proofs.NewReplay()
		for i, p := range lg.prefixP {
			if err := rp.Apply(uint64(i), p); err != nil {
				b.Fatal(err)
			}
		}
		return rp
	}
	// Each pass replays freshly parsed leaves, so that nothing a previous
	// pass left on a parsed envelope (a verified-signature cache) counts.
	reparse := func() []*proofs.ParsedLeaf {
		out := make([]*proofs.ParsedLeaf, len(lg.pool))
		for i, raw := range lg.pool {
			p, err := proofs.ParseLeaf(raw)
			if err != nil {
				b.Fatal(err)
			}
			out[i] = p
		}
		return out
	}
	n0 := uint64(len(lg.prefixP))
	rp, pool := fresh(), lg.poolP
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(pool)
		if k == 0 && i > 0 {
			b.StopTimer()
			rp, pool = fresh(), reparse()
			b.StartTimer()
		}
		if err := rp.Apply(n0+uint64(k), pool[k]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAuditorAdd is what `warrant audit` does per delegation entry:
// hash the leaf into the recomputed tree, parse it, and replay it.
func BenchmarkAuditorAdd(b *testing.B) {
	lg := newHPReplayLog(b, hpReplayPool)
	fresh := func() *proofs.Auditor {
		a := proofs.NewAuditor(lg.cp, nil)
		for _, l := range lg.prefix {
			a.Add(l)
		}
		return a
	}
	// One full pass off the clock: the benchmark log must audit clean.
	a := fresh()
	for _, l := range lg.pool {
		a.Add(l)
	}
	if rep := a.Finish(); !rep.Verified {
		b.Fatalf("audit of the benchmark log: %+v", rep.Discrepancies[:min(3, len(rep.Discrepancies))])
	}
	a = fresh()
	b.SetBytes(int64(lg.poolBytes / len(lg.pool)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(lg.pool)
		if k == 0 && i > 0 {
			b.StopTimer()
			if rep := a.Finish(); !rep.Verified {
				b.Fatalf("audit of the benchmark log: %+v", rep.Discrepancies[:min(3, len(rep.Discrepancies))])
			}
			a = fresh()
			b.StartTimer()
		}
		a.Add(lg.pool[k])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
