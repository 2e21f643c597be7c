package proofs

import (
	"fmt"
	"time"
)

// Store holds the part of a log's state that grows with the log and that
// State does not keep in memory itself: the accepted delegations, the
// revoked ones, and the delegation ids and nonces consumed. The server
// backs it by its database plus an overlay of the batch being sequenced,
// an auditor by memory (NewMemStore).
//
// The contract: the reads answer for the log exactly as it stands after
// the entries already applied, that is the entries before the one being
// decided, including those Record was given since the Store was created
// or opened (and nothing else: not an entry being decided, not one
// decided but never applied). Reads return an error only when the
// storage fails, never to express a rule; a State passes such errors on
// and decides nothing.
type Store interface {
	// Delegation returns the accepted delegation with id, or nil.
	Delegation(id string) (*DelegationRecord, error)
	// Revoked reports whether the delegation id was revoked by a revocation
	// entry (a key withdrawal's revoke_issued is State's to answer).
	Revoked(id string) (bool, error)
	// IDUsed reports whether an accepted delegation has id.
	IDUsed(id string) (bool, error)
	// NonceUsed reports whether an accepted delegation by issuer has nonce.
	NonceUsed(issuer, nonce string) (bool, error)
	// Record makes an applied entry's effects visible to the reads above
	// (Effects.Delegation, Effects.Revokes; the rest is State's own).
	Record(e *Effects)
}

// Effects is what an applied entry changes: exactly what a server persists
// besides the leaf and its read indexes, and what an auditor's state
// takes. Fields that do not apply are zero.
type Effects struct {
	// Index is the entry's index in the log.
	Index uint64
	// Config is a new log configuration (trust anchors and rule limits).
	Config *LogConfig
	// Policy is the new policy in force.
	Policy *Policy
	// Binding is an accepted key binding (a registration, a rotation, or
	// with Revoked a withdrawal), Key its parsed key.
	Binding *KeyBinding
	Key     *PublicKey
	// Delegation is an accepted delegation: its id and its issuer's nonce
	// are consumed.
	Delegation *DelegationRecord
	// Revokes is the id of a delegation an accepted revocation revokes
	// for the first time ("" if none or it was revoked already).
	Revokes string
}

// State is a log's state machine: the one implementation of what an entry
// means that a server runs when it sequences requests, and an auditor when
// it replays a log (Replay) or checks a chain bundle (VerifyBundle). It
// holds the trust anchors and rule limits of the configuration in force,
// the key bindings and the policy in force, and reads the rest from its
// Store.
//
// One entry goes through three steps: Decide gives the decision the rules
// and the policy in force give (a pure function of the state and the
// entry), Effects gives what an entry with a given decision changes (the
// server passes its own decision, an auditor the recorded one, since the
// log went on from what it recorded), Apply makes the effects the state.
// Only Apply changes the state; the server persists the same effects.
//
// State implements ChainState, the view the rules get. It is not safe for
// concurrent use; Fork gives an independent copy.
type State struct {
	store      Store
	config     *LogConfig
	registrars map[string]*PublicKey
	admins     map[string]*PublicKey
	bindings   *Bindings
	policy     *Policy
}

// NewState returns the state of an empty log, over store.
func NewState(store Store) *State {
	return &State{store: store, bindings: NewBindings()}
}

// ResumeState returns the state of a log that has cfg, bs and pol in force
// and the rest of its state in store: a server's state when it opens.
func ResumeState(store Store, cfg *LogConfig, bs *Bindings, pol *Policy) *State {
	s := &State{store: store, bindings: bs, policy: pol}
	if cfg != nil {
		s.setConfig(cfg)
	}
	return s
}

// Fork returns a copy of the state over another store (which must hold
// what s's holds): a server works on a fork per batch, so that a batch
// that fails to commit leaves the state it started from untouched.
func (s *State) Fork(store Store) *State {
	c := *s
	c.store = store
	return &c
}

// Config is the log configuration in force (nil before the first).
func (s *State) Config() *LogConfig { return s.config }

// Policy is the policy in force (nil before the first).
func (s *State) Policy() *Policy { return s.policy }

// Bindings is the snapshot of the key bindings in force.
func (s *State) Bindings() *Bindings { return s.bindings }

// Binding implements ChainState.
func (s *State) Binding(agent string) *Binding { return s.bindings.Agent(agent) }

// IssuedRevoked implements ChainState.
func (s *State) IssuedRevoked(agent string) (uint64, bool) { return s.bindings.IssuedRevoked(agent) }

// Delegation implements ChainState.
func (s *State) Delegation(id string) (*DelegationRecord, error) { return s.store.Delegation(id) }

// Revoked implements ChainState.
func (s *State) Revoked(id string) (bool, error) { return s.store.Revoked(id) }

// IDUsed implements ChainState.
func (s *State) IDUsed(id string) (bool, error) { return s.store.IDUsed(id) }

// NonceUsed implements ChainState.
func (s *State) NonceUsed(issuer, nonce string) (bool, error) {
	return s.store.NonceUsed(issuer, nonce)
}

// Authenticate establishes who signed a recorded entry, under the trust
// anchors and bindings in force (Signers.AuthenticateEntry, the rules a
// server authenticates a request by), and writes it into ev. An entry the
// log wrote itself may only be a configuration or the log's first policy,
// or a token exchange by an agent whose key binding in force has the
// recorded key thumbprint. The error says why the entry is not authentic; a
// log should have refused it.
func (s *State) Authenticate(ev *Event) error {
	if ev.Env == nil {
		if ev.Kind == KindToken {
			if err := s.authenticateToken(ev.Token); err != nil {
				return fmt.Errorf("token exchange should have been refused: %w", err)
			}
			return nil
		}
		if ev.Kind == KindPolicy && s.policy != nil {
			return fmt.Errorf("a policy written by the log itself after the first policy (only admins change the policy)")
		}
		return nil
	}
	return s.Signers().AuthenticateEntry(ev)
}

// Decide returns the decision on an authenticated event at log time t:
// nil for the entries a log writes itself, accepted for a policy update,
// and for the rest what Bindings.DecideKeyBinding, DecideDelegation (with
// the rule limits and policy in force), DecideRevocation and DecideToken
// give. If the
// key bindings changed since the event's signatures were checked, they
// are checked again first: an issuer's key rotated or withdrawn in
// between, or a co-signer's, makes the event not authentic any more, which
// is an error (a server refuses it). Decide changes nothing.
func (s *State) Decide(ev *Event, t time.Time) (*Decision, error) {
	if s.config == nil && ev.Kind != KindLogConfig {
		return nil, Errorf(ReasonReplayConfig, "a %s entry before any log configuration", ev.Kind)
	}
	switch ev.Kind {
	case KindLogConfig:
		return nil, nil
	case KindPolicy:
		if ev.Env == nil {
			return nil, nil
		}
		return &Decision{Outcome: OutcomeAccepted}, nil
	case KindKeyBinding:
		return s.bindings.DecideKeyBinding(ev.KeyBinding), nil
	case KindDelegation:
		sigs, err := s.signatures(ev)
		if err != nil {
			return nil, err
		}
		return DecideDelegation(s, ev.Delegation, sigs, t, s.config.Rules, s.policy)
	case KindRevocation:
		if !ev.ByAdmin {
			if _, err := s.signatures(ev); err != nil {
				return nil, err
			}
		}
		return DecideRevocation(s, ev.Revocation, ev.ByAdmin, s.config.Rules)
	case KindToken:
		// The requester's key may have been rotated or withdrawn since
		// the server verified the DPoP proof: then it is not authentic.
		if err := s.authenticateToken(ev.Token); err != nil {
			return nil, err
		}
		return DecideToken(s, ev.Token, t, s.config, s.policy)
	}
	return nil, Errorf(ReasonLeafMalformed, "unknown entry kind %q", ev.Kind)
}

// signatures returns the event's signature check under the bindings in
// force, re-checking if they changed since ev.Checked.
func (s *State) signatures(ev *Event) (SignatureCheck, error) {
	if ev.Checked == s.bindings {
		return ev.Sigs, nil
	}
	issuer := ev.Issuer()
	sigs, err := CheckSignatures(ev.Env, s.bindings.Agent(issuer), s.bindings.KeyID)
	if err != nil {
		if Reason(err) == ReasonIssuerNotRegistered {
			return sigs, Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force", issuer)
		}
		return sigs, err
	}
	if sigs.Invalid {
		// A co-signer's key went out of force in between: the request is
		// no longer authentic as a whole.
		return sigs, Errorf(ReasonSignatureKeyUnknown, "a co-signature's key is no longer in force for %s", issuer)
	}
	ev.Sigs, ev.Checked = sigs, s.bindings
	return sigs, nil
}

// Effects returns what the event, entry index, has on the state if its
// decision is dec (nil for the entries a log writes itself): a
// configuration or policy takes force; an accepted key binding, delegation
// or revocation changes the bindings, consumes an id and a nonce, or
// revokes a delegation. A denied event, and a token exchange, change
// nothing. Effects changes
// nothing; it reads the store only to tell a first revocation from a
// repeated one.
func (s *State) Effects(index uint64, ev *Event, dec *Decision) (Effects, error) {
	ef := Effects{Index: index}
	if dec != nil && dec.Outcome != OutcomeAccepted {
		return ef, nil
	}
	switch ev.Kind {
	case KindLogConfig:
		ef.Config = ev.Config
	case KindPolicy:
		ef.Policy = ev.Policy
	case KindKeyBinding:
		ef.Binding, ef.Key = ev.KeyBinding, ev.Key
	case KindDelegation:
		ef.Delegation = &DelegationRecord{Index: index, D: ev.Delegation}
	case KindRevocation:
		revoked, err := s.store.Revoked(ev.Revocation.Delegation)
		if err != nil {
			return ef, err
		}
		if !revoked {
			ef.Revokes = ev.Revocation.Delegation
		}
	}
	return ef, nil
}

// Apply makes an entry's effects the state: the configuration, policy and
// bindings in force change in memory, the rest is recorded in the store.
func (s *State) Apply(ef *Effects) {
	if ef.Config != nil {
		s.setConfig(ef.Config)
	}
	if ef.Policy != nil {
		s.policy = ef.Policy
	}
	if ef.Binding != nil {
		s.bindings = s.bindings.With(ef.Binding, ef.Key, ef.Index)
	}
	if ef.Delegation != nil || ef.Revokes != "" {
		s.store.Record(ef)
	}
}

func (s *State) setConfig(c *LogConfig) {
	s.config = c
	s.registrars = configKeyMap(c.RegistrarKeys)
	s.admins = configKeyMap(c.AdminKeys)
}

// MemStore is a Store in memory, for auditors.
type MemStore struct {
	dels    map[string]*DelegationRecord
	revoked map[string]bool
	nonces  map[string]bool
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{dels: map[string]*DelegationRecord{}, revoked: map[string]bool{}, nonces: map[string]bool{}}
}

// Delegation implements Store.
func (m *MemStore) Delegation(id string) (*DelegationRecord, error) { return m.dels[id], nil }

// Revoked implements Store.
func (m *MemStore) Revoked(id string) (bool, error) { return m.revoked[id], nil }

// IDUsed implements Store.
func (m *MemStore) IDUsed(id string) (bool, error) { return m.dels[id] != nil, nil }

// NonceUsed implements Store.
func (m *MemStore) NonceUsed(issuer, nonce string) (bool, error) {
	return m.nonces[issuer+"\x00"+nonce], nil
}

// Record implements Store.
func (m *MemStore) Record(ef *Effects) {
	if d := ef.Delegation; d != nil {
		m.dels[d.D.ID] = d
		m.nonces[d.D.Issuer+"\x00"+d.D.Nonce] = true
	}
	if ef.Revokes != "" {
		m.revoked[ef.Revokes] = true
	}
}
