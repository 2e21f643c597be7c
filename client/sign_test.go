package client_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

func pkcs8PEM(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestSignerEnvelopes(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		n    int // signatures made (ECDSA: enough that about half need low-S normalisation)
	}{{"ed25519", edKey, 4}, {"ecdsa-p256", ecKey, 64}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := client.LoadSigner(pkcs8PEM(t, tc.key))
			if err != nil {
				t.Fatalf("LoadSigner: %v", err)
			}
			der, err := x509.MarshalPKIXPublicKey(tc.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyID() != proofs.KeyID(der) || s.Public().ID != s.KeyID() {
				t.Fatalf("key id %s, want %s", s.KeyID(), proofs.KeyID(der))
			}
			for i := range tc.n {
				payload := []byte(`{"n":` + string(rune('0'+i%10)) + `}`)
				raw, err := s.SignEnvelope(proofs.PayloadTypeDelegation, payload)
				if err != nil {
					t.Fatal(err)
				}
				env, err := proofs.ParseEnvelope(raw)
				if err != nil {
					t.Fatal(err)
				}
				if string(env.Canonical()) != string(raw) {
					t.Fatal("SignEnvelope did not return the canonical envelope")
				}
				if len(env.Signatures) != 1 || env.Signatures[0].KeyID != s.KeyID() {
					t.Fatalf("signatures %+v", env.Signatures)
				}
				// VerifyDSSE also rejects high-S ECDSA signatures.
				if err := s.Public().VerifyDSSE(env.PayloadType, env.Payload, env.Signatures[0].Sig); err != nil {
					t.Fatalf("signature %d does not verify: %v", i, err)
				}
				// A signature vouches for its payload type only.
				if err := s.Public().VerifyDSSE(proofs.PayloadTypeAgent, env.Payload, env.Signatures[0].Sig); proofs.Reason(err) != proofs.ReasonSignatureInvalid {
					t.Fatalf("signature verified under another payload type: %v", err)
				}
			}
		})
	}
}

func TestSignerCosign(t *testing.T) {
	issuer, approver := newEd25519(t), newP256(t)
	raw, err := issuer.SignEnvelope(proofs.PayloadTypeDelegation, []byte(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	co, err := approver.Cosign(raw)
	if err != nil {
		t.Fatalf("Cosign: %v", err)
	}
	env, err := proofs.ParseEnvelope(co)
	if err != nil {
		t.Fatal(err)
	}
	if string(env.Canonical()) != string(co) || len(env.Signatures) != 2 {
		t.Fatalf("cosigned envelope: %s", co)
	}
	for _, s := range []*client.Signer{issuer, approver} {
		sig := env.Signature(s.KeyID())
		if sig == nil {
			t.Fatalf("no signature by %s", s.KeyID())
		}
		if err := s.Public().VerifyDSSE(env.PayloadType, env.Payload, sig.Sig); err != nil {
			t.Fatalf("signature by %s: %v", s.KeyID(), err)
		}
	}
	if _, err := approver.Cosign(co); err == nil {
		t.Fatal("cosigning twice with one key succeeded")
	}
	if _, err := approver.Cosign([]byte("{}")); err == nil {
		t.Fatal("cosigning a malformed envelope succeeded")
	}
}

func TestSignerRefusesOtherKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]crypto.Signer{"ecdsa-p384": p384, "rsa": rsaKey} {
		if _, err := client.NewSigner(k); err == nil {
			t.Errorf("NewSigner(%s) succeeded", name)
		}
		if _, err := client.LoadSigner(pkcs8PEM(t, k)); err == nil {
			t.Errorf("LoadSigner(%s) succeeded", name)
		}
	}
	if _, err := client.LoadSigner([]byte("not a key")); err == nil {
		t.Error("LoadSigner(garbage) succeeded")
	}
}
