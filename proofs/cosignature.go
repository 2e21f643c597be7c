package proofs

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"filippo.io/mldsa"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/crypto/cryptobyte"
)

// The witness key types of C2SP tlog-cosignature, by their C2SP
// signed-note signature type byte.
const (
	// cosigEd25519 is the cosignature/v1 type: Ed25519 over
	// "cosignature/v1\ntime T\n" and the checkpoint's note body.
	cosigEd25519 = 0x04
	// cosigMLDSA44 is the subtree/v1 type: ML-DSA-44 over a binary
	// cosigned_message that commits to the cosigner's name too. C2SP
	// tlog-cosignature recommends it for new witnesses: it is secure
	// against quantum computers.
	cosigMLDSA44 = 0x06
)

const (
	// maxCosignatureTime is the largest timestamp a cosignature may carry
	// (C2SP tlog-cosignature: it MUST NOT exceed 2^63 - 1).
	maxCosignatureTime = 1<<63 - 1
	// cosigTimeSize is the size of the timestamp that starts every
	// timestamped_signature.
	cosigTimeSize = 8
	// mldsa44SignatureSize is the size of an ML-DSA-44 signature (FIPS 204).
	mldsa44SignatureSize = 2420
)

// CosignatureVerifier verifies one witness's cosignatures on checkpoints
// (C2SP tlog-cosignature), of either type: Ed25519 cosignature/v1 or
// ML-DSA-44 subtree/v1. It is a note.Verifier: a checkpoint's signature
// line by the witness is found by its name and key ID, as for any signed
// note.
//
// It is written from the specification rather than taken from a library
// so that every rule is checked where a library is lax: a timestamp above
// 2^63 - 1 is refused, and so is a name or origin that does not fit the
// one length byte subtree/v1 gives it. Tests check it against the
// transparency-dev signers and witness.
type CosignatureVerifier struct {
	name string
	hash uint32
	alg  byte
	// key is the public key without its type byte; two verifiers with the
	// same key are the same witness whatever their names.
	key []byte
	ml  *mldsa.PublicKey
}

// NewCosignatureVerifier parses a witness's verifier key: a C2SP
// signed-note vkey "name+keyid+base64(type || public key)" of type 0x04
// (a 32-byte Ed25519 key) or 0x06 (a 1312-byte ML-DSA-44 key). The key ID
// must be the one tlog-cosignature defines, SHA-256(name || "\n" || type
// || key)[:4].
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.Strict().DecodeString(key64)
	switch {
	case !ok1 || !ok2 || !validKeyName(name):
		return nil, fmt.Errorf("witness key %q is not name+keyid+key", vkey)
	case err != nil || len(raw) == 0 || base64.StdEncoding.EncodeToString(raw) != key64:
		return nil, fmt.Errorf("witness key %s: the key is not canonical base64", name)
	case len(hash16) != 8 || strings.ToLower(hash16) != hash16:
		return nil, fmt.Errorf("witness key %s: the key ID %q is not 8 lower-case hex digits", name, hash16)
	}
	v := &CosignatureVerifier{name: name, alg: raw[0], key: raw[1:]}
	switch v.alg {
	case cosigEd25519:
		if len(v.key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("witness key %s: an Ed25519 key is %d bytes, not %d", name, ed25519.PublicKeySize, len(v.key))
		}
	case cosigMLDSA44:
		if len(name) > 255 {
			return nil, fmt.Errorf("witness key %s: an ML-DSA-44 cosigner's name is at most 255 bytes", name)
		}
		if v.ml, err = mldsa.NewPublicKey(mldsa.MLDSA44(), v.key); err != nil {
			return nil, fmt.Errorf("witness key %s: %v", name, err)
		}
	case 0x01:
		return nil, fmt.Errorf("witness key %s is a plain Ed25519 note key (type 0x01): a witness key must be a cosignature key, type 0x04 (Ed25519) or 0x06 (ML-DSA-44)", name)
	default:
		return nil, fmt.Errorf("witness key %s has type 0x%02x, want 0x04 (Ed25519 cosignature/v1) or 0x06 (ML-DSA-44 subtree/v1)", name, v.alg)
	}
	h := sha256.Sum256(append([]byte(name+"\n"), raw...))
	v.hash = binary.BigEndian.Uint32(h[:])
	if got, err := strconv.ParseUint(hash16, 16, 32); err != nil || uint32(got) != v.hash {
		return nil, fmt.Errorf("witness key %s: key ID %s, the key's is %08x", name, hash16, v.hash)
	}
	return v, nil
}

// validKeyName is the signed-note rule for key names: non-empty UTF-8
// without spaces or plus signs.
func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// Name returns the witness's key name.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash returns the witness's key ID.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }

// Type names the cosignature type the key makes.
func (v *CosignatureVerifier) Type() string {
	if v.alg == cosigMLDSA44 {
		return "ML-DSA-44 subtree/v1"
	}
	return "Ed25519 cosignature/v1"
}

// Verify reports whether sig (without its key ID) is the witness's
// timestamped_signature over the checkpoint note body msg.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) < cosigTimeSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > maxCosignatureTime {
		return false
	}
	sig = sig[cosigTimeSize:]
	switch v.alg {
	case cosigEd25519:
		if len(sig) != ed25519.SignatureSize {
			return false
		}
		m := append([]byte("cosignature/v1\ntime "+strconv.FormatUint(t, 10)+"\n"), msg...)
		return ed25519.Verify(v.key, m, sig)
	case cosigMLDSA44:
		if len(sig) != mldsa44SignatureSize {
			return false
		}
		m, ok := subtreeMessage(v.name, t, msg)
		return ok && mldsa.Verify(v.ml, m, sig, nil) == nil
	}
	return false
}

// subtreeMessage is the subtree/v1 cosigned_message for the checkpoint
// note body msg, the subtree [0, size):
//
//	struct {
//	   uint8 label[12] = "subtree/v1\n\0";
//	   opaque cosigner_name<1..2^8-1>;
//	   uint64 timestamp;
//	   opaque log_origin<1..2^8-1>;
//	   uint64 start;
//	   uint64 end;
//	   uint8 hash[32];
//	} cosigned_message;
//
// Extension lines of the checkpoint are not part of it.
func subtreeMessage(name string, t uint64, msg []byte) ([]byte, bool) {
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal(msg); err != nil || len(cp.Hash) != 32 || len(cp.Origin) > 255 || len(name) > 255 {
		return nil, false
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes([]byte("subtree/v1\n\x00"))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
	b.AddUint64(t)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(cp.Origin)) })
	b.AddUint64(0)
	b.AddUint64(cp.Size)
	b.AddBytes(cp.Hash)
	m, err := b.Bytes()
	return m, err == nil
}

// cosignatureTime returns the timestamp of a cosignature line's signature
// (key ID first, then the timestamped_signature).
func cosignatureTime(sig []byte) (uint64, bool) {
	if len(sig) < 4+cosigTimeSize {
		return 0, false
	}
	return binary.BigEndian.Uint64(sig[4:]), true
}
