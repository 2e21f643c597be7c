package proofs_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// replayLog builds a log's leaves in memory the way the sequencer does:
// decisions come from the rules run against a mirror of the log's state.
type replayLog struct {
	t                testing.TB
	registrar, admin *testSigner
	keys             map[string]*testSigner
	mirror           *chainState
	pol              *proofs.Policy
	lim              proofs.RuleLimits
	now              time.Time
	leaves           []*proofs.ParsedLeaf
	nonce            int
}

func newReplayLog(t testing.TB) *replayLog {
	return &replayLog{
		t: t, registrar: newEd25519Signer(t), admin: newEd25519Signer(t),
		keys: map[string]*testSigner{}, mirror: newChainState(), lim: proofs.DefaultRuleLimits(),
		now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
	}
}

// tick advances the log time (with nanoseconds, as the sequencer's clock).
func (r *replayLog) tick() time.Time {
	r.now = r.now.Add(time.Second + 123456789*time.Nanosecond)
	return r.now
}

func (r *replayLog) nextNonce() string { r.nonce++; return fmt.Sprintf("replay-nonce-%d", r.nonce) }

// leaf marshals and parses l at log time at.
func (r *replayLog) leaf(l proofs.Leaf, at time.Time) *proofs.ParsedLeaf {
	r.t.Helper()
	l.Version = proofs.LeafVersion
	l.LogTime = proofs.FormatLogTime(at)
	p, err := proofs.ParseLeaf(mustMarshalLeaf(r.t, &l))
	if err != nil {
		r.t.Fatalf("ParseLeaf: %v", err)
	}
	return p
}

func (r *replayLog) add(p *proofs.ParsedLeaf) *proofs.ParsedLeaf {
	r.leaves = append(r.leaves, p)
	return p
}

func (r *replayLog) config() *proofs.ParsedLeaf {
	return r.leaf(proofs.Leaf{Kind: proofs.KindLogConfig, Config: &proofs.LogConfig{
		Origin:        "example.com/warrant",
		RegistrarKeys: []proofs.ConfigKey{{ID: r.registrar.id, PublicKey: r.registrar.der}},
		AdminKeys:     []proofs.ConfigKey{{ID: r.admin.id, PublicKey: r.admin.der}},
		Limits:        proofs.DefaultLimits(),
		Rules:         r.lim,
	}}, r.tick())
}

func (r *replayLog) logPolicy(text []byte) *proofs.ParsedLeaf {
	p := r.leaf(proofs.Leaf{Kind: proofs.KindPolicy, Policy: &proofs.LogPolicy{Text: string(text)}}, r.tick())
	r.pol = p.Policy
	return p
}

func (r *replayLog) adminPolicy(text string, signer *testSigner) *proofs.ParsedLeaf {
	r.t.Helper()
	payload, err := proofs.MarshalPayload(&proofs.PolicyUpdate{Text: text, IssuedAt: proofs.FormatTime(r.now), Nonce: r.nextNonce()})
	if err != nil {
		r.t.Fatal(err)
	}
	env := envelope(r.t, proofs.PayloadTypePolicy, payload, signer)
	p := r.leaf(proofs.Leaf{Kind: proofs.KindPolicy, Envelope: env.Canonical(), Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted}}, r.tick())
	r.pol = p.Policy
	return p
}

// register appends a binding of agent to a fresh key, signed by signer.
func (r *replayLog) register(agent, tier string, human bool, signer *testSigner) *proofs.ParsedLeaf {
	r.t.Helper()
	k := newEd25519Signer(r.t)
	kb := &proofs.KeyBinding{Agent: agent, PublicKey: k.der, Tier: tier, Human: human, IssuedAt: proofs.FormatTime(r.now), Nonce: r.nextNonce()}
	payload, err := proofs.MarshalPayload(kb)
	if err != nil {
		r.t.Fatal(err)
	}
	dec := r.mirror.bindings.DecideKeyBinding(kb)
	if dec.Outcome == proofs.OutcomeAccepted {
		r.keys[agent] = k
		r.mirror.bind(r.t, kb)
	}
	env := envelope(r.t, proofs.PayloadTypeAgent, payload, signer)
	return r.leaf(proofs.Leaf{Kind: proofs.KindKeyBinding, Envelope: env.Canonical(), Decision: dec}, r.tick())
}

// delegate appends d signed by signers, with the decision the rules give.
func (r *replayLog) delegate(d *proofs.Delegation, signers ...*testSigner) *proofs.ParsedLeaf {
	r.t.Helper()
	payload, err := proofs.MarshalPayload(d)
	if err != nil {
		r.t.Fatal(err)
	}
	parsed, err := proofs.ParseDelegation(payload)
	if err != nil {
		r.t.Fatalf("ParseDelegation: %v", err)
	}
	env := envelope(r.t, proofs.PayloadTypeDelegation, payload, signers...)
	at := r.tick()
	var dec *proofs.Decision
	sigs, err := proofs.CheckSignatures(env, r.mirror.Binding(d.Issuer), r.mirror.bindings.KeyID)
	if err != nil {
		// Not authentic: the log would have refused it. Record something.
		dec = &proofs.Decision{Outcome: proofs.OutcomeDenied, Reasons: []string{proofs.Reason(err)}}
	} else {
		if dec, err = proofs.DecideDelegation(r.mirror, parsed, sigs, at, r.lim, r.pol); err != nil {
			r.t.Fatal(err)
		}
		if dec.Outcome == proofs.OutcomeAccepted {
			r.mirror.accept(parsed)
		}
	}
	return r.leaf(proofs.Leaf{Kind: proofs.KindDelegation, Envelope: env.Canonical(), Decision: dec}, at)
}

// revoke appends a revocation signed by signer.
func (r *replayLog) revoke(target, issuer string, byAdmin bool, signer *testSigner) *proofs.ParsedLeaf {
	r.t.Helper()
	rev := &proofs.Revocation{Delegation: target, Issuer: issuer, Reason: "test", IssuedAt: proofs.FormatTime(r.now), Nonce: r.nextNonce()}
	payload, err := proofs.MarshalPayload(rev)
	if err != nil {
		r.t.Fatal(err)
	}
	dec, err := proofs.DecideRevocation(r.mirror, rev, byAdmin, r.lim)
	if err != nil {
		r.t.Fatal(err)
	}
	if dec.Outcome == proofs.OutcomeAccepted {
		r.mirror.revoked[target] = true
	}
	env := envelope(r.t, proofs.PayloadTypeRevocation, payload, signer)
	return r.leaf(proofs.Leaf{Kind: proofs.KindRevocation, Envelope: env.Canonical(), Decision: dec}, r.tick())
}

// withDecision returns p re-recorded with another decision.
func (r *replayLog) withDecision(p *proofs.ParsedLeaf, edit func(d *proofs.Decision)) *proofs.ParsedLeaf {
	r.t.Helper()
	l := p.Leaf
	d := *l.Decision
	d.Reasons = append([]string(nil), d.Reasons...)
	d.PolicyIDs = append([]string(nil), d.PolicyIDs...)
	if len(d.PolicyIDs) == 0 {
		d.PolicyIDs = nil
	}
	edit(&d)
	l.Decision = &d
	return r.leaf(l, p.Time)
}

// replayAll applies leaves to a fresh Replay and returns every error by index.
func replayAll(leaves []*proofs.ParsedLeaf) (*proofs.Replay, map[int]error) {
	rp := proofs.NewReplay()
	errs := map[int]error{}
	for i, l := range leaves {
		if err := rp.Apply(uint64(i), l); err != nil {
			errs[i] = err
		}
	}
	return rp, errs
}

// replayFixture is a log of every entry kind with accepted and denied
// delegations, and the indices of notable entries.
type replayFixture struct {
	*replayLog
	acceptedIdx, deniedIdx, deniedMultiIdx, approvedIdx, customIdx int
}

func newReplayFixture(t testing.TB) *replayFixture {
	t.Helper()
	text, err := os.ReadFile("../ledger/default.cedar")
	if err != nil {
		t.Fatal(err)
	}
	r := &replayFixture{replayLog: newReplayLog(t)}
	r.add(r.config())
	r.add(r.logPolicy(text))
	for _, a := range []struct {
		id, tier string
		human    bool
	}{
		{agAlice, proofs.TierExecute, true},
		{agBob, proofs.TierExecute, true},
		{agPlanner, proofs.TierExecute, false},
		{agWorker, proofs.TierExecute, false},
		{agReviewer, proofs.TierExecute, false},
		{agDrafter, proofs.TierDraft, false},
		{agPartner, proofs.TierExecute, false},
	} {
		r.add(r.register(a.id, a.tier, a.human, r.registrar))
	}
	at := func(d time.Duration) string { return proofs.FormatTime(r.now.Add(d)) }
	del := func(id, issuer, delegate, parent, task string, scopes, classes []string, life time.Duration) *proofs.Delegation {
		return &proofs.Delegation{
			ID: id, Issuer: issuer, Delegate: delegate, RootSubject: agAlice, Parent: parent, Task: task,
			Scopes: scopes, DataClasses: classes, Destinations: []string{"crm"},
			NotBefore: at(-time.Second), ExpiresAt: at(life), Nonce: r.nextNonce(),
			TraceID: "trace-" + id,
		}
	}
	r.add(r.delegate(del("d-root", agAlice, agPlanner, "", "/tickets", []string{"tickets:admin", "tickets:read", "tickets:write"}, []string{"internal", "restricted"}, 4*time.Hour), r.keys[agAlice]))
	r.acceptedIdx = len(r.leaves)
	r.add(r.delegate(del("d-b", agPlanner, agWorker, "d-root", "/tickets/triage", []string{"tickets:read", "tickets:write"}, []string{"internal"}, 10*time.Minute), r.keys[agPlanner]))
	r.deniedIdx = len(r.leaves)
	r.add(r.delegate(del("d-x", agPlanner, agPartner, "d-root", "/tickets", []string{"tickets:read"}, nil, 10*time.Minute), r.keys[agPlanner]))
	r.approvedIdx = len(r.leaves)
	r.add(r.delegate(del("d-appr", agPlanner, agReviewer, "d-root", "/tickets", []string{"tickets:admin"}, []string{"restricted"}, 10*time.Minute), r.keys[agPlanner], r.keys[agBob]))
	r.add(r.delegate(del("d-c", agWorker, agReviewer, "d-b", "/tickets/triage/auto", []string{"tickets:read"}, nil, 5*time.Minute), r.keys[agWorker]))
	r.add(r.revoke("d-b", agPlanner, false, r.keys[agPlanner]))
	r.add(r.delegate(del("d-under-revoked", agReviewer, agDrafter, "d-c", "/tickets/triage/auto", nil, nil, 5*time.Minute), r.keys[agReviewer]))
	r.deniedMultiIdx = len(r.leaves)
	r.add(r.delegate(del("d-multi", agDrafter, agPartner, "d-missing", "/tickets", []string{"tickets:delete"}, nil, 2*time.Hour), r.keys[agDrafter]))
	r.add(r.revoke("d-root", agDrafter, false, r.keys[agDrafter]))
	r.add(r.adminPolicy(customPolicy, r.admin))
	r.customIdx = len(r.leaves)
	r.add(r.delegate(del("d-partner", agPlanner, agPartner, "d-root", "/tickets", []string{"tickets:read"}, nil, 10*time.Minute), r.keys[agPlanner]))
	r.add(r.delegate(del("d-secret", agPlanner, agReviewer, "d-root", "/tickets/secret", nil, nil, 10*time.Minute), r.keys[agPlanner]))
	r.add(r.revoke("d-root", "", true, r.admin))
	return r
}

func TestReplayAcceptsHonestLog(t *testing.T) {
	r := newReplayFixture(t)
	// The fixture must hold what it claims to.
	outcome := func(i int) string { return r.leaves[i].Decision.Outcome }
	reasons := func(i int) string { return strings.Join(r.leaves[i].Decision.Reasons, ",") }
	for _, c := range []struct {
		i    int
		want string
	}{
		{r.acceptedIdx, proofs.OutcomeAccepted},
		{r.deniedIdx, proofs.OutcomeDenied},
		{r.approvedIdx, proofs.OutcomeAccepted},
		{r.deniedMultiIdx, proofs.OutcomeDenied},
		{r.customIdx, proofs.OutcomeAccepted},
	} {
		if outcome(c.i) != c.want {
			t.Fatalf("fixture entry %d: %s (%s), want %s", c.i, outcome(c.i), reasons(c.i), c.want)
		}
	}
	if got := reasons(r.deniedIdx); got != proofs.ReasonCrossDomain {
		t.Fatalf("fixture entry %d reasons %s", r.deniedIdx, got)
	}
	if len(r.leaves[r.deniedMultiIdx].Decision.Reasons) < 3 {
		t.Fatalf("fixture entry %d reasons %s, want several", r.deniedMultiIdx, reasons(r.deniedMultiIdx))
	}
	wantOutcomes := map[string]string{
		"d-c": proofs.OutcomeAccepted, "d-under-revoked": proofs.OutcomeDenied, "d-secret": proofs.OutcomeDenied,
	}
	for _, l := range r.leaves {
		if l.Delegation != nil && wantOutcomes[l.Delegation.ID] != "" && l.Decision.Outcome != wantOutcomes[l.Delegation.ID] {
			t.Fatalf("fixture %s: %+v", l.Delegation.ID, l.Decision)
		}
	}

	rp, errs := replayAll(r.leaves)
	for i, err := range errs {
		t.Errorf("Apply(%d) on an honest log: %v", i, err)
	}
	if rp.Next() != uint64(len(r.leaves)) {
		t.Errorf("Next = %d, want %d", rp.Next(), len(r.leaves))
	}
	if rp.Policy() == nil || rp.Policy().Digest != proofs.HashID([]byte(customPolicy)) {
		t.Errorf("policy in force after replay is not the admin's update")
	}
	if c := rp.Config(); c == nil || c.Rules != proofs.DefaultRuleLimits() || c.Origin != "example.com/warrant" {
		t.Errorf("Config = %+v", c)
	}
	// The replay's ChainState agrees with the log.
	if d, _ := rp.Delegation("d-c"); d == nil || d.D.Parent != "d-b" {
		t.Errorf("Delegation(d-c) = %+v", d)
	}
	if d, _ := rp.Delegation("d-x"); d != nil {
		t.Error("a denied delegation is in the replayed state")
	}
	if used, _ := rp.IDUsed("d-x"); used {
		t.Error("a denied delegation consumed its id")
	}
	if used, _ := rp.NonceUsed(agPlanner, r.leaves[r.deniedIdx].Delegation.Nonce); used {
		t.Error("a denied delegation consumed its nonce")
	}
	if used, _ := rp.NonceUsed(agPlanner, r.leaves[r.acceptedIdx].Delegation.Nonce); !used {
		t.Error("an accepted delegation did not consume its nonce")
	}
	if rv, _ := rp.Revoked("d-b"); !rv {
		t.Error("d-b not revoked after replay")
	}
	st, err := proofs.EffectiveStatus(rp, "d-c", r.now, rp.Config().Rules)
	if err != nil || st.State != "revoked" || (st.RevokedVia != "d-b" && st.RevokedVia != "d-root") {
		t.Errorf("EffectiveStatus(d-c) = %+v, %v; want revoked via d-b or d-root", st, err)
	}
	if b := rp.Binding(agPlanner); b == nil || b.Key.ID != r.keys[agPlanner].id || b.Tier != proofs.TierExecute {
		t.Errorf("Binding(planner) = %+v", b)
	}
}

// expectReplayError replays leaves and requires the first discrepancy at
// index with reason; isolated also requires it to be the only one.
func expectReplayError(t *testing.T, leaves []*proofs.ParsedLeaf, index int, reason string, isolated bool) {
	t.Helper()
	_, errs := replayAll(leaves)
	for i := range index {
		if errs[i] != nil {
			t.Errorf("unexpected error before the tampered entry: Apply(%d): %v", i, errs[i])
		}
	}
	err := errs[index]
	if err == nil {
		t.Fatalf("Apply(%d) accepted the tampered entry", index)
	}
	wantReason(t, err, reason)
	if !strings.Contains(err.Error(), fmt.Sprintf("entry %d", index)) {
		t.Errorf("error %q does not name entry %d", err, index)
	}
	if isolated {
		for i, e := range errs {
			if i != index {
				t.Errorf("Apply(%d): %v (only entry %d was tampered with)", i, e, index)
			}
		}
	}
}

func replaced(leaves []*proofs.ParsedLeaf, i int, p *proofs.ParsedLeaf) []*proofs.ParsedLeaf {
	out := append([]*proofs.ParsedLeaf(nil), leaves...)
	out[i] = p
	return out
}

func appended(leaves []*proofs.ParsedLeaf, p *proofs.ParsedLeaf) []*proofs.ParsedLeaf {
	return append(append([]*proofs.ParsedLeaf(nil), leaves...), p)
}

func TestReplayDetectsTampering(t *testing.T) {
	r := newReplayFixture(t)
	honest := r.leaves
	otherDigest := proofs.HashID([]byte("another policy"))
	t.Run("recorded accepted, rules deny", func(t *testing.T) {
		p := r.withDecision(honest[r.deniedIdx], func(d *proofs.Decision) {
			d.Outcome, d.Reasons, d.PolicyIDs = proofs.OutcomeAccepted, nil, []string{"allow-delegation"}
		})
		expectReplayError(t, replaced(honest, r.deniedIdx, p), r.deniedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("recorded accepted, rules deny, appended", func(t *testing.T) {
		// A new cross-domain hand-off recorded as accepted at the end.
		l := newReplayFixture(t)
		d := &proofs.Delegation{ID: "d-late", Issuer: agPlanner, Delegate: agReviewer, RootSubject: agAlice, Parent: "d-root",
			Task: "/tickets", Scopes: []string{"tickets:admin"}, NotBefore: proofs.FormatTime(l.now), ExpiresAt: proofs.FormatTime(l.now.Add(5 * time.Minute)), Nonce: "late-nonce-1"}
		p := l.delegate(d, l.keys[agPlanner]) // root revoked by admin: denied
		if p.Decision.Outcome != proofs.OutcomeDenied {
			t.Fatalf("fixture: %+v", p.Decision)
		}
		p = l.withDecision(p, func(d *proofs.Decision) {
			d.Outcome, d.Reasons, d.PolicyIDs = proofs.OutcomeAccepted, nil, []string{"allow"}
		})
		expectReplayError(t, appended(l.leaves, p), len(l.leaves), proofs.ReasonReplayDecision, true)
	})
	t.Run("recorded denied, rules accept", func(t *testing.T) {
		p := r.withDecision(honest[r.acceptedIdx], func(d *proofs.Decision) {
			d.Outcome, d.Reasons = proofs.OutcomeDenied, []string{proofs.ReasonScopeWidened}
		})
		expectReplayError(t, replaced(honest, r.acceptedIdx, p), r.acceptedIdx, proofs.ReasonReplayDecision, false)
	})
	t.Run("wrong policy digest on an acceptance", func(t *testing.T) {
		p := r.withDecision(honest[r.acceptedIdx], func(d *proofs.Decision) { d.PolicyDigest = otherDigest })
		expectReplayError(t, replaced(honest, r.acceptedIdx, p), r.acceptedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("wrong policy digest on a denial", func(t *testing.T) {
		p := r.withDecision(honest[r.deniedIdx], func(d *proofs.Decision) { d.PolicyDigest = otherDigest })
		expectReplayError(t, replaced(honest, r.deniedIdx, p), r.deniedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("previous policy's digest after an update", func(t *testing.T) {
		p := r.withDecision(honest[r.customIdx], func(d *proofs.Decision) { d.PolicyDigest = honest[1].Policy.Digest })
		expectReplayError(t, replaced(honest, r.customIdx, p), r.customIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("missing policy digest", func(t *testing.T) {
		p := r.withDecision(honest[r.acceptedIdx], func(d *proofs.Decision) { d.PolicyDigest = "" })
		expectReplayError(t, replaced(honest, r.acceptedIdx, p), r.acceptedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("wrong reason", func(t *testing.T) {
		p := r.withDecision(honest[r.deniedIdx], func(d *proofs.Decision) { d.Reasons = []string{proofs.ReasonTierEscalation} })
		expectReplayError(t, replaced(honest, r.deniedIdx, p), r.deniedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("extra reason", func(t *testing.T) {
		p := r.withDecision(honest[r.deniedIdx], func(d *proofs.Decision) {
			d.Reasons = append(d.Reasons, proofs.ReasonTierEscalation)
		})
		expectReplayError(t, replaced(honest, r.deniedIdx, p), r.deniedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("a reason dropped", func(t *testing.T) {
		p := r.withDecision(honest[r.deniedMultiIdx], func(d *proofs.Decision) { d.Reasons = d.Reasons[1:] })
		expectReplayError(t, replaced(honest, r.deniedMultiIdx, p), r.deniedMultiIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("wrong policy ids", func(t *testing.T) {
		p := r.withDecision(honest[r.approvedIdx], func(d *proofs.Decision) { d.PolicyIDs = []string{"high-impact-needs-approval"} })
		expectReplayError(t, replaced(honest, r.approvedIdx, p), r.approvedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("wrong cedar version", func(t *testing.T) {
		p := r.withDecision(honest[r.acceptedIdx], func(d *proofs.Decision) { d.CedarVersion = "v0.0.1" })
		expectReplayError(t, replaced(honest, r.acceptedIdx, p), r.acceptedIdx, proofs.ReasonReplayDecision, true)
	})
	t.Run("approval stripped", func(t *testing.T) {
		// The same delegation without bob's co-signature is denied by the
		// rules; its recorded acceptance no longer matches.
		l := newReplayLog(t)
		orig := honest[r.approvedIdx]
		env := &proofs.Envelope{PayloadType: orig.Env.PayloadType, Payload: orig.Env.Payload}
		env.Signatures = append(env.Signatures, *orig.Env.Signature(r.keys[agPlanner].id))
		leaf := orig.Leaf
		leaf.Envelope = env.Canonical()
		p := l.leaf(leaf, orig.Time)
		expectReplayError(t, replaced(honest, r.approvedIdx, p), r.approvedIdx, proofs.ReasonReplayDecision, true)
	})

	// Entries the log should never have accepted at all, appended last.
	stranger := newEd25519Signer(t)
	tail := newReplayFixture(t)
	nt := len(tail.leaves)
	lateDelegation := func(id string) *proofs.Delegation {
		return &proofs.Delegation{ID: id, Issuer: agAlice, Delegate: agPlanner, RootSubject: agAlice, Task: "/tickets",
			NotBefore: proofs.FormatTime(tail.now), ExpiresAt: proofs.FormatTime(tail.now.Add(time.Hour)), Nonce: "nonce-" + id}
	}
	for name, p := range map[string]*proofs.ParsedLeaf{
		"delegation signed by an unregistered key": tail.delegate(lateDelegation("d-u1"), stranger),
		"delegation with the issuer's keyid on a stranger's signature": func() *proofs.ParsedLeaf {
			payload, err := proofs.MarshalPayload(lateDelegation("d-u2"))
			if err != nil {
				t.Fatal(err)
			}
			s := stranger.signDSSE(t, proofs.PayloadTypeDelegation, payload)
			s.KeyID = tail.keys[agAlice].id
			env := &proofs.Envelope{PayloadType: proofs.PayloadTypeDelegation, Payload: payload, Signatures: []proofs.Signature{s}}
			return tail.leaf(proofs.Leaf{Kind: proofs.KindDelegation, Envelope: env.Canonical(),
				Decision: &proofs.Decision{Outcome: proofs.OutcomeDenied, Reasons: []string{proofs.ReasonSignatureInvalid}}}, tail.tick())
		}(),
		"delegation signed only by an approver": tail.delegate(lateDelegation("d-u3"), tail.keys[agBob]),
		"key binding not signed by a registrar": tail.register("spiffe://example.org/agent/new", proofs.TierExecute, false, stranger),
		"key binding signed by an admin":        tail.register("spiffe://example.org/agent/new2", proofs.TierExecute, false, tail.admin),
		"policy not signed by an admin":         tail.adminPolicy(customPolicy, tail.registrar),
		"revocation signed by another agent":    tail.revoke("d-c", agWorker, false, tail.keys[agReviewer]),
		"revocation by an unregistered issuer":  tail.revoke("d-c", "spiffe://example.org/agent/nobody", false, stranger),
	} {
		t.Run(name, func(t *testing.T) {
			expectReplayError(t, appended(tail.leaves[:nt], p), nt, proofs.ReasonReplayUnauthentic, true)
		})
	}
}

func TestReplayStructure(t *testing.T) {
	r := newReplayFixture(t)
	t.Run("out of order", func(t *testing.T) {
		rp := proofs.NewReplay()
		wantReason(t, rp.Apply(1, r.leaves[0]), proofs.ReasonReplayOrder)
		if err := rp.Apply(0, r.leaves[0]); err != nil {
			t.Errorf("Apply(0) after a refused out-of-order call: %v", err)
		}
		wantReason(t, rp.Apply(0, r.leaves[1]), proofs.ReasonReplayOrder)
	})
	t.Run("config missing", func(t *testing.T) {
		rp := proofs.NewReplay()
		wantReason(t, rp.Apply(0, r.leaves[1]), proofs.ReasonReplayConfig)
	})
	t.Run("log time decreased", func(t *testing.T) {
		last := r.leaves[len(r.leaves)-1]
		early := r.leaf(r.leaves[2].Leaf, last.Time.Add(-time.Nanosecond)) // a binding, replayed
		expectReplayError(t, appended(r.leaves, early), len(r.leaves), proofs.ReasonReplayLogTime, true)
	})
	t.Run("equal log times are fine", func(t *testing.T) {
		last := r.leaves[len(r.leaves)-1]
		same := r.leaf(r.leaves[0].Leaf, last.Time) // the config again
		if _, errs := replayAll(appended(r.leaves, same)); len(errs) != 0 {
			t.Errorf("errors: %v", errs)
		}
	})
	t.Run("delegation before any policy", func(t *testing.T) {
		l := newReplayLog(t)
		l.add(l.config())
		l.add(l.register(agAlice, proofs.TierExecute, true, l.registrar))
		l.add(l.register(agPlanner, proofs.TierExecute, false, l.registrar))
		d := &proofs.Delegation{ID: "g", Issuer: agAlice, Delegate: agPlanner, RootSubject: agAlice, Task: "/",
			NotBefore: proofs.FormatTime(l.now), ExpiresAt: proofs.FormatTime(l.now.Add(time.Hour)), Nonce: "nonce-g-1"}
		l.add(l.delegate(d, l.keys[agAlice]))
		expectReplayError(t, l.leaves, 3, proofs.ReasonReplayPolicyMissing, true)
	})
}
