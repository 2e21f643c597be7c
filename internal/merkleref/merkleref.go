// Package merkleref is a naive, obviously-correct RFC 6962 Merkle tree: the
// definitions of RFC 6962 section 2.1 transcribed literally, recursion and
// all. It exists only to cross-check the fast tile-based implementation in
// tests, the way transparency-dev/merkle's testonly package does; it is
// quadratic and must never be used on a hot path.
package merkleref

import "crypto/sha256"

// LeafHash is SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, leaf...))
	return h[:]
}

// nodeHash is SHA-256(0x01 || l || r).
func nodeHash(l, r []byte) []byte {
	b := append([]byte{1}, l...)
	h := sha256.Sum256(append(b, r...))
	return h[:]
}

// split returns the largest power of two smaller than n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// Root is MTH(D[n]) over leaf hashes.
func Root(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return leaves[0]
	default:
		k := split(n)
		return nodeHash(Root(leaves[:k]), Root(leaves[k:]))
	}
}

// Inclusion is PATH(m, D[n]).
func Inclusion(m int, leaves [][]byte) [][]byte {
	n := len(leaves)
	if n <= 1 {
		return nil
	}
	k := split(n)
	if m < k {
		return append(Inclusion(m, leaves[:k]), Root(leaves[k:]))
	}
	return append(Inclusion(m-k, leaves[k:]), Root(leaves[:k]))
}

// Consistency is PROOF(m, D[n]).
func Consistency(m int, leaves [][]byte) [][]byte {
	if m == 0 || m == len(leaves) {
		return nil
	}
	return subproof(m, leaves, true)
}

func subproof(m int, leaves [][]byte, b bool) [][]byte {
	n := len(leaves)
	if m == n {
		if b {
			return nil
		}
		return [][]byte{Root(leaves)}
	}
	k := split(n)
	if m <= k {
		return append(subproof(m, leaves[:k], b), Root(leaves[k:]))
	}
	return append(subproof(m-k, leaves[k:], false), Root(leaves[:k]))
}

// RootFromInclusion recomputes a root from an inclusion path, following
// the verification algorithm of RFC 9162 section 2.1.3.2. It returns nil
// for a path of the wrong length.
func RootFromInclusion(m, n int, leafHash []byte, path [][]byte) []byte {
	if m < 0 || m >= n {
		return nil
	}
	fn, sn := m, n-1
	r := leafHash
	for _, p := range path {
		if sn == 0 {
			return nil
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return nil
	}
	return r
}
