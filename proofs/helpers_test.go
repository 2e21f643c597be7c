package proofs_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// testSigner is a real agent key, generated per test run.
type testSigner struct {
	priv crypto.Signer
	der  []byte // PKIX public key
	id   string // proofs.KeyID(der)
}

func newEd25519Signer(t testing.TB) *testSigner {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newTestSigner(t, priv)
}

func newP256Signer(t testing.TB) *testSigner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newTestSigner(t, priv)
}

func newTestSigner(t testing.TB, priv crypto.Signer) *testSigner {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{priv: priv, der: der, id: proofs.KeyID(der)}
}

// signDSSE signs DSSE's PAE of payloadType and payload. ECDSA signatures are
// DER with a low S value, the form proofs requires.
func (s *testSigner) signDSSE(t testing.TB, payloadType string, payload []byte) proofs.Signature {
	t.Helper()
	msg := proofs.PAE(payloadType, payload)
	var sig []byte
	switch k := s.priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		var err error
		sig, err = signLowS(k, msg)
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unsupported key %T", s.priv)
	}
	return proofs.Signature{KeyID: s.id, Sig: sig}
}

// envelope returns a canonical envelope over payload signed by signers.
func envelope(t testing.TB, payloadType string, payload []byte, signers ...*testSigner) *proofs.Envelope {
	t.Helper()
	env := &proofs.Envelope{PayloadType: payloadType, Payload: payload}
	for _, s := range signers {
		env.Signatures = append(env.Signatures, s.signDSSE(t, payloadType, payload))
	}
	// Round-trip through the parser so that the signatures are sorted.
	parsed, err := proofs.ParseEnvelope(env.Canonical())
	if err != nil {
		t.Fatalf("ParseEnvelope(own canonical envelope): %v", err)
	}
	return parsed
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// wantReason fails the test unless err is non-nil with the given reason code.
func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Errorf("got no error, want reason %q", reason)
		return
	}
	if got := proofs.Reason(err); got != reason {
		t.Errorf("got reason %q (%v), want %q", got, err, reason)
	}
}

// flip returns a copy of b with one bit flipped: bit (i/len(b))%8 of byte
// i%len(b). Consecutive i flip consecutive bytes.
func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i%len(c)] ^= 1 << (uint(i/len(c)) % 8)
	return c
}

// ecdsaSig is the ASN.1 form of an ECDSA signature.
type ecdsaSig struct{ R, S *big.Int }

// signLowS signs SHA-256(msg) and returns the DER signature with S
// normalised to the lower half of the group order.
func signLowS(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		return nil, err
	}
	var sig ecdsaSig
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return nil, err
	}
	n := k.Curve.Params().N
	if sig.S.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		sig.S.Sub(n, sig.S)
	}
	return asn1.Marshal(sig)
}
