package proofs_test

import (
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// TestWithdrawalRevokesIssued: finding 10 of issue 11. A withdrawn key's
// outstanding delegations stayed in force and kept spawning children. A
// withdrawal with revoke_issued revokes every delegation the agent issued
// before it, with cascade; a withdrawal without it, and delegations of a
// later binding, are unaffected.
func TestWithdrawalRevokesIssued(t *testing.T) {
	at := ruleBase.Add(time.Minute)
	withdraw := func(f *ruleFixture, revokeIssued bool) {
		f.st.bind(t, &proofs.KeyBinding{Agent: agPlanner, PublicKey: f.keys[agPlanner].der, Tier: proofs.TierExecute, Revoked: true, RevokeIssued: revokeIssued, IssuedAt: ts(ruleBase), Nonce: "withdraw-nonce"})
	}
	for _, revokeIssued := range []bool{false, true} {
		f := newRuleFixture(t, ruleBase) // d-root: alice → planner; d-b: planner → worker
		withdraw(f, revokeIssued)
		st, err := proofs.EffectiveStatus(f.st, f.b.ID, at, proofs.DefaultRuleLimits())
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: "active", true: "revoked"}[revokeIssued]; st.State != want || (revokeIssued && st.RevokedVia != f.b.ID) {
			t.Errorf("revoke_issued=%v: status of planner's d-b = %+v, want %s", revokeIssued, st, want)
		}
		if st, _ := proofs.EffectiveStatus(f.st, f.root.ID, at, proofs.DefaultRuleLimits()); st.State != "active" {
			t.Errorf("revoke_issued=%v: alice's root grant to planner = %+v, want active", revokeIssued, st)
		}
		// The worker hands on under d-b: the cascade.
		d := f.child("d-new", f.b, agWorker, agReviewer)
		var want []string
		if revokeIssued {
			want = []string{proofs.ReasonParentRevoked}
		}
		checkDecision(t, decideAndCheck(t, f.st, ruleInput{D: d, T: at, Lim: proofs.DefaultRuleLimits()}), nil, want)
		if !revokeIssued {
			continue
		}
		// Registered again, planner's new delegations are in force.
		f.keys[agPlanner] = f.st.register(t, agPlanner, proofs.TierExecute, false)
		again := f.child("d-again", f.root, agPlanner, agWorker)
		checkDecision(t, decideAndCheck(t, f.st, ruleInput{D: again, T: at, Lim: proofs.DefaultRuleLimits()}), nil, nil)
		f.st.accept(again)
		checkDecision(t, decideAndCheck(t, f.st, ruleInput{D: f.child("d-under", again, agWorker, agReviewer), T: at, Lim: proofs.DefaultRuleLimits()}), nil, nil)
		if st, _ := proofs.EffectiveStatus(f.st, f.b.ID, at, proofs.DefaultRuleLimits()); st.State != "revoked" {
			t.Errorf("re-registering planner revived d-b: %+v", st)
		}
	}
}

func TestKeyBindingRevokeIssuedNeedsRevoked(t *testing.T) {
	k := newEd25519Signer(t)
	kb := &proofs.KeyBinding{Agent: agPlanner, PublicKey: k.der, Tier: proofs.TierDraft, RevokeIssued: true, IssuedAt: ts(ruleBase), Nonce: "nonce-1234"}
	wantReason(t, kb.Validate(), proofs.ReasonPayloadMalformed)
	kb.Revoked = true
	if err := kb.Validate(); err != nil {
		t.Error(err)
	}
}
