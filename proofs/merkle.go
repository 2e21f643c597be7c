package proofs

import (
	"bytes"
	"crypto/sha256"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// treeHasher is the RFC 6962 SHA-256 tree hasher. It is rfc6962.Hasher
// without the per-call hash.Hash allocation: interior nodes are hashed from
// a 65-byte buffer on the stack. Proof building and checking hash tens of
// nodes per request, so this is on every read path (a test cross-checks it
// against rfc6962.DefaultHasher).
type treeHasher struct{}

var hasher treeHasher

func (treeHasher) Size() int { return sha256.Size }

func (treeHasher) EmptyRoot() []byte {
	s := sha256.Sum256(nil)
	return s[:]
}

func (treeHasher) HashLeaf(leaf []byte) []byte {
	if len(leaf) < 1024 {
		var buf [1025]byte // buf[0] is the leaf prefix, 0
		n := copy(buf[1:], leaf)
		s := sha256.Sum256(buf[:1+n])
		return s[:]
	}
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(leaf)
	return h.Sum(nil)
}

func (treeHasher) HashChildren(l, r []byte) []byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		// Not on the log's own paths; keep the general definition.
		h := sha256.New()
		h.Write([]byte{1})
		h.Write(l)
		h.Write(r)
		return h.Sum(nil)
	}
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1
	copy(buf[1:], l)
	copy(buf[1+sha256.Size:], r)
	s := sha256.Sum256(buf[:])
	return s[:]
}

// RangeFactory builds compact ranges with the log's hasher.
var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// NewRange returns a compact range [begin, end) from its node hashes, as
// listed by compact.RangeNodes.
func NewRange(begin, end uint64, hashes [][]byte) (*compact.Range, error) {
	return rangeFactory.NewRange(begin, end, hashes)
}

// NewEmptyRange returns an empty compact range starting at begin.
func NewEmptyRange(begin uint64) *compact.Range { return rangeFactory.NewEmptyRange(begin) }

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte { return hasher.HashLeaf(leaf) }

// HashChildren returns the RFC 6962 interior node hash SHA-256(0x01 || l || r).
func HashChildren(l, r []byte) []byte { return hasher.HashChildren(l, r) }

// EmptyRoot is the root of the empty tree.
func EmptyRoot() []byte { return hasher.EmptyRoot() }

// VerifyInclusion checks that leafHash is entry index of the tree of the
// given size and root.
func VerifyInclusion(index, size uint64, leafHash []byte, hashes [][]byte, root []byte) error {
	if index >= size {
		return Errorf(ReasonInclusionInvalid, "index %d is not below tree size %d", index, size)
	}
	if err := proof.VerifyInclusion(hasher, index, size, leafHash, hashes, root); err != nil {
		return Errorf(ReasonInclusionInvalid, "entry %d in tree of size %d: %v", index, size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree (size1, root1) is a prefix of the
// tree (size2, root2).
func VerifyConsistency(size1, size2 uint64, hashes [][]byte, root1, root2 []byte) error {
	if size1 > size2 {
		return Errorf(ReasonConsistencyInvalid, "size %d is larger than %d", size1, size2)
	}
	if size1 == size2 {
		if len(hashes) != 0 || !bytes.Equal(root1, root2) {
			return Errorf(ReasonConsistencyInvalid, "two different roots for tree size %d", size1)
		}
		return nil
	}
	if size1 == 0 {
		if len(hashes) != 0 || !bytes.Equal(root1, EmptyRoot()) {
			return Errorf(ReasonConsistencyInvalid, "the empty tree has no proof and root %x", EmptyRoot())
		}
		return nil
	}
	if err := proof.VerifyConsistency(hasher, size1, size2, hashes, root1, root2); err != nil {
		return Errorf(ReasonConsistencyInvalid, "tree %d is not a prefix of tree %d: %v", size1, size2, err)
	}
	return nil
}

// VerifyRange checks that leafHashes are exactly the leaves [start,
// start+len(leafHashes)) of the tree (size, root), given the compact-range
// hashes of [0, start) (left) and of [start+len(leafHashes), size) (right).
func VerifyRange(start uint64, leafHashes [][]byte, size uint64, left, right [][]byte, root []byte) error {
	end := start + uint64(len(leafHashes))
	if end < start || end > size {
		return Errorf(ReasonRangeInvalid, "range [%d, %d) is outside tree size %d", start, end, size)
	}
	r, err := rangeFactory.NewRange(0, start, left)
	if err != nil {
		return Errorf(ReasonRangeInvalid, "left boundary: %v", err)
	}
	for _, h := range leafHashes {
		if err := r.Append(h, nil); err != nil {
			return Errorf(ReasonRangeInvalid, "appending leaf: %v", err)
		}
	}
	rr, err := rangeFactory.NewRange(end, size, right)
	if err != nil {
		return Errorf(ReasonRangeInvalid, "right boundary: %v", err)
	}
	if err := r.AppendRange(rr, nil); err != nil {
		return Errorf(ReasonRangeInvalid, "merging ranges: %v", err)
	}
	got, err := r.GetRootHash(nil)
	if err != nil {
		return Errorf(ReasonRangeInvalid, "root: %v", err)
	}
	if size == 0 {
		got = EmptyRoot()
	}
	if !bytes.Equal(got, root) {
		return Errorf(ReasonRangeInvalid, "entries [%d, %d) do not hash to the checkpoint root", start, end)
	}
	return nil
}
