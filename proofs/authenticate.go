package proofs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Signers is who may sign a log's entries at one point of its history: the
// trust anchors of the configuration in force (registrar and admin keys)
// and the key bindings in force. It answers the one question of
// authentication, who signed an event and under which binding or trust
// anchor, for a server's live requests (AuthenticateRequest) and an
// auditor's recorded entries (AuthenticateEntry, through
// State.Authenticate) alike.
//
// A Signers is immutable, so a server's stateless stage can authenticate
// requests concurrently against the snapshot State.Signers gave after the
// last commit while the sequencer moves on; State.Decide checks the
// signatures again if the bindings changed in between.
type Signers struct {
	registrars map[string]*PublicKey
	admins     map[string]*PublicKey
	bindings   *Bindings
}

// Signers returns who may sign the next entry: the trust anchors and key
// bindings in force. The snapshot does not change when the state does.
func (s *State) Signers() *Signers {
	return &Signers{registrars: s.registrars, admins: s.admins, bindings: s.bindings}
}

// Bindings is the key bindings in force.
func (s *Signers) Bindings() *Bindings { return s.bindings }

// Admin reports whether keyID is the canonical id of an admin key.
func (s *Signers) Admin(keyID string) bool { return s.admins[keyID] != nil }

// Key returns the key with the canonical id keyID among those the log
// holds: the trust anchors and the keys bound in force; nil if none.
func (s *Signers) Key(keyID string) *PublicKey {
	if k := s.registrars[keyID]; k != nil {
		return k
	}
	if k := s.admins[keyID]; k != nil {
		return k
	}
	return s.bound(keyID)
}

// Claimed is whose rate budget a request spends as far as can be told
// before its signatures are checked (Event.Spender once authenticated):
// the event is taken as signed by an admin if its first signature names an
// admin key. A server sheds a request whose claimed budget is empty
// unverified.
func (s *Signers) Claimed(ev *Event) string {
	c := *ev
	c.ByAdmin = ev.Env != nil && len(ev.Env.Signatures) > 0 && s.Admin(ev.Env.Signatures[0].KeyID)
	return c.Spender()
}

// AuthenticateRequest establishes who signed a request a server received,
// and writes it into ev (ByAdmin, Sigs, Checked): a key binding must carry
// exactly one signature, by a registrar key; a policy update one by an
// admin key; a revocation one, by an admin key or by its issuer's key in
// force; a delegation its issuer's signature under the bindings in force,
// any other signature being judged as an approval (CheckSignatures).
//
// DSSE makes a signature's key id an optional hint, so a request's
// signatures are first matched to keys (Envelope.MatchKeys), which also
// puts the envelope in its canonical form: every signature must verify
// under a key the log holds for the payload, or the request is not
// authentic. The candidate keys of a signature that does not name its key
// by its canonical id: the registrar keys for a key binding, the admin keys
// for a policy, the issuer's key in force and the admin keys for a
// revocation, and for a delegation the issuer's key in force and that of
// the chain's root subject (the human the chain acts for, the usual
// approver). Any other co-signer must name its key by its canonical key
// id.
//
// The error carries the reason a server refuses the request with
// (registrar_unknown, admin_unknown, issuer_not_registered,
// signature_missing, signature_key_unknown, ...).
func (s *Signers) AuthenticateRequest(ev *Event) error { return s.authenticate(ev, true) }

// AuthenticateEntry establishes who signed a recorded entry, under the same
// rules as AuthenticateRequest, and writes it into ev. A recorded envelope
// is canonical: its key ids name their keys, so nothing is matched, and its
// co-signatures are judged by the rules, since logs written before junk
// co-signatures were refused hold them as approval_invalid denials. An
// error means the log should have refused the entry.
func (s *Signers) AuthenticateEntry(ev *Event) error {
	if ev.Env == nil {
		return fmt.Errorf("a %s entry without an envelope", ev.Kind)
	}
	return s.authenticate(ev, false)
}

// authenticate is the one implementation of both: match is set for a live
// request, whose signatures are matched to keys first.
func (s *Signers) authenticate(ev *Event, match bool) error {
	switch ev.Kind {
	case KindKeyBinding:
		return s.sole(ev.Env, s.registrars, ReasonRegistrarUnknown, "a registrar", match)
	case KindPolicy:
		ev.ByAdmin = true
		return s.sole(ev.Env, s.admins, ReasonAdminUnknown, "an admin", match)
	case KindDelegation:
		return s.authenticateDelegation(ev, match)
	case KindRevocation:
		return s.authenticateRevocation(ev, match)
	}
	if match {
		return Errorf(ReasonPayloadTypeUnknown, "unknown payload type %q", ev.Env.PayloadType)
	}
	return fmt.Errorf("a signed %s entry", ev.Kind)
}

// authenticateDelegation: a delegation is signed by its issuer's key in
// force; other signatures are approvals.
func (s *Signers) authenticateDelegation(ev *Event, match bool) error {
	env, d := ev.Env, ev.Delegation
	issuer := s.bindings.Agent(d.Issuer)
	if issuer == nil {
		return Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force", d.Issuer)
	}
	if match {
		fallback := []*PublicKey{issuer.Key}
		if root := s.bindings.Agent(d.RootSubject); root != nil && root != issuer {
			fallback = append(fallback, root.Key)
		}
		if err := env.MatchKeys(s.bound, fallback); err != nil {
			return issuerMissing(env, issuer, err)
		}
	}
	return s.checkIssuer(ev, issuer)
}

// authenticateRevocation: a revocation carries one signature, by an admin
// key, or by its issuer's key in force.
func (s *Signers) authenticateRevocation(ev *Event, match bool) error {
	env, rev := ev.Env, ev.Revocation
	if len(env.Signatures) != 1 {
		return Errorf(ReasonTooManySignatures, "a revocation carries exactly one signature")
	}
	issuer := s.bindings.Agent(rev.Issuer)
	if rev.Issuer == "" || issuer == nil {
		// Only an admin key can sign it.
		if err := s.sole(env, s.admins, ReasonAdminUnknown, "an admin", match); err != nil {
			if rev.Issuer != "" && Reason(err) == ReasonAdminUnknown {
				return Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force, and the revocation is not signed by an admin key", rev.Issuer)
			}
			return err
		}
		ev.ByAdmin = true
		return rev.CheckSigner(true)
	}
	if match {
		named := func(id string) *PublicKey {
			if k := s.admins[id]; k != nil {
				return k
			}
			return s.bound(id)
		}
		if err := env.MatchKeys(named, append([]*PublicKey{issuer.Key}, sortedKeys(s.admins)...)); err != nil {
			return issuerMissing(env, issuer, err)
		}
	}
	if k := s.admins[env.Signatures[0].KeyID]; k != nil {
		if err := env.Verify(k); err != nil { // remembered if matched
			return err
		}
		ev.ByAdmin = true
		return rev.CheckSigner(true)
	}
	return s.checkIssuer(ev, issuer)
}

// checkIssuer records the signature check of an issuer-signed event under
// the bindings in force.
func (s *Signers) checkIssuer(ev *Event, issuer *Binding) error {
	sigs, err := CheckSignatures(ev.Env, issuer, s.bindings.KeyID)
	if err != nil {
		if Reason(err) == ReasonIssuerNotRegistered {
			return Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force", issuer.Agent)
		}
		return err
	}
	ev.Sigs, ev.Checked = sigs, s.bindings
	return nil
}

// sole checks that env carries exactly one signature and that it is by one
// of keys (a trust anchor set: registrars or admins); with match, a
// signature without a known key id is matched by trying each key.
func (s *Signers) sole(env *Envelope, keys map[string]*PublicKey, reason, who string, match bool) error {
	if len(env.Signatures) != 1 {
		return Errorf(ReasonTooManySignatures, "this envelope carries exactly one signature, by %s key", who)
	}
	var err error
	switch k := keys[env.Signatures[0].KeyID]; {
	case match:
		err = env.MatchKeys(func(id string) *PublicKey { return keys[id] }, sortedKeys(keys))
	case k == nil:
		err = Errorf(ReasonSignatureKeyUnknown, "key %s is not one of the configured keys", env.Signatures[0].KeyID)
	default:
		err = env.Verify(k)
	}
	if Reason(err) == ReasonSignatureKeyUnknown {
		return Errorf(reason, "the signature (key id %q) is not by %s key of this log", env.Signatures[0].KeyID, who)
	}
	return err
}

// bound looks keys up among the bindings in force by key id.
func (s *Signers) bound(keyID string) *PublicKey {
	if b := s.bindings.KeyID(keyID); b != nil {
		return b.Key
	}
	return nil
}

// issuerMissing reports an envelope that failed authentication without a
// valid signature by the issuer's key in force as signature_missing (a key
// rotated away, a request signed by someone else), which says what to fix;
// otherwise it returns err.
func issuerMissing(env *Envelope, issuer *Binding, err error) error {
	if Reason(err) == ReasonSignatureKeyUnknown && !env.Matched(issuer.Key) {
		return Errorf(ReasonSignatureMissing, "no signature by the issuer's registered key %s (%v)", issuer.Key.ID, err)
	}
	return err
}

// sortedKeys lists a trust-anchor key set in key id order, so that
// signatures without a key id are tried in the same order every time.
func sortedKeys(keys map[string]*PublicKey) []*PublicKey {
	out := slices.Collect(maps.Values(keys))
	slices.SortFunc(out, func(a, b *PublicKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}
