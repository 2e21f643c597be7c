package proofs_test

import (
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// TestSignersRequestAndEntry runs requests through both halves of the one
// authentication (Signers): a live request, whose signatures are matched
// to keys and must all be by keys the log holds, and a recorded entry,
// whose key ids name their keys and whose co-signatures the rules judge.
func TestSignersRequestAndEntry(t *testing.T) {
	r := newReplayFixture(t)
	rp, errs := replayAll(r.leaves)
	if len(errs) > 0 {
		t.Fatalf("the fixture does not replay: %v", errs)
	}
	signers := rp.Signers()
	at := func(d time.Duration) string { return proofs.FormatTime(r.now.Add(d)) }
	event := func(t *testing.T, env *proofs.Envelope) *proofs.Event {
		t.Helper()
		// A fresh parse each time: matching rewrites the envelope.
		parsed, err := proofs.ParseEnvelope(env.Canonical())
		if err != nil {
			t.Fatal(err)
		}
		ev, err := proofs.ParseEvent(parsed)
		if err != nil {
			t.Fatalf("ParseEvent: %v", err)
		}
		return &ev
	}
	// noKeyID replaces the key ids by a foreign hint, as DSSE allows.
	noKeyID := func(env *proofs.Envelope) *proofs.Envelope {
		c := *env
		c.Signatures = append([]proofs.Signature(nil), env.Signatures...)
		for i := range c.Signatures {
			c.Signatures[i].KeyID = "foreign-hint"
		}
		return &c
	}
	payload := func(v any) []byte {
		t.Helper()
		b, err := proofs.MarshalPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	kb := payload(&proofs.KeyBinding{Agent: "spiffe://example.com/agent/new", PublicKey: newEd25519Signer(t).der, Tier: proofs.TierExecute, IssuedAt: at(0), Nonce: "kb-auth-nonce"})
	pol := payload(&proofs.PolicyUpdate{Text: customPolicy, IssuedAt: at(0), Nonce: "pol-auth-nonce"})
	d := payload(&proofs.Delegation{ID: "d-auth", Issuer: agAlice, Delegate: agPlanner, RootSubject: agAlice, Task: "/tickets",
		Scopes: []string{"tickets:read"}, NotBefore: at(-time.Second), ExpiresAt: at(time.Hour), Nonce: "d-auth-nonce"})
	revUnknown := payload(&proofs.Revocation{Delegation: "d-root", Issuer: "spiffe://example.com/agent/nobody", Reason: "test", IssuedAt: at(0), Nonce: "rev-auth-nonce"})
	stranger := newEd25519Signer(t)

	for _, tc := range []struct {
		name         string
		env          *proofs.Envelope
		request      string // reason of the request's refusal, "" if authentic
		entry        bool   // whether the recorded entry is authentic
		invalidCosig bool   // the entry's co-signatures include one that is not valid
	}{
		{name: "key binding by a registrar", env: envelope(t, proofs.PayloadTypeAgent, kb, r.registrar), entry: true},
		{name: "key binding by an admin", env: envelope(t, proofs.PayloadTypeAgent, kb, r.admin), request: proofs.ReasonRegistrarUnknown},
		{name: "key binding with a foreign key id", env: noKeyID(envelope(t, proofs.PayloadTypeAgent, kb, r.registrar))},
		{name: "key binding with two signatures", env: envelope(t, proofs.PayloadTypeAgent, kb, r.registrar, stranger), request: proofs.ReasonTooManySignatures},
		{name: "policy by an admin", env: envelope(t, proofs.PayloadTypePolicy, pol, r.admin), entry: true},
		{name: "policy by a registrar", env: envelope(t, proofs.PayloadTypePolicy, pol, r.registrar), request: proofs.ReasonAdminUnknown},
		{name: "delegation by its issuer", env: envelope(t, proofs.PayloadTypeDelegation, d, r.keys[agAlice]), entry: true},
		{name: "delegation with foreign key ids", env: noKeyID(envelope(t, proofs.PayloadTypeDelegation, d, r.keys[agAlice]))},
		{name: "delegation by another agent", env: envelope(t, proofs.PayloadTypeDelegation, d, r.keys[agBob]), request: proofs.ReasonSignatureMissing},
		{name: "delegation with a junk co-signature", env: envelope(t, proofs.PayloadTypeDelegation, d, r.keys[agAlice], stranger), request: proofs.ReasonSignatureKeyUnknown, entry: true, invalidCosig: true},
		{name: "revocation by an unregistered issuer", env: envelope(t, proofs.PayloadTypeRevocation, revUnknown, stranger), request: proofs.ReasonIssuerNotRegistered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(t, tc.env)
			err := signers.AuthenticateRequest(ev)
			if tc.request == "" {
				if err != nil {
					t.Fatalf("request refused: %v", err)
				}
				for _, s := range ev.Env.Signatures {
					if signers.Key(s.KeyID) == nil {
						t.Errorf("an authentic request's signature names key %q, which the log does not hold", s.KeyID)
					}
				}
			} else {
				wantReason(t, err, tc.request)
			}
			ev = event(t, tc.env)
			err = signers.AuthenticateEntry(ev)
			if tc.entry != (err == nil) {
				t.Fatalf("recorded entry authentic = %v (%v), want %v", err == nil, err, tc.entry)
			}
			if err == nil && ev.Sigs.Invalid != tc.invalidCosig {
				t.Errorf("recorded entry's co-signatures invalid = %v, want %v", ev.Sigs.Invalid, tc.invalidCosig)
			}
		})
	}
}

// TestSignersClaimed checks whose budget a request claims before it is
// authenticated, and that it is whose it spends once authenticated.
func TestSignersClaimed(t *testing.T) {
	r := newReplayFixture(t)
	rp, _ := replayAll(r.leaves)
	signers := rp.Signers()
	for _, p := range r.leaves {
		if p.Env == nil {
			continue
		}
		ev, err := proofs.ParseEvent(p.Env)
		if err != nil {
			t.Fatal(err)
		}
		claimed := signers.Claimed(&ev)
		rec, err := p.Event()
		if err != nil {
			t.Fatal(err)
		}
		rec.ByAdmin = rec.Revocation != nil && rec.Revocation.Issuer == ""
		if want := rec.Spender(); claimed != want {
			t.Errorf("%s entry: claimed %q, spends %q", p.Kind, claimed, want)
		}
	}
}
