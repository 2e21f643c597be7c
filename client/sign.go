package client

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"math/big"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/warrantlog/warrant/proofs"
)

// Signer signs DSSE envelopes with an agent's, registrar's or admin's key.
type Signer struct {
	s   signature.Signer
	pub *proofs.PublicKey
	// key makes DPoP proofs (token.go), which are JWS, not DSSE.
	key crypto.Signer
}

// LoadSigner parses a PEM private key (PKCS #8, as written by `warrant
// keygen`): Ed25519 or ECDSA P-256.
func LoadSigner(pemBytes []byte) (*Signer, error) {
	k, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.SkipPassword)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	cs, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return NewSigner(cs)
}

// NewSigner wraps an Ed25519 or ECDSA P-256 private key.
func NewSigner(k crypto.Signer) (*Signer, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	pub, err := proofs.ParsePublicKeyDER(der)
	if err != nil {
		return nil, err
	}
	var hash crypto.Hash
	if _, ok := k.(*ecdsa.PrivateKey); ok {
		hash = crypto.SHA256
	}
	s, err := signature.LoadSigner(k, hash)
	if err != nil {
		return nil, fmt.Errorf("loading signer: %w", err)
	}
	return &Signer{s: s, pub: pub, key: k}, nil
}

// Public returns the signer's public key.
func (s *Signer) Public() *proofs.PublicKey { return s.pub }

// KeyID returns the key id that names the signer's signatures.
func (s *Signer) KeyID() string { return s.pub.ID }

// sign returns a DSSE signature over (payloadType, payload), with ECDSA
// signatures normalised to low S as the log requires.
func (s *Signer) sign(payloadType string, payload []byte) ([]byte, error) {
	sig, err := s.s.SignMessage(bytes.NewReader(proofs.PAE(payloadType, payload)))
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if pk, ok := s.pub.Key.(*ecdsa.PublicKey); ok {
		if sig, err = lowS(pk, sig); err != nil {
			return nil, err
		}
	}
	if _, ok := s.pub.Key.(ed25519.PublicKey); ok && len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("signing: Ed25519 signature of %d bytes", len(sig))
	}
	return sig, nil
}

// SignEnvelope returns the canonical DSSE envelope of payload, signed by s.
func (s *Signer) SignEnvelope(payloadType string, payload []byte) ([]byte, error) {
	sig, err := s.sign(payloadType, payload)
	if err != nil {
		return nil, err
	}
	env := &proofs.Envelope{PayloadType: payloadType, Payload: payload, Signatures: []proofs.Signature{{KeyID: s.KeyID(), Sig: sig}}}
	return env.Canonical(), nil
}

// Cosign adds s's signature over the same payload to an envelope (a human
// approval) and returns the result in canonical encoding (the other
// signatures' key ids as given: an envelope written by another DSSE
// implementation may name them its own way, and the log matches them).
func (s *Signer) Cosign(envelope []byte) ([]byte, error) {
	env, err := proofs.ParseDSSE(envelope)
	if err != nil {
		return nil, err
	}
	if env.Signature(s.KeyID()) != nil {
		return nil, fmt.Errorf("the envelope already carries a signature by %s", s.KeyID())
	}
	sig, err := s.sign(env.PayloadType, env.Payload)
	if err != nil {
		return nil, err
	}
	env.Signatures = append(env.Signatures, proofs.Signature{KeyID: s.KeyID(), Sig: sig})
	return env.Canonical(), nil
}

// lowS rewrites a DER ECDSA signature (r, s) with s > n/2 as (r, n-s),
// which verifies equally and is the one encoding the log accepts.
func lowS(pk *ecdsa.PublicKey, sig []byte) ([]byte, error) {
	var r, sv big.Int
	var inner cryptobyte.String
	in := cryptobyte.String(sig)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&sv) {
		return nil, fmt.Errorf("signing: malformed ECDSA signature")
	}
	n := pk.Curve.Params().N
	if sv.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		sv.Sub(n, &sv)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(&r)
		b.AddASN1BigInt(&sv)
	})
	return b.Bytes()
}
