package ledger

import (
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/warrantlog/warrant/proofs"
)

// Tree nodes are stored as C2SP tlog-tiles: a tile at tile level L and index
// N holds up to 256 consecutive hashes of tree level 8L, starting at node
// 256N. Only tree levels 0, 8, 16, ... are stored; any other node is the
// root of a subtree of at most 128 consecutive hashes inside one tile and is
// recomputed from it. A partial tile is stored under the same key as the
// full tile it grows into, so a partial tile of width W is the first W
// hashes of whatever is stored.
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	hashSize   = 32
)

// errMissingNode means the store lacks a node it must have: corruption or a
// bug, never a client error.
type errMissingNode struct {
	level uint
	index uint64
}

func (e errMissingNode) Error() string {
	return fmt.Sprintf("tree node (level %d, index %d) is not in the store", e.level, e.index)
}

// nodeReader reads tree nodes from tiles within one Badger read transaction.
type nodeReader struct {
	txn   *badger.Txn
	tiles map[[2]uint64][]byte
}

func newNodeReader(txn *badger.Txn) *nodeReader {
	return &nodeReader{txn: txn, tiles: make(map[[2]uint64][]byte)}
}

func (r *nodeReader) tile(level uint8, idx uint64) ([]byte, error) {
	k := [2]uint64{uint64(level), idx}
	if t, ok := r.tiles[k]; ok {
		return t, nil
	}
	t, err := getValue(r.txn, tileKey(level, idx))
	if err != nil {
		return nil, err
	}
	r.tiles[k] = t
	return t, nil
}

// node returns the hash of the complete node (level, index).
func (r *nodeReader) node(level uint, index uint64) ([]byte, error) {
	tl, sub := level/tileHeight, level%tileHeight
	first := index << sub // first node of tree level 8*tl under this node
	count := uint64(1) << sub
	tile, err := r.tile(uint8(tl), first/tileWidth)
	if err != nil {
		return nil, err
	}
	off := first % tileWidth
	if uint64(len(tile)) < (off+count)*hashSize {
		return nil, errMissingNode{level, index}
	}
	hashes := make([][]byte, count)
	for i := range hashes {
		o := (off + uint64(i)) * hashSize
		hashes[i] = tile[o : o+hashSize]
	}
	for len(hashes) > 1 {
		for i := 0; i < len(hashes)/2; i++ {
			hashes[i] = proofs.HashChildren(hashes[2*i], hashes[2*i+1])
		}
		hashes = hashes[:len(hashes)/2]
	}
	return slices.Clone(hashes[0]), nil
}

func (r *nodeReader) nodes(ids []compact.NodeID) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := r.node(id.Level, id.Index)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return hashes, nil
}

// rangeHashes returns the hashes of the compact range [begin, end).
func (r *nodeReader) rangeHashes(begin, end uint64) ([][]byte, error) {
	return r.nodes(compact.RangeNodes(begin, end, nil))
}

// root computes the root of the tree of the given size from stored nodes.
func (r *nodeReader) root(size uint64) ([]byte, error) {
	if size == 0 {
		return proofs.EmptyRoot(), nil
	}
	hashes, err := r.rangeHashes(0, size)
	if err != nil {
		return nil, err
	}
	cr, err := proofs.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return cr.GetRootHash(nil)
}

func (r *nodeReader) inclusion(index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hashes, err := r.nodes(nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, proofs.HashChildren)
}

func (r *nodeReader) consistency(size1, size2 uint64) ([][]byte, error) {
	if size1 == 0 || size1 == size2 {
		return nil, nil
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	hashes, err := r.nodes(nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, proofs.HashChildren)
}

// edgeTiles are the rightmost (possibly partial) tile of each tile level:
// the only tiles an append can change. The sequencer owns them.
type edgeTiles struct {
	idx  []uint64 // tile index per tile level
	hash [][]byte // tile contents per tile level
}

// loadEdgeTiles reads the rightmost tiles of a tree of the given size.
func loadEdgeTiles(r *nodeReader, size uint64) (*edgeTiles, error) {
	e := &edgeTiles{}
	for level := uint8(0); ; level++ {
		count := size >> (uint(level) * tileHeight) // nodes at tree level 8*level
		if count == 0 {
			break
		}
		n := count / tileWidth
		w := count % tileWidth
		var content []byte
		if w > 0 {
			t, err := r.tile(level, n)
			if err != nil {
				return nil, err
			}
			if uint64(len(t)) < w*hashSize {
				return nil, fmt.Errorf("tile %d/%d has %d hashes, tree size %d needs %d", level, n, len(t)/hashSize, size, w)
			}
			content = slices.Clone(t[:w*hashSize])
		}
		e.idx = append(e.idx, n)
		e.hash = append(e.hash, content)
	}
	return e, nil
}

func (e *edgeTiles) clone() *edgeTiles {
	c := &edgeTiles{idx: slices.Clone(e.idx), hash: make([][]byte, len(e.hash))}
	for i, h := range e.hash {
		c.hash[i] = slices.Clone(h)
	}
	return c
}

// tileWriter records the tiles a batch changes.
type tileWriter struct {
	edge  *edgeTiles
	dirty map[string][]byte
	// err records a node that arrived out of order: corrupt state, which
	// fails the batch rather than the process.
	err error
}

// visit is a compact.VisitFn: it records each new node on a stored level.
func (w *tileWriter) visit(id compact.NodeID, hash []byte) {
	if id.Level%tileHeight != 0 {
		return
	}
	level := int(id.Level / tileHeight)
	n, off := id.Index/tileWidth, id.Index%tileWidth
	for len(w.edge.idx) <= level {
		w.edge.idx = append(w.edge.idx, 0)
		w.edge.hash = append(w.edge.hash, nil)
	}
	if w.edge.idx[level] != n {
		w.edge.idx[level] = n
		w.edge.hash[level] = make([]byte, 0, tileWidth*hashSize)
	}
	if uint64(len(w.edge.hash[level])) != off*hashSize {
		if w.err == nil {
			w.err = fmt.Errorf("%w: tree node %d/%d out of order in its tile (have %d hashes)", ErrStoreMismatch, id.Level, id.Index, len(w.edge.hash[level])/hashSize)
		}
		return
	}
	w.edge.hash[level] = append(w.edge.hash[level], hash...)
	w.dirty[string(tileKey(uint8(level), n))] = w.edge.hash[level]
}
