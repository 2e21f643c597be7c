package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// TestProofRoundTrip: a proof made by NewProof verifies for its own
// request only, with its ath and nonce checked, for both key types.
func TestProofRoundTrip(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_700_000_000, 0)
	const url = "https://api.example/tickets"
	for name, key := range map[string]crypto.Signer{"EdDSA": ed, "ES256": ec} {
		t.Run(name, func(t *testing.T) {
			nonceOK := func(n string) bool { return n == "n1" }
			proof, err := NewProof(key, "GET", url, now, ProofOptions{AccessToken: "tok", Nonce: "n1"})
			if err != nil {
				t.Fatal(err)
			}
			want := Request{Method: "GET", URL: url, AccessToken: "tok", Nonce: nonceOK}
			for _, bad := range []struct {
				name string
				req  Request
			}{
				{"other token", Request{Method: "GET", URL: url, AccessToken: "other", Nonce: nonceOK}},
				{"no token expected", Request{Method: "GET", URL: url, Nonce: nonceOK}},
				{"other method", Request{Method: "POST", URL: url, AccessToken: "tok", Nonce: nonceOK}},
				{"other url", Request{Method: "GET", URL: url + "/1", AccessToken: "tok", Nonce: nonceOK}},
				{"stale nonce", Request{Method: "GET", URL: url, AccessToken: "tok", Nonce: func(string) bool { return false }}},
			} {
				if _, err := Verify(proof, bad.req, now, NewReplayCache(4)); err == nil {
					t.Errorf("%s: accepted", bad.name)
				}
			}
			if _, err := Verify(proof, want, now.Add(MaxAge+time.Second), NewReplayCache(4)); err == nil {
				t.Error("a stale proof was accepted")
			}
			seen := NewReplayCache(4)
			p, err := Verify(proof, want, now, seen)
			if err != nil {
				t.Fatal(err)
			}
			jkt, err := Thumbprint(key.Public())
			if err != nil || p.JKT != jkt {
				t.Fatalf("thumbprint %q, want %q (%v)", p.JKT, jkt, err)
			}
			if _, err := Verify(proof, want, now, seen); err == nil {
				t.Fatal("a replayed proof was accepted")
			}
		})
	}
}

// TestNonceRequired: a proof without the server's nonce is an Error
// asking for one, so the server can answer use_dpop_nonce.
func TestNonceRequired(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Unix(1_700_000_000, 0)
	proof, err := NewProof(key, "POST", "https://log.example/oauth2/token", now, ProofOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(proof, Request{Method: "POST", URL: "https://log.example/oauth2/token", Nonce: func(string) bool { return true }}, now, nil)
	var de *Error
	if !errors.As(err, &de) || !de.UseNonce {
		t.Fatalf("got %v, want an Error with UseNonce", err)
	}
}
