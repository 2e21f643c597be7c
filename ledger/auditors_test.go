package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

var update = flag.Bool("update", false, "rewrite golden files")

func (f *fixture) verifier(t testing.TB) note.Verifier {
	v, err := note.NewVerifier(f.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// child returns a delegation under parent from issuer to delegate.
func child(id, parent, issuer, delegate, nonce string) *proofs.Delegation {
	d := delegation(id, issuer, delegate, nonce)
	d.Parent, d.RootSubject = parent, humanID
	d.ExpiresAt = proofs.FormatTime(time.Now().Add(5 * time.Minute))
	return d
}

// auditServer audits f's log over its tlog-tiles API, as `warrant audit
// --server` does.
func auditServer(t *testing.T, f *fixture) *proofs.AuditReport {
	t.Helper()
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	ctx := context.Background()
	c := client.New(srv.URL, f.verifier(t))
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := proofs.NewAuditor(cp, nil)
	var batch [][]byte
	err = c.EntryBundles(ctx, srv.URL, cp.Size, func(l []byte) error {
		if batch = append(batch, bytes.Clone(l)); len(batch) == 2048 {
			a.AddBatch(batch)
			batch = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a.AddBatch(batch)
	return a.Finish()
}

// exportOf writes f's log as an export file in memory.
func exportOf(t *testing.T, f *fixture) []byte {
	t.Helper()
	var buf bytes.Buffer
	leaves := allLeaves(t, f.log)
	i := 0
	err := proofs.WriteExport(&buf, f.log.Checkpoint(), func() ([]byte, error) { i++; return leaves[i-1], nil })
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLyingLogIsCaught builds a log whose sequencer lies: it records an
// allow that the rules deny, and a decision with a wrong policy digest.
// Both the chain-bundle verifier and the whole-log audit must name them.
func TestLyingLogIsCaught(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	lie := func(leaf *proofs.Leaf) {
		env, _ := proofs.ParseEnvelope(leaf.Envelope)
		switch {
		case bytes.Contains(env.Payload, []byte(`"dlg_lie"`)):
			leaf.Decision = &proofs.Decision{Outcome: proofs.OutcomeAccepted, PolicyDigest: leaf.Decision.PolicyDigest,
				PolicyIDs: []string{"allow-delegation"}, CedarVersion: proofs.CedarVersion}
		case bytes.Contains(env.Payload, []byte(`"dlg_digest"`)):
			leaf.Decision.PolicyDigest = "sha256:" + strings.Repeat("0", 64)
		}
	}
	f.log.faults.decision.Store(&lie)
	otherID := "spiffe://example.org/agent/other"
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, otherID, newTestKey(t), proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))); err != nil {
		t.Fatal(err)
	}
	widened := child("dlg_lie", "dlg_root", agentID, otherID, "nonce-lie00001")
	widened.Scopes = []string{"tickets:admin-all"} // not the parent's: the rules deny it
	lieIdx, err := f.log.Append(ctx, signDelegation(t, f.agent, widened))
	if err != nil || lieIdx.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("the lying log did not record an allow: %+v %v", lieIdx, err)
	}
	digestIdx, err := f.log.Append(ctx, signDelegation(t, f.agent, child("dlg_digest", "dlg_root", agentID, otherID, "nonce-dig00001")))
	if err != nil {
		t.Fatal(err)
	}
	// verify: each bundle names the broken link.
	for _, tc := range []struct{ id, want string }{{"dlg_lie", "link 1 (dlg_lie"}, {"dlg_digest", "link 1 (dlg_digest"}} {
		b, err := f.log.ChainBundle(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = proofs.VerifyBundle(b, f.verifier(t), proofs.BundleOptions{})
		if proofs.Reason(err) != proofs.ReasonBundleDecision || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bundle of %s: %v, want %s naming %q", tc.id, err, proofs.ReasonBundleDecision, tc.want)
		}
	}
	// audit: over the tiles API and over an export, both entries named.
	for name, rep := range map[string]*proofs.AuditReport{"server": auditServer(t, f), "export": mustAuditExport(t, f, exportOf(t, f))} {
		var got []uint64
		for _, d := range rep.Discrepancies {
			if d.Reason != proofs.ReasonReplayDecision {
				t.Errorf("%s audit: unexpected discrepancy %+v", name, d)
			}
			got = append(got, d.Index)
		}
		if rep.Verified || fmt.Sprint(got) != fmt.Sprint([]uint64{lieIdx.Index, digestIdx.Index}) {
			t.Errorf("%s audit found %v, want entries %d and %d", name, got, lieIdx.Index, digestIdx.Index)
		}
	}
}

func mustAuditExport(t *testing.T, f *fixture, export []byte) *proofs.AuditReport {
	t.Helper()
	rep, err := proofs.AuditExport(bytes.NewReader(export), f.verifier(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestExportTampering: a flipped byte at many positions of an export (every
// third byte), truncation, or trailing data is caught.
func TestExportTampering(t *testing.T) {
	f := newFixture(t, nil)
	appendN(t, f, 4)
	export := exportOf(t, f)
	if rep := mustAuditExport(t, f, export); !rep.Verified {
		t.Fatalf("clean export: %+v", rep.Discrepancies)
	}
	var mu sync.Mutex
	var missed []int
	parallel(len(export), func(i int) {
		if i%3 != 0 {
			return
		}
		bad := bytes.Clone(export)
		bad[i] ^= 0x01
		rep, err := proofs.AuditExport(bytes.NewReader(bad), f.verifier(t), nil, nil)
		if err == nil && rep.Verified {
			mu.Lock()
			missed = append(missed, i)
			mu.Unlock()
		}
	})
	if len(missed) > 0 {
		t.Fatalf("flipping bytes %v of the export went unnoticed", missed)
	}
	for _, bad := range [][]byte{export[:len(export)-1], append(bytes.Clone(export), 0)} {
		if rep, err := proofs.AuditExport(bytes.NewReader(bad), f.verifier(t), nil, nil); err == nil && rep.Verified {
			t.Fatal("a truncated or extended export verified")
		}
	}
}

// parallel runs fn(0..n-1) on every core.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// TestBundleTampering: every byte of a small bundle is authenticated (a
// flipped bit anywhere is rejected), and so is its structure: a dropped
// link, a checkpoint signed by another key of the same name, an entry
// spliced from another log.
func TestBundleTampering(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	root := delegation("dlg_root", humanID, agentID, "nonce-root0001")
	if _, err := f.log.Append(ctx, signDelegation(t, f.human, root)); err != nil {
		t.Fatal(err)
	}
	bundle, err := f.log.ChainBundle(ctx, "dlg_root")
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(t)
	if _, err := proofs.VerifyBundle(bundle, v, proofs.BundleOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var missed []int
	parallel(len(bundle), func(i int) {
		bad := bytes.Clone(bundle)
		bad[i] ^= 0x01
		if _, err := proofs.VerifyBundle(bad, v, proofs.BundleOptions{}); err == nil {
			mu.Lock()
			missed = append(missed, i)
			mu.Unlock()
		}
	})
	if len(missed) > 0 {
		t.Fatalf("flipping bytes %v of a %d-byte bundle went unnoticed", missed, len(bundle))
	}
	for _, n := range []int{0, 1, len(bundle) / 2, len(bundle) - 1} {
		if _, err := proofs.VerifyBundle(bundle[:n], v, proofs.BundleOptions{}); err == nil {
			t.Fatalf("a bundle truncated to %d bytes verified", n)
		}
	}
	if _, err := proofs.VerifyBundle(append(bytes.Clone(bundle), '\n'), v, proofs.BundleOptions{}); err == nil {
		t.Fatal("a bundle with trailing data verified")
	}

	// A longer chain, to drop its middle link.
	otherID := "spiffe://example.org/agent/other"
	other := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, otherID, other, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	// The links expire with the root: the byte-flipping above can take
	// long enough on a busy machine for "five minutes from now" to pass
	// the root's expiry (its window starts at a ten-minute boundary).
	mid := child("dlg_mid", "dlg_root", agentID, otherID, "nonce-mid00001")
	mid.ExpiresAt = root.ExpiresAt
	if a, err := f.log.Append(ctx, signDelegation(t, f.agent, mid)); err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("middle link: %+v %v", a, err)
	}
	lastID := "spiffe://example.org/agent/last"
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, lastID, newTestKey(t), proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	third := child("dlg_end", "dlg_mid", otherID, lastID, "nonce-end00001")
	third.ExpiresAt = root.ExpiresAt
	if a, err := f.log.Append(ctx, signDelegation(t, other, third)); err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("third link: %+v %v", a, err)
	}
	long, err := f.log.ChainBundle(ctx, "dlg_end")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proofs.ParseBundle(long)
	var dropped proofs.Bundle = *b
	dropped.Proofs = nil
	for _, p := range b.Proofs {
		if delegationID(t, p) != "dlg_mid" {
			dropped.Proofs = append(dropped.Proofs, p)
		}
	}
	if len(dropped.Proofs) != len(b.Proofs)-1 {
		t.Fatalf("dropped %d entries, want 1", len(b.Proofs)-len(dropped.Proofs))
	}
	if _, err := proofs.VerifyBundle(dropped.Marshal(), v, proofs.BundleOptions{}); proofs.Reason(err) != proofs.ReasonBundleChainBroken {
		t.Fatalf("dropped link: %v, want %s", err, proofs.ReasonBundleChainBroken)
	}

	// A checkpoint signed by another key with the log's name.
	skey, _, err := note.GenerateKey(rand.Reader, f.log.Origin())
	if err != nil {
		t.Fatal(err)
	}
	impostor, _ := note.NewSigner(skey)
	resigned := *b
	resigned.Proofs = nil
	for _, p := range b.Proofs {
		head, cp, _ := strings.Cut(p, "\n\n")
		text, _, _ := strings.Cut(cp, "\n\n")
		n, err := note.Sign(&note.Note{Text: text + "\n"}, impostor)
		if err != nil {
			t.Fatal(err)
		}
		resigned.Proofs = append(resigned.Proofs, head+"\n\n"+string(n))
	}
	if _, err := proofs.VerifyBundle(resigned.Marshal(), v, proofs.BundleOptions{}); proofs.Reason(err) != proofs.ReasonCheckpointSignature {
		t.Fatalf("checkpoint from an impostor key: %v, want %s", err, proofs.ReasonCheckpointSignature)
	}

	// An entry spliced from another log with the same key (a fork): its
	// checkpoint is not tied to the bundle's.
	fork := t.TempDir()
	keyBytes, _ := os.ReadFile(filepath.Join(f.dir, LogKeyFile))
	os.WriteFile(filepath.Join(fork, LogKeyFile), keyBytes, 0o600)
	fl := openTestLog(t, fork, f.registrar, f.withAdmin)
	defer fl.Close()
	for _, env := range [][]byte{
		bindingEnvelope(t, f.registrar, humanID, f.human, proofs.TierDraft, true),
		bindingEnvelope(t, f.registrar, agentID, f.agent, proofs.TierExecute, false),
	} {
		if _, err := fl.Append(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fl.Append(ctx, signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-other001"))); err != nil {
		t.Fatal(err)
	}
	forked, err := fl.ChainBundle(ctx, "dlg_root")
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := proofs.ParseBundle(forked)
	spliced := *b
	spliced.Proofs = append([]string(nil), b.Proofs...)
	for i, p := range spliced.Proofs {
		if delegationID(t, p) == "dlg_root" {
			for _, q := range fb.Proofs {
				if delegationID(t, q) == "dlg_root" {
					spliced.Proofs[i] = q
				}
			}
		}
	}
	if _, err := proofs.VerifyBundle(spliced.Marshal(), v, proofs.BundleOptions{}); err == nil {
		t.Fatal("a bundle with an entry spliced from a fork verified")
	} else {
		t.Logf("spliced entry: %v", err)
	}
}

// delegationID returns the id of the delegation inside a tlog-proof, or "".
func delegationID(t *testing.T, p string) string {
	tp, err := proofs.ParseTLogProof([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	l, err := proofs.ParseLeaf(tp.ExtraData)
	if err != nil {
		t.Fatal(err)
	}
	if l.Delegation == nil {
		return ""
	}
	return l.Delegation.ID
}

// TestGoldenBundle builds a chain deterministically (fixed keys, clock,
// nonces and log key) and compares its bundle with the golden file, which
// must also verify offline with nothing but testdata/golden/log.vkey. Run
// with -update to rewrite the golden files after a deliberate format change.
func TestGoldenBundle(t *testing.T) {
	seed := func(b byte) *testKey {
		k, err := client.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)))
		if err != nil {
			t.Fatal(err)
		}
		return &testKey{signer: k}
	}
	registrar, human, agent, other := seed(1), seed(2), seed(3), seed(4)
	dir := t.TempDir()
	skey, _, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)), "golden.example/log")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, LogKeyFile), []byte(skey+"\n"), 0o600)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var tick atomic.Int64
	clock := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
	l, err := Open(context.Background(), Options{Dir: dir, Origin: "golden.example/log", RegistrarKeys: []*proofs.PublicKey{registrar.pub()}, Logger: quietLogger(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	otherID := "spiffe://example.org/agent/other"
	for i, b := range []struct {
		agent string
		key   *testKey
		tier  string
		human bool
	}{{humanID, human, proofs.TierDraft, true}, {agentID, agent, proofs.TierExecute, false}, {otherID, other, proofs.TierExecute, false}} {
		kb := &proofs.KeyBinding{Agent: b.agent, PublicKey: b.key.pub().DER, Tier: b.tier, Human: b.human, IssuedAt: proofs.FormatTime(base), Nonce: fmt.Sprintf("golden-binding-%d", i)}
		if _, err := l.Append(ctx, signPayload(t, registrar, proofs.PayloadTypeAgent, kb)); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(id, parent, issuer, delegate string, minutes int) *proofs.Delegation {
		return &proofs.Delegation{ID: id, Issuer: issuer, Delegate: delegate, RootSubject: humanID, Parent: parent, Task: "/tickets",
			Scopes: []string{"tickets:read"}, NotBefore: proofs.FormatTime(base), ExpiresAt: proofs.FormatTime(base.Add(time.Duration(minutes) * time.Minute)),
			Nonce: "golden-" + id}
	}
	for _, d := range []struct {
		key *testKey
		d   *proofs.Delegation
	}{
		{human, mk("dlg_golden_root", "", humanID, agentID, 60)},
		{agent, mk("dlg_golden_child", "dlg_golden_root", agentID, otherID, 10)},
	} {
		a, err := l.Append(ctx, signDelegation(t, d.key, d.d))
		if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("%s: %+v %v", d.d.ID, a, err)
		}
	}
	bundle, err := l.ChainBundle(ctx, "dlg_golden_child")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden", "chain.bundle")
	vkeyPath := filepath.Join("testdata", "golden", "log.vkey")
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		os.WriteFile(golden, bundle, 0o644)
		os.WriteFile(vkeyPath, []byte(l.VerifierKey()+"\n"), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./ledger -run TestGoldenBundle -update)", err)
	}
	if !bytes.Equal(bundle, want) {
		t.Fatalf("the bundle differs from %s; if the format changed on purpose, rerun with -update", golden)
	}
	vkey, _ := os.ReadFile(vkeyPath)
	v, err := proofs.ParseVerifierKey(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := proofs.VerifyBundle(want, v, proofs.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vc.Links) != 2 || vc.Links[1].Leaf.Delegation.ID != "dlg_golden_child" {
		t.Fatalf("golden chain: %d links", len(vc.Links))
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, want, "", " ")
	t.Logf("golden bundle: %d bytes, %d links", len(want), len(vc.Links))
}

// TestBundleWitnessPolicy: a bundle whose checkpoints carry a witness
// cosignature verifies under a witness policy that requires it, and fails
// under one that requires another witness.
func TestBundleWitnessPolicy(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))); err != nil {
		t.Fatal(err)
	}
	raw, err := f.log.ChainBundle(ctx, "dlg_root")
	if err != nil {
		t.Fatal(err)
	}
	witness := func(name string) (note.Signer, string) {
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
		return s, cv
	}
	w1, w1key := witness("witness1.example")
	_, w2key := witness("witness2.example")
	b, _ := proofs.ParseBundle(raw)
	logSigner, _ := note.NewSigner(strings.TrimSpace(readFile(t, filepath.Join(f.dir, LogKeyFile))))
	// One cosigned note per checkpoint text: the witness's signature
	// carries a timestamp, and a bundle's proofs must share one checkpoint
	// byte for byte, however slowly this loop runs.
	cosignedByText := map[string][]byte{}
	for i, p := range b.Proofs {
		head, cp, _ := strings.Cut(p, "\n\n")
		text, _, _ := strings.Cut(cp, "\n\n")
		cosigned, ok := cosignedByText[text]
		if !ok {
			cosigned, err = note.Sign(&note.Note{Text: text + "\n"}, logSigner, w1)
			if err != nil {
				t.Fatal(err)
			}
			cosignedByText[text] = cosigned
		}
		b.Proofs[i] = head + "\n\n" + string(cosigned)
	}
	bundle := b.Marshal()
	v := f.verifier(t)
	policy := func(key string) *proofs.WitnessPolicy {
		p, err := proofs.ParseWitnessPolicy([]byte("witness w "+key+" https://witness.example/\nquorum w\n"), f.log.VerifierKey(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := proofs.VerifyBundle(bundle, v, proofs.BundleOptions{WitnessPolicy: policy(w1key)}); err != nil {
		t.Fatalf("cosigned bundle under its witness policy: %v", err)
	}
	if _, err := proofs.VerifyBundle(bundle, v, proofs.BundleOptions{WitnessPolicy: policy(w2key)}); err == nil {
		t.Fatal("a bundle verified under a policy requiring a witness that did not cosign")
	}
	if _, err := proofs.VerifyBundle(raw, v, proofs.BundleOptions{WitnessPolicy: policy(w1key)}); proofs.Reason(err) != proofs.ReasonBundleWitness {
		t.Fatalf("uncosigned bundle under a witness policy: %v, want %s", err, proofs.ReasonBundleWitness)
	}
	// Without a policy the witness is unknown and its cosignatures are
	// ignored (C2SP signed-note).
	if _, err := proofs.VerifyBundle(bundle, v, proofs.BundleOptions{}); err != nil {
		t.Fatalf("cosigned bundle without a witness policy: %v", err)
	}
	// One checkpoint may come with and without cosignatures (a log that
	// answers before its witnesses do): it is still one checkpoint, and the
	// cosigned note satisfies the policy.
	mixed, _ := proofs.ParseBundle(raw)
	if len(mixed.Proofs) < 2 {
		t.Fatalf("bundle of %d proofs", len(mixed.Proofs))
	}
	mixed.Proofs[1] = b.Proofs[1]
	for _, opts := range []proofs.BundleOptions{{}, {WitnessPolicy: policy(w1key)}} {
		if _, err := proofs.VerifyBundle(mixed.Marshal(), v, opts); err != nil {
			t.Fatalf("bundle with one cosigned note of its checkpoint, policy %v: %v", opts.WitnessPolicy != nil, err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBundleRederivesKeyBindings: a log that records a key binding it
// should have denied (key_in_use: the key is another agent's) as accepted
// is caught by the bundle of a delegation to that agent, which holds the
// binding and, for its decision, the other agent's binding of the key.
func TestBundleRederivesKeyBindings(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	thief := "spiffe://example.org/agent/thief"
	lie := func(leaf *proofs.Leaf) {
		if leaf.Kind == proofs.KindKeyBinding && leaf.Decision.Outcome == proofs.OutcomeDenied {
			leaf.Decision = &proofs.Decision{Outcome: proofs.OutcomeAccepted}
		}
	}
	f.log.faults.decision.Store(&lie)
	// The agent's key, bound to another agent: key_in_use, recorded as accepted.
	a, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, thief, f.agent, proofs.TierExecute, false))
	if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("the lying log did not record an accepted binding: %+v %v", a, err)
	}
	if _, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_thief", humanID, thief, "nonce-thief001"))); err != nil {
		t.Fatal(err)
	}
	b, err := f.log.ChainBundle(ctx, "dlg_thief")
	if err != nil {
		t.Fatal(err)
	}
	_, err = proofs.VerifyBundle(b, f.verifier(t), proofs.BundleOptions{})
	if proofs.Reason(err) != proofs.ReasonBundleDecision || !strings.Contains(err.Error(), proofs.ReasonKeyInUse) {
		t.Fatalf("bundle with a lying key binding: %v, want %s naming %s", err, proofs.ReasonBundleDecision, proofs.ReasonKeyInUse)
	}
}
