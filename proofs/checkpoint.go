package proofs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointBytes bounds a signed checkpoint note.
const MaxCheckpointBytes = 16 << 10

// Checkpoint is a verified C2SP tlog-checkpoint.
type Checkpoint struct {
	// Origin is the log's origin line; it equals the log key's name.
	Origin string
	// Size is the number of entries the checkpoint covers.
	Size uint64
	// Root is the RFC 6962 root hash of the first Size entries.
	Root []byte
	// Note is the signed note exactly as received.
	Note []byte
}

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
// key and parses it. Every signature line must verify, under the log key or
// one of others (witnesses, cosigners), be canonically encoded and appear
// once, so that no byte of a checkpoint goes unauthenticated. The origin
// must be the key's name, the root 32 bytes, and the note may carry no
// extension lines (this log writes none).
func OpenCheckpoint(signed []byte, v note.Verifier, others ...note.Verifier) (*Checkpoint, error) {
	if len(signed) > MaxCheckpointBytes {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint is %d bytes, limit %d", len(signed), MaxCheckpointBytes)
	}
	n, err := note.Open(signed, note.VerifierList(append([]note.Verifier{v}, others...)...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified) || errors.As(err, &invalid):
		return nil, Errorf(ReasonCheckpointSignature, "checkpoint is not signed by %s: %v", v.Name(), err)
	case err != nil:
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint is not a signed note: %v", err)
	}
	if len(n.UnverifiedSigs) > 0 {
		return nil, Errorf(ReasonCheckpointSignature, "checkpoint carries a signature by %s that does not verify under a known key", n.UnverifiedSigs[0].Name)
	}
	signedByLog := false
	for _, s := range n.Sigs {
		signedByLog = signedByLog || (s.Name == v.Name() && s.Hash == v.KeyHash())
	}
	if !signedByLog {
		return nil, Errorf(ReasonCheckpointSignature, "checkpoint is not signed by %s", v.Name())
	}
	// note.Open tolerates repeated lines and lax base64: the encoding must
	// be exactly the text plus one line per verified signature.
	canon := []byte(n.Text + "\n")
	for _, s := range n.Sigs {
		sig, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || base64.StdEncoding.EncodeToString(sig) != s.Base64 {
			return nil, Errorf(ReasonCheckpointInvalid, "signature by %s is not canonical base64", s.Name)
		}
		canon = append(canon, "\u2014 "+s.Name+" "+s.Base64+"\n"...)
	}
	if !bytes.Equal(canon, signed) {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint is not in canonical form (repeated or reordered signature lines)")
	}
	var cp flog.Checkpoint
	other, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return nil, Errorf(ReasonCheckpointInvalid, "%v", err)
	}
	if cp.Origin != v.Name() {
		return nil, Errorf(ReasonCheckpointOrigin, "checkpoint origin %q, want %q", cp.Origin, v.Name())
	}
	if len(other) != 0 {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint has unexpected extension lines")
	}
	if len(cp.Hash) != 32 {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint root is %d bytes, want 32", len(cp.Hash))
	}
	if !bytes.Equal(CheckpointBody(cp.Origin, cp.Size, cp.Hash), []byte(n.Text)) {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint body is not in canonical form")
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Note: bytes.Clone(signed)}, nil
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
