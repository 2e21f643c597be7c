package ledger

import (
	"context"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/warrantlog/warrant/proofs"
)

// batchNodes are the tree nodes that the inclusion proofs of one committed
// batch's entries need, kept in memory so that the answers to its appends
// are proved without reading the store: the compact range of the tree
// before the batch, and every node the batch's entries completed (the
// sequencer's compact range visits each). A proof of entry i of the batch
// in the tree the batch ends reads only these: its left siblings lie in
// the range before the batch or were completed by the batch (a subtree
// that straddles the batch's start), its right siblings, and the perfect
// subtrees a right-edge node is hashed from, lie within the batch. Should
// a node still be missing, inclusion reports it and the proof is read from
// the store as before.
//
// It is built by the sequencer and immutable once the batch commits; each
// request proves its own entry from it, concurrently.
type batchNodes struct {
	begin, size uint64 // the batch's entries are [begin, size)
	hashes      map[compact.NodeID][]byte
}

func newBatchNodes(before *compact.Range) *batchNodes {
	n := &batchNodes{begin: before.End(), size: before.End(), hashes: make(map[compact.NodeID][]byte)}
	for i, id := range compact.RangeNodes(before.Begin(), before.End(), nil) {
		n.hashes[id] = before.Hashes()[i]
	}
	return n
}

// record is the compact.VisitFn of the batch's appends. The hashes the
// compact range hands over are never modified afterwards.
func (n *batchNodes) record(id compact.NodeID, hash []byte) { n.hashes[id] = hash }

// inclusion returns the inclusion proof of index in the tree of size, if
// index is an entry of this batch and size is the size the batch ended
// at; ok is false otherwise.
func (n *batchNodes) inclusion(index, size uint64) (_ [][]byte, ok bool) {
	if n == nil || size != n.size || index < n.begin || index >= size {
		return nil, false
	}
	p, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, false
	}
	hashes := make([][]byte, len(p.IDs))
	for i, id := range p.IDs {
		if hashes[i], ok = n.hashes[id]; !ok {
			return nil, false
		}
	}
	out, err := p.Rehash(hashes, proofs.HashChildren)
	return out, err == nil
}

// appendedProof is the inclusion proof of an appended entry in the tree of
// size: from the nodes of the batch that committed it when it can be
// (the usual answer to an append), from the store otherwise (a
// resubmission of an older entry, a later checkpoint).
func (l *Log) appendedProof(ctx context.Context, a *Appended, size uint64) ([][]byte, error) {
	if p, ok := a.nodes.inclusion(a.Index, size); ok {
		return p, nil
	}
	p, _, err := l.InclusionProof(ctx, a.Index, size)
	return p, err
}
