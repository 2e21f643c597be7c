package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"context"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// governance is a user's working directory for the delegation-governance
// scenario of issue 3: a human, agents in two trust domains, an admin.
type governance struct {
	*e2e
}

func id(name string) string {
	if strings.HasPrefix(name, "partner") {
		return "spiffe://partner.example/agent/" + name
	}
	if name == "alice" || name == "bob" {
		return "spiffe://example.org/human/" + name
	}
	return "spiffe://example.org/agent/" + name
}

func newGovernance(t *testing.T) *governance {
	dir := t.TempDir()
	addr := freeAddr(t)
	e := &e2e{t: t, dir: dir, addr: addr, env: userEnv(t, dir, addr)}
	names := []string{"registrar", "admin", "alice", "bob", "planner", "executor", "a3", "a4", "a5", "a6", "drafter", "partnerx"}
	for _, k := range names {
		mustWarrant(t, dir, e.env, "keygen", "--out", k)
	}
	e.srv = startServer(t, dir, e.env, addr, "--registrar-key", "registrar.pub", "--admin-key", "admin.pub")
	vkey, _ := os.ReadFile(filepath.Join(dir, "warrant-data", "log.vkey"))
	e.vkey = strings.TrimSpace(string(vkey))
	e.env = append(e.env, "WARRANT_LOG_KEY=@"+filepath.Join(dir, "warrant-data", "log.vkey"))
	for _, n := range names[2:] {
		args := []string{"register", "--registrar-key", "registrar.key", "--agent", id(n), "--pub", n + ".pub", "--tier", "execute"}
		switch n {
		case "alice", "bob":
			args = append(args, "--human")
		case "drafter":
			args[len(args)-1] = "draft"
		}
		mustWarrant(t, dir, e.env, args...)
	}
	return &governance{e}
}

// delegate runs `warrant delegate` from issuer to delegate; the result's
// reason is "" when accepted.
func (g *governance) delegate(issuer, to string, args ...string) (appended, string) {
	g.t.Helper()
	full := append([]string{"delegate", "--key", issuer + ".key", "--issuer", id(issuer), "--to", id(to), "--json"}, args...)
	r := warrant(g.t, g.dir, g.env, full...)
	if r.code == 0 {
		var a appended
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
			g.t.Fatalf("delegate --json: %q", r.stdout)
		}
		return a, ""
	}
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: ") {
		g.t.Fatalf("delegate %v: exit %d stderr %q", args, r.code, r.stderr)
	}
	code, _, _ := strings.Cut(strings.TrimPrefix(r.stderr, "error: "), ":")
	return appended{}, code + "\n" + r.stderr
}

// mustAccept delegates and fails unless accepted.
func (g *governance) mustAccept(issuer, to string, args ...string) appended {
	g.t.Helper()
	a, denied := g.delegate(issuer, to, args...)
	if denied != "" {
		g.t.Fatalf("%s -> %s %v denied: %s", issuer, to, args, denied)
	}
	return a
}

// mustDeny delegates and fails unless denied with reason, recorded in the
// log as a denial naming it.
func (g *governance) mustDeny(reason, issuer, to string, args ...string) {
	g.t.Helper()
	_, denied := g.delegate(issuer, to, args...)
	code, stderr, _ := strings.Cut(denied, "\n")
	if code != reason {
		g.t.Fatalf("%s -> %s %v: got %q, want denial %s", issuer, to, args, denied, reason)
	}
	// The denial is on the record: "recorded at index N".
	if !strings.Contains(stderr, "recorded at index") {
		g.t.Fatalf("denial not recorded: %s", stderr)
	}
}

// TestGovernanceScenario walks issue 3's scenario as a user would, with the
// CLI against a real server: every rule denies with its own reason code and
// is recorded; a policy change flips decisions from its index on; and an
// offline replay of the whole log re-derives every recorded decision.
func TestGovernanceScenario(t *testing.T) {
	g := newGovernance(t)
	root := []string{"--task", "/tickets", "--scope", "tickets:read", "--scope", "tickets:write", "--scope", "tickets:delete",
		"--data-class", "internal", "--data-class", "restricted", "--dest", "jira", "--ttl", "1h", "--id", "dlg_root"}
	g.mustAccept("alice", "planner", root...)
	child := func(extra ...string) []string {
		return append([]string{"--parent", "dlg_root", "--task", "/tickets/triage", "--scope", "tickets:read", "--ttl", "10m"}, extra...)
	}
	g.mustAccept("planner", "executor", child("--id", "dlg_triage", "--nonce", "nonce-triage-1")...)

	g.mustDeny("root_grant_not_human", "planner", "executor", "--task", "/tickets", "--ttl", "10m")
	g.mustDeny("scope_widened", "planner", "executor", child("--scope", "crm:read")...)
	g.mustDeny("data_class_widened", "planner", "executor", child("--data-class", "pii")...)
	g.mustDeny("destination_widened", "planner", "executor", child("--dest", "slack")...)
	g.mustDeny("task_not_within_parent", "planner", "executor", "--parent", "dlg_root", "--task", "/billing", "--ttl", "10m")
	g.mustDeny("task_not_within_parent", "planner", "executor", "--parent", "dlg_root", "--task", "/ticketsx", "--ttl", "10m")
	g.mustDeny("lifetime_exceeds_tier", "planner", "executor", "--parent", "dlg_root", "--task", "/tickets", "--ttl", "20m")
	g.mustDeny("not_parent_delegate", "executor", "a3", child()...)
	g.mustDeny("self_delegation", "planner", "planner", child()...)
	g.mustDeny("cycle", "executor", "planner", "--parent", "dlg_triage", "--task", "/tickets/triage", "--ttl", "5m")
	g.mustDeny("delegate_unknown", "planner", "ghost", child()...)
	g.mustDeny("parent_not_found", "planner", "executor", "--parent", "dlg_nope", "--task", "/tickets", "--ttl", "5m")
	g.mustDeny("cross_domain", "planner", "partnerx", child()...)
	g.mustDeny("nonce_reused", "planner", "executor", child("--nonce", "nonce-triage-1")...)
	g.mustDeny("id_reused", "planner", "executor", child("--id", "dlg_triage")...)

	// Outliving the parent: a short root grant.
	g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "5m", "--id", "dlg_short")
	g.mustDeny("outlives_parent", "planner", "executor", "--parent", "dlg_short", "--task", "/tickets", "--ttl", "10m")

	// Tiers: a draft-tier agent cannot hand out execute-tier work.
	g.mustAccept("planner", "drafter", child("--id", "dlg_draft")...)
	g.mustDeny("tier_escalation", "drafter", "executor", "--parent", "dlg_draft", "--task", "/tickets/triage", "--ttl", "5m")

	// Depth: a chain of five links is the limit.
	g.mustAccept("executor", "a3", "--parent", "dlg_triage", "--task", "/tickets/triage", "--ttl", "9m", "--id", "dlg_d3")
	g.mustAccept("a3", "a4", "--parent", "dlg_d3", "--task", "/tickets/triage", "--ttl", "8m", "--id", "dlg_d4")
	g.mustAccept("a4", "a5", "--parent", "dlg_d4", "--task", "/tickets/triage", "--ttl", "7m", "--id", "dlg_d5")
	g.mustDeny("depth_exceeded", "a5", "a6", "--parent", "dlg_d5", "--task", "/tickets/triage", "--ttl", "6m")

	// High impact needs a human approval: request, approve, submit.
	hi := []string{"--parent", "dlg_root", "--task", "/tickets", "--scope", "tickets:delete", "--ttl", "10m"}
	g.mustDeny("approval_required", "planner", "executor", hi...)
	mustWarrant(t, g.dir, g.env, append([]string{"delegate", "--key", "planner.key", "--issuer", id("planner"), "--to", id("executor"),
		"--request-out", "hi.json", "--id", "dlg_hi"}, hi...)...)
	// An approval by a registered non-human does not count.
	mustWarrant(t, g.dir, g.env, "approve", "--key", "a3.key", "--approver", id("a3"), "hi.json")
	r := warrant(t, g.dir, g.env, "submit", "hi.json")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: approval_required: ") {
		t.Fatalf("approval by a non-human: exit %d %q", r.code, r.stderr)
	}
	// The same signed request with a valid approval added later keeps its
	// first decision (the log deduplicates on what the issuer signed), and
	// the CLI says to sign a new request.
	mustWarrant(t, g.dir, g.env, "approve", "--key", "bob.key", "--approver", id("bob"), "hi.json")
	r = warrant(t, g.dir, g.env, "submit", "hi.json")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: approval_required: ") || !strings.Contains(r.stderr, "sign a new request") {
		t.Fatalf("approved resubmission of a denied request: exit %d %q", r.code, r.stderr)
	}
	mustWarrant(t, g.dir, g.env, "delegate", "--key", "planner.key", "--issuer", id("planner"), "--to", id("executor"),
		"--request-out", "hi2.json", "--id", "dlg_hi", "--parent", "dlg_root", "--task", "/tickets", "--scope", "tickets:delete", "--ttl", "10m")
	// An approval by an unregistered key does not count either.
	mustWarrant(t, g.dir, g.env, "keygen", "--out", "mallory")
	cp := func(from, to string) {
		b, _ := os.ReadFile(filepath.Join(g.dir, from))
		os.WriteFile(filepath.Join(g.dir, to), b, 0o644)
	}
	cp("hi2.json", "hi3.json")
	mustWarrant(t, g.dir, g.env, "approve", "--key", "mallory.key", "--approver", id("bob"), "hi3.json")
	r = warrant(t, g.dir, g.env, "submit", "hi3.json")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: signature_key_unknown: ") {
		t.Fatalf("approval by an unregistered key: exit %d %q", r.code, r.stderr)
	}
	mustWarrant(t, g.dir, g.env, "approve", "--key", "bob.key", "--approver", id("bob"), "hi2.json")
	out := mustWarrant(t, g.dir, g.env, "submit", "hi2.json", "--json")
	if !strings.Contains(out, `"id":"dlg_hi"`) || !strings.Contains(out, `"decision":"accepted"`) {
		t.Fatalf("approved submit: %s", out)
	}

	// Revocation by the issuer cascades to every descendant.
	g.mustAccept("executor", "a3", "--parent", "dlg_triage", "--task", "/tickets/triage", "--ttl", "5m", "--id", "dlg_before")
	r = warrant(t, g.dir, g.env, "revoke", "--key", "executor.key", "--issuer", id("executor"), "--id", "dlg_root", "--reason", "not mine")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: revoke_not_authorized: ") {
		t.Fatalf("revocation by a non-ancestor: exit %d %q", r.code, r.stderr)
	}
	mustWarrant(t, g.dir, g.env, "revoke", "--key", "planner.key", "--issuer", id("planner"), "--id", "dlg_triage", "--reason", "incident 42")
	g.mustDeny("parent_revoked", "executor", "a4", "--parent", "dlg_triage", "--task", "/tickets/triage", "--ttl", "5m")
	g.mustDeny("parent_revoked", "a3", "a4", "--parent", "dlg_before", "--task", "/tickets/triage", "--ttl", "4m")
	out = mustWarrant(t, g.dir, g.env, "get", "dlg_before", "--json")
	if !strings.Contains(out, `"status":{"state":"revoked","revoked_via":"dlg_triage"}`) {
		t.Fatalf("get shows no cascaded revocation: %s", out)
	}

	// Expired parent.
	// Three seconds leave a busy machine time to log it before it expires.
	g.mustAccept("alice", "planner", "--task", "/tickets", "--ttl", "3s", "--id", "dlg_brief")
	time.Sleep(3100 * time.Millisecond)
	g.mustDeny("parent_expired", "planner", "executor", "--parent", "dlg_brief", "--task", "/tickets", "--ttl", "1s")

	// A policy change flips decisions from its index on.
	policy, err := os.ReadFile("../../ledger/default.cedar")
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(policy), "when { context.issuer_domain != context.delegate_domain };",
		"when { context.issuer_domain != context.delegate_domain }\nunless { context.issuer_domain == \"example.org\" && context.delegate_domain == \"partner.example\" };", 1)
	if edited == string(policy) {
		t.Fatal("could not edit the default policy")
	}
	os.WriteFile(filepath.Join(g.dir, "partner.cedar"), []byte(edited), 0o644)
	r = warrant(t, g.dir, g.env, "policy", "set", "--key", "planner.key", "partner.cedar")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: admin_unknown: ") {
		t.Fatalf("policy signed by a non-admin: exit %d %q", r.code, r.stderr)
	}
	mustWarrant(t, g.dir, g.env, "policy", "set", "--key", "admin.key", "partner.cedar")
	g.mustAccept("planner", "partnerx", child()...)

	// Offline replay of the whole log re-derives every recorded decision,
	// the cross_domain denial under the old policy included.
	replayAll(t, g.e2e)
}

// replayAll fetches every entry (verified) and replays it.
func replayAll(t *testing.T, e *e2e) {
	t.Helper()
	v, _ := proofs.ParseVerifierKey(e.vkey)
	c := client.New(e.url(), v)
	ctx := context.Background()
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rp := proofs.NewReplay()
	denials := 0
	for next := uint64(0); next < cp.Size; {
		leaves, _, err := c.Entries(ctx, next, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leaves {
			if err := rp.Apply(next, l); err != nil {
				t.Errorf("replay: %v", err)
			}
			if l.Decision != nil && l.Decision.Outcome == proofs.OutcomeDenied {
				denials++
			}
			next++
		}
	}
	if denials == 0 {
		t.Fatal("the replayed log has no denials")
	}
	t.Logf("replayed %d entries, %d denials", cp.Size, denials)
}
