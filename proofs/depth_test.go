package proofs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// TestRuleLimitsValidate: the depth limit is bounded by the chain walk, so
// no configuration lets a chain grow past what the rules look at.
func TestRuleLimitsValidate(t *testing.T) {
	for _, c := range []struct {
		depth int
		ok    bool
	}{{0, false}, {-1, false}, {1, true}, {5, true}, {proofs.MaxChainDepth, true}, {proofs.MaxChainDepth + 1, false}, {264, false}} {
		lim := proofs.DefaultRuleLimits()
		lim.MaxDepth = c.depth
		err := lim.Validate()
		if c.ok != (err == nil) {
			t.Errorf("MaxDepth %d: Validate() = %v, want ok=%v", c.depth, err, c.ok)
		}
		if err != nil && proofs.Reason(err) != proofs.ReasonRuleLimitsInvalid {
			t.Errorf("MaxDepth %d: reason %q", c.depth, proofs.Reason(err))
		}
	}
	lim := proofs.DefaultRuleLimits()
	lim.LifetimeRootSeconds = 0
	if proofs.Reason(lim.Validate()) != proofs.ReasonRuleLimitsInvalid {
		t.Error("a zero lifetime validates")
	}
}

// TestRevocationCascadesAtMaxChainDepth: under the largest allowed depth
// limit, a revocation of the root grant reaches the deepest link a chain
// can have, for new children (parent_revoked), for the status and for
// revocations by the root's issuer. The review found a child at depth 264
// of a revoked root accepted when the limit was above the walk's cap.
func TestRevocationCascadesAtMaxChainDepth(t *testing.T) {
	f := newRuleFixture(t, ruleBase)
	lim := proofs.DefaultRuleLimits()
	lim.MaxDepth = proofs.MaxChainDepth
	lim.LifetimeExecuteSeconds = 8 * 3600
	at := ruleBase.Add(time.Minute)
	agent := func(i int) string { return fmt.Sprintf("spiffe://example.org/agent/a%d", i) }
	last := depthChain(t, f, proofs.MaxChainDepth-1) // c1 .. c255

	// Before the revocation a child at the maximal depth is accepted.
	deepest := f.child("c256", last, last.Delegate, agent(proofs.MaxChainDepth))
	checkDecision(t, decideAndCheck(t, f.st, ruleInput{D: deepest, T: at, Lim: lim}), nil, nil)

	f.st.revoked["c1"] = true
	checkDecision(t, decideAndCheck(t, f.st, ruleInput{D: deepest, T: at, Lim: lim}), nil, []string{proofs.ReasonParentRevoked})
	f.st.accept(deepest) // as if accepted before the revocation
	f.keys[agent(proofs.MaxChainDepth+1)] = f.st.register(t, agent(proofs.MaxChainDepth+1), proofs.TierExecute, false)
	over := f.child("c257", deepest, deepest.Delegate, agent(proofs.MaxChainDepth+1))
	checkDecision(t, decideAndCheck(t, f.st, ruleInput{D: over, T: at, Lim: lim}), nil, []string{proofs.ReasonParentRevoked, proofs.ReasonDepthExceeded})

	st, err := proofs.EffectiveStatus(f.st, deepest.ID, at, lim)
	if err != nil || st.State != "revoked" || st.RevokedVia != "c1" {
		t.Errorf("EffectiveStatus(c256) = %+v, %v; want revoked via c1", st, err)
	}
	rev := &proofs.Revocation{Delegation: deepest.ID, Issuer: agAlice, Reason: "test", IssuedAt: ts(ruleBase), Nonce: "revoke-nonce-256"}
	if dec, err := proofs.DecideRevocation(f.st, rev, false, lim); err != nil || dec.Outcome != proofs.OutcomeAccepted {
		t.Errorf("the root issuer revoking c256 = %+v, %v", dec, err)
	}

	// A chain longer than any valid limit allows (only a state that no
	// valid log produces) is never decided on a truncated walk.
	f.st.accept(over)
	if _, err := proofs.DecideDelegation(f.st, f.child("c258", over, over.Delegate, agent(proofs.MaxChainDepth+2)), proofs.SignatureCheck{}, at, lim, nil); proofs.Reason(err) != proofs.ReasonChainTooLong {
		t.Errorf("DecideDelegation past the walk: %v, want %s", err, proofs.ReasonChainTooLong)
	}
	if _, err := proofs.EffectiveStatus(f.st, over.ID, at, lim); proofs.Reason(err) != proofs.ReasonChainTooLong {
		t.Errorf("EffectiveStatus past the walk: %v, want %s", err, proofs.ReasonChainTooLong)
	}
}

// TestReplayRefusesDepthAboveWalk: an auditor replaying a log whose
// configuration allows chains longer than the rules walk reports it.
func TestReplayRefusesDepthAboveWalk(t *testing.T) {
	for _, depth := range []int{proofs.MaxChainDepth, proofs.MaxChainDepth + 1} {
		rules := proofs.DefaultRuleLimits()
		rules.MaxDepth = depth
		leaf := &proofs.Leaf{Version: proofs.LeafVersion, Kind: proofs.KindLogConfig, LogTime: proofs.FormatLogTime(ruleBase),
			Config: &proofs.LogConfig{Origin: "test.example/log", Limits: proofs.DefaultLimits(), Rules: rules}}
		raw, err := leaf.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = proofs.NewReplay().Apply(0, p)
		if depth <= proofs.MaxChainDepth && err != nil {
			t.Errorf("max depth %d: %v", depth, err)
		}
		if depth > proofs.MaxChainDepth && proofs.Reason(err) != proofs.ReasonReplayConfig {
			t.Errorf("max depth %d: replay says %v, want %s", depth, err, proofs.ReasonReplayConfig)
		}
	}
}
