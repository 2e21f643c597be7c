package proofs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
)

// BundleFormat names the chain-bundle format.
const BundleFormat = "warrant-chain-bundle/v1"

// MaxBundleBytes bounds a chain bundle: a chain of at most a few dozen
// links, each with its bindings and policy, as tlog-proofs.
const MaxBundleBytes = 16 << 20

// Bundle is a chain bundle: the C2SP tlog-proofs (each carrying its leaf as
// extra data) of every link from a root grant to a delegation, plus the
// log-config, key-binding and policy entries needed to check each link's
// signatures and replay its recorded decision, plus consistency proofs
// tying together the checkpoints the proofs are against. Its canonical
// encoding is compact JSON (Marshal); a bundle verifies only in that
// encoding, so every byte of it is authenticated or a reason to reject,
// except checkpoint signature lines by keys the verifier does not know,
// which it ignores (OpenCheckpoint).
type Bundle struct {
	// Format is BundleFormat.
	Format string `json:"format"`
	// Delegation is the id of the delegation the chain ends at.
	Delegation string `json:"delegation"`
	// Proofs are C2SP tlog-proofs, sorted by entry index, one per entry.
	Proofs []string `json:"proofs"`
	// Consistency ties every other checkpoint to the largest one.
	Consistency []ConsistencyLink `json:"consistency,omitempty"`
}

// ConsistencyLink proves that checkpoint From is a prefix of checkpoint To.
type ConsistencyLink struct {
	From  string   `json:"from"`
	To    string   `json:"to"`
	Proof [][]byte `json:"proof"`
}

// Marshal returns the bundle's canonical encoding.
func (b *Bundle) Marshal() []byte {
	out, err := json.Marshal(b)
	if err != nil {
		panic(fmt.Sprintf("proofs: marshalling a bundle: %v", err)) // strings and bytes only
	}
	return out
}

// ParseBundle parses a bundle that must be byte-for-byte canonical.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, Errorf(ReasonBundleMalformed, "bundle is %d bytes, limit %d", len(data), MaxBundleBytes)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, Errorf(ReasonBundleMalformed, "decoding bundle: %v", err)
	}
	if !bytes.Equal(b.Marshal(), data) {
		return nil, Errorf(ReasonBundleMalformed, "bundle is not in canonical form (compact JSON, known fields only, standard base64, nothing after it)")
	}
	if b.Format != BundleFormat {
		return nil, Errorf(ReasonBundleMalformed, "bundle format %q, want %q", b.Format, BundleFormat)
	}
	if len(b.Proofs) == 0 {
		return nil, Errorf(ReasonBundleIncomplete, "bundle holds no entries")
	}
	return &b, nil
}

// BundleOptions configure VerifyBundle.
type BundleOptions struct {
	// WitnessPolicy, when set, must be satisfied by the cosignatures on the
	// bundle's largest checkpoint (the others are tied to it by consistency
	// proofs), and every cosignature by one of its witnesses must verify.
	WitnessPolicy *WitnessPolicy
}

// VerifiedChain is what a chain bundle proves.
type VerifiedChain struct {
	// Links are the delegations from the root grant to the target, in order.
	Links []*VerifiedEntry
	// Checkpoint is the largest checkpoint; every entry is in its tree.
	Checkpoint *Checkpoint
	// Entries are all the bundle's entries by index.
	Entries map[uint64]*ParsedLeaf
}

// BundleNotShown is what a chain bundle cannot establish, and how to.
var BundleNotShown = []string{
	"that no link was revoked after it was appended (revocations are later entries a bundle need not hold): " +
		"replay the whole log with `warrant audit`, or ask the server with `warrant get ID` (not proven)",
	"that no newer key binding or policy entry than the ones included came before a link: `warrant audit` replays every decision in order",
	"that each link's id and nonce were not used by an earlier accepted entry: `warrant audit`",
}

// VerifyBundle checks a chain bundle offline: its canonical encoding; every
// checkpoint's signature under the log key (and the witness policy, if
// given) and their consistency; every entry's inclusion; the configuration,
// key bindings and policies against the trust anchors they need; each
// link's DSSE signatures under the bindings in force; the chain's
// continuity from a root grant; and each link's recorded decision against
// the chain rules and the recorded policy. The error names the first broken
// link and why.
func VerifyBundle(data []byte, logKey note.Verifier, opts BundleOptions) (*VerifiedChain, error) {
	b, err := ParseBundle(data)
	if err != nil {
		return nil, err
	}
	var witnesses []note.Verifier
	if opts.WitnessPolicy != nil {
		witnesses = opts.WitnessPolicy.Verifiers()
	}
	vc := &VerifiedChain{Entries: map[uint64]*ParsedLeaf{}}
	// Checkpoints are told apart by what their log signed, not by their
	// notes: one checkpoint may come with different cosignatures, which a
	// verifier that does not know the witnesses ignores (OpenCheckpoint).
	checkpoints := map[string]*Checkpoint{}
	var largest []*Checkpoint // the notes of the largest checkpoint, for the witness policy
	addNote := func(cp *Checkpoint) {
		if cp.Size == vc.Checkpoint.Size && !slices.ContainsFunc(largest, func(c *Checkpoint) bool { return bytes.Equal(c.Note, cp.Note) }) {
			largest = append(largest, cp)
		}
	}
	var order []uint64
	for i, p := range b.Proofs {
		ve, err := verifyTLogProof([]byte(p), logKey, witnesses)
		if err != nil {
			return nil, bundleErr(err, "proof %d", i)
		}
		if len(order) > 0 && ve.Index <= order[len(order)-1] {
			return nil, Errorf(ReasonBundleMalformed, "proof %d: entries must be sorted by index, without repeats", i)
		}
		order = append(order, ve.Index)
		vc.Entries[ve.Index] = ve.Leaf
		checkpoints[ve.Checkpoint.key()] = ve.Checkpoint
		if vc.Checkpoint == nil || ve.Checkpoint.Size > vc.Checkpoint.Size {
			vc.Checkpoint, largest = ve.Checkpoint, nil
		}
		addNote(ve.Checkpoint)
	}
	// Consistency: every checkpoint must reach the largest one.
	linked := map[string]bool{vc.Checkpoint.key(): true}
	for i, c := range b.Consistency {
		from, err := OpenCheckpoint([]byte(c.From), logKey, witnesses...)
		if err != nil {
			return nil, bundleErr(err, "consistency %d: from", i)
		}
		to, err := OpenCheckpoint([]byte(c.To), logKey, witnesses...)
		if err != nil {
			return nil, bundleErr(err, "consistency %d: to", i)
		}
		if err := VerifyConsistency(from.Size, to.Size, c.Proof, from.Root, to.Root); err != nil {
			return nil, bundleErr(err, "consistency %d", i)
		}
		if to.key() != vc.Checkpoint.key() {
			return nil, Errorf(ReasonBundleMalformed, "consistency %d does not lead to the bundle's largest checkpoint", i)
		}
		linked[from.key()] = true
		addNote(to)
	}
	for key, cp := range checkpoints {
		if !linked[key] {
			return nil, Errorf(ReasonBundleIncomplete, "checkpoint of size %d is not tied to the largest (size %d) by a consistency proof", cp.Size, vc.Checkpoint.Size)
		}
	}
	if opts.WitnessPolicy != nil {
		// The chain's checkpoint is the note that carries the quorum.
		if vc.Checkpoint, err = witnessedNote(largest, logKey, opts.WitnessPolicy); err != nil {
			return nil, err
		}
	}
	if err := vc.verifyChain(b.Delegation, order); err != nil {
		return nil, err
	}
	return vc, nil
}

// witnessedNote returns the first of the notes of the bundle's largest
// checkpoint that satisfies the witness policy.
func witnessedNote(notes []*Checkpoint, logKey note.Verifier, p *WitnessPolicy) (*Checkpoint, error) {
	var err error
	for _, cp := range notes {
		if err = p.Check(cp, logKey); err == nil {
			return cp, nil
		}
		if Reason(err) != ReasonWitnessQuorum {
			return nil, err
		}
	}
	return nil, &Error{Reason: ReasonBundleWitness, Err: err}
}

func bundleErr(err error, format string, args ...any) error {
	reason := Reason(err)
	if reason == "" {
		reason = ReasonBundleMalformed
	}
	return &Error{Reason: reason, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)}
}

// bundleStore is the Store of a chain bundle as seen just before one of
// its links: the links before it. What the bundle does not hold it cannot
// show (BundleNotShown): revocations and used ids or nonces are taken as
// absent.
type bundleStore struct {
	dels map[string]*DelegationRecord
}

func (s *bundleStore) Delegation(id string) (*DelegationRecord, error) { return s.dels[id], nil }
func (s *bundleStore) Revoked(string) (bool, error)                    { return false, nil }
func (s *bundleStore) IDUsed(string) (bool, error)                     { return false, nil }
func (s *bundleStore) NonceUsed(string, string) (bool, error)          { return false, nil }
func (s *bundleStore) Record(ef *Effects) {
	if ef.Delegation != nil {
		s.dels[ef.Delegation.D.ID] = ef.Delegation
	}
}

// verifyChain runs the bundle's entries through the state machine (State)
// in index order, as a replay does: each is authenticated under the trust
// anchors and bindings in force, each key binding's and each chain link's
// recorded decision is re-derived, and the recorded decision's effects
// are applied. Delegations the chain does not go through, and anything
// else a bundle need not hold, are skipped.
func (vc *VerifiedChain) verifyChain(target string, order []uint64) error {
	chain, err := vc.findChain(target, order)
	if err != nil {
		return err
	}
	isLink := map[uint64]int{}
	for i, idx := range chain {
		isLink[idx] = i
	}
	st := NewState(&bundleStore{dels: map[string]*DelegationRecord{}})
	for _, idx := range order {
		l := vc.Entries[idx]
		if l.Kind != KindLogConfig && st.Config() == nil {
			return Errorf(ReasonBundleIncomplete, "entry %d comes before any log-config entry in the bundle", idx)
		}
		name := fmt.Sprintf("%s entry %d", l.Kind, idx)
		i, link := isLink[idx]
		switch {
		case l.Delegation != nil && !link, l.Revocation != nil:
			continue // not a link of the chain
		case link:
			name = fmt.Sprintf("link %d (%s, entry %d)", i, l.Delegation.ID, idx)
			if i == 0 && l.Delegation.Parent != "" {
				return Errorf(ReasonBundleChainBroken, "%s: the chain does not start at a root grant", name)
			}
		case l.Config != nil:
			if err := l.Config.Rules.Validate(); err != nil {
				return Errorf(ReasonBundleChainBroken, "log-config entry %d: %v", idx, err)
			}
		}
		ev, err := l.Event()
		if err != nil {
			return err
		}
		if err := st.Authenticate(ev); err != nil {
			reason := Reason(err)
			switch reason {
			case "", ReasonRegistrarUnknown, ReasonAdminUnknown, ReasonTooManySignatures:
				// Not signed by its trust anchor.
				reason = ReasonBundleChainBroken
			}
			return &Error{Reason: reason, Err: fmt.Errorf("%s: %w", name, err)}
		}
		if link {
			if st.Policy() == nil {
				return Errorf(ReasonBundleIncomplete, "%s: no policy entry before it in the bundle", name)
			}
			if l.Decision.PolicyDigest != st.Policy().Digest {
				return Errorf(ReasonBundleDecision, "%s: the decision records policy %s, but the bundle's policy in force is %s", name, l.Decision.PolicyDigest, st.Policy().Digest)
			}
		}
		want, err := st.Decide(ev, l.Time)
		if err != nil {
			return err
		}
		g, _ := json.Marshal(l.Decision)
		w, _ := json.Marshal(want)
		// A key binding's decision needs the entry that bound its key
		// before, and its agent's binding then: a server's bundle holds
		// them (a bundle without them does not verify).
		if !bytes.Equal(g, w) {
			return Errorf(ReasonBundleDecision, "%s: recorded decision %s, the chain rules and recorded policy give %s", name, g, w)
		}
		ef, err := st.Effects(idx, ev, l.Decision)
		if err != nil {
			return err
		}
		st.Apply(&ef)
		if link {
			vc.Links = append(vc.Links, &VerifiedEntry{Index: idx, Leaf: l, Checkpoint: vc.Checkpoint})
		}
	}
	return nil
}

// findChain returns the indexes of the chain's links, root grant first:
// from the target up through its parents.
func (vc *VerifiedChain) findChain(target string, order []uint64) ([]uint64, error) {
	byID := map[string]uint64{}
	for _, idx := range order {
		if d := vc.Entries[idx].Delegation; d != nil && vc.Entries[idx].Decision.Outcome == OutcomeAccepted {
			byID[d.ID] = idx
		}
	}
	var chain []uint64
	for id := target; id != ""; {
		idx, ok := byID[id]
		if !ok {
			if len(chain) == 0 {
				return nil, Errorf(ReasonBundleIncomplete, "the bundle holds no accepted delegation %q", target)
			}
			return nil, Errorf(ReasonBundleChainBroken, "link %d (%s): its parent %q is not in the bundle", len(chain), vc.Entries[chain[len(chain)-1]].Delegation.ID, id)
		}
		if slices.Contains(chain, idx) || len(chain) > 64 {
			return nil, Errorf(ReasonBundleChainBroken, "the chain of %q loops", target)
		}
		chain = append(chain, idx)
		id = vc.Entries[idx].Delegation.Parent
	}
	slices.Reverse(chain)
	return chain, nil
}

func configKeyMap(keys []ConfigKey) map[string]*PublicKey {
	m := map[string]*PublicKey{}
	for _, k := range keys {
		if pk, err := ParsePublicKeyDER(k.PublicKey); err == nil && pk.ID == k.ID {
			m[pk.ID] = pk
		}
	}
	return m
}
