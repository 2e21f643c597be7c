package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// latestBefore returns the greatest index recorded under prefix (keys are
// prefix followed by an 8-byte index) that is below idx.
func latestBefore(txn *badger.Txn, prefix []byte, idx uint64) (uint64, bool) {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
	defer it.Close()
	seek := binary.BigEndian.AppendUint64(slices.Clone(prefix), idx)
	// In reverse, Seek finds the greatest key <= seek; idx itself is not
	// "before", so skip it.
	for it.Seek(seek); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		if i := binary.BigEndian.Uint64(k[len(prefix):]); i < idx {
			return i, true
		}
	}
	return 0, false
}

// ChainBundle assembles the chain bundle of the accepted delegation id:
// tlog-proofs, against the latest checkpoint, of every link from its root
// grant, and of the log-config, policy and key-binding entries in force at
// each link (the issuer's, the delegate's and every co-signer's). See
// proofs.VerifyBundle for what it proves.
func (l *Log) ChainBundle(ctx context.Context, id string) ([]byte, error) {
	cp := l.Checkpoint()
	want := map[uint64]bool{}
	err := l.db.View(func(txn *badger.Txn) error {
		cs := newChainState(txn, l.signers.Load().Bindings(), l.delegations)
		for next := id; next != ""; {
			r, err := cs.Delegation(next)
			if err != nil {
				return err
			}
			if r == nil || r.Index >= cp.Size {
				if next == id {
					return proofs.Errorf(ReasonNotFound, "no accepted delegation %q", id)
				}
				return proofs.Errorf(ReasonDataLoss, "delegation %q names parent %q, which is not in the log", id, next)
			}
			if want[r.Index] || len(want) > 4*64 {
				return proofs.Errorf(ReasonDataLoss, "the chain of %q loops", id)
			}
			want[r.Index] = true
			raw, err := getValue(txn, leafKey(r.Index))
			if err != nil {
				return err
			}
			leaf, err := proofs.ParseLeaf(raw)
			if err != nil {
				return &proofs.Error{Reason: ReasonDataLoss, Err: err}
			}
			// What the link's decision was made with.
			if i, ok := latestBefore(txn, []byte{tConfig}, r.Index); ok {
				want[i] = true
			}
			if i, ok := latestBefore(txn, []byte{tPolicy}, r.Index); ok {
				want[i] = true
			}
			for _, agent := range []string{r.D.Issuer, r.D.Delegate} {
				if i, ok := latestBefore(txn, append(append([]byte{tBinding}, agent...), 0), r.Index); ok {
					want[i] = true
				}
			}
			for _, s := range leaf.Env.Signatures {
				if i, ok := latestBefore(txn, append(append([]byte{tKeyID}, s.KeyID...), 0), r.Index); ok {
					want[i] = true
				}
			}
			next = r.D.Parent
		}
		if err := closeBindings(txn, want); err != nil {
			return err
		}
		// Each binding entry needs the configuration (registrar keys) in
		// force when it was appended.
		for idx := range want {
			if i, ok := latestBefore(txn, []byte{tConfig}, idx); ok {
				want[i] = true
			}
		}
		want[0] = true // the first configuration: the log's trust anchors
		return nil
	})
	if err != nil {
		return nil, readError(err)
	}
	b := &proofs.Bundle{Format: proofs.BundleFormat, Delegation: id}
	for _, idx := range slices.Sorted(maps.Keys(want)) {
		leaf, err := l.Entry(ctx, idx)
		if err != nil {
			return nil, err
		}
		hashes, _, err := l.InclusionProof(ctx, idx, cp.Size)
		if err != nil {
			return nil, err
		}
		p, err := proofs.NewTLogProof(idx, leaf, hashes, cp.Note)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", idx, err)
		}
		b.Proofs = append(b.Proofs, string(p.Marshal()))
	}
	return b.Marshal(), nil
}

// closeBindings adds to want what the decisions of the key-binding entries
// in it were made with, so that a verifier can re-derive them: whether a
// binding's key was in force for another agent (key_in_use) depends on the
// entry that last bound that key before it and, if that was another
// agent's, on that agent's binding in force then (which may have rotated
// the key away). Added entries are bindings too, so this runs to a
// fixpoint; it ends, each round adding only entries of the log.
func closeBindings(txn *badger.Txn, want map[uint64]bool) error {
	done := map[uint64]bool{}
	for {
		var todo []uint64
		for idx := range want {
			if !done[idx] {
				todo = append(todo, idx)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		for _, idx := range todo {
			done[idx] = true
			raw, err := getValue(txn, leafKey(idx))
			if err != nil {
				return err
			}
			p, err := proofs.ParseLeaf(raw)
			if err != nil {
				return &proofs.Error{Reason: ReasonDataLoss, Err: err}
			}
			if p.KeyBinding == nil {
				continue
			}
			prev, ok := latestBefore(txn, append(append([]byte{tKeyID}, proofs.KeyID(p.KeyBinding.PublicKey)...), 0), idx)
			if !ok {
				continue
			}
			raw, err = getValue(txn, leafKey(prev))
			if err != nil {
				return err
			}
			q, err := proofs.ParseLeaf(raw)
			if err != nil || q.KeyBinding == nil {
				return &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("key id index points at entry %d, not a key binding: %v", prev, err)}
			}
			if q.KeyBinding.Agent == p.KeyBinding.Agent {
				continue
			}
			want[prev] = true
			if i, ok := latestBefore(txn, append(append([]byte{tBinding}, q.KeyBinding.Agent...), 0), idx); ok {
				want[i] = true
			}
		}
	}
}

// MaxListPage bounds one page of ListChildren and ListAgentEntries.
const MaxListPage = 100

// listIndex pages through an index whose keys are prefix followed by an
// 8-byte entry index: up to n indices >= start and below size, and the
// index to continue from (0 when there are no more).
func (l *Log) listIndex(prefix []byte, start uint64, n int, size uint64) ([]uint64, uint64, error) {
	var out []uint64
	var next uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(binary.BigEndian.AppendUint64(slices.Clone(prefix), start)); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(prefix)+8 {
				continue
			}
			idx := binary.BigEndian.Uint64(k[len(prefix):])
			if idx >= size {
				break
			}
			if len(out) == n {
				next = idx
				break
			}
			out = append(out, idx)
		}
		return nil
	})
	return out, next, readError(err)
}

// Children lists the entries whose parent (or revocation target) is id.
func (l *Log) Children(ctx context.Context, id string, start uint64, n int, size uint64) ([]uint64, uint64, error) {
	return l.listIndex(append(append([]byte{tChild}, id...), 0), start, n, size)
}

// AgentEntries lists the entries agent issued, received or was bound by.
func (l *Log) AgentEntries(ctx context.Context, agent string, start uint64, n int, size uint64) ([]uint64, uint64, error) {
	return l.listIndex(append(append([]byte{tAgent}, agent...), 0), start, n, size)
}
