package ledger

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/internal/merkleref"
	"github.com/warrantlog/warrant/proofs"
)

// TestTreeCacheBound checks that the tile-subtree cache stays within its
// byte bound, evicts oldest first, keeps the widest version of a tile and
// hands out hashes that cannot be appended into.
func TestTreeCacheBound(t *testing.T) {
	tile := func(w int, b byte) []byte { return bytes.Repeat([]byte{b}, w*hashSize) }
	full := buildTileTree(tile(256, 1))
	per := full.bytes()
	c := newTreeCache(3*per + per/2)
	for n := uint64(0); n < 10; n++ {
		c.put([2]uint64{0, n}, buildTileTree(tile(256, byte(n))))
		if c.size > c.max {
			t.Fatalf("after %d puts the cache holds %d bytes, bound %d", n+1, c.size, c.max)
		}
	}
	if len(c.m) != 3 || c.get([2]uint64{0, 6}) != nil || c.get([2]uint64{0, 9}) == nil {
		t.Fatalf("cache holds %d trees; want the 3 newest", len(c.m))
	}
	// A narrower version never replaces a wider one; a wider one does.
	k := [2]uint64{1, 0}
	c.put(k, buildTileTree(tile(10, 7)))
	c.put(k, buildTileTree(tile(4, 7)))
	if got := c.get(k).width(); got != 10 {
		t.Fatalf("width %d after a narrower put, want 10", got)
	}
	c.put(k, buildTileTree(tile(12, 7)))
	if got := c.get(k).width(); got != 12 {
		t.Fatalf("width %d after a wider put, want 12", got)
	}
	sum := 0
	for _, tr := range c.m {
		sum += tr.bytes()
	}
	if sum != c.size {
		t.Fatalf("accounted %d bytes, trees hold %d", c.size, sum)
	}
	// Hashes share the tree's memory: appending must not overwrite it.
	h := full.node(1, 0)
	next := bytes.Clone(full.node(1, 1))
	_ = append(h, 0xff)
	if !bytes.Equal(full.node(1, 1), next) {
		t.Fatal("appending to a node hash overwrote its neighbour")
	}
	if newTreeCache(-1) != nil || newTreeCache(-1).get(k) != nil {
		t.Fatal("a disabled cache must hold nothing")
	}
}

// TestFullTilesStoreTheirSubtree checks that a full tile is stored with its
// subtree, that the stored subtree is the one the tile hashes to, and that a
// store written before subtrees were stored (full tiles alone) serves the
// same tiles and correct proofs.
func TestFullTilesStoreTheirSubtree(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.TreeCacheBytes = -1 })
	appendN(t, f, 600)
	ctx := context.Background()
	size := f.log.Checkpoint().Size
	leaves := allLeaves(t, f.log)
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = merkleref.LeafHash(l)
	}
	served := func() [][]byte {
		var out [][]byte
		for n := uint64(0); n*tileWidth < size; n++ {
			w := int(min(size-n*tileWidth, tileWidth))
			tile, err := f.log.readTile(tileRequest{level: 0, index: n, width: w})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tile)
		}
		return out
	}
	before := served()
	checkProofs := func() {
		t.Helper()
		for i := uint64(0); i < size; i += 7 {
			got, _, err := f.log.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if want := merkleref.Inclusion(int(i), hashes); !equalHashes(got, want) {
				t.Fatalf("inclusion %d in %d differs from the reference", i, size)
			}
		}
	}
	checkProofs()

	full := 0
	err := f.log.db.Update(func(txn *badger.Txn) error {
		for n := uint64(0); (n+1)*tileWidth <= size; n++ {
			v, err := getValue(txn, tileKey(0, n))
			if err != nil {
				return err
			}
			if len(v) != treeBytes {
				return fmt.Errorf("full tile %d is stored in %d bytes, want %d", n, len(v), treeBytes)
			}
			if !bytes.Equal(buildTileTree(v[:tileBytes]).stored(), v) {
				return fmt.Errorf("full tile %d: stored subtree differs from its hashes", n)
			}
			full++
			// Rewrite it as an older store kept it: the tile alone.
			if err := txn.Set(tileKey(0, n), bytes.Clone(v[:tileBytes])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if full != 2 {
		t.Fatalf("%d full tiles in a log of %d entries, want 2", full, size)
	}
	if after := served(); !slices.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("tiles served differently once stored without their subtree")
	}
	checkProofs()

	// A value that is neither a tile nor a tile with its subtree is damage,
	// reported as data loss rather than served as a 509-hash tile.
	if err := f.log.db.Update(func(txn *badger.Txn) error {
		return txn.Set(tileKey(0, 0), bytes.Repeat([]byte{7}, treeBytes-hashSize))
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.log.InclusionProof(ctx, 3, size); proofs.Reason(err) != ReasonDataLoss {
		t.Fatalf("proof from a malformed tile: %v, want %s", err, ReasonDataLoss)
	}
	if _, err := f.log.readTile(tileRequest{level: 0, index: 0, width: tileWidth}); err == nil {
		t.Fatal("a malformed tile was served")
	}
}

// TestStoredSublevels: a full tile read back from its stored form, or from
// an older store's bare tile, gives every node of its subtree exactly as
// hashing the whole tile does, while keeping only the stored sublevels.
func TestStoredSublevels(t *testing.T) {
	tile := make([]byte, tileBytes)
	for i := range tile {
		tile[i] = byte(i*7 + i/32)
	}
	full := buildTileTree(tile)
	stored := full.stored()
	if len(stored) != treeBytes {
		t.Fatalf("stored form is %d bytes, want %d", len(stored), treeBytes)
	}
	for name, tr := range map[string]*tileTree{"stored": tileTreeOf(stored), "bare tile": tileTreeOf(bytes.Clone(tile))} {
		if want := treeBytes + (tileWidth>>keptFrom)*hashSize; tr.bytes() != want {
			t.Errorf("%s: keeps %d bytes, want %d", name, tr.bytes(), want)
		}
		for sub := uint(0); sub < tileHeight; sub++ {
			for j := uint64(0); j < tileWidth>>sub; j++ {
				if got, want := tr.node(sub, j), full.node(sub, j); !bytes.Equal(got, want) {
					t.Fatalf("%s: node %d/%d differs", name, sub, j)
				}
			}
			if tr.node(sub, tileWidth>>sub) != nil {
				t.Fatalf("%s: node %d/%d past the tile exists", name, sub, tileWidth>>sub)
			}
		}
	}
}
