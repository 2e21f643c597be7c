package proofs

import "maps"

// Bindings is an immutable snapshot of the key bindings in force. With
// returns a new snapshot, so a snapshot can be shared between goroutines
// and kept as evidence of what a check saw.
type Bindings struct {
	byAgent map[string]*Binding
	byKeyID map[string]*Binding
	// issuedRevoked maps an agent to the index of its latest withdrawal
	// with revoke_issued.
	issuedRevoked map[string]uint64
}

// NewBindings returns an empty set.
func NewBindings() *Bindings {
	return &Bindings{byAgent: map[string]*Binding{}, byKeyID: map[string]*Binding{}, issuedRevoked: map[string]uint64{}}
}

// IssuedRevoked reports the index of agent's latest key withdrawal that
// revoked what it had issued (KeyBinding.RevokeIssued): every delegation
// by agent accepted before that index is revoked.
func (b *Bindings) IssuedRevoked(agent string) (uint64, bool) {
	idx, ok := b.issuedRevoked[agent]
	return idx, ok
}

// Agent returns the binding in force for agent, or nil.
func (b *Bindings) Agent(agent string) *Binding { return b.byAgent[agent] }

// KeyID returns the binding in force whose key has id, or nil.
func (b *Bindings) KeyID(id string) *Binding { return b.byKeyID[id] }

// Len is the number of agents with a binding in force.
func (b *Bindings) Len() int { return len(b.byAgent) }

// DecideKeyBinding decides an authentic key binding (signed by a registrar).
func (b *Bindings) DecideKeyBinding(kb *KeyBinding) *Decision {
	if other := b.byKeyID[KeyID(kb.PublicKey)]; other != nil && other.Agent != kb.Agent {
		return &Decision{Outcome: OutcomeDenied, Reasons: []string{ReasonKeyInUse}}
	}
	return &Decision{Outcome: OutcomeAccepted}
}

// With returns the set after the accepted binding entry kb at index idx: a
// new binding replaces the agent's (key rotation); a revoked one removes it
// (key revocation), and with RevokeIssued revokes what the agent issued
// before idx.
func (b *Bindings) With(kb *KeyBinding, key *PublicKey, idx uint64) *Bindings {
	c := &Bindings{byAgent: maps.Clone(b.byAgent), byKeyID: maps.Clone(b.byKeyID), issuedRevoked: b.issuedRevoked}
	if kb.Revoked && kb.RevokeIssued {
		c.issuedRevoked = maps.Clone(b.issuedRevoked)
		c.issuedRevoked[kb.Agent] = idx
	}
	if old := c.byAgent[kb.Agent]; old != nil {
		delete(c.byKeyID, old.Key.ID)
		delete(c.byAgent, kb.Agent)
	}
	if !kb.Revoked {
		nb := &Binding{Agent: kb.Agent, Key: key, Tier: kb.Tier, Human: kb.Human, Index: idx}
		e := agentEntity(nb.Agent, nb)
		nb.entity = &e
		c.byAgent[kb.Agent] = nb
		c.byKeyID[key.ID] = nb
	}
	return c
}
