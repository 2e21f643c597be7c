package ledger

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// TestBatchProofs: every entry a batch commits is proved from the batch's
// nodes alone (no store read) in the checkpoint that answers it, and the
// proof is the one the store gives and verifies; over batches of many
// sizes, crossing level-0 tile boundaries and starting
// anywhere in a tile. An older entry, or another tree size, is not proved
// from them (the store is asked).
func TestBatchProofs(t *testing.T) {
	f := newFixture(t, nil)
	hpStopSequencer(f.log)
	ctx := context.Background()
	n := 0
	for bi, size := range []int{1, 1, 2, 3, 5, 8, 13, 250, 1, 256, 255, 300, 7, 64, 129, 1, 600} {
		envs, err := hpRootGrants(f.human, size, fmt.Sprintf("bp%d", bi))
		if err != nil {
			t.Fatal(err)
		}
		batch := make([]*request, size)
		for i, env := range envs {
			if batch[i], err = hpRequest(f.log, env, false); err != nil {
				t.Fatal(err)
			}
		}
		f.log.sequence(batch)
		for _, r := range batch {
			res := <-r.done
			if res.err != nil {
				t.Fatalf("batch %d: %v", bi, res.err)
			}
			a := &Appended{Index: res.Index, nodes: res.nodes}
			cp := res.Checkpoint
			got, ok := res.nodes.inclusion(res.Index, cp.Size)
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
			if p, err := f.log.appendedProof(ctx, a, cp.Size); err != nil || !slices.EqualFunc(p, want, slices.Equal) {
				t.Fatalf("appendedProof of entry %d: %v", res.Index, err)
			}
			n++
		}
	}
	// Not from these nodes: an entry before the batch, another size.
	cp := f.log.Checkpoint()
	nodes := f.log.seq.nodes
	if _, ok := nodes.inclusion(nodes.begin-1, cp.Size); ok {
		t.Error("an entry of an earlier batch proved from the last batch's nodes")
	}
	if _, ok := nodes.inclusion(nodes.begin, cp.Size+1); ok {
		t.Error("a proof in another tree size made from the batch's nodes")
	}
	if _, ok := (*batchNodes)(nil).inclusion(0, 1); ok {
		t.Error("nil nodes proved an entry")
	}
	t.Logf("%d entries proved from their batches' nodes", n)
}
