package proofs_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Agents of the rule tests. Humans are registered with the execute tier
// (a binding always names a tier); their Human flag puts them above it.
const (
	agAlice    = "spiffe://example.org/human/alice"
	agBob      = "spiffe://example.org/human/bob"
	agPlanner  = "spiffe://example.org/agent/planner"
	agWorker   = "spiffe://example.org/agent/worker"
	agReviewer = "spiffe://example.org/agent/reviewer"
	agDrafter  = "spiffe://example.org/agent/drafter"
	agDrafter2 = "spiffe://example.org/agent/drafter2"
	agPartner  = "spiffe://partner.example/agent/helper"
	agGhost    = "spiffe://example.org/agent/ghost" // never registered
)

// chainState is an in-memory proofs.ChainState: what the ledger keeps in
// Badger and an auditor rebuilds by replay, reduced to maps.
type chainState struct {
	bindings *proofs.Bindings
	dels     map[string]*proofs.DelegationRecord
	revoked  map[string]bool
	usedIDs  map[string]bool
	nonces   map[[2]string]bool
	next     uint64
}

var _ proofs.ChainState = (*chainState)(nil)

func newChainState() *chainState {
	return &chainState{
		bindings: proofs.NewBindings(),
		dels:     map[string]*proofs.DelegationRecord{},
		revoked:  map[string]bool{},
		usedIDs:  map[string]bool{},
		nonces:   map[[2]string]bool{},
	}
}

func (s *chainState) Binding(agent string) *proofs.Binding { return s.bindings.Agent(agent) }
func (s *chainState) Delegation(id string) (*proofs.DelegationRecord, error) {
	return s.dels[id], nil
}
func (s *chainState) Revoked(id string) (bool, error) { return s.revoked[id], nil }
func (s *chainState) IDUsed(id string) (bool, error)  { return s.usedIDs[id], nil }
func (s *chainState) IssuedRevoked(agent string) (uint64, bool) {
	return s.bindings.IssuedRevoked(agent)
}
func (s *chainState) NonceUsed(issuer, nonce string) (bool, error) {
	return s.nonces[[2]string{issuer, nonce}], nil
}

// register binds agent to a fresh Ed25519 key and returns the key.
func (s *chainState) register(t testing.TB, agent, tier string, human bool) *testSigner {
	t.Helper()
	k := newEd25519Signer(t)
	s.bind(t, &proofs.KeyBinding{Agent: agent, PublicKey: k.der, Tier: tier, Human: human, IssuedAt: "2020-01-01T00:00:00Z", Nonce: "binding-" + fmt.Sprint(s.next)})
	return k
}

// bind applies a key binding entry (a revoked one removes the agent's).
func (s *chainState) bind(t testing.TB, kb *proofs.KeyBinding) {
	t.Helper()
	key, err := proofs.ParsePublicKeyDER(kb.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s.bindings = s.bindings.With(kb, key, s.next)
	s.next++
}

// accept records d as an accepted delegation.
func (s *chainState) accept(d *proofs.Delegation) {
	s.dels[d.ID] = &proofs.DelegationRecord{Index: s.next, D: d}
	s.usedIDs[d.ID] = true
	s.nonces[[2]string{d.Issuer, d.Nonce}] = true
	s.next++
}

// loadDefaultPolicy parses the shipped default policy.
func loadDefaultPolicy(t testing.TB) *proofs.Policy {
	t.Helper()
	text, err := os.ReadFile("../ledger/default.cedar")
	if err != nil {
		t.Fatal(err)
	}
	p, err := proofs.ParsePolicy(text)
	if err != nil {
		t.Fatalf("ParsePolicy(default.cedar): %v", err)
	}
	return p
}

func mustParsePolicy(t testing.TB, text string) *proofs.Policy {
	t.Helper()
	p, err := proofs.ParsePolicy([]byte(text))
	if err != nil {
		t.Fatalf("ParsePolicy(%q): %v", text, err)
	}
	return p
}

// ruleBase is long past, so that a test judging expiry by the wall clock
// instead of the log time would see everything expired.
var ruleBase = time.Date(2020, 6, 1, 10, 0, 0, 0, time.UTC)

func ts(t time.Time) string { return proofs.FormatTime(t) }

// ruleFixture is a small registered population with two accepted
// delegations:
//
//	d-root: alice (human) → planner, /tickets, 8 h, every scope and class
//	d-b:    planner → worker under d-root, /tickets/triage, 15 min
type ruleFixture struct {
	t    testing.TB
	st   *chainState
	keys map[string]*testSigner
	base time.Time
	root *proofs.Delegation
	b    *proofs.Delegation
}

func newRuleFixture(t testing.TB, base time.Time) *ruleFixture {
	t.Helper()
	f := &ruleFixture{t: t, st: newChainState(), keys: map[string]*testSigner{}, base: base}
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
		{agDrafter2, proofs.TierDraft, false},
		{agPartner, proofs.TierExecute, false},
	} {
		f.keys[a.id] = f.st.register(t, a.id, a.tier, a.human)
	}
	f.root = &proofs.Delegation{
		ID: "d-root", Issuer: agAlice, Delegate: agPlanner, RootSubject: agAlice,
		Task:         "/tickets",
		Scopes:       []string{"tickets:admin", "tickets:delete", "tickets:read", "tickets:write"},
		DataClasses:  []string{"internal", "pii", "restricted"},
		Destinations: []string{"crm", "jira"},
		NotBefore:    ts(base), ExpiresAt: ts(base.Add(8 * time.Hour)),
		Nonce: "nonce-root",
	}
	f.b = &proofs.Delegation{
		ID: "d-b", Issuer: agPlanner, Delegate: agWorker, RootSubject: agAlice, Parent: "d-root",
		Task:         "/tickets/triage",
		Scopes:       []string{"tickets:read", "tickets:write"},
		DataClasses:  []string{"internal", "pii"},
		Destinations: []string{"crm"},
		NotBefore:    ts(base), ExpiresAt: ts(base.Add(15 * time.Minute)),
		Nonce: "nonce-of-b",
	}
	for _, d := range []*proofs.Delegation{f.root, f.b} {
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		f.st.accept(d)
	}
	return f
}

// child returns a valid, acceptable delegation from issuer to delegate under
// parent: the parent's task, its first low-impact scope and data class, its
// first destination, valid from base for 10 minutes.
func (f *ruleFixture) child(id string, parent *proofs.Delegation, issuer, delegate string) *proofs.Delegation {
	return &proofs.Delegation{
		ID: id, Issuer: issuer, Delegate: delegate, RootSubject: parent.RootSubject, Parent: parent.ID,
		Task:         parent.Task,
		Scopes:       firstWhere(parent.Scopes, func(s string) bool { return !strings.HasSuffix(s, ":admin") && !strings.HasSuffix(s, ":delete") }),
		DataClasses:  firstWhere(parent.DataClasses, func(s string) bool { return s != "restricted" }),
		Destinations: slices.Clone(parent.Destinations[:min(1, len(parent.Destinations))]),
		NotBefore:    ts(f.base), ExpiresAt: ts(f.base.Add(10 * time.Minute)),
		Nonce: "nonce-of-" + id,
	}
}

// firstWhere returns the first element of v satisfying ok, as a set.
func firstWhere(v []string, ok func(string) bool) []string {
	for _, x := range v {
		if ok(x) {
			return []string{x}
		}
	}
	return nil
}

// rootGrant returns a root grant from issuer to delegate, valid from base
// for one hour.
func (f *ruleFixture) rootGrant(id, issuer, delegate string) *proofs.Delegation {
	return &proofs.Delegation{
		ID: id, Issuer: issuer, Delegate: delegate, RootSubject: issuer,
		Task:        "/tickets",
		Scopes:      []string{"tickets:read"},
		DataClasses: []string{"internal"},
		NotBefore:   ts(f.base), ExpiresAt: ts(f.base.Add(time.Hour)),
		Nonce: "nonce-of-" + id,
	}
}

// ruleInput is one DecideDelegation call.
type ruleInput struct {
	D    *proofs.Delegation
	Sigs proofs.SignatureCheck
	T    time.Time
	Lim  proofs.RuleLimits
	Pol  *proofs.Policy
}

// ruleCase: want nil means accepted; otherwise the exact set of reasons.
type ruleCase struct {
	name string
	base time.Time // zero: ruleBase
	mod  func(f *ruleFixture, in *ruleInput)
	want []string
}

// runRuleCases decides every case against a fresh fixture. By default the
// input is reviewer's hand-off from planner under d-root at base + 1 min,
// under the default policy and limits, which is accepted.
func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	pol := loadDefaultPolicy(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := c.base
			if base.IsZero() {
				base = ruleBase
			}
			f := newRuleFixture(t, base)
			in := ruleInput{
				D:   f.child("d-new", f.root, agPlanner, agReviewer),
				T:   base.Add(time.Minute),
				Lim: proofs.DefaultRuleLimits(),
				Pol: pol,
			}
			if c.mod != nil {
				c.mod(f, &in)
			}
			if err := in.D.Validate(); err != nil {
				t.Fatalf("test input is not a valid delegation: %v", err)
			}
			dec := decideAndCheck(t, f.st, in)
			checkDecision(t, dec, in.Pol, c.want)
		})
	}
}

// decideAndCheck decides in twice and requires identical decisions.
func decideAndCheck(t testing.TB, st proofs.ChainState, in ruleInput) *proofs.Decision {
	t.Helper()
	dec, err := proofs.DecideDelegation(st, in.D, in.Sigs, in.T, in.Lim, in.Pol)
	if err != nil {
		t.Fatalf("DecideDelegation: %v", err)
	}
	again, err := proofs.DecideDelegation(st, in.D, in.Sigs, in.T, in.Lim, in.Pol)
	if err != nil {
		t.Fatalf("DecideDelegation (again): %v", err)
	}
	if !reflect.DeepEqual(dec, again) {
		t.Fatalf("DecideDelegation is not deterministic: %+v then %+v", dec, again)
	}
	return dec
}

// checkDecision checks an outcome (want nil: accepted; otherwise denied
// with exactly the reasons in want, in any order) and the policy record.
func checkDecision(t testing.TB, dec *proofs.Decision, pol *proofs.Policy, want []string) {
	t.Helper()
	if pol != nil {
		if dec.PolicyDigest != pol.Digest {
			t.Errorf("PolicyDigest = %q, want %q", dec.PolicyDigest, pol.Digest)
		}
		if dec.CedarVersion != proofs.CedarVersion {
			t.Errorf("CedarVersion = %q, want %q", dec.CedarVersion, proofs.CedarVersion)
		}
	}
	if want == nil {
		if dec.Outcome != proofs.OutcomeAccepted || len(dec.Reasons) != 0 {
			t.Fatalf("decision = %+v, want accepted", dec)
		}
		if pol != nil && len(dec.PolicyIDs) == 0 {
			t.Errorf("accepted decision names no determining policy: %+v", dec)
		}
		return
	}
	if dec.Outcome != proofs.OutcomeDenied {
		t.Fatalf("decision = %+v, want denied with %v", dec, want)
	}
	for _, r := range want {
		if !slices.Contains(dec.Reasons, r) {
			t.Errorf("reason %q missing from %v", r, dec.Reasons)
		}
	}
	got, exp := slices.Clone(dec.Reasons), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("reasons = %v, want exactly %v", dec.Reasons, want)
	}
	if len(slices.Compact(got)) != len(dec.Reasons) {
		t.Errorf("reasons %v repeat a code", dec.Reasons)
	}
}

// --- one table per rule -----------------------------------------------------

func TestRuleRootGrantNotHuman(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "human root grant allowed", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agPlanner)
		}},
		{name: "second human root grant allowed", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agBob, agDrafter)
		}},
		{name: "execute-tier agent denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agPlanner, agWorker)
		}, want: []string{proofs.ReasonRootGrantNotHuman}},
		{name: "draft-tier agent denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agDrafter, agDrafter2)
		}, want: []string{proofs.ReasonRootGrantNotHuman}},
		{name: "unregistered issuer denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agGhost, agWorker)
		}, want: []string{proofs.ReasonRootGrantNotHuman}},
		{name: "human whose key was revoked denied", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.bind(f.t, &proofs.KeyBinding{Agent: agBob, PublicKey: f.keys[agBob].der, Tier: proofs.TierExecute, Human: true, Revoked: true, IssuedAt: "2020-01-01T00:00:00Z", Nonce: "revoke-bob"})
			in.D = f.rootGrant("g", agBob, agWorker)
		}, want: []string{proofs.ReasonRootGrantNotHuman}},
	})
}

func TestRuleRootSubjectMismatch(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "child keeps root subject", mod: nil},
		{name: "root grant for another human denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agPlanner)
			in.D.RootSubject = agBob
		}, want: []string{proofs.ReasonRootSubjectMismatch}},
		{name: "child with another root subject denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.RootSubject = agBob
		}, want: []string{proofs.ReasonRootSubjectMismatch}},
		{name: "child naming its issuer as root subject denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.RootSubject = agPlanner
		}, want: []string{proofs.ReasonRootSubjectMismatch}},
	})
}

func TestRuleParentNotFound(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "parent present"},
		{name: "grandchild of present chain", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
		}},
		{name: "unknown parent denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Parent = "d-missing"
		}, want: []string{proofs.ReasonParentNotFound}},
		{name: "revoked-only id is still not found", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.revoked["d-missing"] = true
			in.D.Parent = "d-missing"
		}, want: []string{proofs.ReasonParentNotFound}},
	})
}

func TestRuleNotParentDelegate(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "issuer is the parent's delegate"},
		{name: "another agent denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.root, agReviewer, agWorker)
		}, want: []string{proofs.ReasonNotParentDelegate}},
		{name: "the parent's issuer denied", mod: func(f *ruleFixture, in *ruleInput) {
			// alice is human: no policy concern, only continuity.
			in.D = f.child("d-new", f.b, agAlice, agReviewer)
		}, want: []string{proofs.ReasonNotParentDelegate}},
	})
}

func TestRuleParentRevoked(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "nothing revoked"},
		{name: "unrelated delegation revoked", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.revoked["d-b"] = true // a sibling, not an ancestor
		}},
		{name: "parent revoked", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.revoked["d-root"] = true
		}, want: []string{proofs.ReasonParentRevoked}},
		{name: "direct parent revoked in a longer chain", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.revoked["d-b"] = true
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
		}, want: []string{proofs.ReasonParentRevoked}},
		{name: "grandparent revoked (cascade)", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.revoked["d-root"] = true
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
		}, want: []string{proofs.ReasonParentRevoked}},
		{name: "great-grandparent revoked (cascade)", mod: func(f *ruleFixture, in *ruleInput) {
			c := f.child("d-c", f.b, agWorker, agReviewer)
			f.st.accept(c)
			f.st.revoked["d-root"] = true
			in.D = f.child("d-new", c, agReviewer, agDrafter)
		}, want: []string{proofs.ReasonParentRevoked}},
	})
}

func TestRuleParentExpired(t *testing.T) {
	rootExp := ruleBase.Add(8 * time.Hour)
	lastWindow := func(f *ruleFixture, in *ruleInput) {
		in.D.NotBefore = ts(rootExp.Add(-10 * time.Minute))
		in.D.ExpiresAt = ts(rootExp)
	}
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	runRuleCases(t, []ruleCase{
		{name: "one second before the parent expires (log time, long ago)", mod: func(f *ruleFixture, in *ruleInput) {
			lastWindow(f, in)
			in.T = rootExp.Add(-time.Second)
		}},
		{name: "at the parent's expiry", mod: func(f *ruleFixture, in *ruleInput) {
			lastWindow(f, in)
			in.T = rootExp
		}, want: []string{proofs.ReasonParentExpired, proofs.ReasonAlreadyExpired}},
		{name: "parent expired, child still valid", mod: func(f *ruleFixture, in *ruleInput) {
			// The child outlives its parent too.
			in.D.NotBefore = ts(rootExp.Add(-5 * time.Minute))
			in.D.ExpiresAt = ts(rootExp.Add(5 * time.Minute))
			in.T = rootExp.Add(time.Second)
		}, want: []string{proofs.ReasonParentExpired, proofs.ReasonOutlivesParent}},
		{name: "grandparent expired, parent (inconsistent) not", mod: func(f *ruleFixture, in *ruleInput) {
			// A parent outliving its own parent cannot be accepted; build
			// the state directly to check that the whole chain is judged.
			long := f.child("d-long", f.root, agPlanner, agWorker)
			long.NotBefore = ts(rootExp.Add(-time.Minute))
			long.ExpiresAt = ts(rootExp.Add(time.Hour))
			f.st.accept(long)
			in.D = f.child("d-new", long, agWorker, agReviewer)
			in.D.NotBefore = ts(rootExp)
			in.D.ExpiresAt = ts(rootExp.Add(10 * time.Minute))
			in.T = rootExp.Add(time.Second)
		}, want: []string{proofs.ReasonParentExpired}},
		{name: "log time after expiry in the future, wall clock before", base: future, mod: func(f *ruleFixture, in *ruleInput) {
			exp := future.Add(8 * time.Hour)
			in.D.NotBefore = ts(exp.Add(-5 * time.Minute))
			in.D.ExpiresAt = ts(exp)
			in.T = exp.Add(time.Nanosecond)
		}, want: []string{proofs.ReasonParentExpired, proofs.ReasonAlreadyExpired}},
	})
}

func TestRuleParentNotYetValid(t *testing.T) {
	later := func(f *ruleFixture, in *ruleInput) *proofs.Delegation {
		p := f.child("d-later", f.root, agPlanner, agWorker)
		p.NotBefore = ts(f.base.Add(3 * time.Minute))
		p.ExpiresAt = ts(f.base.Add(15 * time.Minute))
		f.st.accept(p)
		c := f.child("d-new", p, agWorker, agReviewer)
		c.NotBefore = ts(f.base.Add(3 * time.Minute))
		c.ExpiresAt = ts(f.base.Add(13 * time.Minute))
		return c
	}
	runRuleCases(t, []ruleCase{
		{name: "at the parent's not_before", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = later(f, in)
			in.T = f.base.Add(3 * time.Minute)
		}},
		{name: "one second before the parent's not_before", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = later(f, in)
			in.T = f.base.Add(3*time.Minute - time.Second)
		}, want: []string{proofs.ReasonParentNotYetValid}},
	})
}

func TestRuleTaskNotWithinParent(t *testing.T) {
	task := func(parentTask, task string) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			g := f.rootGrant("g", agAlice, agPlanner)
			g.Task = parentTask
			f.st.accept(g)
			in.D = f.child("d-new", g, agPlanner, agReviewer)
			in.D.Task = task
		}
	}
	deny := []string{proofs.ReasonTaskNotWithinParent}
	runRuleCases(t, []ruleCase{
		{name: "equal task", mod: task("/tickets", "/tickets")},
		{name: "subtask", mod: task("/tickets", "/tickets/triage")},
		{name: "deep subtask", mod: task("/tickets", "/tickets/triage/auto/p1")},
		{name: "anything under /", mod: task("/", "/billing/refunds")},
		{name: "/ under /", mod: task("/", "/")},
		{name: "sibling with common prefix denied", mod: task("/tickets", "/ticketsx"), want: deny},
		{name: "sibling subtask with common prefix denied", mod: task("/tickets", "/tickets-old/triage"), want: deny},
		{name: "other tree denied", mod: task("/tickets", "/billing"), want: deny},
		{name: "widened to / denied", mod: task("/tickets", "/"), want: deny},
		{name: "widened to the parent's parent denied", mod: task("/tickets/triage", "/tickets"), want: deny},
		{name: "prefix of a segment denied", mod: task("/tickets/triage", "/tickets/tri"), want: deny},
	})
}

func TestTaskWithin(t *testing.T) {
	for _, c := range []struct {
		task, parent string
		want         bool
	}{
		{"/tickets", "/tickets", true},
		{"/tickets/triage", "/tickets", true},
		{"/tickets/triage/x", "/tickets", true},
		{"/a", "/", true},
		{"/", "/", true},
		{"/ticketsx", "/tickets", false},
		{"/tickets", "/tickets/triage", false},
		{"/", "/tickets", false},
		{"/tickets2/triage", "/tickets", false},
		{"/b/tickets", "/tickets", false},
	} {
		if got := proofs.TaskWithin(c.task, c.parent); got != c.want {
			t.Errorf("TaskWithin(%q, %q) = %v, want %v", c.task, c.parent, got, c.want)
		}
	}
}

func TestRuleScopeWidened(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "no scopes", mod: func(f *ruleFixture, in *ruleInput) { in.D.Scopes = nil }},
		{name: "strict subset", mod: func(f *ruleFixture, in *ruleInput) { in.D.Scopes = []string{"tickets:read", "tickets:write"} }},
		{name: "equal set", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.Scopes = slices.Clone(f.b.Scopes)
		}},
		{name: "extra scope denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.Scopes = []string{"tickets:close", "tickets:read"}
		}, want: []string{proofs.ReasonScopeWidened}},
		{name: "scope the grandparent has but the parent lacks denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.Scopes = []string{"tickets:admin"}
			in.Sigs.Approvers = []string{agBob} // isolate the attenuation rule
		}, want: []string{proofs.ReasonScopeWidened}},
		{name: "scopes when the parent has none denied", mod: func(f *ruleFixture, in *ruleInput) {
			g := f.rootGrant("g", agAlice, agPlanner)
			g.Scopes = nil
			f.st.accept(g)
			in.D = f.child("d-new", g, agPlanner, agReviewer)
			in.D.Scopes = []string{"tickets:read"}
		}, want: []string{proofs.ReasonScopeWidened}},
	})
}

func TestRuleDataClassWidened(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "no classes", mod: func(f *ruleFixture, in *ruleInput) { in.D.DataClasses = nil }},
		{name: "subset", mod: func(f *ruleFixture, in *ruleInput) { in.D.DataClasses = []string{"internal", "pii"} }},
		{name: "extra class denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.DataClasses = []string{"internal", "secret"}
		}, want: []string{proofs.ReasonDataClassWidened}},
		{name: "class the grandparent has but the parent lacks denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.DataClasses = []string{"restricted"}
			in.Sigs.Approvers = []string{agBob}
		}, want: []string{proofs.ReasonDataClassWidened}},
	})
}

func TestRuleDestinationWidened(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "no destinations", mod: func(f *ruleFixture, in *ruleInput) { in.D.Destinations = nil }},
		{name: "equal", mod: func(f *ruleFixture, in *ruleInput) { in.D.Destinations = []string{"crm", "jira"} }},
		{name: "extra destination denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Destinations = []string{"crm", "slack"}
		}, want: []string{proofs.ReasonDestinationWidened}},
		{name: "grandparent's destination denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.Destinations = []string{"jira"}
		}, want: []string{proofs.ReasonDestinationWidened}},
	})
}

func TestRuleOutlivesParent(t *testing.T) {
	bExp := ruleBase.Add(15 * time.Minute)
	under := func(exp time.Time) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.NotBefore = ts(bExp.Add(-9 * time.Minute))
			in.D.ExpiresAt = ts(exp)
			in.T = bExp.Add(-8 * time.Minute)
		}
	}
	runRuleCases(t, []ruleCase{
		{name: "expires with the parent", mod: under(bExp)},
		{name: "expires before the parent", mod: under(bExp.Add(-time.Second))},
		{name: "one second after the parent denied", mod: under(bExp.Add(time.Second)), want: []string{proofs.ReasonOutlivesParent}},
	})
}

func TestRuleLifetimeExceedsTier(t *testing.T) {
	life := func(delegate string, root bool, d time.Duration, lim *proofs.RuleLimits) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			if root {
				in.D = f.rootGrant("g", agAlice, delegate)
			} else {
				in.D = f.child("d-new", f.root, agPlanner, delegate)
			}
			in.D.ExpiresAt = ts(f.base.Add(d))
			in.T = f.base.Add(10 * time.Second)
			if lim != nil {
				in.Lim = *lim
			}
		}
	}
	deny := []string{proofs.ReasonLifetimeExceedsTier}
	custom := &proofs.RuleLimits{LifetimeExecuteSeconds: 60, LifetimeDraftSeconds: 120, LifetimeRootSeconds: 180, MaxDepth: 5}
	runRuleCases(t, []ruleCase{
		{name: "execute tier exactly 15 min", mod: life(agReviewer, false, 15*time.Minute, nil)},
		{name: "execute tier 15 min + 1 s denied", mod: life(agReviewer, false, 15*time.Minute+time.Second, nil), want: deny},
		{name: "draft tier exactly 60 min", mod: life(agDrafter, false, time.Hour, nil)},
		{name: "draft tier 60 min + 1 s denied", mod: life(agDrafter, false, time.Hour+time.Second, nil), want: deny},
		{name: "root grant exactly 8 h", mod: life(agPlanner, true, 8*time.Hour, nil)},
		{name: "root grant 8 h + 1 s denied", mod: life(agPlanner, true, 8*time.Hour+time.Second, nil), want: deny},
		{name: "root grant to a draft agent exactly 8 h", mod: life(agDrafter, true, 8*time.Hour, nil)},
		{name: "custom execute 60 s", mod: life(agReviewer, false, 60*time.Second, custom)},
		{name: "custom execute 61 s denied", mod: life(agReviewer, false, 61*time.Second, custom), want: deny},
		{name: "custom draft 120 s", mod: life(agDrafter, false, 120*time.Second, custom)},
		{name: "custom draft 121 s denied", mod: life(agDrafter, false, 121*time.Second, custom), want: deny},
		{name: "custom root 180 s", mod: life(agPlanner, true, 180*time.Second, custom)},
		{name: "custom root 181 s denied", mod: life(agPlanner, true, 181*time.Second, custom), want: deny},
		{name: "lifetime counts from not_before, not log time", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.NotBefore = ts(f.base.Add(-10 * time.Minute))
			in.D.ExpiresAt = ts(f.base.Add(5*time.Minute + time.Second))
		}, want: deny},
	})
}

func TestRuleAlreadyExpired(t *testing.T) {
	at := func(d time.Duration) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) { in.T = f.base.Add(d) }
	}
	runRuleCases(t, []ruleCase{
		{name: "one second before expiry", mod: at(10*time.Minute - time.Second)},
		{name: "one nanosecond before expiry", mod: at(10*time.Minute - time.Nanosecond)},
		{name: "at expiry denied", mod: at(10 * time.Minute), want: []string{proofs.ReasonAlreadyExpired}},
		{name: "after expiry denied", mod: at(time.Hour), want: []string{proofs.ReasonAlreadyExpired}},
	})
}

func TestRuleNotYetValid(t *testing.T) {
	nb := func(skew time.Duration) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			in.T = f.base.Add(time.Minute)
			in.D.NotBefore = ts(in.T.Add(skew))
			in.D.ExpiresAt = ts(in.T.Add(skew + 10*time.Minute))
		}
	}
	runRuleCases(t, []ruleCase{
		{name: "not_before now", mod: nb(0)},
		{name: "not_before at the skew limit", mod: nb(proofs.MaxClockSkew)},
		{name: "not_before beyond the skew denied", mod: nb(proofs.MaxClockSkew + time.Second), want: []string{proofs.ReasonNotYetValid}},
		{name: "not_before an hour ahead denied", mod: nb(time.Hour), want: []string{proofs.ReasonNotYetValid}},
	})
}

// depthChain accepts alice → a1 → a2 → ... → an (n delegations, depth n)
// and returns the last one; an is registered, execute-tier.
func depthChain(t testing.TB, f *ruleFixture, n int) *proofs.Delegation {
	t.Helper()
	agent := func(i int) string { return fmt.Sprintf("spiffe://example.org/agent/a%d", i) }
	for i := 1; i <= n+1; i++ {
		if f.st.Binding(agent(i)) == nil {
			f.keys[agent(i)] = f.st.register(t, agent(i), proofs.TierExecute, false)
		}
	}
	d := f.rootGrant("c1", agAlice, agent(1))
	f.st.accept(d)
	for i := 2; i <= n; i++ {
		d = f.child(fmt.Sprintf("c%d", i), d, agent(i-1), agent(i))
		f.st.accept(d)
	}
	return d
}

func TestRuleDepthExceeded(t *testing.T) {
	next := func(n int, lim *proofs.RuleLimits) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			last := depthChain(f.t, f, n)
			in.D = f.child("d-new", last, last.Delegate, fmt.Sprintf("spiffe://example.org/agent/a%d", n+1))
			if lim != nil {
				in.Lim = *lim
			}
		}
	}
	deny := []string{proofs.ReasonDepthExceeded}
	lim2 := &proofs.RuleLimits{LifetimeExecuteSeconds: 900, LifetimeDraftSeconds: 3600, LifetimeRootSeconds: 28800, MaxDepth: 2}
	lim1 := &proofs.RuleLimits{LifetimeExecuteSeconds: 900, LifetimeDraftSeconds: 3600, LifetimeRootSeconds: 28800, MaxDepth: 1}
	runRuleCases(t, []ruleCase{
		{name: "depth 2", mod: next(1, nil)},
		{name: "depth 5 (the limit)", mod: next(4, nil)},
		{name: "depth 6 denied", mod: next(5, nil), want: deny},
		{name: "depth 8 denied", mod: next(7, nil), want: deny},
		{name: "limit 2: depth 2", mod: next(1, lim2)},
		{name: "limit 2: depth 3 denied", mod: next(2, lim2), want: deny},
		{name: "limit 1: root grant", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agPlanner)
			in.Lim = *lim1
		}},
		{name: "limit 1: depth 2 denied", mod: next(1, lim1), want: deny},
	})
}

func TestRuleSelfDelegation(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "to another agent"},
		{name: "agent to itself denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Delegate = agPlanner
		}, want: []string{proofs.ReasonSelfDelegation}},
		{name: "human root grant to itself denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agAlice)
		}, want: []string{proofs.ReasonSelfDelegation}},
	})
}

func TestRuleCycle(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "to a fresh agent", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
		}},
		{name: "back to the parent's issuer denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agPlanner)
		}, want: []string{proofs.ReasonCycle}},
		{name: "back to the root human denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agAlice)
		}, want: []string{proofs.ReasonCycle}},
		{name: "back to an agent three links up denied", mod: func(f *ruleFixture, in *ruleInput) {
			c := f.child("d-c", f.b, agWorker, agReviewer)
			f.st.accept(c)
			in.D = f.child("d-new", c, agReviewer, agPlanner)
		}, want: []string{proofs.ReasonCycle}},
	})
}

func TestRuleTierEscalation(t *testing.T) {
	underDraft := func(delegate string) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			g := f.rootGrant("g", agAlice, agDrafter)
			f.st.accept(g)
			in.D = f.child("d-new", g, agDrafter, delegate)
		}
	}
	deny := []string{proofs.ReasonTierEscalation}
	runRuleCases(t, []ruleCase{
		{name: "execute to execute"},
		{name: "execute to draft", mod: func(f *ruleFixture, in *ruleInput) { in.D.Delegate = agDrafter }},
		{name: "draft to draft", mod: underDraft(agDrafter2)},
		{name: "human to execute (root grant)", mod: func(f *ruleFixture, in *ruleInput) { in.D = f.rootGrant("g", agAlice, agWorker) }},
		{name: "human to draft (root grant)", mod: func(f *ruleFixture, in *ruleInput) { in.D = f.rootGrant("g", agAlice, agDrafter) }},
		{name: "human mid-chain to execute", mod: func(f *ruleFixture, in *ruleInput) {
			g := f.rootGrant("g", agAlice, agBob)
			f.st.accept(g)
			in.D = f.child("d-new", g, agBob, agWorker)
		}},
		{name: "draft to execute denied", mod: underDraft(agReviewer), want: deny},
		{name: "draft to execute with approval still denied", mod: func(f *ruleFixture, in *ruleInput) {
			underDraft(agReviewer)(f, in)
			in.Sigs.Approvers = []string{agBob}
		}, want: deny},
		{name: "draft to a human denied (humans bound as execute)", mod: underDraft(agBob), want: deny},
	})
}

func TestRuleDelegateUnknown(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "registered delegate"},
		{name: "unregistered delegate denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Delegate = agGhost
		}, want: []string{proofs.ReasonDelegateUnknown}},
		{name: "delegate whose key was revoked denied", mod: func(f *ruleFixture, in *ruleInput) {
			f.st.bind(f.t, &proofs.KeyBinding{Agent: agReviewer, PublicKey: f.keys[agReviewer].der, Tier: proofs.TierExecute, Revoked: true, IssuedAt: "2020-01-01T00:00:00Z", Nonce: "revoke-reviewer"})
		}, want: []string{proofs.ReasonDelegateUnknown}},
		{name: "root grant to an unregistered delegate denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agGhost)
		}, want: []string{proofs.ReasonDelegateUnknown}},
	})
}

func TestRuleCrossDomain(t *testing.T) {
	deny := []string{proofs.ReasonCrossDomain}
	runRuleCases(t, []ruleCase{
		{name: "same trust domain"},
		{name: "agent to another trust domain denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Delegate = agPartner
		}, want: deny},
		{name: "human root grant to another trust domain denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agPartner)
		}, want: deny},
		{name: "with human approval still denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Delegate = agPartner
			in.Sigs.Approvers = []string{agBob}
		}, want: deny},
	})
}

func TestRuleApprovalRequired(t *testing.T) {
	set := func(scopes, classes []string, approvers ...string) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			in.D.Scopes, in.D.DataClasses = scopes, classes
			in.Sigs.Approvers = approvers
		}
	}
	deny := []string{proofs.ReasonApprovalRequired}
	runRuleCases(t, []ruleCase{
		{name: "low impact without approval", mod: set([]string{"tickets:read", "tickets:write"}, []string{"internal", "pii"})},
		{name: "restricted data denied", mod: set(nil, []string{"restricted"}), want: deny},
		{name: "admin scope denied", mod: set([]string{"tickets:admin"}, nil), want: deny},
		{name: "delete scope denied", mod: set([]string{"tickets:delete", "tickets:read"}, nil), want: deny},
		{name: "restricted data with a human approver", mod: set(nil, []string{"restricted"}, agBob)},
		{name: "admin scope with a human approver", mod: set([]string{"tickets:admin"}, nil, agBob)},
		{name: "delete scope with two approvers", mod: set([]string{"tickets:delete"}, []string{"restricted"}, agAlice, agBob)},
		{name: "human issuer approves its own root grant", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.rootGrant("g", agAlice, agPlanner)
			in.D.Scopes = []string{"tickets:admin", "tickets:delete"}
			in.D.DataClasses = []string{"restricted"}
		}},
		{name: "human issuer mid-chain", mod: func(f *ruleFixture, in *ruleInput) {
			g := f.rootGrant("g", agAlice, agBob)
			g.Scopes = []string{"tickets:admin"}
			f.st.accept(g)
			in.D = f.child("d-new", g, agBob, agWorker)
		}},
		{name: "an invalid co-signature is no approval", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Scopes = []string{"tickets:admin"}
			in.Sigs.Invalid = true
		}, want: []string{proofs.ReasonApprovalRequired, proofs.ReasonApprovalInvalid}},
		{name: "a human delegate cannot approve its own grant", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Delegate = agBob
			in.D.Scopes = []string{"tickets:admin"}
			in.Sigs.Approvers = []string{agBob}
		}, want: deny},
	})
}

func TestRuleApprovalInvalid(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "valid approval", mod: func(f *ruleFixture, in *ruleInput) { in.Sigs.Approvers = []string{agBob} }},
		{name: "invalid co-signature denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.Sigs.Invalid = true
		}, want: []string{proofs.ReasonApprovalInvalid}},
		{name: "invalid co-signature besides a valid approval denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.Sigs = proofs.SignatureCheck{Approvers: []string{agBob}, Invalid: true}
		}, want: []string{proofs.ReasonApprovalInvalid}},
	})
}

func TestRuleNonceReused(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "fresh nonce"},
		{name: "nonce of another issuer", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-new", f.b, agWorker, agReviewer)
			in.D.Nonce = f.b.Nonce // planner's nonce; the issuer here is worker
		}},
		{name: "nonce of a denied entry (never consumed)", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Nonce = "nonce-of-denial"
		}},
		{name: "same issuer, same nonce denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.Nonce = f.b.Nonce
		}, want: []string{proofs.ReasonNonceReused}},
	})
}

func TestRuleIDReused(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "fresh id"},
		{name: "id of a sibling denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.ID = "d-b"
		}, want: []string{proofs.ReasonIDReused}},
		{name: "id of the parent denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D.ID = "d-root"
		}, want: []string{proofs.ReasonIDReused}},
		{name: "id of another issuer's delegation denied", mod: func(f *ruleFixture, in *ruleInput) {
			in.D = f.child("d-root", f.b, agWorker, agReviewer)
		}, want: []string{proofs.ReasonIDReused}},
	})
}

const customPolicy = `
@id("allow")
permit (principal, action, resource);

@id("no-secrets")
forbid (principal, action == Action::"delegate", resource)
when { context.task_segments.contains("secret") };

@id("no-billing")
@reason("billing_closed")
forbid (principal, action == Action::"delegate", resource)
when { context.task == "/billing" };
`

const noPermitPolicy = `
@id("never")
forbid (principal, action, resource) when { context.depth > 100 };
`

func TestRulePolicyForbid(t *testing.T) {
	custom := mustParsePolicy(t, customPolicy)
	noPermit := mustParsePolicy(t, noPermitPolicy)
	withPolicy := func(p *proofs.Policy, task string) func(f *ruleFixture, in *ruleInput) {
		return func(f *ruleFixture, in *ruleInput) {
			in.Pol = p
			g := f.rootGrant("g", agAlice, agPlanner)
			g.Task = "/"
			f.st.accept(g)
			in.D = f.child("d-new", g, agPlanner, agReviewer)
			in.D.Task = task
		}
	}
	runRuleCases(t, []ruleCase{
		{name: "custom policy allows", mod: withPolicy(custom, "/tickets")},
		{name: "custom policy: cross domain allowed (no such rule)", mod: func(f *ruleFixture, in *ruleInput) {
			withPolicy(custom, "/tickets")(f, in)
			in.D.Delegate = agPartner
		}},
		{name: "forbid without @reason denied", mod: withPolicy(custom, "/tickets/secret/x"), want: []string{proofs.ReasonPolicyForbid}},
		{name: "forbid with its own @reason denied", mod: withPolicy(custom, "/billing"), want: []string{"billing_closed"}},
		{name: "no permit at all denied", mod: withPolicy(noPermit, "/tickets"), want: []string{proofs.ReasonPolicyForbid}},
	})
}

// TestDecideDelegationPolicyRecord checks what a decision records of the
// policy: the forbidding policy ids on a policy denial, nothing of Cedar
// without a policy.
func TestDecideDelegationPolicyRecord(t *testing.T) {
	pol := loadDefaultPolicy(t)
	f := newRuleFixture(t, ruleBase)
	in := ruleInput{D: f.child("d-new", f.root, agPlanner, agPartner), T: ruleBase.Add(time.Minute), Lim: proofs.DefaultRuleLimits(), Pol: pol}
	in.D.Scopes = []string{"tickets:admin"}
	dec := decideAndCheck(t, f.st, in)
	checkDecision(t, dec, pol, []string{proofs.ReasonCrossDomain, proofs.ReasonApprovalRequired})
	if want := []string{"high-impact-needs-approval", "same-trust-domain"}; !slices.Equal(dec.PolicyIDs, want) {
		t.Errorf("PolicyIDs = %v, want %v", dec.PolicyIDs, want)
	}

	ok := decideAndCheck(t, f.st, ruleInput{D: f.child("d-ok", f.root, agPlanner, agReviewer), T: in.T, Lim: in.Lim, Pol: pol})
	if want := []string{"allow-delegation"}; ok.Outcome != proofs.OutcomeAccepted || !slices.Equal(ok.PolicyIDs, want) {
		t.Errorf("accepted decision %+v, want PolicyIDs %v", ok, want)
	}

	// Chain-rule reasons come first, then the policy's.
	in.D.Parent = "d-missing"
	dec = decideAndCheck(t, f.st, in)
	if len(dec.Reasons) != 3 || dec.Reasons[0] != proofs.ReasonParentNotFound {
		t.Errorf("reasons = %v, want parent_not_found first, then the policy's", dec.Reasons)
	}

	// Without a policy: structural rules only, and no Cedar record.
	in = ruleInput{D: f.child("d-x", f.root, agPlanner, agPartner), T: ruleBase.Add(time.Minute), Lim: proofs.DefaultRuleLimits()}
	dec = decideAndCheck(t, f.st, in)
	if dec.Outcome != proofs.OutcomeAccepted || dec.PolicyDigest != "" || dec.CedarVersion != "" || dec.PolicyIDs != nil {
		t.Errorf("decision without policy = %+v, want accepted with no policy record", dec)
	}
}

// TestDecideDelegationDoesNotMutate checks that deciding leaves the input
// and the state alone.
func TestDecideDelegationDoesNotMutate(t *testing.T) {
	pol := loadDefaultPolicy(t)
	f := newRuleFixture(t, ruleBase)
	d := f.child("d-new", f.b, agWorker, agReviewer)
	before := *d
	before.Scopes = slices.Clone(d.Scopes)
	sigs := proofs.SignatureCheck{Approvers: []string{agBob}}
	n := len(f.st.dels)
	if _, err := proofs.DecideDelegation(f.st, d, sigs, ruleBase.Add(time.Minute), proofs.DefaultRuleLimits(), pol); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*d, before) || len(f.st.dels) != n || f.st.usedIDs[d.ID] || !slices.Equal(sigs.Approvers, []string{agBob}) {
		t.Error("DecideDelegation changed its input or the state")
	}
}

// failingState reports a storage error on every lookup.
type failingState struct{ *chainState }

var errStorage = fmt.Errorf("storage failure")

func (failingState) Delegation(string) (*proofs.DelegationRecord, error) { return nil, errStorage }
func (failingState) Revoked(string) (bool, error)                        { return false, errStorage }
func (failingState) IDUsed(string) (bool, error)                         { return false, errStorage }
func (failingState) NonceUsed(string, string) (bool, error)              { return false, errStorage }

func TestDecideStorageErrors(t *testing.T) {
	pol := loadDefaultPolicy(t)
	f := newRuleFixture(t, ruleBase)
	st := failingState{f.st}
	for name, d := range map[string]*proofs.Delegation{
		"root grant": f.rootGrant("g", agAlice, agPlanner),
		"child":      f.child("d-new", f.root, agPlanner, agReviewer),
	} {
		if dec, err := proofs.DecideDelegation(st, d, proofs.SignatureCheck{}, ruleBase.Add(time.Minute), proofs.DefaultRuleLimits(), pol); err == nil {
			t.Errorf("%s: DecideDelegation over a failing state = %+v, want the storage error", name, dec)
		}
	}
	if _, err := proofs.DecideRevocation(st, &proofs.Revocation{Delegation: "d-b"}, true, proofs.DefaultRuleLimits()); err == nil {
		t.Error("DecideRevocation over a failing state: no error")
	}
	if _, err := proofs.EffectiveStatus(st, "d-b", ruleBase, proofs.DefaultRuleLimits()); err == nil {
		t.Error("EffectiveStatus over a failing state: no error")
	}
}

// --- revocations and status -------------------------------------------------

func TestDecideRevocation(t *testing.T) {
	f := newRuleFixture(t, ruleBase)
	c := f.child("d-c", f.b, agWorker, agReviewer) // alice → planner → worker → reviewer
	f.st.accept(c)
	lim := proofs.DefaultRuleLimits()
	for _, tc := range []struct {
		name    string
		target  string
		issuer  string
		byAdmin bool
		want    string // "" accepted
	}{
		{"by the delegation's issuer", "d-c", agWorker, false, ""},
		{"by the parent's issuer", "d-c", agPlanner, false, ""},
		{"by the root human", "d-c", agAlice, false, ""},
		{"root by its issuer", "d-root", agAlice, false, ""},
		{"by admin", "d-c", "", true, ""},
		{"root by admin", "d-root", "", true, ""},
		{"by an unrelated agent", "d-c", agDrafter, false, proofs.ReasonRevokeNotAuthorized},
		{"by an unrelated human", "d-c", agBob, false, proofs.ReasonRevokeNotAuthorized},
		{"by its delegate", "d-c", agReviewer, false, proofs.ReasonRevokeNotAuthorized},
		{"upward, by a descendant's issuer", "d-b", agWorker, false, proofs.ReasonRevokeNotAuthorized},
		{"upward, root by planner", "d-root", agPlanner, false, proofs.ReasonRevokeNotAuthorized},
		{"without issuer or admin", "d-c", "", false, proofs.ReasonRevokeNotAuthorized},
		{"unknown target", "d-missing", agWorker, false, proofs.ReasonDelegationNotFound},
		{"unknown target by admin", "d-missing", "", true, proofs.ReasonDelegationNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &proofs.Revocation{Delegation: tc.target, Issuer: tc.issuer, Reason: "test", IssuedAt: ts(ruleBase), Nonce: "revoke-nonce-1"}
			dec, err := proofs.DecideRevocation(f.st, r, tc.byAdmin, lim)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if dec.Outcome != proofs.OutcomeAccepted || len(dec.Reasons) != 0 {
					t.Errorf("decision = %+v, want accepted", dec)
				}
				return
			}
			if dec.Outcome != proofs.OutcomeDenied || !slices.Equal(dec.Reasons, []string{tc.want}) {
				t.Errorf("decision = %+v, want denied %s", dec, tc.want)
			}
		})
	}
}

func TestEffectiveStatus(t *testing.T) {
	lim := proofs.DefaultRuleLimits()
	setup := func(t *testing.T) *ruleFixture {
		f := newRuleFixture(t, ruleBase)
		c := f.child("d-c", f.b, agWorker, agReviewer) // valid base .. base+10m
		c.NotBefore = ts(ruleBase.Add(time.Minute))
		f.st.accept(c)
		return f
	}
	for _, tc := range []struct {
		name    string
		revoke  []string
		at      time.Duration
		want    proofs.Status
		wantAny []string // RevokedVia may be any of these
	}{
		{name: "active", at: 2 * time.Minute, want: proofs.Status{State: "active"}},
		{name: "active at not_before", at: time.Minute, want: proofs.Status{State: "active"}},
		{name: "active one second before expiry", at: 10*time.Minute - time.Second, want: proofs.Status{State: "active"}},
		{name: "revoked directly", revoke: []string{"d-c"}, at: 2 * time.Minute, want: proofs.Status{State: "revoked", RevokedVia: "d-c"}},
		{name: "revoked via parent", revoke: []string{"d-b"}, at: 2 * time.Minute, want: proofs.Status{State: "revoked", RevokedVia: "d-b"}},
		{name: "revoked via root", revoke: []string{"d-root"}, at: 2 * time.Minute, want: proofs.Status{State: "revoked", RevokedVia: "d-root"}},
		{name: "revoked via two ancestors", revoke: []string{"d-root", "d-b"}, at: 2 * time.Minute, want: proofs.Status{State: "revoked"}, wantAny: []string{"d-root", "d-b"}},
		{name: "expired at expires_at", at: 10 * time.Minute, want: proofs.Status{State: "expired"}},
		{name: "expired later", at: 9 * time.Hour, want: proofs.Status{State: "expired"}},
		{name: "not yet valid", at: time.Minute - time.Second, want: proofs.Status{State: "not_yet_valid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			for _, id := range tc.revoke {
				f.st.revoked[id] = true
			}
			got, err := proofs.EffectiveStatus(f.st, "d-c", ruleBase.Add(tc.at), lim)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAny != nil {
				if got.State != tc.want.State || !slices.Contains(tc.wantAny, got.RevokedVia) {
					t.Errorf("status = %+v, want %s via one of %v", got, tc.want.State, tc.wantAny)
				}
				return
			}
			if got != tc.want {
				t.Errorf("status = %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("siblings unaffected", func(t *testing.T) {
		f := setup(t)
		f.st.revoked["d-c"] = true
		if got, err := proofs.EffectiveStatus(f.st, "d-b", ruleBase.Add(2*time.Minute), lim); err != nil || got.State != "active" {
			t.Errorf("parent of a revoked delegation: %+v, %v; want active", got, err)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		f := setup(t)
		if got, err := proofs.EffectiveStatus(f.st, "d-missing", ruleBase, lim); err == nil {
			t.Errorf("EffectiveStatus(unknown) = %+v, want an error", got)
		}
	})
}

// --- signatures -------------------------------------------------------------

func TestCheckSignatures(t *testing.T) {
	f := newRuleFixture(t, ruleBase)
	d := f.child("d-new", f.root, agPlanner, agReviewer)
	payload, err := proofs.MarshalPayload(d)
	if err != nil {
		t.Fatal(err)
	}
	other, err := proofs.MarshalPayload(f.child("d-other", f.root, agPlanner, agReviewer))
	if err != nil {
		t.Fatal(err)
	}
	typ := proofs.PayloadTypeDelegation
	issuer := f.st.Binding(agPlanner)
	stranger := newEd25519Signer(t)
	// A key bob used before rotating it.
	oldBob := f.keys[agBob]
	rotated := newChainState()
	rotated.bindings = f.st.bindings
	newBob := newEd25519Signer(t)
	rotated.bind(t, &proofs.KeyBinding{Agent: agBob, PublicKey: newBob.der, Tier: proofs.TierExecute, Human: true, IssuedAt: "2020-01-01T00:00:00Z", Nonce: "rotate-bob"})

	sig := func(s *testSigner, pt string, p []byte) proofs.Signature { return s.signDSSE(t, pt, p) }
	env := func(sigs ...proofs.Signature) *proofs.Envelope {
		e := &proofs.Envelope{PayloadType: typ, Payload: payload, Signatures: sigs}
		p, err := proofs.ParseEnvelope(e.Canonical())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	forged := sig(f.keys[agPlanner], typ, other)

	for _, tc := range []struct {
		name      string
		env       *proofs.Envelope
		issuer    *proofs.Binding
		bindings  *proofs.Bindings
		want      proofs.SignatureCheck
		wantError string
	}{
		{name: "issuer only", env: env(sig(f.keys[agPlanner], typ, payload))},
		{name: "issuer and a human approver", env: env(sig(f.keys[agPlanner], typ, payload), sig(f.keys[agBob], typ, payload)),
			want: proofs.SignatureCheck{Approvers: []string{agBob}}},
		{name: "two human approvers, sorted", env: env(sig(f.keys[agPlanner], typ, payload), sig(f.keys[agBob], typ, payload), sig(f.keys[agAlice], typ, payload)),
			want: proofs.SignatureCheck{Approvers: []string{agAlice, agBob}}},
		{name: "registered non-human co-signer verified, no approver", env: env(sig(f.keys[agPlanner], typ, payload), sig(f.keys[agWorker], typ, payload))},
		{name: "human issuer is not its own approver", issuer: f.st.Binding(agAlice), env: env(sig(f.keys[agAlice], typ, payload))},
		{name: "unregistered co-signer", env: env(sig(f.keys[agPlanner], typ, payload), sig(stranger, typ, payload)),
			want: proofs.SignatureCheck{Invalid: true}},
		{name: "human co-signature over another payload", env: env(sig(f.keys[agPlanner], typ, payload), withKeyID(sig(f.keys[agBob], typ, other), f.keys[agBob].id)),
			want: proofs.SignatureCheck{Invalid: true}},
		{name: "human co-signature under another payload type", env: env(sig(f.keys[agPlanner], typ, payload), sig(f.keys[agBob], proofs.PayloadTypeRevocation, payload)),
			want: proofs.SignatureCheck{Invalid: true}},
		{name: "valid and invalid approvals", env: env(sig(f.keys[agPlanner], typ, payload), sig(f.keys[agBob], typ, payload), sig(stranger, typ, payload)),
			want: proofs.SignatureCheck{Approvers: []string{agBob}, Invalid: true}},
		{name: "approval by a rotated-out key", bindings: rotated.bindings, env: env(sig(f.keys[agPlanner], typ, payload), sig(oldBob, typ, payload)),
			want: proofs.SignatureCheck{Invalid: true}},
		{name: "approval by the rotated-in key", bindings: rotated.bindings, env: env(sig(f.keys[agPlanner], typ, payload), sig(newBob, typ, payload)),
			want: proofs.SignatureCheck{Approvers: []string{agBob}}},
		{name: "issuer signature missing", env: env(sig(f.keys[agBob], typ, payload)), wantError: proofs.ReasonSignatureMissing},
		{name: "signed by an unregistered key only", env: env(sig(stranger, typ, payload)), wantError: proofs.ReasonSignatureMissing},
		{name: "issuer signature over another payload", env: env(forged), wantError: proofs.ReasonSignatureInvalid},
		{name: "issuer keyid on a stranger's signature", env: env(withKeyID(sig(stranger, typ, payload), f.keys[agPlanner].id)), wantError: proofs.ReasonSignatureInvalid},
		{name: "issuer signature under another payload type", env: env(sig(f.keys[agPlanner], proofs.PayloadTypeAgent, payload)), wantError: proofs.ReasonSignatureInvalid},
		{name: "issuer signature with a flipped bit", env: env(flipSig(sig(f.keys[agPlanner], typ, payload))), wantError: proofs.ReasonSignatureInvalid},
		{name: "issuer not registered", issuer: nil, env: env(sig(f.keys[agPlanner], typ, payload)), wantError: proofs.ReasonIssuerNotRegistered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.issuer
			if b == nil && tc.wantError != proofs.ReasonIssuerNotRegistered {
				b = issuer
			}
			bs := tc.bindings
			if bs == nil {
				bs = f.st.bindings
			}
			got, err := proofs.CheckSignatures(tc.env, b, bs.KeyID)
			if tc.wantError != "" {
				wantReason(t, err, tc.wantError)
				return
			}
			if err != nil {
				t.Fatalf("CheckSignatures: %v", err)
			}
			if len(got.Approvers) == 0 {
				got.Approvers = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CheckSignatures = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func withKeyID(s proofs.Signature, id string) proofs.Signature { s.KeyID = id; return s }

func flipSig(s proofs.Signature) proofs.Signature { s.Sig = flip(s.Sig, 5); return s }

// --- property tests ---------------------------------------------------------

// refTaskWithin is an independent model of task attenuation: segment-wise
// prefix.
func refTaskWithin(task, parent string) bool {
	segs := func(p string) []string {
		if p == "/" {
			return nil
		}
		return strings.Split(p[1:], "/")
	}
	tseg, pseg := segs(task), segs(parent)
	return len(pseg) <= len(tseg) && slices.Equal(tseg[:len(pseg)], pseg)
}

func refSubset(a, b []string) bool {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	for _, x := range a {
		if !in[x] {
			return false
		}
	}
	return true
}

// refDomain is the trust domain of a SPIFFE ID, by string surgery.
func refDomain(id string) string {
	rest := strings.TrimPrefix(id, "spiffe://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// refChain returns the accepted ancestors from id up, nearest first.
func refChain(st *chainState, id string) []*proofs.Delegation {
	var out []*proofs.Delegation
	seen := map[string]bool{}
	for id != "" && !seen[id] {
		seen[id] = true
		r := st.dels[id]
		if r == nil {
			break
		}
		out = append(out, r.D)
		id = r.D.Parent
	}
	return out
}

// refReasons is an independent model of docs/rules.md's delegation rules under the
// default policy: the set of reasons a delegation is denied for.
func refReasons(st *chainState, d *proofs.Delegation, sigs proofs.SignatureCheck, now time.Time, lim proofs.RuleLimits) []string {
	var out []string
	add := func(r string) {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	issuer, delegate := st.Binding(d.Issuer), st.Binding(d.Delegate)
	nb, exp := mustTime(d.NotBefore), mustTime(d.ExpiresAt)
	chain := refChain(st, d.Parent)
	capSec := lim.LifetimeDraftSeconds
	switch {
	case d.Parent == "":
		capSec = lim.LifetimeRootSeconds
		if issuer == nil || !issuer.Human {
			add(proofs.ReasonRootGrantNotHuman)
		}
		if d.RootSubject != d.Issuer {
			add(proofs.ReasonRootSubjectMismatch)
		}
		if 1 > lim.MaxDepth {
			add(proofs.ReasonDepthExceeded)
		}
	case len(chain) == 0:
		add(proofs.ReasonParentNotFound)
	default:
		p := chain[0]
		if p.Delegate != d.Issuer {
			add(proofs.ReasonNotParentDelegate)
		}
		if p.RootSubject != d.RootSubject {
			add(proofs.ReasonRootSubjectMismatch)
		}
		for _, a := range chain {
			if st.revoked[a.ID] {
				add(proofs.ReasonParentRevoked)
			}
			if !now.Before(mustTime(a.ExpiresAt)) {
				add(proofs.ReasonParentExpired)
			}
			if a.Issuer == d.Delegate && d.Issuer != d.Delegate {
				add(proofs.ReasonCycle)
			}
		}
		if now.Before(mustTime(p.NotBefore)) {
			add(proofs.ReasonParentNotYetValid)
		}
		if !refTaskWithin(d.Task, p.Task) {
			add(proofs.ReasonTaskNotWithinParent)
		}
		if !refSubset(d.Scopes, p.Scopes) {
			add(proofs.ReasonScopeWidened)
		}
		if !refSubset(d.DataClasses, p.DataClasses) {
			add(proofs.ReasonDataClassWidened)
		}
		if !refSubset(d.Destinations, p.Destinations) {
			add(proofs.ReasonDestinationWidened)
		}
		if exp.After(mustTime(p.ExpiresAt)) {
			add(proofs.ReasonOutlivesParent)
		}
		if len(chain)+1 > lim.MaxDepth {
			add(proofs.ReasonDepthExceeded)
		}
	}
	if d.Parent != "" && delegate != nil && (delegate.Tier == proofs.TierExecute || delegate.Human) {
		capSec = lim.LifetimeExecuteSeconds
	}
	if exp.Sub(nb) > time.Duration(capSec)*time.Second {
		add(proofs.ReasonLifetimeExceedsTier)
	}
	if !now.Before(exp) {
		add(proofs.ReasonAlreadyExpired)
	}
	if nb.Sub(now) > proofs.MaxClockSkew {
		add(proofs.ReasonNotYetValid)
	}
	if d.Issuer == d.Delegate {
		add(proofs.ReasonSelfDelegation)
	}
	if delegate == nil {
		add(proofs.ReasonDelegateUnknown)
	}
	if sigs.Invalid {
		add(proofs.ReasonApprovalInvalid)
	}
	if st.usedIDs[d.ID] {
		add(proofs.ReasonIDReused)
	}
	if st.nonces[[2]string{d.Issuer, d.Nonce}] {
		add(proofs.ReasonNonceReused)
	}
	// The default policy.
	if refDomain(d.Issuer) != refDomain(d.Delegate) {
		add(proofs.ReasonCrossDomain)
	}
	issuerHuman := issuer != nil && issuer.Human
	if issuer != nil && !issuerHuman && issuer.Tier == proofs.TierDraft && delegate != nil && delegate.Tier == proofs.TierExecute {
		add(proofs.ReasonTierEscalation)
	}
	high := slices.Contains(d.DataClasses, "restricted")
	for _, s := range d.Scopes {
		high = high || strings.HasSuffix(s, ":admin") || strings.HasSuffix(s, ":delete")
	}
	// Separation of duty: the delegate's own co-signature is no approval.
	// Only an approver of the issuer's own trust domain counts.
	approvers := slices.DeleteFunc(slices.Clone(sigs.Approvers), func(a string) bool { return a == d.Delegate || refDomain(a) != refDomain(d.Issuer) })
	if high && !issuerHuman && len(approvers) == 0 {
		add(proofs.ReasonApprovalRequired)
	}
	return out
}

var (
	propTasks   = []string{"/", "/tickets", "/tickets/triage", "/tickets/triage/auto", "/tickets/close", "/ticketsx", "/ticketsx/triage", "/billing", "/billing/refunds", "/billing/refunds/eu"}
	propScopes  = []string{"billing:read", "tickets:admin", "tickets:delete", "tickets:read", "tickets:write"}
	propClasses = []string{"internal", "pii", "public", "restricted"}
	propDests   = []string{"crm", "email", "jira", "slack"}
)

// propWorld generates random delegation chains against a chainState.
type propWorld struct {
	rng      *rand.Rand
	st       *chainState
	lim      proofs.RuleLimits
	humans   []string
	issuers  []string // registered
	agents   []string // possible delegates, one unregistered
	accepted []*proofs.Delegation
	now      time.Time
}

func newPropWorld(t testing.TB, seed uint64, lim proofs.RuleLimits) *propWorld {
	w := &propWorld{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), st: newChainState(), lim: lim, now: ruleBase}
	w.humans = []string{agAlice, agBob}
	for _, h := range w.humans {
		w.st.register(t, h, proofs.TierExecute, true)
	}
	w.issuers = slices.Clone(w.humans)
	for i := range 8 {
		id := fmt.Sprintf("spiffe://example.org/agent/p%d", i)
		tier := proofs.TierExecute
		if i%3 == 0 {
			tier = proofs.TierDraft
		}
		w.st.register(t, id, tier, false)
		w.issuers = append(w.issuers, id)
	}
	w.st.register(t, agPartner, proofs.TierExecute, false)
	w.issuers = append(w.issuers, agPartner)
	w.agents = append(slices.Clone(w.issuers), agGhost)
	return w
}

func (w *propWorld) pick(v []string) string { return v[w.rng.IntN(len(v))] }

func (w *propWorld) pct(p int) bool { return w.rng.IntN(100) < p }

// subsetOf returns a random subset of the sorted set v, sorted.
func (w *propWorld) subsetOf(v []string) []string {
	var out []string
	for _, x := range v {
		if w.rng.IntN(3) > 0 {
			out = append(out, x)
		}
	}
	return out
}

// next generates a delegation and its signature check: mostly a valid
// extension of a recent chain, with each rule broken now and then.
func (w *propWorld) next(i int) (*proofs.Delegation, proofs.SignatureCheck) {
	w.now = w.now.Add(time.Duration(w.rng.IntN(8)) * time.Second)
	if len(w.accepted) > 0 && w.pct(2) {
		w.st.revoked[w.accepted[w.rng.IntN(len(w.accepted))].ID] = true
	}
	d := &proofs.Delegation{ID: fmt.Sprintf("p%d", i), Nonce: fmt.Sprintf("nonce-p%d", i)}
	var parent *proofs.Delegation
	r := w.rng.IntN(100)
	switch {
	case r < 12 || len(w.accepted) == 0:
	case r < 99:
		n := len(w.accepted)
		parent = w.accepted[n-1-w.rng.IntN(min(n, 15))]
	default:
		d.Parent = fmt.Sprintf("bogus-%d", i)
	}
	pTask, pScopes, pClasses, pDests := "/", propScopes, propClasses, propDests
	var chain []*proofs.Delegation
	switch {
	case parent != nil:
		d.Parent = parent.ID
		chain = refChain(w.st, parent.ID)
		pTask, pScopes, pClasses, pDests = parent.Task, parent.Scopes, parent.DataClasses, parent.Destinations
		d.Issuer = parent.Delegate
		if w.pct(4) {
			d.Issuer = w.pick(w.issuers)
		}
		d.RootSubject = parent.RootSubject
		if w.pct(2) {
			d.RootSubject = w.pick(w.humans)
		}
	case d.Parent == "":
		d.Issuer = w.pick(w.humans)
		if w.pct(10) {
			d.Issuer = w.pick(w.issuers)
		}
		d.RootSubject = d.Issuer
		if w.pct(5) {
			d.RootSubject = w.pick(w.humans)
		}
	default:
		d.Issuer = w.pick(w.issuers)
		d.RootSubject = w.pick(w.humans)
	}
	// Delegate: usually a fresh, same-domain agent the issuer may hand to.
	var good []string
	ib := w.st.Binding(d.Issuer)
	for _, a := range w.issuers {
		b := w.st.Binding(a)
		ok := a != d.Issuer && refDomain(a) == refDomain(d.Issuer) &&
			!(ib != nil && !ib.Human && ib.Tier == proofs.TierDraft && b.Tier == proofs.TierExecute)
		for _, c := range chain {
			ok = ok && c.Issuer != a
		}
		if ok {
			good = append(good, a)
		}
	}
	if len(good) > 0 && w.pct(85) {
		d.Delegate = w.pick(good)
	} else {
		d.Delegate = w.pick(w.agents)
	}
	if w.pct(90) {
		var within []string
		for _, x := range propTasks {
			if refTaskWithin(x, pTask) {
				within = append(within, x)
			}
		}
		d.Task = w.pick(within)
	} else {
		d.Task = w.pick(propTasks)
	}
	narrow := func(p, u []string) []string {
		if w.pct(94) {
			return w.subsetOf(p)
		}
		return w.subsetOf(u)
	}
	d.Scopes, d.DataClasses, d.Destinations = narrow(pScopes, propScopes), narrow(pClasses, propClasses), narrow(pDests, propDests)

	var nb time.Time
	switch r := w.rng.IntN(100); {
	case r < 92:
		nb = w.now.Add(-time.Duration(w.rng.IntN(60)) * time.Second)
	case r < 97:
		nb = w.now.Add(time.Duration(w.rng.IntN(int(proofs.MaxClockSkew/time.Second)+1)) * time.Second)
	default:
		nb = w.now.Add(proofs.MaxClockSkew + time.Duration(1+w.rng.IntN(600))*time.Second)
	}
	nb = nb.Truncate(time.Second)
	capSec := w.lim.LifetimeDraftSeconds
	if d.Parent == "" {
		capSec = w.lim.LifetimeRootSeconds
	} else if b := w.st.Binding(d.Delegate); b != nil && (b.Tier == proofs.TierExecute || b.Human) {
		capSec = w.lim.LifetimeExecuteSeconds
	}
	capD := time.Duration(capSec) * time.Second
	limit := nb.Add(capD)
	if parent != nil && mustTime(parent.ExpiresAt).Before(limit) {
		limit = mustTime(parent.ExpiresAt)
	}
	var exp time.Time
	switch r := w.rng.IntN(100); {
	case r < 55 && limit.After(nb):
		exp = nb.Add(time.Duration(1+w.rng.Int64N(int64(limit.Sub(nb)/time.Second))) * time.Second)
	case r < 70:
		exp = limit
	case r < 76:
		exp = nb.Add(capD)
	case r < 82:
		exp = nb.Add(capD + time.Second)
	case r < 88 && parent != nil:
		exp = mustTime(parent.ExpiresAt).Add(time.Second)
	case r < 94:
		exp = nb.Add(time.Duration(1+w.rng.IntN(90)) * time.Second)
	default:
		exp = nb.Add(time.Duration(1+w.rng.IntN(9*3600)) * time.Second)
	}
	if !exp.After(nb) {
		exp = nb.Add(time.Second)
	}
	d.NotBefore, d.ExpiresAt = ts(nb), ts(exp)

	if len(w.accepted) > 0 && w.pct(1) {
		d.ID = w.accepted[w.rng.IntN(len(w.accepted))].ID
	}
	if w.pct(4) {
		// Reuse a nonce, usually one of the same issuer's.
		for _, a := range w.accepted[max(0, len(w.accepted)-50):] {
			if a.Issuer == d.Issuer || w.pct(2) {
				d.Nonce = a.Nonce
				break
			}
		}
	}
	var sigs proofs.SignatureCheck
	switch r := w.rng.IntN(100); {
	case r < 40:
		sigs.Approvers = []string{agBob}
	case r < 50:
		sigs.Approvers = []string{agAlice, agBob}
	}
	sigs.Approvers = slices.DeleteFunc(sigs.Approvers, func(a string) bool { return a == d.Issuer })
	sigs.Invalid = w.pct(2)
	return d, sigs
}

// checkAccepted asserts that an accepted delegation only narrows its chain.
func (w *propWorld) checkAccepted(t *testing.T, d *proofs.Delegation, sigs proofs.SignatureCheck) int {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("accepted %+v (sigs %+v) at %s: %s", d, sigs, w.now, fmt.Sprintf(format, args...))
	}
	issuer, delegate := w.st.Binding(d.Issuer), w.st.Binding(d.Delegate)
	nb, exp := mustTime(d.NotBefore), mustTime(d.ExpiresAt)
	if delegate == nil {
		fail("delegate not registered")
	}
	if !w.now.Before(exp) || nb.Sub(w.now) > proofs.MaxClockSkew {
		fail("not valid at log time")
	}
	if d.Issuer == d.Delegate {
		fail("self-delegation")
	}
	if refDomain(d.Issuer) != refDomain(d.Delegate) {
		fail("crosses trust domains")
	}
	if !issuer.Human && issuer.Tier == proofs.TierDraft && delegate.Tier == proofs.TierExecute {
		fail("draft-tier issuer handed out execute-tier work")
	}
	high := slices.Contains(d.DataClasses, "restricted")
	for _, s := range d.Scopes {
		high = high || strings.HasSuffix(s, ":admin") || strings.HasSuffix(s, ":delete")
	}
	approvers := slices.DeleteFunc(slices.Clone(sigs.Approvers), func(a string) bool { return a == d.Delegate || refDomain(a) != refDomain(d.Issuer) })
	if high && !issuer.Human && len(approvers) == 0 {
		fail("high impact without human approval")
	}
	life := exp.Sub(nb)
	if d.Parent == "" {
		if !issuer.Human || d.RootSubject != d.Issuer {
			fail("root grant not by the human root subject")
		}
		if life > time.Duration(w.lim.LifetimeRootSeconds)*time.Second {
			fail("root lifetime %s", life)
		}
		return 1
	}
	capSec := w.lim.LifetimeDraftSeconds
	if delegate.Tier == proofs.TierExecute || delegate.Human {
		capSec = w.lim.LifetimeExecuteSeconds
	}
	if life > time.Duration(capSec)*time.Second {
		fail("lifetime %s over the %s-tier cap", life, delegate.Tier)
	}
	chain := refChain(w.st, d.Parent)
	if len(chain) == 0 {
		fail("parent not accepted")
	}
	if chain[0].Delegate != d.Issuer {
		fail("issuer is not the parent's delegate %s", chain[0].Delegate)
	}
	if depth := len(chain) + 1; depth > w.lim.MaxDepth {
		fail("depth %d over %d", depth, w.lim.MaxDepth)
	}
	if last := chain[len(chain)-1]; last.Parent != "" {
		fail("chain does not end in a root grant")
	}
	if w.now.Before(mustTime(chain[0].NotBefore)) {
		fail("parent not yet valid")
	}
	// Attenuation holds against every ancestor, not only the parent.
	for _, a := range chain {
		switch {
		case !refTaskWithin(d.Task, a.Task):
			fail("task %s not within ancestor %s's %s", d.Task, a.ID, a.Task)
		case !refSubset(d.Scopes, a.Scopes):
			fail("scopes wider than ancestor %s's %v", a.ID, a.Scopes)
		case !refSubset(d.DataClasses, a.DataClasses):
			fail("data classes wider than ancestor %s's %v", a.ID, a.DataClasses)
		case !refSubset(d.Destinations, a.Destinations):
			fail("destinations wider than ancestor %s's %v", a.ID, a.Destinations)
		case exp.After(mustTime(a.ExpiresAt)):
			fail("outlives ancestor %s", a.ID)
		case !w.now.Before(mustTime(a.ExpiresAt)):
			fail("ancestor %s expired", a.ID)
		case w.st.revoked[a.ID]:
			fail("ancestor %s revoked", a.ID)
		case a.RootSubject != d.RootSubject:
			fail("root subject differs from ancestor %s's", a.ID)
		case a.Issuer == d.Delegate:
			fail("cycle through %s", a.ID)
		}
	}
	return len(chain) + 1
}

func TestPropertyAttenuationOnlyNarrows(t *testing.T) {
	pol := loadDefaultPolicy(t)
	for _, cfg := range []struct {
		name string
		seed uint64
		n    int
		lim  proofs.RuleLimits
	}{
		{"default limits", 20260301, 3000, proofs.DefaultRuleLimits()},
		{"tight limits", 7, 2000, proofs.RuleLimits{LifetimeExecuteSeconds: 120, LifetimeDraftSeconds: 300, LifetimeRootSeconds: 1800, MaxDepth: 3}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			w := newPropWorld(t, cfg.seed, cfg.lim)
			reasons := map[string]int{}
			depths := map[int]int{}
			accepted := 0
			for i := range cfg.n {
				d, sigs := w.next(i)
				if err := d.Validate(); err != nil {
					t.Fatalf("generated an invalid delegation %+v: %v", d, err)
				}
				in := ruleInput{D: d, Sigs: sigs, T: w.now, Lim: cfg.lim, Pol: pol}
				dec := decideAndCheck(t, w.st, in)
				want := refReasons(w.st, d, sigs, w.now, cfg.lim)
				got := slices.Clone(dec.Reasons)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("delegation %+v sigs %+v at %s:\nreasons %v\nmodel   %v", d, sigs, w.now, dec.Reasons, want)
				}
				if dec.PolicyDigest != pol.Digest || dec.CedarVersion != proofs.CedarVersion || len(dec.PolicyIDs) == 0 {
					t.Fatalf("decision %+v does not record the policy", dec)
				}
				if dec.Outcome != proofs.OutcomeAccepted {
					for _, r := range dec.Reasons {
						reasons[r]++
					}
					continue
				}
				accepted++
				depths[w.checkAccepted(t, d, sigs)]++
				w.st.accept(d)
				w.accepted = append(w.accepted, d)
			}
			t.Logf("%d of %d accepted; depths %v; denials %v", accepted, cfg.n, depths, reasons)
			// The generator must exercise the rules, or the property is vacuous.
			if accepted < cfg.n/10 {
				t.Errorf("only %d of %d accepted", accepted, cfg.n)
			}
			for depth := 1; depth <= cfg.lim.MaxDepth; depth++ {
				if depths[depth] == 0 {
					t.Errorf("no accepted delegation at depth %d", depth)
				}
			}
			for _, r := range []string{
				proofs.ReasonRootGrantNotHuman, proofs.ReasonRootSubjectMismatch, proofs.ReasonParentNotFound,
				proofs.ReasonNotParentDelegate, proofs.ReasonParentRevoked, proofs.ReasonParentExpired,
				proofs.ReasonParentNotYetValid, proofs.ReasonTaskNotWithinParent, proofs.ReasonScopeWidened,
				proofs.ReasonDataClassWidened, proofs.ReasonDestinationWidened, proofs.ReasonOutlivesParent,
				proofs.ReasonLifetimeExceedsTier, proofs.ReasonAlreadyExpired, proofs.ReasonNotYetValid,
				proofs.ReasonDepthExceeded, proofs.ReasonSelfDelegation, proofs.ReasonCycle,
				proofs.ReasonTierEscalation, proofs.ReasonDelegateUnknown, proofs.ReasonCrossDomain,
				proofs.ReasonApprovalRequired, proofs.ReasonApprovalInvalid, proofs.ReasonNonceReused,
				proofs.ReasonIDReused,
			} {
				if reasons[r] == 0 {
					t.Errorf("the generator never produced a %s denial", r)
				}
			}
		})
	}
}

// TestRevocationCascadeAfterDepthLimitLowered: the depth limit is a serve
// flag recorded in the log config, so it can be lowered while longer chains
// accepted under the old limit are still in force. Revocation must still
// cascade from every ancestor, and every ancestor's issuer may still revoke.
func TestRevocationCascadeAfterDepthLimitLowered(t *testing.T) {
	f := newRuleFixture(t, ruleBase)
	last := depthChain(t, f, 5) // alice → a1 → ... → a5, accepted under depth 5
	lowered := proofs.DefaultRuleLimits()
	lowered.MaxDepth = 2
	at := ruleBase.Add(2 * time.Minute)

	// With the limit the chain was accepted under, everything works.
	f.st.revoked["c1"] = true
	if st, err := proofs.EffectiveStatus(f.st, last.ID, at, proofs.DefaultRuleLimits()); err != nil || st.State != "revoked" || st.RevokedVia != "c1" {
		t.Fatalf("EffectiveStatus under the original limit = %+v, %v", st, err)
	}
	rev := &proofs.Revocation{Delegation: last.ID, Issuer: agAlice, Reason: "test", IssuedAt: ts(ruleBase), Nonce: "revoke-nonce-9"}
	if dec, err := proofs.DecideRevocation(f.st, rev, false, proofs.DefaultRuleLimits()); err != nil || dec.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("DecideRevocation under the original limit = %+v, %v", dec, err)
	}

	st, err := proofs.EffectiveStatus(f.st, last.ID, at, lowered)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := proofs.DecideRevocation(f.st, rev, false, lowered)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "revoked" || dec.Outcome != proofs.OutcomeAccepted {
		t.Errorf("after lowering MaxDepth to 2: EffectiveStatus(c5) = %+v (want revoked via c1); alice's revocation of c5 = %+v (want accepted)", st, dec)
	}
}

func TestBindings(t *testing.T) {
	st := newChainState()
	k1, k2 := newEd25519Signer(t), newEd25519Signer(t)
	kb := func(agent string, k *testSigner, revoked bool) *proofs.KeyBinding {
		return &proofs.KeyBinding{Agent: agent, PublicKey: k.der, Tier: proofs.TierExecute, Revoked: revoked, IssuedAt: "2020-01-01T00:00:00Z", Nonce: "binding-nonce"}
	}
	if dec := st.bindings.DecideKeyBinding(kb(agPlanner, k1, false)); dec.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("first binding: %+v", dec)
	}
	st.bind(t, kb(agPlanner, k1, false))
	before := st.bindings
	if dec := st.bindings.DecideKeyBinding(kb(agWorker, k1, false)); dec.Outcome != proofs.OutcomeDenied || !slices.Equal(dec.Reasons, []string{proofs.ReasonKeyInUse}) {
		t.Errorf("another agent with planner's key: %+v, want key_in_use", dec)
	}
	if dec := st.bindings.DecideKeyBinding(kb(agPlanner, k1, false)); dec.Outcome != proofs.OutcomeAccepted {
		t.Errorf("re-binding the same key to the same agent: %+v", dec)
	}
	// Rotation: the old key stops naming the agent.
	st.bind(t, kb(agPlanner, k2, false))
	if b := st.bindings.Agent(agPlanner); b == nil || b.Key.ID != k2.id || st.bindings.KeyID(k1.id) != nil || st.bindings.KeyID(k2.id) != b {
		t.Errorf("after rotation: agent %+v, old key %v", b, st.bindings.KeyID(k1.id))
	}
	if before.Agent(agPlanner).Key.ID != k1.id || before.Len() != 1 {
		t.Error("With changed an earlier snapshot")
	}
	if dec := st.bindings.DecideKeyBinding(kb(agWorker, k1, false)); dec.Outcome != proofs.OutcomeAccepted {
		t.Errorf("a rotated-out key for another agent: %+v", dec)
	}
	// Revocation removes the agent.
	st.bind(t, kb(agPlanner, k2, true))
	if st.bindings.Agent(agPlanner) != nil || st.bindings.KeyID(k2.id) != nil || st.bindings.Len() != 0 {
		t.Error("a revoked binding is still in force")
	}
}
