package ledger

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/warrantlog/warrant/proofs"
)

// TestBatchProofs: every entry a batch commits is proved from the batch's
// nodes alone (no store read) in the checkpoint that answers it, and so is
// the consistency proof from every earlier size the batch's window
// reaches; each proof is the one the store gives, and verifies; over
// batches of many sizes, crossing level-0 tile boundaries and starting
// anywhere in a tile. An entry or a size before the window, or another
// tree size, is not proved from them (the store is asked).
func TestBatchProofs(t *testing.T) {
	f := newFixture(t, nil)
	hpStopSequencer(f.log)
	ctx := context.Background()
	roots := map[uint64][]byte{}
	n, c := 0, 0
	// The single entries at the end push the first batches out of the window.
	sizes := append([]int{1, 1, 2, 3, 5, 8, 13, 250, 1, 256, 255, 300, 7, 64, 129, 1, 600}, slices.Repeat([]int{1}, recentBatches)...)
	for bi, size := range sizes {
		var nodes *batchNodes
		var cp2 *proofs.Checkpoint
		for _, res := range hpCommitBatch(t, f, size, fmt.Sprintf("bp%d", bi)) {
			cp := res.Checkpoint
			roots[cp.Size], nodes, cp2 = cp.Root, res.nodes, cp
			got, ok := res.nodes.inclusion(res.Index, cp)
			if !ok {
				t.Fatalf("batch %d of %d: entry %d (tree size %d) not proved from the batch's nodes", bi, size, res.Index, cp.Size)
			}
			want, _, err := f.log.InclusionProof(ctx, res.Index, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("entry %d in tree size %d: batch proof differs from the store's", res.Index, cp.Size)
			}
			if err := proofs.VerifyInclusion(res.Index, cp.Size, proofs.LeafHash(res.Leaf), got, cp.Root); err != nil {
				t.Fatalf("entry %d: %v", res.Index, err)
			}
			// And by a verifier this project did not write.
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, res.Index, cp.Size, proofs.LeafHash(res.Leaf), got, cp.Root); err != nil {
				t.Fatalf("entry %d, transparency-dev/merkle: %v", res.Index, err)
			}
			if p, err := f.log.appendedProof(ctx, res, cp); err != nil || !slices.EqualFunc(p, want, slices.Equal) {
				t.Fatalf("appendedProof of entry %d: %v", res.Index, err)
			}
			n++
		}
		// Consistency from every size the window reaches, to the batch's.
		size2 := nodes.size()
		for trusted := max(nodes.oldest(), 1); trusted <= size2; trusted++ {
			got, ok := nodes.consistency(trusted, cp2)
			if !ok {
				t.Fatalf("batch %d: consistency %d -> %d not proved from the window [%d, %d)", bi, trusted, size2, nodes.oldest(), size2)
			}
			want, _, err := f.log.ConsistencyProof(ctx, trusted, size2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("consistency %d -> %d: the window's proof differs from the store's", trusted, size2)
			}
			if root1, ok := roots[trusted]; ok {
				if err := proofs.VerifyConsistency(trusted, size2, got, root1, roots[size2]); err != nil {
					t.Fatalf("consistency %d -> %d: %v", trusted, size2, err)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, trusted, size2, got, root1, roots[size2]); err != nil {
					t.Fatalf("consistency %d -> %d, transparency-dev/merkle: %v", trusted, size2, err)
				}
			}
			c++
		}
	}
	// Not from these nodes: before the window, another size, another tree
	// of the same size (a deposed cluster leader's discarded batch), a
	// batch not sealed as committed.
	cp := f.log.Checkpoint()
	nodes := f.log.seq.nodes
	if len(nodes.spans) < 2 {
		t.Fatalf("the last batch kept %d spans; want the earlier batches' too", len(nodes.spans))
	}
	if nodes.oldest() == 0 {
		t.Fatal("the window reaches the first entry; the test needs it not to")
	}
	if _, ok := nodes.inclusion(nodes.oldest()-1, cp); ok {
		t.Error("an entry before the window proved from the last batch's nodes")
	}
	if _, ok := nodes.consistency(nodes.oldest()-1, cp); ok {
		t.Error("a size before the window proved consistent from the last batch's nodes")
	}
	if _, ok := nodes.inclusion(nodes.oldest(), cp); !ok {
		t.Fatal("the window's first entry not proved in the batch's checkpoint")
	}
	bigger := &proofs.Checkpoint{Size: cp.Size + 1, Root: cp.Root}
	if _, ok := nodes.inclusion(nodes.oldest(), bigger); ok {
		t.Error("a proof in another tree size made from the batch's nodes")
	}
	if _, ok := nodes.consistency(cp.Size-1, bigger); ok {
		t.Error("a consistency proof to another tree size made from the batch's nodes")
	}
	other := &proofs.Checkpoint{Size: cp.Size, Root: slices.Clone(cp.Root)}
	other.Root[0] ^= 1
	if _, ok := nodes.inclusion(nodes.oldest(), other); ok {
		t.Error("a proof in another tree of the batch's size made from the batch's nodes")
	}
	if _, ok := nodes.consistency(cp.Size-1, other); ok {
		t.Error("a consistency proof to another tree of the batch's size made from the batch's nodes")
	}
	unsealed := &batchNodes{spans: nodes.spans}
	if _, ok := unsealed.inclusion(nodes.oldest(), cp); ok {
		t.Error("nodes of a batch not sealed as committed proved an entry")
	}
	var none *batchNodes
	if _, ok := none.inclusion(0, cp); ok {
		t.Error("nil nodes proved an entry")
	}
	if _, ok := none.consistency(1, cp); ok {
		t.Error("nil nodes proved a consistency")
	}
	t.Logf("%d entries and %d consistency proofs proved from their batches' nodes", n, c)
}

// TestBatchNodesWindow: a batch keeps the spans of the batches before it
// while they are recentBatches at most and start within recentEntries of
// it, and none when there is no batch before it (after a recovery) or the
// one given did not end where this one begins.
func TestBatchNodesWindow(t *testing.T) {
	rangeAt := func(end uint64) *compact.Range {
		ids := compact.RangeNodes(0, end, nil)
		hashes := make([][]byte, len(ids))
		for i := range hashes {
			hashes[i] = make([]byte, 32)
		}
		r, err := (&compact.RangeFactory{Hash: proofs.HashChildren}).NewRange(0, end, hashes)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	span := func(begin, end uint64) nodeSpan { return nodeSpan{begin: begin, end: end} }
	const b = 100_000
	prev := &batchNodes{spans: []nodeSpan{span(b-10, b), span(b-recentEntries, b-10), span(b-recentEntries-1, b-recentEntries), span(0, b-recentEntries-1)}}
	n := newBatchNodes(rangeAt(b), prev)
	if got := len(n.spans); got != 3 || n.oldest() != b-recentEntries {
		t.Errorf("kept %d spans from %d; want 3, from %d (recentEntries before the batch)", got, n.oldest(), b-recentEntries)
	}
	if len(n.spans[0].hashes) != len(compact.RangeNodes(0, b, nil)) {
		t.Errorf("the batch's span holds %d nodes; want the compact range before it", len(n.spans[0].hashes))
	}
	many := &batchNodes{}
	for i := range uint64(2 * recentBatches) {
		many.spans = append(many.spans, span(b-1-i, b-i))
	}
	if got := len(newBatchNodes(rangeAt(b), many).spans); got != recentBatches {
		t.Errorf("kept %d spans; want recentBatches (%d)", got, recentBatches)
	}
	if got := len(newBatchNodes(rangeAt(b+1), prev).spans); got != 1 {
		t.Errorf("kept %d spans of a batch that did not end where this one begins; want only its own", got)
	}
	if got := len(newBatchNodes(rangeAt(b), nil).spans); got != 1 {
		t.Errorf("kept %d spans with no batch before; want only its own", got)
	}
}
