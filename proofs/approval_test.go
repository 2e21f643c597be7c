package proofs_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// A human registered under another trust domain.
const agMallory = "spiffe://evil.org/human/mallory"

// TestRuleApprovalFromIssuerDomain: finding 9 of issue 11. Under the
// default policy only a human of the issuer's own trust domain approves a
// high-impact hand-off; a registered human of any other domain does not,
// unless a policy names that domain.
func TestRuleApprovalFromIssuerDomain(t *testing.T) {
	withMallory := func(f *ruleFixture) { f.keys[agMallory] = f.st.register(f.t, agMallory, proofs.TierExecute, true) }
	high := func(approvers ...string) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			withMallory(f)
			in.D.Scopes = []string{"tickets:admin"}
			in.Sigs.Approvers = approvers
		}
	}
	deny := []string{proofs.ReasonApprovalRequired}
	runRuleCases(t, []ruleCase{
		{name: "approver of the issuer's domain", mod: high(agBob)},
		{name: "approver of another domain denied", mod: high(agMallory), want: deny},
		{name: "approvers of both domains", mod: high(agMallory, agBob)},
		{name: "restricted data, approver of another domain denied", mod: func(f *ruleFixture, in *ruleInput) {
			high(agMallory)(f, in)
			in.D.Scopes, in.D.DataClasses = []string{"tickets:read"}, []string{"restricted"}
		}, want: deny},
		{name: "the delegate's own approval from its domain does not count", mod: func(f *ruleFixture, in *ruleInput) {
			high(agBob)(f, in)
			in.D.Delegate = agBob
		}, want: deny},
	})

	// A policy may name another domain whose humans approve too.
	text, err := os.ReadFile("../ledger/default.cedar")
	if err != nil {
		t.Fatal(err)
	}
	named := strings.Replace(string(text), `!(principal.human || context.approver_domains.contains(context.issuer_domain))`,
		`!(principal.human || context.approver_domains.contains(context.issuer_domain) || context.approver_domains.contains("evil.org"))`, 1)
	if named == string(text) {
		t.Fatal("default.cedar no longer has the approval clause this test edits")
	}
	pol := mustParsePolicy(t, named)
	f := newRuleFixture(t, ruleBase)
	withMallory(f)
	d := f.child("d-new", f.root, agPlanner, agReviewer)
	d.Scopes = []string{"tickets:admin"}
	in := ruleInput{D: d, Sigs: proofs.SignatureCheck{Approvers: []string{agMallory}}, T: ruleBase.Add(time.Minute), Lim: proofs.DefaultRuleLimits(), Pol: pol}
	checkDecision(t, decideAndCheck(t, f.st, in), pol, nil)
}

// TestHumanApprovedIsIssuerDomain: the context's human_approved, which
// policies written before approver_domains existed rely on, means the same
// as the default policy's clause.
func TestHumanApprovedIsIssuerDomain(t *testing.T) {
	pol := mustParsePolicy(t, `@id("allow") permit (principal, action, resource);
@id("need") @reason("approval_required") forbid (principal, action, resource) when { context.scopes.contains("tickets:admin") && !context.human_approved };`)
	f := newRuleFixture(t, ruleBase)
	f.keys[agMallory] = f.st.register(t, agMallory, proofs.TierExecute, true)
	for _, c := range []struct {
		approver string
		want     []string
	}{{agMallory, []string{proofs.ReasonApprovalRequired}}, {agBob, nil}} {
		d := f.child("d-new", f.root, agPlanner, agReviewer)
		d.Scopes = []string{"tickets:admin"}
		in := ruleInput{D: d, Sigs: proofs.SignatureCheck{Approvers: []string{c.approver}}, T: ruleBase.Add(time.Minute), Lim: proofs.DefaultRuleLimits(), Pol: pol}
		checkDecision(t, decideAndCheck(t, f.st, in), pol, c.want)
	}
}
