package ledger

import (
	"crypto/rand"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestVerifierKeyDerivation checks the derived verifier key against the
// one note.GenerateKey returns, over enough keys that base64 '+' and '/'
// characters occur.
func TestVerifierKeyDerivation(t *testing.T) {
	for i := 0; i < 200; i++ {
		sk, vk, err := note.GenerateKey(rand.Reader, "example.com/log")
		if err != nil {
			t.Fatal(err)
		}
		got, err := verifierKey(sk)
		if err != nil || got != vk {
			t.Fatalf("verifierKey(%q) = %q, %v; want %q", sk, got, err, vk)
		}
	}
}
