package proofs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

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
// own canonical encoding, so that no byte of the file is unauthenticated
// (save checkpoint signature lines by keys the verifier does not know, which
// OpenCheckpoint ignores).
func ParseTLogProof(data []byte) (*TLogProof, error) {
	if len(data) > MaxTLogProofBytes {
		return nil, Errorf(ReasonTLogProofMalformed, "tlog-proof is %d bytes, limit %d", len(data), MaxTLogProofBytes)
	}
	p, err := parseTLogProof(data)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p.Marshal(), data) {
		return nil, Errorf(ReasonTLogProofMalformed, "tlog-proof is not in canonical form")
	}
	return p, nil
}

// parseTLogProof reads the C2SP tlog-proof@v1 layout: the header line, an
// optional "extra <base64>" line, "index <n>", the proof hashes one per
// line, a blank line, then the checkpoint. (The formats library reads it
// with a line scanner that cannot hold the extra line of a large leaf.)
func parseTLogProof(data []byte) (*TLogProof, error) {
	bad := func(format string, args ...any) error { return Errorf(ReasonTLogProofMalformed, format, args...) }
	head, cp, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, bad("no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return nil, bad("missing the c2sp.org/tlog-proof@v1 header")
	}
	lines = lines[1:]
	p := &TLogProof{Checkpoint: cp}
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		extra, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(lines[0], "extra "))
		if err != nil {
			return nil, bad("extra data is not base64: %v", err)
		}
		p.ExtraData = extra
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, bad("missing the index line")
	}
	idx, err := strconv.ParseUint(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		return nil, bad("index: %v", err)
	}
	p.Index = idx
	if len(lines)-1 > 64 {
		return nil, bad("%d proof hashes, at most 64", len(lines)-1)
	}
	for _, l := range lines[1:] {
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != sha256.Size {
			return nil, bad("proof hash %q is not 32 bytes of base64", l)
		}
		p.Hashes = append(p.Hashes, [sha256.Size]byte(h))
	}
	return p, nil
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
	return verifyTLogProof(data, logKey, nil)
}

// VerifyWitnessedTLogProof is VerifyTLogProof for a client with a witness
// policy (nil: none): the proof's checkpoint must also satisfy it
// (OpenWitnessedCheckpoint).
func VerifyWitnessedTLogProof(data []byte, logKey note.Verifier, p *WitnessPolicy) (*VerifiedEntry, error) {
	if p == nil {
		return VerifyTLogProof(data, logKey)
	}
	ve, err := verifyTLogProof(data, logKey, p.Verifiers())
	if err != nil {
		return nil, err
	}
	if err := p.Check(ve.Checkpoint, logKey); err != nil {
		return nil, err
	}
	return ve, nil
}

// verifyTLogProof is VerifyTLogProof with extra checkpoint cosigners, whose
// lines must verify too.
func verifyTLogProof(data []byte, logKey note.Verifier, others []note.Verifier) (*VerifiedEntry, error) {
	p, err := ParseTLogProof(data)
	if err != nil {
		return nil, err
	}
	if len(p.ExtraData) == 0 {
		return nil, Errorf(ReasonTLogProofNoLeaf, "tlog-proof carries no leaf in its extra data")
	}
	cp, err := OpenCheckpoint(p.Checkpoint, logKey, others...)
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
