package ledger

import (
	"fmt"
	"slices"
	"sync"

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
//
// When a tile fills up, the upper levels of its subtree (the 62 nodes of
// sublevels 3 to 7: 32 hashes, then 16, ... 2) are stored after its 256
// hashes, in the same value. A proof then reads the nodes it needs and
// hashes at most 4 (its siblings on sublevels 1 and 2), instead of up to
// 255 per tile level; once the tile's tree is in the cache, at most 1
// (keptFrom). The lower levels are left out on purpose: they would
// double the bytes a proof touches (a 10 KiB value instead of 16 KiB), and
// on a large log those pages are what proofs keep resident. Stores written
// before this kept full tiles alone (tileBytes); their subtrees are
// computed when read.
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	hashSize   = 32
	// storedFrom is the lowest sublevel stored with a full tile.
	storedFrom = 3
	// keptFrom is the lowest sublevel a full tile's tree keeps in memory:
	// sublevel 2 (64 hashes, 2 KiB) is computed once when the tile is read,
	// so that a proof served from the cache hashes at most one node per
	// tile level (its sibling on sublevel 1) rather than four: those
	// hashes were 10% of the server's CPU under inclusion-proof load.
	keptFrom = 2
	// tileBytes is a full tile; treeBytes a full tile and its stored
	// sublevels.
	tileBytes = tileWidth * hashSize
	treeBytes = tileBytes + (2*(tileWidth>>storedFrom)-2)*hashSize
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
	txn *badger.Txn
	// db, when set, is where txn is opened on the first tile read (see
	// Log.withProofReader); the reader then owns txn.
	db    *badger.DB
	tiles map[[2]uint64][]byte
	// built holds the subtrees this reader made or took from trees, so a
	// proof reads each tile once even without a shared cache.
	built map[[2]uint64]*tileTree
	trees *treeCache
}

func newNodeReader(txn *badger.Txn) *nodeReader {
	return &nodeReader{txn: txn}
}

// nodeReader returns a node reader sharing the log's tile-tree cache.
func (l *Log) nodeReader(txn *badger.Txn) *nodeReader {
	r := newNodeReader(txn)
	r.trees = l.trees
	return r
}

// withProofReader runs f with a node reader sharing the log's tile-tree
// cache that opens a read transaction only if it must read a tile: a proof
// whose nodes are all cached, the usual case on a serving log, then costs
// no transaction (Badger's read transactions each post to its watermark
// goroutine twice). Reading some nodes from the cache and others from a
// later snapshot is consistent: a tile only grows, and every version of it
// holds the nodes of the tree sizes it covered.
func (l *Log) withProofReader(f func(r *nodeReader) error) error {
	r := &nodeReader{db: l.db, trees: l.trees}
	defer func() {
		if r.txn != nil {
			r.txn.Discard()
		}
	}()
	return f(r)
}

func (r *nodeReader) tile(level uint8, idx uint64) ([]byte, error) {
	k := [2]uint64{uint64(level), idx}
	if t, ok := r.tiles[k]; ok {
		return t, nil
	}
	if r.txn == nil {
		r.txn = r.db.NewTransaction(false)
	}
	t, err := getValue(r.txn, tileKey(level, idx))
	if err != nil {
		return nil, err
	}
	if r.tiles == nil {
		r.tiles = make(map[[2]uint64][]byte)
	}
	r.tiles[k] = t
	return t, nil
}

// node returns the hash of the complete node (level, index). Nodes between
// the stored levels come from the tile's subtree, stored with full tiles and
// computed for partial ones, and cached: a proof then costs a few lookups,
// not the hundreds of hashes of recomputing each node.
func (r *nodeReader) node(level uint, index uint64) ([]byte, error) {
	tl, sub := level/tileHeight, level%tileHeight
	first := index << sub // first node of tree level 8*tl under this node
	key := [2]uint64{uint64(tl), first / tileWidth}
	j := (first % tileWidth) >> sub
	t := r.built[key]
	if t == nil {
		t = r.trees.get(key)
	}
	if t != nil {
		if h := t.node(sub, j); h != nil {
			return h, nil
		}
	}
	tile, err := r.tile(uint8(tl), key[1])
	if err != nil {
		return nil, err
	}
	if !tileValue(tile) {
		return nil, errMissingNode{level, index} // not a tile: corrupt
	}
	t = tileTreeOf(tile)
	if r.built == nil {
		r.built = make(map[[2]uint64]*tileTree)
	}
	r.built[key] = t
	r.trees.put(key, t)
	if h := t.node(sub, j); h != nil {
		return h, nil
	}
	return nil, errMissingNode{level, index}
}

// tileTree is a tile's subtree: levels[k] holds the hashes of its complete
// nodes k levels above the tile's own level. For a full tile, sublevels
// below storedFrom may be nil and are then hashed from the tile when asked
// for (at most 3 hashes a node), which keeps cached trees small. It is
// immutable once built.
type tileTree struct {
	levels [tileHeight][]byte
}

func buildTileTree(tile []byte) *tileTree {
	t := &tileTree{}
	t.levels[0] = tile
	for k := 1; k < tileHeight; k++ {
		below := t.levels[k-1]
		n := len(below) / hashSize / 2
		level := make([]byte, 0, n*hashSize)
		for i := 0; i < n; i++ {
			level = append(level, proofs.HashChildren(below[2*i*hashSize:(2*i+1)*hashSize], below[(2*i+1)*hashSize:(2*i+2)*hashSize])...)
		}
		t.levels[k] = level
	}
	return t
}

// tileValue reports whether v can be a stored tile: whole hashes, at most a
// full tile, or exactly a full tile with its stored sublevels.
func tileValue(v []byte) bool {
	return len(v)%hashSize == 0 && (len(v) <= tileBytes || len(v) == treeBytes)
}

// tileTreeOf returns the subtree of a stored tile: its upper sublevels read
// from the value when a full tile was stored with them, computed otherwise.
// The caller has checked that stored is a tile or a tile with sublevels.
func tileTreeOf(stored []byte) *tileTree {
	switch len(stored) {
	case treeBytes:
		t := &tileTree{}
		t.levels[0] = stored[:tileBytes:tileBytes]
		off := tileBytes
		for k := storedFrom; k < tileHeight; k++ {
			n := (tileWidth >> k) * hashSize
			t.levels[k] = stored[off : off+n : off+n]
			off += n
		}
		for k := storedFrom - 1; k >= keptFrom; k-- {
			t.levels[k] = t.sublevel(uint(k))
		}
		return t
	case tileBytes: // a full tile from an older store: keep what it would keep
		t := buildTileTree(stored)
		for k := 1; k < keptFrom; k++ {
			t.levels[k] = nil
		}
		return t
	default: // a partial tile: every sublevel, since it changes shape as it grows
		return buildTileTree(stored)
	}
}

// stored is the value that records a full tile: its hashes, then its
// sublevels from storedFrom up, one after the other.
func (t *tileTree) stored() []byte {
	out := make([]byte, 0, treeBytes)
	out = append(out, t.levels[0]...)
	for _, l := range t.levels[storedFrom:] {
		out = append(out, l...)
	}
	return out
}

// sublevel returns the hashes of sublevel sub of a full tile's tree,
// computed from the levels it has.
func (t *tileTree) sublevel(sub uint) []byte {
	n := uint64(tileWidth >> sub)
	out := make([]byte, 0, n*hashSize)
	for j := range n {
		out = append(out, t.node(sub, j)...)
	}
	return out
}

// width is the number of hashes of the tile the tree was built from.
func (t *tileTree) width() int { return len(t.levels[0]) / hashSize }

// bytes is the memory the tree's hashes take.
func (t *tileTree) bytes() int {
	n := 0
	for _, l := range t.levels {
		n += len(l)
	}
	return n
}

// node returns the j-th complete node at sublevel sub, or nil. A kept hash
// shares the tree's memory, which is never written again; its capacity is
// capped so that an append by a caller copies instead of overwriting. A
// sublevel left out (nil, full tiles only) is hashed from the one below.
func (t *tileTree) node(sub uint, j uint64) []byte {
	l := t.levels[sub]
	if l == nil && sub > 0 && (j+1)<<sub <= uint64(t.width()) {
		left, right := t.node(sub-1, 2*j), t.node(sub-1, 2*j+1)
		if left == nil || right == nil {
			return nil
		}
		return proofs.HashChildren(left, right)
	}
	if uint64(len(l)) < (j+1)*hashSize {
		return nil
	}
	return l[j*hashSize : (j+1)*hashSize : (j+1)*hashSize]
}

// DefaultTreeCacheBytes is the default bound of the tile-subtree cache:
// enough for every tile of a log of about 1.35 million entries (about 12 KiB
// per 256 entries), so proofs from such a log never read a tile twice.
const DefaultTreeCacheBytes = 64 << 20

// treeCache keeps the subtrees of recently used tiles. A tile only grows,
// so any version of it is a valid prefix of the latest: the cache keeps the
// widest version seen. It is bounded by the bytes of the hashes it holds
// and evicts the oldest tiles first.
type treeCache struct {
	mu    sync.RWMutex
	max   int
	size  int
	m     map[[2]uint64]*tileTree
	order [][2]uint64 // insertion order, oldest first
}

func newTreeCache(maxBytes int) *treeCache {
	if maxBytes <= 0 {
		return nil
	}
	return &treeCache{max: maxBytes, m: make(map[[2]uint64]*tileTree)}
}

func (c *treeCache) get(k [2]uint64) *tileTree {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *treeCache) put(k [2]uint64, t *tileTree) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		if old.width() >= t.width() {
			return
		}
		c.size += t.bytes() - old.bytes()
		c.m[k] = t
	} else {
		c.m[k] = t
		c.order = append(c.order, k)
		c.size += t.bytes()
	}
	for c.size > c.max && len(c.order) > 1 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= c.m[old].bytes()
		delete(c.m, old)
	}
}

// clear forgets every subtree: a distributed node's store was rebuilt
// (ingest.go), and tiles it discarded may come back with other hashes.
func (c *treeCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.order, c.size = nil, 0
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
	v := w.edge.hash[level]
	if len(v) == tileBytes {
		// The tile is complete: store its subtree with it (see tileBytes).
		v = buildTileTree(v).stored() // a copy: the edge buffer is reused
	}
	w.dirty[string(tileKey(uint8(level), n))] = v
}
