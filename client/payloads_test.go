package client_test

import (
	"context"
	"fmt"
	"log"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// ExampleSigner_SignDelegation registers a human and two agents, then signs
// a root grant and a delegation under it, whose root subject the client
// looks up in the log.
func ExampleSigner_SignDelegation() {
	ctx := context.Background()
	x := exampleLog()
	defer x.stop()
	c := client.New(x.url, x.logKey)
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	now := time.Now()

	alice, planner, coder := exampleSigner(), exampleSigner(), exampleSigner()
	for _, a := range []struct {
		id    string
		key   *client.Signer
		human bool
	}{
		{"spiffe://example.org/human/alice", alice, true},
		{"spiffe://example.org/agent/planner", planner, false},
		{"spiffe://example.org/agent/coder", coder, false},
	} {
		env, err := x.registrar.SignKeyBinding(&proofs.KeyBinding{Agent: a.id, PublicKey: a.key.Public().DER, Tier: proofs.TierExecute, Human: a.human}, now)
		check(err)
		_, err = c.Append(ctx, env)
		check(err)
	}

	// A root grant: its root subject is its issuer.
	grant := &proofs.Delegation{
		Issuer:    "spiffe://example.org/human/alice",
		Delegate:  "spiffe://example.org/agent/planner",
		Task:      "/tickets",
		Scopes:    []string{"tickets:write", "tickets:read"},
		ExpiresAt: proofs.FormatTime(now.Add(time.Hour)),
	}
	env, err := alice.SignDelegation(grant, now) // fills the id, nonce and not_before
	check(err)
	e, err := c.Append(ctx, env)
	check(err)
	fmt.Println("root grant:", e.Leaf.Decision.Outcome, grant.RootSubject, grant.Scopes)

	// The planner hands part of it on; the chain's root subject comes from
	// the parent, as the log holds it.
	sub := &proofs.Delegation{
		Issuer:    "spiffe://example.org/agent/planner",
		Delegate:  "spiffe://example.org/agent/coder",
		Parent:    grant.ID,
		Task:      "/tickets/triage",
		Scopes:    []string{"tickets:read"},
		ExpiresAt: proofs.FormatTime(now.Add(10 * time.Minute)),
	}
	sub.RootSubject, err = c.RootSubject(ctx, sub.Parent, sub.Issuer)
	check(err)
	env, err = planner.SignDelegation(sub, now)
	check(err)
	e, err = c.Append(ctx, env)
	check(err)
	fmt.Println("under it:", e.Leaf.Decision.Outcome, sub.RootSubject)
	// Output:
	// root grant: accepted spiffe://example.org/human/alice [tickets:read tickets:write]
	// under it: accepted spiffe://example.org/human/alice
}

// TestSignCompletesAndChecks checks what the Sign methods fill in, what
// they keep, and that they refuse what the log could not parse, with the
// log's reason code.
func TestSignCompletesAndChecks(t *testing.T) {
	s := newEd25519(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	hexNonce := regexp.MustCompile(`^[0-9a-f]{32}$`)

	kb := &proofs.KeyBinding{Agent: "spiffe://example.org/a", PublicKey: s.Public().DER, Tier: proofs.TierDraft}
	env, err := s.SignKeyBinding(kb, now)
	if err != nil {
		t.Fatal(err)
	}
	if kb.IssuedAt != "2026-03-04T05:06:07Z" || !hexNonce.MatchString(kb.Nonce) {
		t.Fatalf("key binding completed as %+v", kb)
	}
	wantSigned(t, env, proofs.PayloadTypeAgent, s)
	_, err = s.SignKeyBinding(&proofs.KeyBinding{Agent: "not a spiffe id", PublicKey: s.Public().DER, Tier: proofs.TierDraft}, now)
	wantReason(t, err, proofs.ReasonIdentityMalformed)

	d := &proofs.Delegation{
		Issuer: "spiffe://example.org/a", Delegate: "spiffe://example.org/b", Task: "/t",
		Scopes: []string{"b", "a", "b"}, ExpiresAt: "2026-03-04T06:00:00Z", Nonce: "given-nonce-1",
	}
	if env, err = s.SignDelegation(d, now); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^dlg_[a-z2-7]{26}$`).MatchString(d.ID) || d.Nonce != "given-nonce-1" || d.NotBefore != "2026-03-04T05:06:07Z" ||
		d.RootSubject != d.Issuer || !slices.Equal(d.Scopes, []string{"a", "b"}) {
		t.Fatalf("delegation completed as %+v", d)
	}
	signed := wantSigned(t, env, proofs.PayloadTypeDelegation, s)
	if got, err := proofs.ParseDelegation(signed.Payload); err != nil || got.ID != d.ID || !slices.Equal(got.Scopes, d.Scopes) {
		t.Fatalf("signed %+v (%v), completed %+v", got, err, d)
	}
	under := &proofs.Delegation{Issuer: "spiffe://example.org/b", Delegate: "spiffe://example.org/c", Parent: d.ID, Task: "/t", ExpiresAt: d.ExpiresAt}
	if _, err := s.SignDelegation(under, now); err == nil || under.RootSubject != "" {
		t.Fatalf("a delegation under a parent was signed without a root subject (%q, %v)", under.RootSubject, err)
	}
	_, err = s.SignDelegation(&proofs.Delegation{Issuer: "spiffe://example.org/a", Delegate: "spiffe://example.org/b", Task: "no-slash", ExpiresAt: d.ExpiresAt}, now)
	if proofs.Reason(err) == "" {
		t.Fatalf("a delegation with task %q: %v, want a reason code", "no-slash", err)
	}

	r := &proofs.Revocation{Delegation: d.ID, Reason: "done"}
	if env, err = s.SignRevocation(r, now); err != nil {
		t.Fatal(err)
	}
	if r.IssuedAt != "2026-03-04T05:06:07Z" || !hexNonce.MatchString(r.Nonce) {
		t.Fatalf("revocation completed as %+v", r)
	}
	wantSigned(t, env, proofs.PayloadTypeRevocation, s)
	_, err = s.SignRevocation(&proofs.Revocation{Delegation: d.ID, Issuer: "not a spiffe id", Reason: "x"}, now)
	wantReason(t, err, proofs.ReasonIdentityMalformed)

	pol, err := proofs.ParsePolicy([]byte("@id(\"all\")\npermit (principal, action, resource);\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env, err = s.SignPolicy(pol, now); err != nil {
		t.Fatal(err)
	}
	signed = wantSigned(t, env, proofs.PayloadTypePolicy, s)
	u, got, err := proofs.ParsePolicyUpdate(signed.Payload)
	if err != nil || got.Digest != pol.Digest || u.IssuedAt != "2026-03-04T05:06:07Z" || !hexNonce.MatchString(u.Nonce) {
		t.Fatalf("policy update %+v (%v)", u, err)
	}
}

// wantSigned parses a canonical envelope of payloadType carrying exactly
// s's valid signature.
func wantSigned(t *testing.T, env []byte, payloadType string, s *client.Signer) *proofs.Envelope {
	t.Helper()
	e, canonical, err := proofs.ParseEnvelopeCanonical(env)
	if err != nil {
		t.Fatal(err)
	}
	if string(canonical) != string(env) {
		t.Fatalf("the envelope is not canonical:\n%s\n%s", env, canonical)
	}
	if e.PayloadType != payloadType || len(e.Signatures) != 1 || e.Signatures[0].KeyID != s.KeyID() {
		t.Fatalf("envelope %s with %d signatures", e.PayloadType, len(e.Signatures))
	}
	if err := e.Verify(s.Public()); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewIDsAreFresh(t *testing.T) {
	if a, b := client.NewNonce(), client.NewNonce(); a == b {
		t.Fatalf("two nonces %s", a)
	}
	if a, b := client.NewDelegationID(), client.NewDelegationID(); a == b {
		t.Fatalf("two delegation ids %s", a)
	}
}
