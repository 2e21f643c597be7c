package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// FuzzVerifyToken: a hostile access token is refused with an error, never
// a panic, and nothing unsigned by the issuer's key is accepted.
func FuzzVerifyToken(f *testing.F) {
	f.Add("eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL3dhcnJhbnQuZXhhbXBsZSJ9.AAAA")
	f.Add("eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJub25lIiwia2lkIjoiazEifQ.e30.")
	f.Add("e30.e30.")
	f.Add("a.b.c.d")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_700_000_000, 0)
	v, err := New(Config{Resource: "https://api.example", Issuer: "https://warrant.example", Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	v.keys.keys = map[string]*proofs.PublicKey{"k1": {Key: &k.PublicKey}}
	v.keys.fetched = now
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.verifyToken(context.Background(), token, "https://api.example", now)
		if err == nil {
			t.Fatalf("an unsigned token verified: %q %+v", token, c)
		}
		r := httptest.NewRequest("GET", "https://api.example/x", nil)
		r.Header.Set("Authorization", "DPoP "+token)
		if _, err := v.Authorize(r, Rule{}); err == nil {
			t.Fatalf("an unsigned token was authorized: %q", token)
		}
	})
}
