package accesstoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/proofs"
)

var b64 = base64.RawURLEncoding.EncodeToString

// es256 signs a compact JWS as an issuer would, with any header and
// claims a test wants.
func es256(t *testing.T, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

// ecJWK is k's JWK with its key id as kid, as the log's JWKS has it.
func ecJWK(k *ecdsa.PublicKey) map[string]string {
	raw, _ := k.Bytes()
	return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:]), "kid": keyID(k), "use": "sig", "alg": "ES256"}
}

func keyID(k crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(err)
	}
	p, err := proofs.ParsePublicKeyDER(der)
	if err != nil {
		panic(err)
	}
	return p.ID
}

// jwksServer serves a JWKS the test changes, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	keys    []map[string]string
	fail    bool
	fetches atomic.Int32
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
}

func (s *jwksServer) set(keys ...map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestRemoteJWKSRotation: a kid not held makes the set fetched again, at
// most once per MinRefetch, so a rotated-in key is found and made-up kids
// cost little; a set past MaxAge is fetched again, and while the issuer is
// down the keys held are still served.
func TestRemoteJWKSRotation(t *testing.T) {
	ctx := context.Background()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	js := &jwksServer{}
	kid1, kid2 := keyID(&k1.PublicKey), keyID(&k2.PublicKey)
	js.set(ecJWK(&k1.PublicKey))
	srv := httptest.NewServer(js)
	defer srv.Close()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	set := &RemoteJWKS{URL: srv.URL, Now: clock.Now, MinRefetch: 5 * time.Second, MaxAge: 5 * time.Minute}

	if k, err := set.Key(ctx, kid1); err != nil || k.Alg != "ES256" || !k.Key.Key.(*ecdsa.PublicKey).Equal(&k1.PublicKey) {
		t.Fatalf("kid-1: %v %+v", err, k)
	}
	for range 10 {
		if _, err := set.Key(ctx, "made-up"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one set and made-up kids within MinRefetch, want 1", n)
	}
	// The issuer rotates: the new kid is found once MinRefetch has passed.
	js.set(ecJWK(&k2.PublicKey), ecJWK(&k1.PublicKey))
	clock.Add(6 * time.Second)
	if _, err := set.Key(ctx, kid2); err != nil {
		t.Fatalf("rotated-in kid: %v", err)
	}
	// Past MaxAge with the issuer down, the held keys still serve.
	js.mu.Lock()
	js.fail = true
	js.mu.Unlock()
	clock.Add(6 * time.Minute)
	if _, err := set.Key(ctx, kid1); err != nil {
		t.Fatalf("held key while the issuer is down: %v", err)
	}
	if n := js.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
	// A set never fetched cannot decide: not ErrUnknownKey.
	down := &RemoteJWKS{URL: srv.URL, Now: clock.Now}
	if _, err := down.Key(ctx, kid1); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Errorf("first fetch failing: %v, want an error that is not ErrUnknownKey", err)
	}
}

// TestParseJWKS: keys warrant does not sign with are skipped; a set with
// none left is an error.
func TestParseJWKS(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	good := ecJWK(&k.PublicKey)
	noAlg := ecJWK(&k2.PublicKey)
	delete(noAlg, "alg")
	doc, _ := json.Marshal(map[string]any{"keys": []any{
		good, noAlg,
		map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(pub), "kid": keyID(pub)},
		map[string]string{"kty": "EC", "crv": "P-256", "x": good["x"], "y": good["y"], "kid": "renamed"},
		map[string]string{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
		map[string]string{"kty": "EC", "crv": "P-256", "x": good["x"], "y": good["y"], "use": "enc", "kid": good["kid"]},
		map[string]string{"kty": "EC", "crv": "P-256", "x": good["x"], "y": good["y"]},
		map[string]string{"kty": "EC", "crv": "P-256", "x": good["x"], "y": good["y"], "kid": good["kid"], "d": good["x"]},
	}})
	keys, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[good["kid"]].Alg != "ES256" || keys[noAlg["kid"]].Alg != "ES256" || keys[keyID(pub)].Alg != "EdDSA" {
		t.Errorf("keys %v", keys)
	}
	for _, bad := range []string{`{"keys":[]}`, `[]`, `{"keys":[{"kty":"RSA","kid":"x"}]}`, `not json`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS(%s) accepted", bad)
		}
	}
}

// TestVerifyTokenClaims: each claim and header the checks read, broken
// alone, makes the token invalid_token; the proof is checked only after
// the token.
func TestVerifyTokenClaims(t *testing.T) {
	const iss, aud, u = "https://log.example", "https://api.example", "https://api.example/tickets"
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, agentKey, _ := ed25519.GenerateKey(rand.Reader)
	jkt, err := dpop.Thumbprint(agentKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	kid := keyID(&tokenKey.PublicKey)
	keys, err := ParseJWKS(mustJSON(map[string]any{"keys": []any{ecJWK(&tokenKey.PublicKey)}}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	v := &Verifier{Keys: StaticKeys(keys), Issuer: iss, Now: func() time.Time { return now }, Leeway: 5 * time.Second, Replay: dpop.NewReplayCache(64)}
	header := func() map[string]any { return map[string]any{"typ": "at+jwt", "alg": "ES256", "kid": kid} }
	claims := func() map[string]any {
		return map[string]any{"iss": iss, "sub": "spiffe://example.org/human/alice", "aud": aud, "client_id": "spiffe://example.org/agent/x",
			"scope": "tickets:read", "jti": "j1", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Unix() + 300, "cnf": map[string]string{"jkt": jkt}}
	}
	verify := func(tok string) error {
		p, err := dpop.NewProof(agentKey, "GET", u, now, dpop.ProofOptions{AccessToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + tok}, DPoP: []string{p}, Audience: aud, Scopes: []string{"tickets:read"}})
		return err
	}
	if err := verify(es256(t, tokenKey, header(), claims())); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	for name, mod := range map[string]func(h, c map[string]any){
		"typ JWT":            func(h, c map[string]any) { h["typ"] = "JWT" },
		"no typ":             func(h, c map[string]any) { delete(h, "typ") },
		"alg none":           func(h, c map[string]any) { h["alg"] = "none" },
		"alg EdDSA":          func(h, c map[string]any) { h["alg"] = "EdDSA" },
		"unknown kid":        func(h, c map[string]any) { h["kid"] = "sha256:00" },
		"aud array":          func(h, c map[string]any) { c["aud"] = []string{aud} },
		"media-type typ":     func(h, c map[string]any) { h["typ"] = "application/at+jwt" },
		"no kid":             func(h, c map[string]any) { delete(h, "kid") },
		"crit":               func(h, c map[string]any) { h["crit"] = []string{"x"} },
		"other issuer":       func(h, c map[string]any) { c["iss"] = "https://evil.example" },
		"other audience":     func(h, c map[string]any) { c["aud"] = "https://other.example" },
		"no audience":        func(h, c map[string]any) { delete(c, "aud") },
		"aud not strings":    func(h, c map[string]any) { c["aud"] = 7 },
		"expired":            func(h, c map[string]any) { c["exp"] = now.Unix() - 5 },
		"no exp":             func(h, c map[string]any) { delete(c, "exp") },
		"exp not a number":   func(h, c map[string]any) { c["exp"] = "tomorrow" },
		"not yet valid":      func(h, c map[string]any) { c["nbf"] = now.Unix() + 60 },
		"no cnf":             func(h, c map[string]any) { delete(c, "cnf") },
		"bound to other key": func(h, c map[string]any) { c["cnf"] = map[string]string{"jkt": b64(make([]byte, 32))} },
	} {
		h, c := header(), claims()
		mod(h, c)
		var f *Failure
		if err := verify(es256(t, tokenKey, h, c)); !errors.As(err, &f) || f.Status != 401 || f.Code != ErrorInvalidToken {
			t.Errorf("%s: %v, want 401 invalid_token", name, err)
		}
	}
	// Signed by another key under the issuer's kid.
	var f *Failure
	if err := verify(es256(t, other, header(), claims())); !errors.As(err, &f) || f.Code != ErrorInvalidToken {
		t.Errorf("another key: %v", err)
	}
	// Within the leeway an expired token passes.
	c := claims()
	c["exp"] = now.Unix() - 2
	if err := verify(es256(t, tokenKey, header(), c)); err != nil {
		t.Errorf("expired within the leeway: %v", err)
	}
	if s := (&Failure{Status: 403, Code: ErrorInsufficientScope, Description: `needs "x"` + "\n", Scope: []string{"a", "b"}}).WWWAuthenticate(); s != `DPoP error="insufficient_scope", error_description="needs 'x''", scope="a b", algs="ES256 EdDSA"` {
		t.Errorf("challenge %s", s)
	}
	if s := (&Failure{Status: 401}).WWWAuthenticate(); s != `DPoP algs="ES256 EdDSA"` {
		t.Errorf("bare challenge %s", s)
	}
	if _, f := credentials([]string{"DPoP  " + strings.Repeat("a", 3)}); f != nil {
		t.Errorf("extra spaces after the scheme: %v", f)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
