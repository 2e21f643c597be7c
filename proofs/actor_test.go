package proofs_test

import (
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// TestRevocationCheckSigner: finding 10 of issue 11. An admin-signed
// revocation that names an issuer would be displayed as that agent's act.
func TestRevocationCheckSigner(t *testing.T) {
	named := &proofs.Revocation{Delegation: "d", Issuer: agPlanner, Reason: "x", IssuedAt: "2026-01-01T00:00:00Z", Nonce: "nonce-123"}
	anon := *named
	anon.Issuer = ""
	if err := named.CheckSigner(false); err != nil {
		t.Errorf("issuer-signed, naming the issuer: %v", err)
	}
	wantReason(t, named.CheckSigner(true), proofs.ReasonRevokerMismatch)
	if err := anon.CheckSigner(true); err != nil {
		t.Errorf("admin-signed, naming no issuer: %v", err)
	}
}

// TestLeafActor: who made an entry, as `warrant get` and blast-radius show.
func TestLeafActor(t *testing.T) {
	k := newEd25519Signer(t)
	leaf := func(kind, typ string, v any) *proofs.ParsedLeaf {
		payload, err := proofs.MarshalPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		env := envelope(t, typ, payload, k)
		l := &proofs.Leaf{Version: proofs.LeafVersion, Kind: kind, LogTime: proofs.FormatLogTime(ruleBase), Envelope: env.Canonical(), Decision: &proofs.Decision{Outcome: proofs.OutcomeAccepted}}
		raw, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	rev := &proofs.Revocation{Delegation: "d", Reason: "x", IssuedAt: "2026-01-01T00:00:00Z", Nonce: "nonce-123"}
	if got, want := leaf(proofs.KindRevocation, proofs.PayloadTypeRevocation, rev).Actor(), "admin "+k.id; got != want {
		t.Errorf("admin revocation actor %q, want %q", got, want)
	}
	rev.Issuer = agPlanner
	if got := leaf(proofs.KindRevocation, proofs.PayloadTypeRevocation, rev).Actor(); got != agPlanner {
		t.Errorf("issuer revocation actor %q", got)
	}
	kb := &proofs.KeyBinding{Agent: agPlanner, PublicKey: k.der, Tier: proofs.TierDraft, IssuedAt: "2026-01-01T00:00:00Z", Nonce: "nonce-123"}
	if got, want := leaf(proofs.KindKeyBinding, proofs.PayloadTypeAgent, kb).Actor(), "registrar "+k.id; got != want {
		t.Errorf("key binding actor %q, want %q", got, want)
	}
}
