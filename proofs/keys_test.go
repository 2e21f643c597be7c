package proofs_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

func pemPublicKey(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestParsePublicKey(t *testing.T) {
	for _, s := range []*testSigner{newEd25519Signer(t), newP256Signer(t)} {
		t.Run(fmt.Sprintf("%T", s.priv), func(t *testing.T) {
			sum := sha256.Sum256(s.der)
			wantID := "sha256:" + hex.EncodeToString(sum[:])
			if got := proofs.KeyID(s.der); got != wantID {
				t.Errorf("KeyID = %s, want %s", got, wantID)
			}
			fromDER, err := proofs.ParsePublicKeyDER(s.der)
			if err != nil {
				t.Fatalf("ParsePublicKeyDER: %v", err)
			}
			fromPEM, err := proofs.ParsePublicKeyPEM(pemPublicKey(s.der))
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			for _, k := range []*proofs.PublicKey{fromDER, fromPEM} {
				if k.ID != wantID || k.String() != wantID {
					t.Errorf("ID = %s, String() = %s, want %s", k.ID, k.String(), wantID)
				}
				if !bytes.Equal(k.DER, s.der) {
					t.Errorf("DER = %x, want %x", k.DER, s.der)
				}
				if !bytes.Equal(k.PEM(), pemPublicKey(s.der)) {
					t.Errorf("PEM() = %s", k.PEM())
				}
				type equaler interface{ Equal(x crypto.PublicKey) bool }
				if !k.Key.(equaler).Equal(s.priv.Public()) {
					t.Errorf("Key = %v, want %v", k.Key, s.priv.Public())
				}
			}
			// PEM() parses back to the same key.
			again, err := proofs.ParsePublicKeyPEM(fromDER.PEM())
			if err != nil || again.ID != wantID {
				t.Errorf("ParsePublicKeyPEM(PEM()) = %v, %v", again, err)
			}
			// Trailing whitespace after the block is fine.
			if _, err := proofs.ParsePublicKeyPEM(append(pemPublicKey(s.der), " \n\n"...)); err != nil {
				t.Errorf("trailing whitespace: %v", err)
			}
		})
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := func(pub any) []byte {
		b, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ed := newEd25519Signer(t)
	ec := newP256Signer(t)

	ders := []struct {
		name string
		der  []byte
	}{
		{"RSA", der(&rsaKey.PublicKey)},
		{"ECDSA P-384", der(&p384.PublicKey)},
		{"ECDSA P-521", der(&p521.PublicKey)},
		{"Ed25519 with trailing byte", append(bytes.Clone(ed.der), 0)},
		{"P-256 with trailing byte", append(bytes.Clone(ec.der), 0)},
		{"truncated", ed.der[:len(ed.der)-1]},
		{"empty", nil},
		{"raw Ed25519 key", []byte(ed.priv.Public().(ed25519.PublicKey))},
		{"PKCS#1 RSA", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)},
		{"PKCS#8 private key", func() []byte {
			b, err := x509.MarshalPKCS8PrivateKey(ed.priv)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}()},
		{"long-form length", append([]byte{0x30, 0x81, ed.der[1]}, ed.der[2:]...)},
	}
	for _, tt := range ders {
		t.Run("DER/"+tt.name, func(t *testing.T) {
			k, err := proofs.ParsePublicKeyDER(tt.der)
			if err == nil {
				t.Fatalf("ParsePublicKeyDER accepted %s as %T", tt.name, k.Key)
			}
			wantReason(t, err, proofs.ReasonKeyInvalid)
			_, err = proofs.ParsePublicKeyPEM(pemPublicKey(tt.der))
			wantReason(t, err, proofs.ReasonKeyInvalid)
		})
	}

	pems := []struct {
		name string
		pem  []byte
	}{
		{"trailing data", append(pemPublicKey(ed.der), "junk"...)},
		{"second PEM block", append(pemPublicKey(ed.der), pemPublicKey(ec.der)...)},
		{"wrong block type", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: ed.der})},
		{"private key block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ed.der})},
		{"no PEM", ed.der},
		{"empty", nil},
		{"unterminated block", bytes.TrimSuffix(pemPublicKey(ed.der), []byte("-----END PUBLIC KEY-----\n"))},
	}
	for _, tt := range pems {
		t.Run("PEM/"+tt.name, func(t *testing.T) {
			_, err := proofs.ParsePublicKeyPEM(tt.pem)
			wantReason(t, err, proofs.ReasonKeyInvalid)
		})
	}
}

func TestVerifyDSSE(t *testing.T) {
	payload := []byte(`{"id":"d1"}`)
	for _, s := range []*testSigner{newEd25519Signer(t), newP256Signer(t)} {
		t.Run(fmt.Sprintf("%T", s.priv), func(t *testing.T) {
			k, err := proofs.ParsePublicKeyDER(s.der)
			if err != nil {
				t.Fatal(err)
			}
			sig := s.signDSSE(t, proofs.PayloadTypeDelegation, payload).Sig
			if err := k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, sig); err != nil {
				t.Fatalf("valid signature refused: %v", err)
			}
			// The same signature does not vouch for another payload type,
			// another payload, or the payload signed without PAE.
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeAgent, payload, sig), proofs.ReasonSignatureInvalid)
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, []byte(`{"id":"d2"}`), sig), proofs.ReasonSignatureInvalid)
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, nil, sig), proofs.ReasonSignatureInvalid)
			// Every single-bit change of the signature is refused.
			for i := range len(sig) * 8 {
				err := k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, flip(sig, i))
				if err == nil {
					t.Fatalf("signature with bit %d of byte %d flipped verifies", i/len(sig), i%len(sig))
				}
				if r := proofs.Reason(err); r != proofs.ReasonSignatureInvalid && r != proofs.ReasonSignatureHighS {
					t.Fatalf("flipped signature: reason %q (%v)", r, err)
				}
			}
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, nil), proofs.ReasonSignatureInvalid)
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, sig[:len(sig)-1]), proofs.ReasonSignatureInvalid)
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, append(bytes.Clone(sig), 0)), proofs.ReasonSignatureInvalid)
			// A signature by another key of the same type is refused.
			var other *testSigner
			if _, ok := s.priv.(ed25519.PrivateKey); ok {
				other = newEd25519Signer(t)
			} else {
				other = newP256Signer(t)
			}
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, other.signDSSE(t, proofs.PayloadTypeDelegation, payload).Sig), proofs.ReasonSignatureInvalid)
			// A signature over the bare payload (no PAE) is refused.
			wantReason(t, k.VerifyDSSE(proofs.PayloadTypeDelegation, payload, rawSign(t, s, payload)), proofs.ReasonSignatureInvalid)
		})
	}
}

// rawSign signs msg itself, not its PAE.
func rawSign(t *testing.T, s *testSigner, msg []byte) []byte {
	t.Helper()
	switch k := s.priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		sig, err := signLowS(k, msg)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	t.Fatalf("unsupported key %T", s.priv)
	return nil
}

// TestVerifyDSSEECDSAEncoding checks that an ECDSA signature has exactly one
// accepted encoding: DER, minimal, with the low S value.
func TestVerifyDSSEECDSAEncoding(t *testing.T) {
	s := newP256Signer(t)
	k, err := proofs.ParsePublicKeyDER(s.der)
	if err != nil {
		t.Fatal(err)
	}
	priv := s.priv.(*ecdsa.PrivateKey)
	n := priv.Curve.Params().N
	payload := []byte("payload")
	digest := sha256.Sum256(proofs.PAE(envType, payload))

	for i := range 20 { // both original S halves occur
		sig := s.signDSSE(t, envType, payload).Sig
		if err := k.VerifyDSSE(envType, payload, sig); err != nil {
			t.Fatalf("low-S signature refused: %v", err)
		}
		var rs ecdsaSig
		if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) != 0 {
			t.Fatalf("signature is not DER: %v", err)
		}

		// High S: valid for ECDSA (crypto/ecdsa accepts it) but refused.
		high, err := asn1.Marshal(ecdsaSig{R: rs.R, S: new(big.Int).Sub(n, rs.S)})
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], high) {
			t.Fatal("high-S signature does not verify with crypto/ecdsa; test is broken")
		}
		wantReason(t, k.VerifyDSSE(envType, payload, high), proofs.ReasonSignatureHighS)

		// Non-canonical DER of the valid low-S signature.
		variants := map[string][]byte{
			"trailing byte":         append(bytes.Clone(sig), 0),
			"trailing DER element":  append(bytes.Clone(sig), 0x05, 0x00),
			"padded r":              derSig(padInt(rs.R), rs.S.Bytes(), false),
			"padded s":              derSig(minInt(rs.R), padInt(rs.S), false),
			"long-form length":      derSig(minInt(rs.R), minInt(rs.S), true),
			"IEEE P1363 r||s":       append(rs.R.FillBytes(make([]byte, 32)), rs.S.FillBytes(make([]byte, 32))...),
			"negative s":            mustMarshal(t, ecdsaSig{R: rs.R, S: new(big.Int).Neg(rs.S)}),
			"zero s":                mustMarshal(t, ecdsaSig{R: rs.R, S: big.NewInt(0)}),
			"s = n/2 + 1":           mustMarshal(t, ecdsaSig{R: rs.R, S: new(big.Int).Add(new(big.Int).Rsh(n, 1), big.NewInt(1))}),
			"set instead of seq":    append([]byte{0x31}, sig[1:]...),
			"r and s swapped":       mustMarshal(t, ecdsaSig{R: rs.S, S: rs.R}),
			"empty":                 {},
			"sequence of one":       mustMarshal(t, struct{ R *big.Int }{rs.R}),
			"sequence of three":     mustMarshal(t, struct{ R, S, X *big.Int }{rs.R, rs.S, big.NewInt(1)}),
			"wrapped in a sequence": mustMarshal(t, struct{ Sig ecdsaSig }{rs}),
		}
		for name, v := range variants {
			err := k.VerifyDSSE(envType, payload, v)
			if err == nil {
				t.Errorf("iteration %d: %s: accepted", i, name)
				continue
			}
			if r := proofs.Reason(err); r != proofs.ReasonSignatureInvalid && r != proofs.ReasonSignatureHighS {
				t.Errorf("iteration %d: %s: reason %q", i, name, r)
			}
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// minInt is the minimal DER INTEGER content of a positive x.
func minInt(x *big.Int) []byte {
	b := x.Bytes()
	if b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// padInt is x's INTEGER content with a redundant leading zero byte.
func padInt(x *big.Int) []byte { return append([]byte{0}, minInt(x)...) }

// derSig builds SEQUENCE { INTEGER r, INTEGER s } by hand, optionally with a
// non-minimal long-form length on the sequence.
func derSig(r, s []byte, longForm bool) []byte {
	body := append(append([]byte{0x02, byte(len(r))}, r...), append([]byte{0x02, byte(len(s))}, s...)...)
	if longForm {
		return append([]byte{0x30, 0x81, byte(len(body))}, body...)
	}
	return append([]byte{0x30, byte(len(body))}, body...)
}

func ExamplePublicKey_VerifyDSSE() {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	key, _ := proofs.ParsePublicKeyDER(der)

	payload := []byte(`{"hello":"world"}`)
	sig := ed25519.Sign(priv, proofs.PAE(proofs.PayloadTypeDelegation, payload))

	fmt.Println(key.VerifyDSSE(proofs.PayloadTypeDelegation, payload, sig))
	// The signature does not vouch for the payload under another type.
	fmt.Println(proofs.Reason(key.VerifyDSSE(proofs.PayloadTypeAgent, payload, sig)))
	// Output:
	// <nil>
	// signature_invalid
}
