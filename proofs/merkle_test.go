package proofs_test

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/warrantlog/warrant/proofs"
)

// refTree is a naive reference implementation of RFC 6962 section 2.1,
// written from the RFC text and independent of the code under test: it
// hashes with crypto/sha256 directly and computes MTH, PATH and PROOF by the
// RFC's recursive definitions. MTH values are memoised by leaf range, which
// changes nothing but the running time.
type refTree struct {
	leaves [][]byte // leaf data D[0:n]
	hashes [][]byte // leaf hashes
	memo   map[[2]uint64][]byte
}

func newRefTree(leaves [][]byte) *refTree {
	t := &refTree{leaves: leaves, memo: make(map[[2]uint64][]byte)}
	for _, l := range leaves {
		t.hashes = append(t.hashes, refLeafHash(l))
	}
	return t
}

// newNumberedRefTree returns a tree of n distinct leaves "leaf 0", "leaf 1"...
func newNumberedRefTree(n int) *refTree {
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = fmt.Appendf(nil, "leaf %d", i)
	}
	return newRefTree(leaves)
}

func refLeafHash(leaf []byte) []byte {
	h := sha256.Sum256(append([]byte{0x00}, leaf...))
	return h[:]
}

func refNodeHash(l, r []byte) []byte {
	h := sha256.Sum256(slices.Concat([]byte{0x01}, l, r))
	return h[:]
}

// split returns k, the largest power of two smaller than n (n > 1).
func split(n uint64) uint64 {
	k := uint64(1)
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// mth is MTH(D[lo:hi]).
func (t *refTree) mth(lo, hi uint64) []byte {
	switch n := hi - lo; n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return t.hashes[lo]
	default:
		if h, ok := t.memo[[2]uint64{lo, hi}]; ok {
			return h
		}
		k := split(n)
		h := refNodeHash(t.mth(lo, lo+k), t.mth(lo+k, hi))
		t.memo[[2]uint64{lo, hi}] = h
		return h
	}
}

// root is MTH(D[0:n]).
func (t *refTree) root(n uint64) []byte { return t.mth(0, n) }

// path is PATH(m, D[0:n]), the audit path of leaf m.
func (t *refTree) path(m, n uint64) [][]byte { return t.subPath(m, 0, n) }

func (t *refTree) subPath(m, lo, hi uint64) [][]byte {
	n := hi - lo
	if n == 1 {
		return nil
	}
	k := split(n)
	if m < k {
		return append(t.subPath(m, lo, lo+k), t.mth(lo+k, hi))
	}
	return append(t.subPath(m-k, lo+k, hi), t.mth(lo, lo+k))
}

// consistency is PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true).
func (t *refTree) consistency(m, n uint64) [][]byte { return t.subProof(m, 0, n, true) }

func (t *refTree) subProof(m, lo, hi uint64, b bool) [][]byte {
	n := hi - lo
	if m == n {
		if b {
			return nil
		}
		return [][]byte{t.mth(lo, hi)}
	}
	k := split(n)
	if m <= k {
		return append(t.subProof(m, lo, lo+k, b), t.mth(lo+k, hi))
	}
	return append(t.subProof(m-k, lo+k, hi, false), t.mth(lo, lo+k))
}

// rangeNodes returns the hashes of the compact range [begin, end), in the
// order compact.RangeNodes lists its nodes.
func (t *refTree) rangeNodes(begin, end uint64) [][]byte {
	var hashes [][]byte
	for _, id := range compact.RangeNodes(begin, end, nil) {
		lo := id.Index << id.Level
		hashes = append(hashes, t.mth(lo, lo+1<<id.Level))
	}
	return hashes
}

// tamper returns a copy of hashes with one byte of element i changed.
func tamper(hashes [][]byte, i, pos int) [][]byte {
	c := slices.Clone(hashes)
	c[i] = bytes.Clone(c[i])
	c[i][pos%len(c[i])] ^= 0x40
	return c
}

func flipHash(h []byte) []byte {
	c := bytes.Clone(h)
	c[len(c)-1] ^= 1
	return c
}

func TestHashes(t *testing.T) {
	// Well-known values: SHA-256 of the empty string, and the RFC 6962 leaf
	// hash of the empty leaf (certificate-transparency test vectors).
	if got, want := hex.EncodeToString(proofs.EmptyRoot()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Errorf("EmptyRoot() = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(proofs.LeafHash(nil)), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"; got != want {
		t.Errorf("LeafHash(empty) = %s, want %s", got, want)
	}
	for _, leaf := range []string{"", "a", "\x00", "\x01", "leaf data", string(make([]byte, 1000))} {
		want := sha256.Sum256(append([]byte{0x00}, leaf...))
		if got := proofs.LeafHash([]byte(leaf)); !bytes.Equal(got, want[:]) {
			t.Errorf("LeafHash(%q) = %x, want SHA-256(0x00 || leaf) = %x", leaf, got, want)
		}
	}
	l, r := proofs.LeafHash([]byte("l")), proofs.LeafHash([]byte("r"))
	want := sha256.Sum256(slices.Concat([]byte{0x01}, l, r))
	if got := proofs.HashChildren(l, r); !bytes.Equal(got, want[:]) {
		t.Errorf("HashChildren = %x, want SHA-256(0x01 || l || r) = %x", got, want)
	}
	if bytes.Equal(proofs.HashChildren(l, r), proofs.HashChildren(r, l)) {
		t.Error("HashChildren is symmetric; children order must matter")
	}
	// A leaf and an interior node over the same bytes must differ (domain
	// separation, RFC 6962 section 2.1).
	if bytes.Equal(proofs.LeafHash(slices.Concat(l, r)), proofs.HashChildren(l, r)) {
		t.Error("LeafHash(l||r) == HashChildren(l, r): no domain separation")
	}
}

// TestRefTree checks the reference against the RFC's worked structure for
// small trees, so that the other tests rest on a checked oracle.
func TestRefTree(t *testing.T) {
	tr := newNumberedRefTree(7)
	// The 7-leaf example tree of RFC 6962 section 2.1.3, with its names:
	// leaves a..f and j over d0..d6, g = (a, b), h = (c, d), i = (e, f),
	// k = (g, h), l = (i, j), root = (k, l).
	a, b, c, d, e, f, j := tr.hashes[0], tr.hashes[1], tr.hashes[2], tr.hashes[3], tr.hashes[4], tr.hashes[5], tr.hashes[6]
	g, h, i := refNodeHash(a, b), refNodeHash(c, d), refNodeHash(e, f)
	k, l := refNodeHash(g, h), refNodeHash(i, j)
	if got, want := tr.root(7), refNodeHash(k, l); !bytes.Equal(got, want) {
		t.Fatalf("root(7) = %x, want %x", got, want)
	}
	for _, tc := range []struct {
		name string
		got  [][]byte
		want [][]byte
	}{
		// Audit paths given in section 2.1.3.
		{"PATH(0, D[7])", tr.path(0, 7), [][]byte{b, h, l}},
		{"PATH(3, D[7])", tr.path(3, 7), [][]byte{c, g, l}},
		{"PATH(4, D[7])", tr.path(4, 7), [][]byte{f, j, k}},
		{"PATH(6, D[7])", tr.path(6, 7), [][]byte{i, k}},
		// Consistency proofs given in section 2.1.3 (for its trees of 3, 4
		// and 6 entries, which are prefixes of this one).
		{"PROOF(3, D[7])", tr.consistency(3, 7), [][]byte{c, d, g, l}},
		{"PROOF(4, D[7])", tr.consistency(4, 7), [][]byte{l}},
		{"PROOF(6, D[7])", tr.consistency(6, 7), [][]byte{i, j, k}},
	} {
		if !slices.EqualFunc(tc.got, tc.want, bytes.Equal) {
			t.Errorf("%s = %x, want %x", tc.name, tc.got, tc.want)
		}
	}
}

const (
	// maxTestTreeSize is the largest tree the exhaustive tests build.
	maxTestTreeSize = 300
	// denseTreeSize is the largest tree for which every tampered variant of
	// every proof is checked; above it, every proof is still checked, with
	// a rotating sample of its tampered variants.
	denseTreeSize = 64
)

// tampered is one altered proof that must be refused.
type tampered struct {
	what string
	err  error
}

// checkRefused checks that every variant (or, when sample is set, a
// rotating sample of them) was refused with reason.
func checkRefused(t *testing.T, context string, reason string, variants []func() tampered, sample bool, seed uint64) {
	t.Helper()
	for i, v := range variants {
		if sample && (uint64(i)+seed)%5 != 0 {
			continue
		}
		tv := v()
		if tv.err == nil {
			t.Errorf("%s: %s: accepted", context, tv.what)
		} else if got := proofs.Reason(tv.err); got != reason {
			t.Errorf("%s: %s: reason %q, want %q", context, tv.what, got, reason)
		}
	}
}

func TestVerifyInclusion(t *testing.T) {
	t.Parallel()
	tr := newNumberedRefTree(maxTestTreeSize + 1)
	for n := uint64(1); n <= maxTestTreeSize; n++ {
		root := tr.root(n)
		for m := uint64(0); m < n; m++ {
			leaf := tr.hashes[m]
			proof := tr.path(m, n)
			if err := proofs.VerifyInclusion(m, n, leaf, proof, root); err != nil {
				t.Fatalf("size %d index %d: valid proof refused: %v", n, m, err)
			}
			verify := func(what string, index, size uint64, leaf []byte, proof [][]byte, root []byte) func() tampered {
				return func() tampered {
					return tampered{what, proofs.VerifyInclusion(index, size, leaf, proof, root)}
				}
			}
			var vs []func() tampered
			// One changed byte anywhere: in each proof element, the leaf,
			// the root.
			for i := range proof {
				vs = append(vs, verify(fmt.Sprintf("proof[%d] tampered", i), m, n, leaf, tamper(proof, i, int(m+n)), root))
			}
			vs = append(vs,
				verify("leaf hash flipped", m, n, flipHash(leaf), proof, root),
				verify("root flipped", m, n, leaf, proof, flipHash(root)),
				verify("index = size", n, n, leaf, proof, root),
				verify("index beyond size", n+m, n, leaf, proof, root),
				verify("size 0", m, 0, leaf, proof, root),
				// Wrong size, with the root of that size: always refused.
				verify("size+1", m, n+1, leaf, proof, tr.root(n+1)),
				verify("hash appended", m, n, leaf, append(slices.Clone(proof), root), root),
				verify("hash prepended", m, n, leaf, append([][]byte{leaf}, proof...), root),
			)
			if n > 1 {
				other := (m + 1 + m*7%(n-1)) % n // some other index
				if other == m {
					other = (m + 1) % n
				}
				vs = append(vs,
					verify("wrong index", other, n, leaf, proof, root),
					verify("other leaf at index", m, n, tr.hashes[other], proof, root))
			}
			if m < n-1 {
				vs = append(vs, verify("size-1", m, n-1, leaf, proof, tr.root(n-1)))
			}
			// Wrong size with this root: refused when the proof has the
			// wrong length for that size. (When the shapes agree, only the
			// checkpoint, which signs size and root together, binds the
			// size; RFC 6962 verification cannot tell.)
			if len(tr.path(m, n+1)) != len(proof) {
				vs = append(vs, verify("size+1 with own root", m, n+1, leaf, proof, root))
			}
			if len(proof) > 0 {
				vs = append(vs,
					verify("last hash dropped", m, n, leaf, proof[:len(proof)-1], root),
					verify("first hash dropped", m, n, leaf, proof[1:], root))
			}
			if len(proof) > 1 {
				swapped := slices.Clone(proof)
				swapped[0], swapped[1] = swapped[1], swapped[0]
				vs = append(vs, verify("hashes swapped", m, n, leaf, swapped, root))
			}
			checkRefused(t, fmt.Sprintf("size %d index %d", n, m), proofs.ReasonInclusionInvalid, vs, n > denseTreeSize, m+n)
		}
	}
}

func TestVerifyInclusionShortHash(t *testing.T) {
	tr := newNumberedRefTree(4)
	proof := tr.path(1, 4)
	wantReason(t, proofs.VerifyInclusion(1, 4, tr.hashes[1][:31], proof, tr.root(4)), proofs.ReasonInclusionInvalid)
	wantReason(t, proofs.VerifyInclusion(1, 4, nil, proof, tr.root(4)), proofs.ReasonInclusionInvalid)
	wantReason(t, proofs.VerifyInclusion(0, 1, tr.hashes[0], nil, nil), proofs.ReasonInclusionInvalid)
	if err := proofs.VerifyInclusion(0, 1, tr.hashes[0], nil, tr.hashes[0]); err != nil {
		t.Errorf("single-leaf tree: root is the leaf hash, got %v", err)
	}
	wantReason(t, proofs.VerifyInclusion(math.MaxUint64, math.MaxUint64, tr.hashes[0], nil, tr.root(1)), proofs.ReasonInclusionInvalid)
}

func TestVerifyConsistency(t *testing.T) {
	t.Parallel()
	tr := newNumberedRefTree(maxTestTreeSize + 1)
	const reason = proofs.ReasonConsistencyInvalid
	empty := proofs.EmptyRoot()
	for n := uint64(1); n <= maxTestTreeSize; n++ {
		root2 := tr.root(n)
		// From the empty tree: consistent with everything, with no proof.
		if err := proofs.VerifyConsistency(0, n, nil, empty, root2); err != nil {
			t.Errorf("0 -> %d: refused: %v", n, err)
		}
		wantReason(t, proofs.VerifyConsistency(0, n, [][]byte{root2}, empty, root2), reason)
		// Same size: same root and an empty proof.
		if err := proofs.VerifyConsistency(n, n, nil, root2, root2); err != nil {
			t.Errorf("%d -> %d: refused: %v", n, n, err)
		}
		wantReason(t, proofs.VerifyConsistency(n, n, nil, root2, flipHash(root2)), reason)
		wantReason(t, proofs.VerifyConsistency(n, n, nil, tr.root(n-1), root2), reason)
		wantReason(t, proofs.VerifyConsistency(n, n, [][]byte{root2}, root2, root2), reason)
		// Shrinking.
		wantReason(t, proofs.VerifyConsistency(n, 0, nil, root2, empty), reason)

		for m := uint64(1); m < n; m++ {
			root1 := tr.root(m)
			proof := tr.consistency(m, n)
			if err := proofs.VerifyConsistency(m, n, proof, root1, root2); err != nil {
				t.Fatalf("%d -> %d: valid proof refused: %v", m, n, err)
			}
			verify := func(what string, size1, size2 uint64, proof [][]byte, root1, root2 []byte) func() tampered {
				return func() tampered {
					return tampered{what, proofs.VerifyConsistency(size1, size2, proof, root1, root2)}
				}
			}
			var vs []func() tampered
			for i := range proof {
				vs = append(vs, verify(fmt.Sprintf("proof[%d] tampered", i), m, n, tamper(proof, i, int(m)), root1, root2))
			}
			vs = append(vs,
				verify("root1 flipped", m, n, proof, flipHash(root1), root2),
				verify("root2 flipped", m, n, proof, root1, flipHash(root2)),
				verify("roots swapped", m, n, proof, root2, root1),
				verify("sizes and roots swapped", n, m, proof, root2, root1),
				verify("size1 > size2", n, m, proof, root1, root2),
				verify("empty proof", m, n, nil, root1, root2),
				verify("last hash dropped", m, n, proof[:len(proof)-1], root1, root2),
				verify("first hash dropped", m, n, proof[1:], root1, root2),
				verify("hash appended", m, n, append(slices.Clone(proof), root1), root1, root2),
				verify("hash prepended", m, n, append([][]byte{root1}, proof...), root1, root2),
			)
			// Another pair of sizes, with the true roots of those sizes: the
			// proof is refused unless it happens to be that pair's proof too.
			for _, p := range [][2]uint64{{m - 1, n}, {m + 1, n}, {m, n + 1}, {m, n - 1}} {
				m2, n2 := p[0], p[1]
				if m2 == 0 || m2 >= n2 || slices.EqualFunc(tr.consistency(m2, n2), proof, bytes.Equal) {
					continue
				}
				vs = append(vs, verify(fmt.Sprintf("as proof %d -> %d", m2, n2), m2, n2, proof, tr.root(m2), tr.root(n2)))
			}
			checkRefused(t, fmt.Sprintf("%d -> %d", m, n), reason, vs, n > denseTreeSize, m+n)
		}
	}
}

func TestVerifyRange(t *testing.T) {
	t.Parallel()
	tr := newNumberedRefTree(maxTestTreeSize + 1)
	rng := rand.New(rand.NewSource(6962))
	const reason = proofs.ReasonRangeInvalid
	for n := uint64(0); n <= maxTestTreeSize; n++ {
		root := tr.root(n)
		ranges := [][2]uint64{{0, 0}, {0, n}, {n, n}}
		if n > 0 {
			ranges = append(ranges, [2]uint64{0, 1}, [2]uint64{n - 1, n})
			for range 8 {
				a, b := uint64(rng.Int63n(int64(n+1))), uint64(rng.Int63n(int64(n+1)))
				ranges = append(ranges, [2]uint64{min(a, b), max(a, b)})
			}
		}
		for _, r := range ranges {
			start, end := r[0], r[1]
			leaves := slices.Clone(tr.hashes[start:end])
			left, right := tr.rangeNodes(0, start), tr.rangeNodes(end, n)
			fail := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("size %d range [%d, %d): %s: accepted", n, start, end, what)
				} else if got := proofs.Reason(err); got != reason {
					t.Errorf("size %d range [%d, %d): %s: reason %q, want %q", n, start, end, what, got, reason)
				}
			}
			if err := proofs.VerifyRange(start, leaves, n, left, right, root); err != nil {
				t.Fatalf("size %d range [%d, %d): valid range refused: %v", n, start, end, err)
			}
			fail("root flipped", proofs.VerifyRange(start, leaves, n, left, right, flipHash(root)))
			fail("root of size+1", proofs.VerifyRange(start, leaves, n, left, right, tr.root(n+1)))
			fail("size+1", proofs.VerifyRange(start, leaves, n+1, left, right, tr.root(n+1)))
			if len(leaves) > 0 {
				fail("first leaf dropped", proofs.VerifyRange(start, leaves[1:], n, left, right, root))
				fail("first leaf dropped, start moved", proofs.VerifyRange(start+1, leaves[1:], n, left, right, root))
				fail("last leaf dropped", proofs.VerifyRange(start, leaves[:len(leaves)-1], n, left, right, root))
				i := rng.Intn(len(leaves))
				fail("leaf altered", proofs.VerifyRange(start, tamper(leaves, i, i), n, left, right, root))
				fail("leaf replaced by next", proofs.VerifyRange(start, slices.Replace(slices.Clone(leaves), i, i+1, tr.hashes[end]), n, left, right, root))
				fail("leaf appended", proofs.VerifyRange(start, append(slices.Clone(leaves), tr.hashes[end]), n, left, right, root))
			}
			if len(leaves) > 1 {
				i := rng.Intn(len(leaves) - 1)
				swapped := slices.Clone(leaves)
				swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
				fail("leaves swapped", proofs.VerifyRange(start, swapped, n, left, right, root))
			}
			if len(left) > 0 {
				fail("left node altered", proofs.VerifyRange(start, leaves, n, tamper(left, 0, 3), right, root))
				fail("left node dropped", proofs.VerifyRange(start, leaves, n, left[1:], right, root))
			}
			if len(right) > 0 {
				fail("right node altered", proofs.VerifyRange(start, leaves, n, left, tamper(right, len(right)-1, 5), root))
				fail("right node dropped", proofs.VerifyRange(start, leaves, n, left, right[:len(right)-1], root))
			}
			if len(left) > 0 && len(right) > 0 {
				fail("left and right swapped", proofs.VerifyRange(start, leaves, n, right, left, root))
			}
			if start > 0 {
				fail("start shifted", proofs.VerifyRange(start-1, leaves, n, left, right, root))
			}
		}
	}
}

func TestVerifyRangeBounds(t *testing.T) {
	tr := newNumberedRefTree(8)
	wantReason(t, proofs.VerifyRange(9, nil, 8, nil, nil, tr.root(8)), proofs.ReasonRangeInvalid)
	wantReason(t, proofs.VerifyRange(7, tr.hashes[6:8], 8, tr.rangeNodes(0, 7), nil, tr.root(8)), proofs.ReasonRangeInvalid)
	wantReason(t, proofs.VerifyRange(math.MaxUint64, tr.hashes[:1], 8, nil, nil, tr.root(8)), proofs.ReasonRangeInvalid)
	wantReason(t, proofs.VerifyRange(0, nil, 0, nil, nil, flipHash(proofs.EmptyRoot())), proofs.ReasonRangeInvalid)
	if err := proofs.VerifyRange(0, nil, 0, nil, nil, proofs.EmptyRoot()); err != nil {
		t.Errorf("empty range of the empty tree: %v", err)
	}
}

// TestNewRange checks that compact ranges built from the reference hashes
// have the reference root.
func TestNewRange(t *testing.T) {
	tr := newNumberedRefTree(100)
	for n := uint64(1); n <= 100; n++ {
		r, err := proofs.NewRange(0, n, tr.rangeNodes(0, n))
		if err != nil {
			t.Fatalf("NewRange(0, %d): %v", n, err)
		}
		got, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tr.root(n)) {
			t.Errorf("NewRange(0, %d) root = %x, want %x", n, got, tr.root(n))
		}
		if _, err := proofs.NewRange(0, n, tr.rangeNodes(0, n)[1:]); err == nil {
			t.Errorf("NewRange(0, %d) with a node missing: no error", n)
		}
	}
	r := proofs.NewEmptyRange(0)
	for i := range 100 {
		if err := r.Append(tr.hashes[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := r.GetRootHash(nil); !bytes.Equal(got, tr.root(100)) {
		t.Errorf("NewEmptyRange(0) + 100 leaves: root %x, want %x", got, tr.root(100))
	}
}

// ExampleVerifyInclusion proves that the third of three entries is in the
// tree, with the RFC 6962 audit path [hash(a, b)].
func ExampleVerifyInclusion() {
	a, b, c := proofs.LeafHash([]byte("a")), proofs.LeafHash([]byte("b")), proofs.LeafHash([]byte("c"))
	ab := proofs.HashChildren(a, b)
	root := proofs.HashChildren(ab, c)

	err := proofs.VerifyInclusion(2, 3, c, [][]byte{ab}, root)
	fmt.Println("entry 2:", err)
	err = proofs.VerifyInclusion(1, 3, c, [][]byte{ab}, root)
	fmt.Println("as entry 1:", proofs.Reason(err))
	// Output:
	// entry 2: <nil>
	// as entry 1: inclusion_proof_invalid
}

// ExampleVerifyConsistency shows that a tree of two entries is a prefix of
// the tree of three.
func ExampleVerifyConsistency() {
	a, b, c := proofs.LeafHash([]byte("a")), proofs.LeafHash([]byte("b")), proofs.LeafHash([]byte("c"))
	ab := proofs.HashChildren(a, b)
	abc := proofs.HashChildren(ab, c)

	fmt.Println(proofs.VerifyConsistency(2, 3, [][]byte{c}, ab, abc))
	fmt.Println(proofs.Reason(proofs.VerifyConsistency(2, 3, [][]byte{a}, ab, abc)))
	// Output:
	// <nil>
	// consistency_proof_invalid
}

// TestHasherMatchesRFC6962 cross-checks the allocation-free hasher with the
// reference implementation, across the stack-buffer boundary for leaves and
// for children of unusual lengths.
func TestHasherMatchesRFC6962(t *testing.T) {
	ref := rfc6962.DefaultHasher
	if !bytes.Equal(proofs.EmptyRoot(), ref.EmptyRoot()) {
		t.Fatal("empty root differs")
	}
	for _, n := range []int{0, 1, 31, 32, 600, 1023, 1024, 1025, 5000} {
		leaf := bytes.Repeat([]byte{byte(n)}, n)
		if !bytes.Equal(proofs.LeafHash(leaf), ref.HashLeaf(leaf)) {
			t.Errorf("leaf hash of %d bytes differs", n)
		}
	}
	for range 100 {
		l, r := make([]byte, 32), make([]byte, 32)
		crand.Read(l)
		crand.Read(r)
		if !bytes.Equal(proofs.HashChildren(l, r), ref.HashChildren(l, r)) {
			t.Fatalf("children hash of %x, %x differs", l, r)
		}
	}
	for _, n := range [][2]int{{32, 32}, {0, 32}, {32, 0}, {31, 33}, {64, 64}} {
		l, r := bytes.Repeat([]byte{1}, n[0]), bytes.Repeat([]byte{2}, n[1])
		if !bytes.Equal(proofs.HashChildren(l, r), ref.HashChildren(l, r)) {
			t.Errorf("children hash of %v bytes differs", n)
		}
	}
}
