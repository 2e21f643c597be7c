package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// replayLog replays every entry of l with proofs.Replay and fails on any
// discrepancy; it returns the number of denials.
func replayLog(t *testing.T, l *Log) int {
	t.Helper()
	rp := proofs.NewReplay()
	denials := 0
	for i, raw := range allLeaves(t, l) {
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := rp.Apply(uint64(i), p); err != nil {
			t.Errorf("replay: %v", err)
		}
		if p.Decision != nil && p.Decision.Outcome == proofs.OutcomeDenied {
			denials++
		}
	}
	return denials
}

func signPayload(t testing.TB, k *testKey, typ string, v any) []byte {
	t.Helper()
	payload, err := proofs.MarshalPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	env, err := k.signer.SignEnvelope(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func revokedBinding(t testing.TB, registrar *testKey, agent string, key *testKey) []byte {
	kb := &proofs.KeyBinding{Agent: agent, PublicKey: key.pub().DER, Tier: proofs.TierExecute, Revoked: true,
		IssuedAt: proofs.FormatTime(time.Now()), Nonce: fmt.Sprintf("r%015x", randUint(t))}
	return signPayload(t, registrar, proofs.PayloadTypeAgent, kb)
}

// TestKeyLifecycle: rotation and revocation are key-binding entries, and a
// signature is judged by the binding in force at its entry.
func TestKeyLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	root := signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))
	if a, err := f.log.Append(ctx, root); err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("root grant: %+v %v", a, err)
	}
	otherID := "spiffe://example.org/agent/other"
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, otherID, newTestKey(t), proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	child := func(id, nonce string) *proofs.Delegation {
		d := delegation(id, agentID, otherID, nonce)
		d.Parent, d.RootSubject, d.Task = "dlg_root", humanID, "/tickets"
		return d
	}
	withOld := signDelegation(t, f.agent, child("dlg_a", "nonce-a0000001"))

	// Rotate the agent's key.
	newKey := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, agentID, newKey, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	size := f.log.Checkpoint().Size
	if _, err := f.log.Append(ctx, withOld); proofs.Reason(err) != proofs.ReasonSignatureMissing {
		t.Fatalf("old key after rotation: %v, want %s", err, proofs.ReasonSignatureMissing)
	}
	if f.log.Checkpoint().Size != size {
		t.Fatal("an envelope signed by a rotated-out key was written")
	}
	if a, err := f.log.Append(ctx, signDelegation(t, newKey, child("dlg_b", "nonce-b0000001"))); err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("new key: %+v %v", a, err)
	}
	// A key already bound to another agent cannot be bound again.
	a, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, "spiffe://example.org/agent/thief", newKey, proofs.TierExecute, false))
	if err != nil || a.Decision.Outcome != proofs.OutcomeDenied || a.Decision.Reasons[0] != proofs.ReasonKeyInUse {
		t.Fatalf("binding a key in use: %+v %v", a, err)
	}
	// Revoke the agent's binding: its signatures no longer count, and it
	// can no longer receive work.
	if _, err := f.log.Append(ctx, revokedBinding(t, f.registrar, agentID, newKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, signDelegation(t, newKey, child("dlg_c", "nonce-c0000001"))); proofs.Reason(err) != proofs.ReasonIssuerNotRegistered {
		t.Fatalf("revoked key: %v, want %s", err, proofs.ReasonIssuerNotRegistered)
	}
	to := signDelegation(t, f.human, delegation("dlg_d", humanID, agentID, "nonce-d0000001"))
	if a, err := f.log.Append(ctx, to); err != nil || !slices.Contains(a.Decision.Reasons, proofs.ReasonDelegateUnknown) {
		t.Fatalf("delegating to a revoked agent: %+v %v", a, err)
	}
	// The bindings survive a restart.
	f.log.Close()
	f.log = openTestLog(t, f.dir, f.registrar, f.withAdmin)
	if _, err := f.log.Append(ctx, signDelegation(t, newKey, child("dlg_e", "nonce-e0000001"))); proofs.Reason(err) != proofs.ReasonIssuerNotRegistered {
		t.Fatalf("revoked key after restart: %v", err)
	}
	replayLog(t, f.log)
}

// TestPolicyChangeFlipsFromItsIndex: a policy entry changes decisions from
// its index on; earlier decisions still replay under the policy recorded
// before it.
func TestPolicyChangeFlipsFromItsIndex(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	partner := "spiffe://partner.example/agent/x"
	pk := newTestKey(t)
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, partner, pk, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	before, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_x1", humanID, partner, "nonce-x1000001")))
	if err != nil || before.Decision.Outcome != proofs.OutcomeDenied || before.Decision.Reasons[0] != proofs.ReasonCrossDomain {
		t.Fatalf("crossing under the default policy: %+v %v", before, err)
	}
	oldDigest := before.Decision.PolicyDigest
	if !slices.Equal(before.Decision.PolicyIDs, []string{"same-trust-domain"}) {
		t.Fatalf("determining policies %v", before.Decision.PolicyIDs)
	}
	text := strings.Replace(string(defaultPolicy), "when { context.issuer_domain != context.delegate_domain };",
		"when { context.issuer_domain != context.delegate_domain }\nunless { context.delegate_domain == \"partner.example\" };", 1)
	upd := &proofs.PolicyUpdate{Text: text, IssuedAt: proofs.FormatTime(time.Now()), Nonce: "policy-nonce-1"}
	// Only an admin may set it.
	if _, err := f.log.Append(ctx, signPayload(t, f.human, proofs.PayloadTypePolicy, upd)); proofs.Reason(err) != ReasonAdminUnknown {
		t.Fatalf("policy by a non-admin: %v", err)
	}
	// An invalid policy is refused before anything is written.
	bad := &proofs.PolicyUpdate{Text: "permit (principal, action, resource);", IssuedAt: upd.IssuedAt, Nonce: "policy-nonce-2"}
	if _, err := f.log.Append(ctx, signPayload(t, f.admin, proofs.PayloadTypePolicy, bad)); proofs.Reason(err) != proofs.ReasonPolicyInvalid {
		t.Fatalf("policy without @id: %v", err)
	}
	set, err := f.log.Append(ctx, signPayload(t, f.admin, proofs.PayloadTypePolicy, upd))
	if err != nil {
		t.Fatal(err)
	}
	after, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_x2", humanID, partner, "nonce-x2000001")))
	if err != nil || after.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("crossing after the policy change: %+v %v", after, err)
	}
	if after.Decision.PolicyDigest == oldDigest || after.Index <= set.Index {
		t.Fatal("the new decision does not record the new policy")
	}
	// The policy in force survives a restart.
	f.log.Close()
	f.log = openTestLog(t, f.dir, f.registrar, f.withAdmin)
	again, err := f.log.Append(ctx, signDelegation(t, f.human, delegation("dlg_x3", humanID, partner, "nonce-x3000001")))
	if err != nil || again.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("after restart: %+v %v", again, err)
	}
	if n := replayLog(t, f.log); n != 1 {
		t.Fatalf("%d denials replayed, want 1", n)
	}
}

// TestRevocationCascadesAndStatus: revocations by the issuer, an ancestor's
// issuer and an admin; refused for others; descendants refused afterwards;
// the effective status follows.
func TestRevocationCascadesAndStatus(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	other := newTestKey(t)
	otherID := "spiffe://example.org/agent/other"
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, otherID, other, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	mustAccept := func(env []byte) {
		t.Helper()
		a, err := f.log.Append(ctx, env)
		if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("append: %+v %v", a, err)
		}
	}
	mustAccept(signDelegation(t, f.human, delegation("dlg_r", humanID, agentID, "nonce-r0000001")))
	c := delegation("dlg_c", agentID, otherID, "nonce-c0000001")
	c.Parent, c.RootSubject = "dlg_r", humanID
	mustAccept(signDelegation(t, f.agent, c))
	revoke := func(k *testKey, issuer, target, nonce string) *Appended {
		t.Helper()
		a, err := f.log.Append(ctx, signPayload(t, k, proofs.PayloadTypeRevocation, &proofs.Revocation{
			Delegation: target, Issuer: issuer, Reason: "test", IssuedAt: proofs.FormatTime(time.Now()), Nonce: nonce}))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := revoke(other, otherID, "dlg_r", "nonce-v0000001"); a.Decision.Outcome != proofs.OutcomeDenied || a.Decision.Reasons[0] != proofs.ReasonRevokeNotAuthorized {
		t.Fatalf("revocation by a descendant: %+v", a.Decision)
	}
	if a := revoke(f.agent, agentID, "dlg_nope", "nonce-v0000002"); a.Decision.Reasons[0] != proofs.ReasonDelegationNotFound {
		t.Fatalf("revoking nothing: %+v", a.Decision)
	}
	if s, _ := f.log.Status(ctx, "dlg_c"); s.State != "active" {
		t.Fatalf("status before revocation: %+v", s)
	}
	// The human (issuer of the root, an ancestor of dlg_c) revokes the root.
	if a := revoke(f.human, humanID, "dlg_r", "nonce-v0000003"); a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("revocation by the root's issuer: %+v", a.Decision)
	}
	if s, _ := f.log.Status(ctx, "dlg_c"); s.State != "revoked" || s.RevokedVia != "dlg_r" {
		t.Fatalf("cascaded status: %+v", s)
	}
	g := delegation("dlg_g", otherID, agentID, "nonce-g0000001")
	g.Parent, g.RootSubject, g.ExpiresAt = "dlg_c", humanID, c.ExpiresAt
	if a, err := f.log.Append(ctx, signDelegation(t, other, g)); err != nil || a.Decision.Reasons[0] != proofs.ReasonParentRevoked {
		t.Fatalf("grandchild after revocation: %+v %v", a, err)
	}
	// An admin may revoke anything, with no issuer named.
	mustAccept(signDelegation(t, f.human, delegation("dlg_r2", humanID, agentID, "nonce-r2000001")))
	if a := revoke(f.admin, "", "dlg_r2", "nonce-v0000004"); a.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("admin revocation: %+v", a.Decision)
	}
	replayLog(t, f.log)
}

// TestGeneratedLogReplays builds a log of random delegations, revocations,
// rotations and a policy change, submitted concurrently so that batches mix
// them, and replays every recorded decision offline.
func TestGeneratedLogReplays(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	f := newFixture(t, func(o *Options) { o.MaxBatchWait = 2 * time.Millisecond })
	ctx := context.Background()
	type agent struct {
		id  string
		key *testKey
	}
	agents := []agent{{humanID, f.human}, {agentID, f.agent}}
	for i := 0; i < 10; i++ {
		domain := "example.org"
		if i%4 == 3 {
			domain = "partner.example"
		}
		tier := []string{proofs.TierDraft, proofs.TierExecute}[i%2]
		a := agent{fmt.Sprintf("spiffe://%s/agent/g%d", domain, i), newTestKey(t)}
		if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, a.id, a.key, tier, i == 9)); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	tasks := []string{"/", "/tickets", "/tickets/triage", "/tickets/triage/p1", "/billing"}
	scopes := []string{"tickets:read", "tickets:write", "tickets:delete", "billing:read"}
	var mu sync.Mutex
	var accepted []*proofs.Delegation
	pick := func(s []string) []string {
		var out []string
		for _, x := range s {
			if rng.IntN(2) == 0 {
				out = append(out, x)
			}
		}
		return out
	}
	for wave := 0; wave < 25; wave++ {
		var envs [][]byte
		mu.Lock()
		for j := 0; j < 8; j++ {
			from := agents[rng.IntN(len(agents))]
			to := agents[2+rng.IntN(len(agents)-2)]
			now := time.Now()
			d := &proofs.Delegation{
				ID: fmt.Sprintf("dlg_%d_%d", wave, j), Issuer: from.id, Delegate: to.id, RootSubject: from.id,
				Task: tasks[rng.IntN(len(tasks))], Scopes: pick(scopes), DataClasses: pick([]string{"internal", "restricted"}),
				NotBefore: proofs.FormatTime(now), ExpiresAt: proofs.FormatTime(now.Add(time.Duration(1+rng.IntN(70)) * time.Minute)),
				Nonce: fmt.Sprintf("nonce-%d-%d", wave, rng.IntN(40)),
			}
			if rng.IntN(5) != 0 && (len(accepted) == 0 || rng.IntN(3) == 0) {
				from = agents[[]int{0, len(agents) - 1}[rng.IntN(2)]] // a human root grant
				d.Issuer, d.RootSubject = from.id, from.id
			} else if len(accepted) > 0 {
				// Mostly a well-formed child of an accepted delegation,
				// sometimes widened or stretched.
				p := accepted[rng.IntN(len(accepted))]
				d.Parent, d.RootSubject = p.ID, p.RootSubject
				if rng.IntN(6) != 0 {
					d.Issuer = p.Delegate
				}
				for _, a := range agents {
					if a.id == d.Issuer {
						from = a
					}
				}
				if rng.IntN(5) != 0 {
					d.Task, d.Scopes, d.DataClasses = p.Task, pick(p.Scopes), pick(p.DataClasses)
				}
				if rng.IntN(5) != 0 {
					d.ExpiresAt = proofs.FormatTime(now.Add(time.Duration(1+rng.IntN(9)) * time.Minute))
				}
			}
			if rng.IntN(10) == 0 && len(accepted) > 0 {
				p := accepted[rng.IntN(len(accepted))]
				envs = append(envs, signPayload(t, from.key, proofs.PayloadTypeRevocation, &proofs.Revocation{
					Delegation: p.ID, Issuer: from.id, Reason: "random", IssuedAt: proofs.FormatTime(now), Nonce: fmt.Sprintf("rev-%d-%d", wave, j)}))
				continue
			}
			envs = append(envs, signDelegation(t, from.key, d))
		}
		mu.Unlock()
		if wave == 12 {
			upd := &proofs.PolicyUpdate{Text: strings.Replace(string(defaultPolicy), `@reason("cross_domain")`, "", 1) + "\n", IssuedAt: proofs.FormatTime(time.Now()), Nonce: "policy-wave-12"}
			envs = append(envs, signPayload(t, f.admin, proofs.PayloadTypePolicy, upd))
		}
		var wg sync.WaitGroup
		for _, env := range envs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := f.log.Append(ctx, env)
				if err != nil {
					return // not authentic under the bindings in force: refused, nothing written
				}
				p, err := proofs.ParseLeaf(a.Leaf)
				if err != nil {
					t.Error(err)
					return
				}
				if p.Delegation != nil && p.Decision.Outcome == proofs.OutcomeAccepted && !a.Duplicate {
					mu.Lock()
					accepted = append(accepted, p.Delegation)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	denials := replayLog(t, f.log)
	if denials == 0 || len(accepted) == 0 {
		t.Fatalf("generated log has %d accepted, %d denials: not a useful replay", len(accepted), denials)
	}
	t.Logf("%d entries, %d accepted delegations, %d denials", f.log.Checkpoint().Size, len(accepted), denials)
}
