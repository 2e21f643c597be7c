package ledger

import (
	"encoding/binary"

	"github.com/warrantlog/warrant/proofs"
)

// appendWrites appends the store writes of entry idx: the leaf, its leaf
// hash and payload indexes, the read indexes of its kind (appendReadIndexes)
// and the effects of its decision (appendEffects). This is where the store
// learns what an entry means; the meaning itself is proofs.State's.
func appendWrites(sets [][2][]byte, idx uint64, r *request, raw, leafHash []byte, ef *proofs.Effects) [][2][]byte {
	sets = append(sets,
		[2][]byte{leafKey(idx), raw},
		[2][]byte{hashKey(tLeafHash, leafHash), u64(idx)})
	if r.env != nil {
		sets = append(sets, [2][]byte{hashKey(tPayload, r.payloadHash[:]), u64(idx)})
	}
	sets = appendReadIndexes(sets, idx, &r.ev)
	return appendEffects(sets, ef)
}

// appendReadIndexes appends the indexes the read API needs whatever the
// decision: the agents an entry names (ListAgentEntries) and the
// delegation it hangs under (the children of a delegation: delegations,
// revocations and token exchanges).
func appendReadIndexes(sets [][2][]byte, idx uint64, ev *proofs.Event) [][2][]byte {
	switch {
	case ev.KeyBinding != nil:
		sets = append(sets, [2][]byte{pairKey(tAgent, ev.KeyBinding.Agent, idx), {roleSubject}})
	case ev.Delegation != nil:
		d := ev.Delegation
		sets = append(sets,
			[2][]byte{pairKey(tAgent, d.Issuer, idx), {roleIssuer}},
			[2][]byte{pairKey(tAgent, d.Delegate, idx), {roleDelegate}})
		if d.Parent != "" {
			sets = append(sets, [2][]byte{pairKey(tChild, d.Parent, idx), nil})
		}
	case ev.Revocation != nil:
		// Indexed under its actor: the issuer, or the admin's key id
		// (ListAgentEntries of the key id lists the admin's acts).
		actor := ev.Revocation.Issuer
		if ev.ByAdmin {
			actor = ev.Env.Signatures[0].KeyID
		}
		sets = append(sets,
			[2][]byte{pairKey(tAgent, actor, idx), {roleIssuer}},
			[2][]byte{pairKey(tChild, ev.Revocation.Delegation, idx), nil})
	case ev.Token != nil:
		// Listed under the delegation exchanged, as revocations are: the
		// tokens issued under a delegation are part of its blast radius.
		sets = append(sets, [2][]byte{pairKey(tChild, ev.Token.Delegation, idx), nil})
	}
	return sets
}

// appendEffects appends the persistent form of an entry's effects on the
// state (proofs.Effects), which open (loadBindings, loadPolicy) and
// chainState read back.
func appendEffects(sets [][2][]byte, ef *proofs.Effects) [][2][]byte {
	idx := ef.Index
	if ef.Config != nil {
		sets = append(sets, [2][]byte{keyConfig, u64(idx)}, [2][]byte{binary.BigEndian.AppendUint64([]byte{tConfig}, idx), nil})
	}
	if ef.Policy != nil {
		sets = append(sets, [2][]byte{keyPolicy, u64(idx)}, [2][]byte{binary.BigEndian.AppendUint64([]byte{tPolicy}, idx), nil})
	}
	if ef.Binding != nil {
		sets = append(sets,
			[2][]byte{pairKey(tBinding, ef.Binding.Agent, idx), nil},
			[2][]byte{pairKey(tKeyID, ef.Key.ID, idx), nil})
	}
	if d := ef.Delegation; d != nil {
		sets = append(sets,
			[2][]byte{strKey(tDelegID, d.D.ID), u64(idx)},
			[2][]byte{nonceKey(d.D.Issuer, d.D.Nonce), u64(idx)})
	}
	if ef.Revokes != "" {
		sets = append(sets, [2][]byte{strKey(tRevoked, ef.Revokes), u64(idx)})
	}
	return sets
}
