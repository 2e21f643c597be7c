package proofs

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	fproof "github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
)

// MaxTLogProofBytes bounds a tlog-proof file: a leaf, 64 hashes and a
// checkpoint, with room to spare.
const MaxTLogProofBytes = 256 << 10

// TLogProof is a C2SP tlog-proof@v1 whose extra data is the entry's leaf, so
// that it verifies with nothing but the log's verifier key.
type TLogProof = fproof.TLogProof

// NewTLogProof assembles a tlog-proof for the leaf at index.
func NewTLogProof(index uint64, leaf []byte, hashes [][]byte, checkpoint []byte) (*TLogProof, error) {
	p := &TLogProof{Index: index, Checkpoint: checkpoint, ExtraData: leaf}
	for _, h := range hashes {
		if len(h) != sha256.Size {
			return nil, fmt.Errorf("proof hash is %d bytes, want %d", len(h), sha256.Size)
		}
		p.Hashes = append(p.Hashes, [sha256.Size]byte(h))
	}
	return p, nil
}

// ParseTLogProof parses a tlog-proof and requires it to be byte-for-byte its
// own canonical encoding, so that no byte of the file is unauthenticated.
func ParseTLogProof(data []byte) (*TLogProof, error) {
	if len(data) > MaxTLogProofBytes {
		return nil, Errorf(ReasonTLogProofMalformed, "tlog-proof is %d bytes, limit %d", len(data), MaxTLogProofBytes)
	}
	var p TLogProof
	if err := p.Unmarshal(data); err != nil {
		return nil, Errorf(ReasonTLogProofMalformed, "%v", err)
	}
	if !bytes.Equal(p.Marshal(), data) {
		return nil, Errorf(ReasonTLogProofMalformed, "tlog-proof is not in canonical form")
	}
	return &p, nil
}

// VerifiedEntry is an entry proven to be in the log.
type VerifiedEntry struct {
	Index      uint64
	Leaf       *ParsedLeaf
	Checkpoint *Checkpoint
}

// VerifyTLogProof checks a tlog-proof file offline: the checkpoint signature
// under the log key, the inclusion of SHA-256(0x00 || extra) at the index,
// and that extra is a well-formed, canonical leaf. Signatures inside the leaf
// need the key bindings in force, which a single proof does not carry.
func VerifyTLogProof(data []byte, logKey note.Verifier) (*VerifiedEntry, error) {
	p, err := ParseTLogProof(data)
	if err != nil {
		return nil, err
	}
	if len(p.ExtraData) == 0 {
		return nil, Errorf(ReasonTLogProofNoLeaf, "tlog-proof carries no leaf in its extra data")
	}
	cp, err := OpenCheckpoint(p.Checkpoint, logKey)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := VerifyInclusion(p.Index, cp.Size, LeafHash(p.ExtraData), hashes, cp.Root); err != nil {
		return nil, err
	}
	leaf, err := ParseLeaf(p.ExtraData)
	if err != nil {
		return nil, err
	}
	return &VerifiedEntry{Index: p.Index, Leaf: leaf, Checkpoint: cp}, nil
}
