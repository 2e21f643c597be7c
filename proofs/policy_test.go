package proofs_test

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/warrantlog/warrant/proofs"
)

func TestParsePolicyDefault(t *testing.T) {
	text, err := os.ReadFile("../ledger/default.cedar")
	if err != nil {
		t.Fatal(err)
	}
	p, err := proofs.ParsePolicy(text)
	if err != nil {
		t.Fatalf("ParsePolicy(default.cedar): %v", err)
	}
	if !bytes.Equal(p.Text, text) {
		t.Error("Text is not the input")
	}
	if p.Digest != proofs.HashID(text) || !strings.HasPrefix(p.Digest, "sha256:") || len(p.Digest) != len("sha256:")+64 {
		t.Errorf("Digest = %q, want sha256 of the text %q", p.Digest, proofs.HashID(text))
	}
	text[0] ^= 1
	if p.Text[0] == text[0] {
		t.Error("Policy.Text aliases the caller's buffer")
	}
	// One comment more is another policy text, so another digest.
	q, err := proofs.ParsePolicy(append(slices.Clone(p.Text), "\n// v2\n"...))
	if err != nil {
		t.Fatal(err)
	}
	if q.Digest == p.Digest {
		t.Error("different texts have the same digest")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	const permit = "@id(\"p\")\npermit (principal, action, resource);\n"
	for name, text := range map[string]string{
		"empty":                     "",
		"comments only":             "// nothing\n",
		"no @id":                    "permit (principal, action, resource);",
		"no @id on the second":      permit + "forbid (principal, action, resource) when { context.depth > 3 };",
		"empty @id":                 "@id(\"\")\npermit (principal, action, resource);",
		"duplicate @id":             permit + "@id(\"p\")\nforbid (principal, action, resource) when { context.depth > 3 };",
		"duplicate @id, two permit": permit + permit,
		"@reason on a permit":       "@id(\"p\")\n@reason(\"ok_reason\")\npermit (principal, action, resource);",
		"@reason with capitals":     permit + "@id(\"f\")\n@reason(\"Cross_Domain\")\nforbid (principal, action, resource);",
		"@reason with a dash":       permit + "@id(\"f\")\n@reason(\"cross-domain\")\nforbid (principal, action, resource);",
		"@reason with a space":      permit + "@id(\"f\")\n@reason(\"cross domain\")\nforbid (principal, action, resource);",
		"@reason starting with a digit": permit + "@id(\"f\")\n@reason(\"1st_rule\")\n" +
			"forbid (principal, action, resource);",
		"@reason starting with _": permit + "@id(\"f\")\n@reason(\"_rule\")\nforbid (principal, action, resource);",
		"empty @reason":           permit + "@id(\"f\")\n@reason(\"\")\nforbid (principal, action, resource);",
		"@reason of 65 bytes":     permit + "@id(\"f\")\n@reason(\"" + strings.Repeat("a", 65) + "\")\nforbid (principal, action, resource);",
		"invalid Cedar":           "@id(\"p\")\npermit (principal, action, resource",
		"unknown effect":          "@id(\"p\")\nallow (principal, action, resource);",
		"bad expression":          "@id(\"p\")\npermit (principal, action, resource) when { context.depth > };",
		"not UTF-8":               "@id(\"p\")\npermit (principal, action, resource); // \xff\n",
	} {
		t.Run(name, func(t *testing.T) {
			p, err := proofs.ParsePolicy([]byte(text))
			if err == nil {
				t.Fatalf("ParsePolicy(%q) = %+v, want an error", text, p)
			}
			wantReason(t, err, proofs.ReasonPolicyInvalid)
		})
	}
}

func TestParsePolicyAccepts(t *testing.T) {
	for name, text := range map[string]string{
		"one permit":               "@id(\"p\")\npermit (principal, action, resource);",
		"only a forbid":            noPermitPolicy,
		"@reason of 64 bytes":      "@id(\"f\")\n@reason(\"" + strings.Repeat("a", 64) + "\")\nforbid (principal, action, resource);",
		"@reason with digits":      "@id(\"f\")\n@reason(\"rule_2b\")\nforbid (principal, action, resource);",
		"other annotations":        "@id(\"p\")\n@owner(\"secops\")\npermit (principal, action, resource);",
		"ids differ only in case":  "@id(\"p\")\npermit (principal, action, resource);\n@id(\"P\")\npermit (principal, action, resource);",
		"custom policy of the doc": customPolicy,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := proofs.ParsePolicy([]byte(text)); err != nil {
				t.Errorf("ParsePolicy: %v", err)
			}
		})
	}
}

func TestParsePolicySizeLimit(t *testing.T) {
	base := []byte("@id(\"p\")\npermit (principal, action, resource);\n//")
	pad := func(n int) []byte {
		b := append(slices.Clone(base), bytes.Repeat([]byte("x"), n-len(base)-1)...)
		return append(b, '\n')
	}
	at := pad(proofs.MaxPolicyBytes)
	if len(at) != proofs.MaxPolicyBytes {
		t.Fatalf("padding: %d bytes", len(at))
	}
	if _, err := proofs.ParsePolicy(at); err != nil {
		t.Errorf("policy of exactly MaxPolicyBytes refused: %v", err)
	}
	_, err := proofs.ParsePolicy(pad(proofs.MaxPolicyBytes + 1))
	wantReason(t, err, proofs.ReasonPolicyInvalid)
}

// evalInput is a plain hand-off under the default fixture's registry.
func evalInput(f *ruleFixture, issuer, delegate string) proofs.PolicyInput {
	d := f.child("d-new", f.root, issuer, delegate)
	return proofs.PolicyInput{D: d, Issuer: f.st.Binding(issuer), Delegate: f.st.Binding(delegate), Depth: 2}
}

func TestPolicyEvaluateSorted(t *testing.T) {
	// Ids and reasons in reverse order of the text; two forbids share a reason.
	p := mustParsePolicy(t, `
@id("z-permit") permit (principal, action, resource);
@id("m-permit") permit (principal, action, resource) when { context.depth >= 1 };
@id("a-permit") permit (principal, action == Action::"delegate", resource);
@id("never") permit (principal, action, resource) when { context.depth > 100 };
@id("y-forbid") @reason("zeta_reason") forbid (principal, action, resource) when { context.task == "/deny" };
@id("x-forbid") @reason("alpha_reason") forbid (principal, action, resource) when { context.task == "/deny" };
@id("w-forbid") forbid (principal, action, resource) when { context.task == "/deny" };
@id("b-forbid") @reason("alpha_reason") forbid (principal, action, resource) when { context.task == "/deny" };
@id("c-forbid") @reason("zeta_reason") forbid (principal, action, resource) when { context.task == "/other" };
`)
	f := newRuleFixture(t, ruleBase)
	in := evalInput(f, agPlanner, agReviewer)
	for range 50 { // Cedar iterates a map: the order must not leak out
		got := p.Evaluate(in)
		if !got.Allowed || len(got.Reasons) != 0 || !slices.Equal(got.PolicyIDs, []string{"a-permit", "m-permit", "z-permit"}) {
			t.Fatalf("allowed decision = %+v", got)
		}
	}
	in.D.Task = "/deny"
	for range 50 {
		got := p.Evaluate(in)
		if got.Allowed {
			t.Fatalf("decision = %+v, want denied", got)
		}
		if want := []string{"b-forbid", "w-forbid", "x-forbid", "y-forbid"}; !slices.Equal(got.PolicyIDs, want) {
			t.Fatalf("PolicyIDs = %v, want %v", got.PolicyIDs, want)
		}
		if want := []string{"alpha_reason", proofs.ReasonPolicyForbid, "zeta_reason"}; !slices.Equal(got.Reasons, want) {
			t.Fatalf("Reasons = %v, want %v (sorted, de-duplicated)", got.Reasons, want)
		}
	}
}

func TestPolicyEvaluateNoPermit(t *testing.T) {
	p := mustParsePolicy(t, noPermitPolicy)
	f := newRuleFixture(t, ruleBase)
	got := p.Evaluate(evalInput(f, agPlanner, agReviewer))
	if got.Allowed || !slices.Equal(got.Reasons, []string{proofs.ReasonPolicyForbid}) || len(got.PolicyIDs) != 0 {
		t.Errorf("no permit: %+v, want denied with policy_forbid and no determining policy", got)
	}
}

func TestPolicyEvaluateDefault(t *testing.T) {
	pol := loadDefaultPolicy(t)
	f := newRuleFixture(t, ruleBase)
	for _, tc := range []struct {
		name     string
		in       func() proofs.PolicyInput
		want     []string // nil: allowed
		wantPols []string
	}{
		{"plain", func() proofs.PolicyInput { return evalInput(f, agPlanner, agReviewer) }, nil, []string{"allow-delegation"}},
		{"cross domain", func() proofs.PolicyInput { return evalInput(f, agPlanner, agPartner) },
			[]string{proofs.ReasonCrossDomain}, []string{"same-trust-domain"}},
		{"draft to execute", func() proofs.PolicyInput { return evalInput(f, agDrafter, agReviewer) },
			[]string{proofs.ReasonTierEscalation}, []string{"draft-cannot-delegate-execute"}},
		{"draft to unregistered", func() proofs.PolicyInput { return evalInput(f, agDrafter, agGhost) }, nil, []string{"allow-delegation"}},
		{"unregistered issuer to execute", func() proofs.PolicyInput { return evalInput(f, agGhost, agReviewer) }, nil, []string{"allow-delegation"}},
		{"admin scope", func() proofs.PolicyInput {
			in := evalInput(f, agPlanner, agReviewer)
			in.D.Scopes = []string{"tickets:admin"}
			return in
		}, []string{proofs.ReasonApprovalRequired}, []string{"high-impact-needs-approval"}},
		{"admin scope, human approved", func() proofs.PolicyInput {
			in := evalInput(f, agPlanner, agReviewer)
			in.D.Scopes = []string{"tickets:admin"}
			in.HumanApproved, in.Approvers = true, []string{agBob}
			return in
		}, nil, []string{"allow-delegation"}},
		{"scope merely containing admin", func() proofs.PolicyInput {
			in := evalInput(f, agPlanner, agReviewer)
			in.D.Scopes = []string{"admin:read", "tickets:administer"}
			return in
		}, nil, []string{"allow-delegation"}},
		{"everything at once", func() proofs.PolicyInput {
			in := evalInput(f, agDrafter, agPartner)
			in.D.DataClasses = []string{"restricted"}
			return in
		}, []string{proofs.ReasonApprovalRequired, proofs.ReasonCrossDomain, proofs.ReasonTierEscalation},
			[]string{"draft-cannot-delegate-execute", "high-impact-needs-approval", "same-trust-domain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pol.Evaluate(tc.in())
			if got.Allowed != (tc.want == nil) || !slices.Equal(got.Reasons, tc.want) || !slices.Equal(got.PolicyIDs, tc.wantPols) {
				t.Errorf("Evaluate = %+v, want reasons %v, policies %v", got, tc.want, tc.wantPols)
			}
		})
	}
}

// TestPolicyEvaluationErrorFailsClosed: a forbid whose condition cannot be
// evaluated (here a misspelt context attribute, which ParsePolicy accepts
// because it validates no schema) must not silently let every delegation
// through.
func TestPolicyEvaluationErrorFailsClosed(t *testing.T) {
	p := mustParsePolicy(t, `
@id("allow") permit (principal, action, resource);
@id("no-restricted") @reason("restricted_data")
forbid (principal, action, resource) when { context.data_class.contains("restricted") };
`)
	f := newRuleFixture(t, ruleBase)
	in := evalInput(f, agPlanner, agReviewer)
	in.D.DataClasses = []string{"restricted"}
	if got := p.Evaluate(in); got.Allowed || !slices.Contains(got.Reasons, proofs.ReasonPolicyError) || !slices.Contains(got.PolicyIDs, "no-restricted") {
		t.Errorf("Evaluate = %+v: a forbid that errors must deny with %s, naming it", got, proofs.ReasonPolicyError)
	}
}

func TestPolicyContext(t *testing.T) {
	d := &proofs.Delegation{
		ID: "d-ctx", Issuer: agPlanner, Delegate: agPartner, RootSubject: agAlice, Parent: "d-root",
		Task:         "/tickets/triage/p1",
		Scopes:       []string{"a:b:delete", "read", "tickets:admin", "x:admin"},
		DataClasses:  []string{"pii", "restricted"},
		Destinations: []string{"crm", "jira"},
		NotBefore:    "2026-03-01T10:00:00Z", ExpiresAt: "2026-03-01T10:15:00Z",
		Nonce:   "nonce-ctx-1",
		Purpose: "triage",
	}
	rec := proofs.PolicyContext(proofs.PolicyInput{D: d, Depth: 3, HumanApproved: true, Approvers: []string{agBob}})
	set := func(v ...string) cedar.Value {
		vals := make([]cedar.Value, len(v))
		for i, s := range v {
			vals[i] = cedar.String(s)
		}
		return cedar.NewSet(vals...)
	}
	want := map[string]cedar.Value{
		"task":             cedar.String("/tickets/triage/p1"),
		"task_segments":    set("tickets", "triage", "p1"),
		"scopes":           set("a:b:delete", "read", "tickets:admin", "x:admin"),
		"scope_actions":    set("delete", "read", "admin"),
		"data_classes":     set("pii", "restricted"),
		"destinations":     set("crm", "jira"),
		"issuer_domain":    cedar.String("example.org"),
		"delegate_domain":  cedar.String("partner.example"),
		"root_grant":       cedar.False,
		"depth":            cedar.Long(3),
		"lifetime_seconds": cedar.Long(900),
		"human_approved":   cedar.True,
		"approvers":        set(agBob),
		"approver_domains": set("example.org"),
		"purpose":          cedar.String("triage"),
	}
	checkRecord(t, rec, want)

	// A root grant over the whole task space, with nothing optional.
	root := &proofs.Delegation{
		ID: "g", Issuer: agAlice, Delegate: agPlanner, RootSubject: agAlice, Task: "/",
		NotBefore: "2026-03-01T10:00:00Z", ExpiresAt: "2026-03-01T18:00:00Z", Nonce: "nonce-ctx-2",
	}
	rec = proofs.PolicyContext(proofs.PolicyInput{D: root, Depth: 1})
	checkRecord(t, rec, map[string]cedar.Value{
		"task":             cedar.String("/"),
		"task_segments":    set(),
		"scopes":           set(),
		"scope_actions":    set(),
		"data_classes":     set(),
		"destinations":     set(),
		"issuer_domain":    cedar.String("example.org"),
		"delegate_domain":  cedar.String("example.org"),
		"root_grant":       cedar.True,
		"depth":            cedar.Long(1),
		"lifetime_seconds": cedar.Long(8 * 3600),
		"human_approved":   cedar.False,
		"approvers":        set(),
		"approver_domains": set(),
		"purpose":          cedar.String(""),
	})
}

func checkRecord(t *testing.T, rec cedar.Record, want map[string]cedar.Value) {
	t.Helper()
	if rec.Len() != len(want) {
		var keys []string
		for k := range rec.Keys() {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		t.Errorf("context has keys %v, want %d keys", keys, len(want))
	}
	for k, v := range want {
		got, ok := rec.Get(cedar.String(k))
		if !ok {
			t.Errorf("context.%s missing", k)
			continue
		}
		if !got.Equal(v) {
			t.Errorf("context.%s = %v, want %v", k, got, v)
		}
	}
}
