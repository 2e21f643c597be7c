package ledger

// Recovery: on Open, the stored tree is checked against its head and the
// last signed checkpoint before the sequencer's state is rebuilt from it.

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// recover loads the tree head, recomputes the root from the stored tiles and
// checks it against the head and the last checkpoint, then rebuilds the
// sequencer's state.
func (l *Log) recover() error {
	h, cp, err := l.loadState()
	if err != nil {
		return err
	}
	if l.cluster != nil {
		// Distributed: the cluster's checkpoint decides what is served
		// (reconcile). Until then, the last one stored, which was swapped
		// in (or one of the empty tree, which every log extends).
		if cp == nil {
			if cp, err = l.signCheckpoint(0, proofs.EmptyRoot(), false); err != nil {
				return err
			}
		}
		l.publish(cp)
		return nil
	}
	if cp == nil || cp.Size < h.Size {
		root := h.Root
		if h.Size == 0 {
			root = proofs.EmptyRoot()
		}
		if cp, err = l.signCheckpoint(h.Size, root, true); err != nil {
			return err
		}
	}
	l.publish(cp)
	l.log.Info("log opened", "origin", l.signer.Name(), "size", cp.Size, "root", fmt.Sprintf("%x", cp.Root))
	return nil
}

// loadState checks the stored tree and rebuilds the sequencer's state from
// it, returning the tree head and the last stored checkpoint (nil if none).
func (l *Log) loadState() (head, *proofs.Checkpoint, error) {
	var h head
	var cp *proofs.Checkpoint
	err := l.db.View(func(txn *badger.Txn) error {
		hb, err := getValue(txn, keyHead)
		if err != nil {
			return err
		}
		if hb != nil {
			if h, err = parseHead(hb); err != nil {
				return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
			}
		}
		r := l.nodeReader(txn)
		root, err := r.root(h.Size)
		if err != nil {
			return fmt.Errorf("%w: recomputing the root of %d entries from stored tiles: %v", ErrStoreMismatch, h.Size, err)
		}
		if hb != nil && !bytes.Equal(root, h.Root) {
			return fmt.Errorf("%w: stored tiles give root %x for %d entries, but the stored tree head says %x", ErrStoreMismatch, root, h.Size, h.Root)
		}
		if h.Size > 0 {
			leaf, err := getValue(txn, leafKey(h.Size-1))
			if err != nil {
				return err
			}
			lh, err := r.node(0, h.Size-1)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
			}
			if leaf == nil || !bytes.Equal(proofs.LeafHash(leaf), lh) {
				return fmt.Errorf("%w: leaf %d does not match its stored hash", ErrStoreMismatch, h.Size-1)
			}
		}
		cb, err := getValue(txn, keyCheckpoint)
		if err != nil {
			return err
		}
		if cb != nil {
			if cp, err = proofs.OpenCheckpoint(cb, l.verifier); err != nil {
				return fmt.Errorf("%w: the stored checkpoint does not verify under this log's key: %v", ErrStoreMismatch, err)
			}
			if cp.Size > h.Size {
				return fmt.Errorf("%w: the last checkpoint covers %d entries but the store holds %d: committed entries were lost", ErrStoreMismatch, cp.Size, h.Size)
			}
			at, err := r.root(cp.Size)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
			}
			if !bytes.Equal(at, cp.Root) {
				return fmt.Errorf("%w: the stored tree of %d entries has root %x, but the last checkpoint signed %x", ErrStoreMismatch, cp.Size, at, cp.Root)
			}
		}
		edge, err := loadEdgeTiles(r, h.Size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
		}
		hashes, err := r.rangeHashes(0, h.Size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
		}
		rng, err := proofs.NewRange(0, h.Size, hashes)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
		}
		bs, err := loadBindings(txn)
		if err != nil {
			return err
		}
		pol, err := loadPolicy(txn)
		if err != nil {
			return err
		}
		l.seq = seqState{size: h.Size, rng: rng, edge: edge, logTime: h.LogTime, state: proofs.ResumeState(nil, &l.config, bs, pol)}
		l.logTime.Store(h.LogTime)
		l.signers.Store(l.seq.state.Signers())
		l.policy.Store(l.seq.state.Policy())
		return nil
	})
	return h, cp, err
}

// loadPolicy returns the policy in force: that of the last policy entry.
func loadPolicy(txn *badger.Txn) (*proofs.Policy, error) {
	idx, ok, err := getIndex(txn, keyPolicy)
	if err != nil || !ok {
		return nil, err
	}
	raw, err := getValue(txn, leafKey(idx))
	if err != nil {
		return nil, err
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil || p.Policy == nil {
		return nil, fmt.Errorf("%w: policy entry %d: %v", ErrStoreMismatch, idx, err)
	}
	return p.Policy, nil
}
