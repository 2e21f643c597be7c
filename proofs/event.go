package proofs

import "time"

// Event is one entry of the log as the state machine (State) sees it: what
// was signed, decoded by kind, and who signed it. Exactly one of Config,
// KeyBinding, Delegation, Revocation and Policy is set, by Kind.
//
// An event is authenticated before it is decided, by one implementation
// (Signers): the server does it for a request in its stateless stage
// (Signers.AuthenticateRequest, with the key matching a request may need),
// an auditor for a recorded entry (State.Authenticate). Either way the
// outcome is written into the event's authentication fields, and
// State.Decide checks the signatures again only if the key bindings
// changed since (Checked), so every decision is made under the bindings
// in force at the entry's log time.
type Event struct {
	// Kind is the leaf kind (KindLogConfig, KindKeyBinding, ...).
	Kind string
	// Env is the canonical envelope of a signed event; nil for the entries
	// a log writes itself (its configuration, its first policy).
	Env *Envelope

	Config     *LogConfig
	KeyBinding *KeyBinding
	// Key is KeyBinding's public key, parsed.
	Key        *PublicKey
	Delegation *Delegation
	Revocation *Revocation
	Policy     *Policy
	// Token is a token exchange's record (KindToken; Env is nil).
	Token *TokenIssuance

	// ByAdmin is set when an admin key of the log signed the event (a
	// policy update, an administrative revocation).
	ByAdmin bool
	// Sigs is what the signatures of a delegation or an issuer-signed
	// revocation showed under the bindings Checked: the issuer's verified,
	// the co-signers judged as approvals.
	Sigs    SignatureCheck
	Checked *Bindings
}

// ParseEvent decodes a signed envelope's payload by its payload type, as a
// server does with a request. The payload must be its own canonical JSON
// and valid, and a revocation carry exactly one signature (refused before
// anything is spent on it). The event is not authenticated yet.
func ParseEvent(env *Envelope) (Event, error) {
	ev := Event{Env: env}
	var err error
	switch env.PayloadType {
	case PayloadTypeAgent:
		ev.Kind = KindKeyBinding
		if ev.KeyBinding, err = ParseKeyBinding(env.Payload); err == nil {
			ev.Key, err = ParsePublicKeyDER(ev.KeyBinding.PublicKey)
		}
	case PayloadTypePolicy:
		ev.Kind = KindPolicy
		_, ev.Policy, err = ParsePolicyUpdate(env.Payload)
	case PayloadTypeDelegation:
		ev.Kind = KindDelegation
		ev.Delegation, err = ParseDelegation(env.Payload)
	case PayloadTypeRevocation:
		ev.Kind = KindRevocation
		ev.Revocation, err = ParseRevocation(env.Payload)
	default:
		return ev, Errorf(ReasonPayloadTypeUnknown, "unknown payload type %q", env.PayloadType)
	}
	if err == nil && ev.Revocation != nil && len(env.Signatures) != 1 {
		err = Errorf(ReasonTooManySignatures, "a revocation carries exactly one signature")
	}
	return ev, err
}

// Event returns the entry as an event for State, not yet authenticated
// (State.Authenticate).
func (p *ParsedLeaf) Event() (*Event, error) {
	ev := &Event{Kind: p.Kind, Env: p.Env, Config: p.Config, KeyBinding: p.KeyBinding,
		Delegation: p.Delegation, Revocation: p.Revocation, Policy: p.Policy, Token: p.Token}
	if p.KeyBinding != nil {
		k, err := ParsePublicKeyDER(p.KeyBinding.PublicKey)
		if err != nil {
			return nil, err
		}
		ev.Key = k
	}
	return ev, nil
}

// Issuer is the agent whose key binding must have signed the event: a
// delegation's issuer, an issuer-signed revocation's; "" for events signed
// by a trust anchor (or by nobody).
func (e *Event) Issuer() string {
	switch {
	case e.Delegation != nil:
		return e.Delegation.Issuer
	case e.Revocation != nil && !e.ByAdmin:
		return e.Revocation.Issuer
	case e.Token != nil:
		return e.Token.Requester
	}
	return ""
}

// Spender is whose rate budget the event spends: the agent whose key
// binding signs it (a delegation's issuer, an issuer-signed revocation's),
// else the key id of its first signature (a registrar, an admin); "" for
// the entries a log writes itself.
func (e *Event) Spender() string {
	switch {
	case e.Delegation != nil:
		return e.Delegation.Issuer
	case e.Revocation != nil && !e.ByAdmin:
		return e.Revocation.Issuer
	case e.Token != nil:
		return e.Token.Requester
	case e.Env != nil && len(e.Env.Signatures) > 0:
		return e.Env.Signatures[0].KeyID
	}
	return ""
}

// NamedID is the id an event's payload gives its entry (a delegation's
// id); "" for an entry named by its hash (HashID of its canonical
// envelope, or of the leaf of an entry the log writes itself).
func (e *Event) NamedID() string {
	if e.Delegation != nil {
		return e.Delegation.ID
	}
	return ""
}

// Leaf returns the leaf that records the event at log time at with the
// decision dec: a signed event's leaf holds its canonical envelope canon,
// an entry the log writes itself its configuration or policy text, a token
// exchange its record.
func (e *Event) Leaf(at time.Time, canon []byte, dec *Decision) Leaf {
	l := Leaf{Version: LeafVersion, Kind: e.Kind, LogTime: FormatLogTime(at), Decision: dec}
	switch {
	case e.Env != nil:
		l.Envelope = canon
	case e.Config != nil:
		l.Config = e.Config
	case e.Token != nil:
		l.Token = e.Token
	case e.Policy != nil:
		l.Policy = &LogPolicy{Text: string(e.Policy.Text)}
	}
	return l
}
