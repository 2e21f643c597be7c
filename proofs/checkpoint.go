package proofs

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointBytes bounds a signed checkpoint note.
//
// A checkpoint carries the log's signature and its witnesses'
// cosignatures: an ML-DSA-44 cosignature line is about 3.3 KB, so the
// bound holds the log's line and some 38 of them (C2SP tlog-policy asks
// for at least 32 witnesses).
const MaxCheckpointBytes = 128 << 10

// Checkpoint is a verified C2SP tlog-checkpoint.
type Checkpoint struct {
	// Origin is the log's origin line; it equals the log key's name.
	Origin string
	// Size is the number of entries the checkpoint covers.
	Size uint64
	// Root is the RFC 6962 root hash of the first Size entries.
	Root []byte
	// Note is the signed note exactly as received, so that it can be passed
	// on with every cosignature it carries. Its signature lines by keys the
	// verifier did not know (witnesses it was not told of) were ignored, not
	// checked: two notes of one checkpoint may differ in them. Compare
	// checkpoints by Origin, Size and Root, never by Note.
	Note []byte
}

// ErrBadCosignature is in the chain of the error for a checkpoint that
// carries a line by a witness the verifier knows whose cosignature does not
// verify: the witness's line is bad (corrupted, or not the witness's), not
// the log's signature. The checkpoint is refused all the same (C2SP
// signed-note: a signature by a known key must verify).
var ErrBadCosignature = errors.New("bad cosignature")

// ParseVerifierKey parses a note verifier key ("name+hash+base64"), as
// written to DIR/log.vkey. Surrounding whitespace is ignored.
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, Errorf(ReasonKeyInvalid, "log verifier key: %v", err)
	}
	return v, nil
}

// OpenCheckpoint verifies a signed checkpoint against the log's verifier
// key and parses it.
//
// The log's signature must verify. Every other signature line by a known
// key (v or one of others: witnesses, cosigners, identified by name and
// key hash) must verify too, and appear once. Lines by unknown keys are
// ignored, as C2SP signed-note requires ("verifiers MUST ignore signatures
// from unknown keys"): that is how a checkpoint cosigned by witnesses stays
// verifiable by a client that knows only the log. They must still be
// well-formed signature lines in canonical base64, so that the note has one
// parse; what they sign is never used.
//
// Nothing the caller relies on is unauthenticated: Origin, Size and Root
// come from the text the log signed, which must be exactly
// CheckpointBody(origin, size, root) with a 32-byte root and no extension
// lines (this log writes none), and the origin must be the key's name.
func OpenCheckpoint(signed []byte, v note.Verifier, others ...note.Verifier) (*Checkpoint, error) {
	cp, _, err := openCheckpoint(signed, v, others)
	return cp, err
}

// openCheckpoint is OpenCheckpoint, returning too the signatures by known
// keys, all of which verified.
func openCheckpoint(signed []byte, v note.Verifier, others []note.Verifier) (*Checkpoint, []note.Signature, error) {
	if len(signed) > MaxCheckpointBytes {
		return nil, nil, Errorf(ReasonCheckpointInvalid, "checkpoint is %d bytes, limit %d", len(signed), MaxCheckpointBytes)
	}
	known := append([]note.Verifier{v}, others...)
	n, err := note.Open(signed, note.VerifierList(known...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &invalid) && (invalid.Name != v.Name() || invalid.Hash != v.KeyHash()):
		// A known key other than the log's: a witness (or cosigner) whose
		// line does not verify. The log's own signature is not in question.
		return nil, nil, Errorf(ReasonCheckpointSignature, "checkpoint carries a %w by witness %s+%08x: its line does not verify under that witness's key (the log's signature is not in question)", ErrBadCosignature, invalid.Name, invalid.Hash)
	case errors.As(err, &unverified) || errors.As(err, &invalid):
		return nil, nil, Errorf(ReasonCheckpointSignature, "checkpoint is not signed by %s: %v", v.Name(), err)
	case err != nil:
		return nil, nil, Errorf(ReasonCheckpointInvalid, "checkpoint is not a signed note: %v", err)
	}
	signedByLog := false
	for _, s := range n.Sigs {
		signedByLog = signedByLog || (s.Name == v.Name() && s.Hash == v.KeyHash())
	}
	if !signedByLog {
		return nil, nil, Errorf(ReasonCheckpointSignature, "checkpoint is not signed by %s", v.Name())
	}
	if err := checkSignatureLines(signed[len(n.Text)+1:], known); err != nil {
		return nil, nil, err
	}
	var cp flog.Checkpoint
	other, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return nil, nil, Errorf(ReasonCheckpointInvalid, "%v", err)
	}
	if cp.Origin != v.Name() {
		return nil, nil, Errorf(ReasonCheckpointOrigin, "checkpoint origin %q, want %q", cp.Origin, v.Name())
	}
	if len(other) != 0 {
		return nil, nil, Errorf(ReasonCheckpointInvalid, "checkpoint has unexpected extension lines")
	}
	if len(cp.Hash) != 32 {
		return nil, nil, Errorf(ReasonCheckpointInvalid, "checkpoint root is %d bytes, want 32", len(cp.Hash))
	}
	if !bytes.Equal(CheckpointBody(cp.Origin, cp.Size, cp.Hash), []byte(n.Text)) {
		return nil, nil, Errorf(ReasonCheckpointInvalid, "checkpoint body is not in canonical form")
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Note: bytes.Clone(signed)}, n.Sigs, nil
}

// checkSignatureLines checks the signature block of a note that note.Open
// accepted. note.Open is lax where it does not matter to it: it decodes
// base64 that is not canonical (unused bits set, CR characters), and it
// skips, without verifying, a second line by a key it already verified.
// Refuse both, so that every line by a known key is one that verified.
func checkSignatureLines(sigs []byte, known []note.Verifier) error {
	type keyID struct {
		name string
		hash uint32
	}
	var seen []keyID // lines by known keys: a few at most
	for len(sigs) > 0 {
		line, rest, _ := bytes.Cut(sigs, []byte("\n"))
		sigs = rest
		name, b64, _ := strings.Cut(strings.TrimPrefix(string(line), "\u2014 "), " ")
		sig, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || len(sig) < 5 || base64.StdEncoding.EncodeToString(sig) != b64 {
			return Errorf(ReasonCheckpointInvalid, "signature by %s is not canonical base64", name)
		}
		hash := binary.BigEndian.Uint32(sig)
		id := keyID{name, hash}
		if !slices.ContainsFunc(known, func(v note.Verifier) bool { return v.Name() == name && v.KeyHash() == hash }) {
			continue // unknown: ignored
		}
		if slices.Contains(seen, id) {
			return Errorf(ReasonCheckpointInvalid, "checkpoint carries two signature lines by %s+%08x", name, hash)
		}
		seen = append(seen, id)
	}
	return nil
}

// key identifies the checkpoint by what its log signed.
func (c *Checkpoint) key() string {
	return string(CheckpointBody(c.Origin, c.Size, c.Root))
}

// String describes the checkpoint in one line.
func (c *Checkpoint) String() string {
	return fmt.Sprintf("%s size %d root %x", c.Origin, c.Size, c.Root)
}

// Body returns the unsigned checkpoint text for origin, size and root.
func CheckpointBody(origin string, size uint64, root []byte) []byte {
	return flog.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
}

// TimestampVerifier returns the verifier of the log's timestamps: its note
// verifier key read as a C2SP cosignature/v1 key, whose signatures cover a
// time (see formats/note.CoSigV1Timestamp).
func TimestampVerifier(vkey string) (note.Verifier, error) {
	v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(vkey))
	if err != nil {
		return nil, Errorf(ReasonKeyInvalid, "log verifier key as a timestamp key: %v", err)
	}
	return v, nil
}
