package proofs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"

	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// PublicKey is an agent, registrar or admin key: Ed25519 or ECDSA P-256 with
// SHA-256. Other key types are refused, so every verifier agrees on what a
// signature means.
type PublicKey struct {
	// ID is "sha256:" and the hex SHA-256 of DER; DSSE signatures name their
	// key by it.
	ID string
	// DER is the PKIX (SubjectPublicKeyInfo) encoding.
	DER []byte
	// Key is the parsed key.
	Key crypto.PublicKey

	verifier signature.Verifier
}

// KeyID returns the key id of a PKIX DER-encoded public key.
func KeyID(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParsePublicKeyPEM parses a PEM "PUBLIC KEY" block, with nothing after it.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN ")) {
		return nil, Errorf(ReasonKeyInvalid, "data before the PEM block")
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, Errorf(ReasonKeyInvalid, "no PEM PUBLIC KEY block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, Errorf(ReasonKeyInvalid, "trailing data after PEM block")
	}
	return ParsePublicKeyDER(block.Bytes)
}

// ParsePublicKeyDER parses a PKIX public key and loads its verifier. The DER
// must be the canonical encoding of the key it holds.
func ParsePublicKeyDER(der []byte) (*PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, Errorf(ReasonKeyInvalid, "parsing public key: %v", err)
	}
	var hash crypto.Hash
	switch pk := k.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return nil, Errorf(ReasonKeyInvalid, "ECDSA keys must use P-256")
		}
		hash = crypto.SHA256
	default:
		return nil, Errorf(ReasonKeyInvalid, "unsupported key type %T (want Ed25519 or ECDSA P-256)", k)
	}
	canon, err := x509.MarshalPKIXPublicKey(k)
	if err != nil || !bytes.Equal(canon, der) {
		return nil, Errorf(ReasonKeyInvalid, "public key is not canonically encoded")
	}
	v, err := signature.LoadVerifier(k, hash)
	if err != nil {
		return nil, Errorf(ReasonKeyInvalid, "loading verifier: %v", err)
	}
	return &PublicKey{ID: KeyID(der), DER: bytes.Clone(der), Key: k, verifier: v}, nil
}

// PEM returns the key as a PEM "PUBLIC KEY" block.
func (k *PublicKey) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.DER})
}

// VerifyDSSE checks sig as this key's DSSE signature over payloadType and
// payload. ECDSA signatures must be DER-encoded with a low S value, so that a
// signature has exactly one valid encoding.
func (k *PublicKey) VerifyDSSE(payloadType string, payload, sig []byte) error {
	if pk, ok := k.Key.(*ecdsa.PublicKey); ok {
		if err := checkLowS(pk, sig); err != nil {
			return err
		}
	}
	if pk, ok := k.Key.(ed25519.PublicKey); ok {
		// The standard library's check, which the sigstore verifier also
		// makes, without its copy of the message (a large envelope's
		// payload, on every append).
		if !ed25519.Verify(pk, PAE(payloadType, payload), sig) {
			return Errorf(ReasonSignatureInvalid, "signature by %s does not verify", k.ID)
		}
		return nil
	}
	if err := k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(PAE(payloadType, payload))); err != nil {
		return Errorf(ReasonSignatureInvalid, "signature by %s does not verify", k.ID)
	}
	return nil
}

// checkLowS requires a canonical DER ECDSA signature with s <= n/2.
func checkLowS(pk *ecdsa.PublicKey, sig []byte) error {
	var r, s big.Int
	var inner cryptobyte.String
	in := cryptobyte.String(sig)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() {
		return Errorf(ReasonSignatureInvalid, "ECDSA signature is not DER")
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(&r)
		b.AddASN1BigInt(&s)
	})
	if canon, err := b.Bytes(); err != nil || !bytes.Equal(canon, sig) {
		return Errorf(ReasonSignatureInvalid, "ECDSA signature is not canonical DER")
	}
	half := new(big.Int).Rsh(pk.Curve.Params().N, 1)
	if s.Sign() <= 0 || s.Cmp(half) > 0 {
		return Errorf(ReasonSignatureHighS, "ECDSA signature has a high S value")
	}
	return nil
}

// lowSTwin returns the low-S encoding of a high-S ECDSA signature by k: the
// same signature, mathematically (s replaced by n-s). ok is false for
// anything else.
func (k *PublicKey) lowSTwin(sig []byte) (low []byte, ok bool) {
	pk, isECDSA := k.Key.(*ecdsa.PublicKey)
	if !isECDSA {
		return nil, false
	}
	var r, s big.Int
	var inner cryptobyte.String
	in := cryptobyte.String(sig)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() {
		return nil, false
	}
	n := pk.Curve.Params().N
	if s.Sign() <= 0 || s.Cmp(n) >= 0 || s.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		return nil, false
	}
	s.Sub(n, &s)
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(&r)
		b.AddASN1BigInt(&s)
	})
	low, err := b.Bytes()
	return low, err == nil
}

// SameSignature reports whether a and b are one signature: the same bytes,
// or an ECDSA P-256 signature and its twin with s replaced by n-s (the log
// stores the low-S one of the two; see Envelope.MatchKeys).
func SameSignature(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ra, sa, ok1 := parseECDSASig(a)
	rb, sb, ok2 := parseECDSASig(b)
	return ok1 && ok2 && ra.Cmp(rb) == 0 && new(big.Int).Add(sa, sb).Cmp(elliptic.P256().Params().N) == 0
}

func parseECDSASig(sig []byte) (r, s *big.Int, ok bool) {
	r, s = new(big.Int), new(big.Int)
	var inner cryptobyte.String
	in := cryptobyte.String(sig)
	ok = in.ReadASN1(&inner, asn1.SEQUENCE) && in.Empty() &&
		inner.ReadASN1Integer(r) && inner.ReadASN1Integer(s) && inner.Empty()
	return r, s, ok
}

// String returns the key id.
func (k *PublicKey) String() string { return fmt.Sprint(k.ID) }
