package proofs

import (
	"bytes"
	"fmt"
	"strings"

	flog "github.com/transparency-dev/formats/log"
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

// OpenCheckpoint verifies a signed checkpoint against the log's verifier key
// and parses it. The origin must be the key's name, the root 32 bytes, and
// the note may carry no extension lines (this log writes none).
func OpenCheckpoint(signed []byte, v note.Verifier) (*Checkpoint, error) {
	if len(signed) > MaxCheckpointBytes {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint is %d bytes, limit %d", len(signed), MaxCheckpointBytes)
	}
	cp, other, _, err := flog.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		if strings.Contains(err.Error(), "Origin") {
			return nil, Errorf(ReasonCheckpointOrigin, "%v", err)
		}
		if strings.Contains(err.Error(), "unmarshal") {
			return nil, Errorf(ReasonCheckpointInvalid, "%v", err)
		}
		return nil, Errorf(ReasonCheckpointSignature, "checkpoint is not signed by %s: %v", v.Name(), err)
	}
	if len(other) != 0 {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint has unexpected extension lines")
	}
	if len(cp.Hash) != 32 {
		return nil, Errorf(ReasonCheckpointInvalid, "checkpoint root is %d bytes, want 32", len(cp.Hash))
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
