package ledger

import (
	"bytes"
	"context"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/warrantlog/warrant/proofs"
)

// Bounds of the nodes a batch keeps of the batches before it: enough for a client appending in turn with others, whose trusted size is
// a few batches old; little memory (about two nodes an entry).
const (
	recentBatches = 64
	recentEntries = 1 << 16
)

// batchNodes are the tree nodes that the answers to one committed batch's
// appends need, kept in memory so that they are proved without reading
// the store: the inclusion proof of each entry of the batch, and the
// consistency proof from the client's trusted size, in the tree the batch
// ends.
//
// They are the nodes completed by this batch and by the batches before it,
// recentBatches spans in all and recentEntries entries at most, each
// batch's in a span of its own, and the compact range of the tree before each span.
// A perfect subtree [a, e) is completed when entry e-1 is appended, so it
// is in the span holding e-1; one ending at or before the oldest span's
// begin B is in the compact range of [0, B) if a proof in a tree the
// window reaches needs it:
//   - an inclusion proof of an entry i >= B needs left siblings, the
//     compact range of [0, i) minus what the proof's subtree holds, whose
//     nodes ending at or before B are those of [0, B) (both ranges are
//     the set bits of their sizes, and B <= i share the bits above such a
//     node's level); right siblings, and the perfect subtrees a right-edge
//     node is hashed from, end after i;
//   - a consistency proof from T >= B is, in the same way, the subtree
//     ending at T and that subtree's inclusion proof.
//
// Should a node still be missing, the proof reports it and is read from
// the store instead.
//
// The nodes prove only in the checkpoint whose size and root are the
// batch's (seal): a tree size alone does not name a tree. A cluster leader
// deposed after committing a batch locally discards it and takes the
// cluster's entries at the same indices; an answer still holding the old
// batch's nodes (a duplicate answered from it) would otherwise prove in the
// new checkpoint of the same size with the old tree's hashes.
//
// The spans are built by the sequencer and immutable once their batch
// commits; requests prove from them concurrently.
type batchNodes struct {
	spans []nodeSpan // this batch's first, then the earlier ones, newest first
	root  []byte     // the root of the tree the batch ended, once committed
}

// nodeSpan holds the nodes completed by the entries [begin, end) of one
// batch, and the compact range of [0, begin).
type nodeSpan struct {
	begin, end uint64
	hashes     map[compact.NodeID][]byte
}

// newBatchNodes starts the nodes of a batch appended to before, keeping
// prev's spans (the batch that made before, if it did) within the bounds.
// Spans are copied, not prev itself, so that no batch keeps alive the
// whole chain of batches before it.
func newBatchNodes(before *compact.Range, prev *batchNodes) *batchNodes {
	own := nodeSpan{begin: before.End(), end: before.End(), hashes: make(map[compact.NodeID][]byte)}
	for i, id := range compact.RangeNodes(before.Begin(), before.End(), nil) {
		own.hashes[id] = before.Hashes()[i]
	}
	n := &batchNodes{spans: make([]nodeSpan, 1, recentBatches)}
	n.spans[0] = own
	if prev == nil || prev.size() != own.begin {
		return n // nothing before (recovered), or not where this batch begins
	}
	for _, s := range prev.spans[:min(len(prev.spans), recentBatches-1)] {
		if own.begin-s.begin > recentEntries {
			break
		}
		n.spans = append(n.spans, s)
	}
	return n
}

// size is the tree size the batch ends (so far, while it is staged).
func (n *batchNodes) size() uint64 { return n.spans[0].end }

// extend records that the batch now ends at size.
func (n *batchNodes) extend(size uint64) { n.spans[0].end = size }

// seal records the root of the tree the committed batch ended: the nodes
// prove only in a checkpoint of that root.
func (n *batchNodes) seal(root []byte) { n.root = root }

// proves reports whether the nodes prove in the tree of cp: the batch's
// own, committed.
func (n *batchNodes) proves(cp *proofs.Checkpoint) bool {
	return n != nil && n.root != nil && cp != nil && cp.Size == n.size() && bytes.Equal(cp.Root, n.root)
}

// oldest is the first index of the oldest span kept.
func (n *batchNodes) oldest() uint64 { return n.spans[len(n.spans)-1].begin }

// record is the compact.VisitFn of the batch's appends. The hashes the
// compact range hands over are never modified afterwards.
func (n *batchNodes) record(id compact.NodeID, hash []byte) { n.spans[0].hashes[id] = hash }

// node returns the hash of id from the span where it was completed.
func (n *batchNodes) node(id compact.NodeID) ([]byte, bool) {
	end := (id.Index + 1) << id.Level
	for i := range n.spans {
		s := &n.spans[i]
		if end > s.begin || i == len(n.spans)-1 {
			h, ok := s.hashes[id]
			return h, ok
		}
	}
	return nil, false
}

// rehash fills p's nodes from the spans and hashes its right edge.
func (n *batchNodes) rehash(p proof.Nodes) ([][]byte, bool) {
	hashes := make([][]byte, len(p.IDs))
	for i, id := range p.IDs {
		var ok bool
		if hashes[i], ok = n.node(id); !ok {
			return nil, false
		}
	}
	out, err := p.Rehash(hashes, proofs.HashChildren)
	return out, err == nil
}

// inclusion returns the inclusion proof of index in the tree of cp, if
// that is the tree the batch ended and index is at or after the oldest
// span's begin; ok is false otherwise.
func (n *batchNodes) inclusion(index uint64, cp *proofs.Checkpoint) (_ [][]byte, ok bool) {
	if !n.proves(cp) || index < n.oldest() || index >= cp.Size {
		return nil, false
	}
	p, err := proof.Inclusion(index, cp.Size)
	if err != nil {
		return nil, false
	}
	return n.rehash(p)
}

// consistency returns the consistency proof from trusted to the tree of
// cp, if that is the tree the batch ended and trusted is at or after the
// oldest span's begin; ok is false otherwise.
func (n *batchNodes) consistency(trusted uint64, cp *proofs.Checkpoint) (_ [][]byte, ok bool) {
	if !n.proves(cp) || trusted < n.oldest() || trusted == 0 || trusted > cp.Size {
		return nil, false
	}
	p, err := proof.Consistency(trusted, cp.Size)
	if err != nil {
		return nil, false
	}
	return n.rehash(p)
}

// appendedProof is the inclusion proof of an appended entry in the tree of
// cp: from the nodes of the batch that committed it when they prove in cp
// (the usual answer to an append), from the store otherwise (an entry
// before their window, a later checkpoint).
func (l *Log) appendedProof(ctx context.Context, a *Appended, cp *proofs.Checkpoint) ([][]byte, error) {
	if p, ok := a.nodes.inclusion(a.Index, cp); ok {
		return p, nil
	}
	p, _, err := l.InclusionProof(ctx, a.Index, cp.Size)
	return p, err
}
