package client

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Signed requests: each Sign method completes the fields of a payload that
// its signer need not choose (a fresh nonce, the time it was issued, for a
// delegation a fresh id), checks the payload as far as the log would refuse
// to parse it (so a malformed request fails here, with the reason code the
// log would give, instead of costing a round trip), encodes it canonically
// and returns the signed DSSE envelope, ready for Client.Append. The
// payload is completed in place, so the caller sees the id and nonce it
// was given. Rule checks (who may delegate what) are the log's: a request
// that breaks a rule is signed here and recorded as denied there.

// NewNonce returns a fresh nonce for a payload: 128 random bits, in hex.
func NewNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewDelegationID returns a fresh delegation id: "dlg_" and 26 lower-case
// base32 characters (128 random bits).
func NewDelegationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "dlg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// SignKeyBinding signs kb with a registrar's key: a binding of an agent (or,
// with Human, a human principal) to a public key, or with Revoked the
// withdrawal of its key. IssuedAt (now) and Nonce are filled where empty;
// the binding must then be valid (KeyBinding.Validate).
func (s *Signer) SignKeyBinding(kb *proofs.KeyBinding, now time.Time) ([]byte, error) {
	if kb.IssuedAt == "" {
		kb.IssuedAt = proofs.FormatTime(now)
	}
	if kb.Nonce == "" {
		kb.Nonce = NewNonce()
	}
	if err := kb.Validate(); err != nil {
		return nil, err
	}
	return s.signPayload(proofs.PayloadTypeAgent, kb)
}

// SignDelegation signs d with its issuer's key. ID, Nonce and NotBefore
// (now) are filled where empty, and for a root grant (no Parent) the
// RootSubject is the Issuer; a delegation under a parent carries the
// parent's root subject, which Client.RootSubject finds. ExpiresAt is the
// caller's choice. The delegation must then parse as the log parses it
// (proofs.ParseDelegation), and *d is replaced by exactly what was signed
// (its sets sorted and de-duplicated, as the canonical encoding has them).
func (s *Signer) SignDelegation(d *proofs.Delegation, now time.Time) ([]byte, error) {
	if d.ID == "" {
		d.ID = NewDelegationID()
	}
	if d.Nonce == "" {
		d.Nonce = NewNonce()
	}
	if d.NotBefore == "" {
		d.NotBefore = proofs.FormatTime(now)
	}
	if d.RootSubject == "" && d.Parent == "" {
		d.RootSubject = d.Issuer
	}
	payload, err := proofs.MarshalPayload(d)
	if err != nil {
		return nil, err
	}
	signed, err := proofs.ParseDelegation(payload)
	if err != nil {
		return nil, err
	}
	*d = *signed
	return s.SignEnvelope(proofs.PayloadTypeDelegation, payload)
}

// SignRevocation signs r with the key of the delegation's issuer, of one of
// its ancestors' issuers (naming it as Issuer), or of an admin (Issuer
// empty). IssuedAt (now) and Nonce are filled where empty; the revocation
// must then parse as the log parses it (proofs.ParseRevocation).
func (s *Signer) SignRevocation(r *proofs.Revocation, now time.Time) ([]byte, error) {
	if r.IssuedAt == "" {
		r.IssuedAt = proofs.FormatTime(now)
	}
	if r.Nonce == "" {
		r.Nonce = NewNonce()
	}
	payload, err := proofs.MarshalPayload(r)
	if err != nil {
		return nil, err
	}
	if _, err := proofs.ParseRevocation(payload); err != nil {
		return nil, err
	}
	return s.SignEnvelope(proofs.PayloadTypeRevocation, payload)
}

// SignPolicy signs a policy update with an admin's key: the Cedar policy
// pol (from proofs.ParsePolicy, which has checked it) in force from its
// entry on, issued now with a fresh nonce.
func (s *Signer) SignPolicy(pol *proofs.Policy, now time.Time) ([]byte, error) {
	return s.signPayload(proofs.PayloadTypePolicy, &proofs.PolicyUpdate{Text: string(pol.Text), IssuedAt: proofs.FormatTime(now), Nonce: NewNonce()})
}

// signPayload encodes v canonically and signs it as payloadType.
func (s *Signer) signPayload(payloadType string, v any) ([]byte, error) {
	payload, err := proofs.MarshalPayload(v)
	if err != nil {
		return nil, err
	}
	return s.SignEnvelope(payloadType, payload)
}

// RootSubject returns the root subject of a delegation issued by issuer
// under parent: the parent's, as the log holds it (verified). When the log
// has no delegation parent it returns issuer: the request is then the
// log's to decide, and to record as denied; the SDK makes no rule checks of
// its own.
func (c *Client) RootSubject(ctx context.Context, parent, issuer string) (string, error) {
	e, err := c.Delegation(ctx, parent)
	switch {
	case proofs.Reason(err) == proofs.ReasonNotFound:
		return issuer, nil
	case err != nil:
		return "", fmt.Errorf("looking up parent %s for its root subject: %w", parent, err)
	}
	return e.Leaf.Delegation.RootSubject, nil
}
