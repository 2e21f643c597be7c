package resource_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/resource"
)

const otherAPI = "https://crm.example/api"

// TestProtect: a token the issuer gave the executor, presented with a
// proof of its key, passes; the claims reach the handler; every way of
// presenting it wrongly, or a token that is not the issuer's for this
// resource, is refused with the challenge RFC 6750 and RFC 9449 describe.
func TestProtect(t *testing.T) {
	is := newIssuer(t)
	s := newServer(t, is.url, nil)
	_, hop := is.chain(t, []string{"tickets:read", "tickets:write"}, []string{"tickets:read"}, []string{s.url, otherAPI})
	tok := is.token(t, hop, s.url)
	exec := is.executor.key

	a := s.call(t, exec, "GET", "/tickets", tok)
	if a.status != http.StatusOK {
		t.Fatalf("the executor's own call: %d %s %s", a.status, a.challenge(), a.body)
	}
	c := a.claims
	if c.Subject != aliceID || c.ClientID != executorID || c.Audience != s.url || c.Issuer != is.url ||
		!slices.Equal(c.Actor.Chain(), []string{executorID, plannerID}) || !slices.Equal(c.Scopes, []string{"tickets:read"}) ||
		c.Warrant == nil || c.Warrant.Delegation != hop || c.Warrant.IssuanceIndex == 0 || c.Token != tok {
		t.Fatalf("claims the handler got: %+v", c)
	}
	if jkt, _ := dpop.Thumbprint(exec.Public()); c.JKT != jkt {
		t.Fatalf("cnf.jkt %s, want the executor's key %s", c.JKT, jkt)
	}
	if got := s.jwksFetches.get("/.well-known/jwks.json"); got != 1 {
		t.Fatalf("%d JWKS fetches, want 1", got)
	}

	// Writing needs a scope the executor's delegation does not have.
	a = s.call(t, exec, "POST", "/tickets", tok)
	wantRefused(t, "write with a read token", a, http.StatusForbidden, "insufficient_scope")
	if ch := a.challenge(); !strings.Contains(ch, `scope="tickets:write"`) || !strings.Contains(ch, `resource_metadata="`+s.url+resource.MetadataPath+`"`) {
		t.Errorf("insufficient_scope challenge %q lacks scope or resource_metadata", ch)
	}

	// No credentials at all: a challenge without an error code.
	a = do(t, "GET", s.url+"/tickets", "")
	wantRefused(t, "no token", a, http.StatusUnauthorized, "")
	if !strings.Contains(a.challenge(), "resource_metadata=") {
		t.Errorf("401 challenge %q names no resource_metadata", a.challenge())
	}

	url := s.url + "/tickets"
	for _, tc := range []struct {
		name   string
		a      func() *answer
		status int
		code   string
	}{
		{"Bearer instead of DPoP", func() *answer { return do(t, "GET", url, "Bearer "+tok, s.proof(t, exec, "GET", url, tok)) }, 401, "invalid_token"},
		{"token in the query string", func() *answer {
			return do(t, "GET", url+"?access_token="+tok, "", s.proof(t, exec, "GET", url, tok))
		}, 400, "invalid_request"},
		{"token in the query string and the header", func() *answer {
			return do(t, "GET", url+"?access_token="+tok, "DPoP "+tok, s.proof(t, exec, "GET", url, tok))
		}, 400, "invalid_request"},
		{"no DPoP proof", func() *answer { return do(t, "GET", url, "DPoP "+tok) }, 401, "invalid_dpop_proof"},
		{"two DPoP proofs", func() *answer {
			return do(t, "GET", url, "DPoP "+tok, s.proof(t, exec, "GET", url, tok), s.proof(t, exec, "GET", url, tok))
		}, 401, "invalid_dpop_proof"},
		{"proof from another key", func() *answer { return s.call(t, is.planner.key, "GET", "/tickets", tok) }, 401, "invalid_token"},
		{"proof for another URL", func() *answer { return do(t, "GET", url, "DPoP "+tok, s.proof(t, exec, "GET", url+"/1", tok)) }, 401, "invalid_dpop_proof"},
		{"proof for another method", func() *answer { return do(t, "GET", url, "DPoP "+tok, s.proof(t, exec, "POST", url, tok)) }, 401, "invalid_dpop_proof"},
		{"proof without ath", func() *answer { return do(t, "GET", url, "DPoP "+tok, s.proof(t, exec, "GET", url, "")) }, 401, "invalid_dpop_proof"},
		{"proof for another token", func() *answer { return do(t, "GET", url, "DPoP "+tok, s.proof(t, exec, "GET", url, tok+"x")) }, 401, "invalid_dpop_proof"},
		{"token for another audience", func() *answer { return s.call(t, exec, "GET", "/tickets", is.token(t, hop, otherAPI)) }, 401, "invalid_token"},
		{"token not a JWS", func() *answer { return s.call(t, exec, "GET", "/tickets", "abc.def") }, 401, "invalid_token"},
	} {
		wantRefused(t, tc.name, tc.a(), tc.status, tc.code)
	}

	// A proof is accepted once.
	p := s.proof(t, exec, "GET", url, tok)
	if a := do(t, "GET", url, "DPoP "+tok, p); a.status != http.StatusOK {
		t.Fatalf("first use of a proof: %d %s", a.status, a.challenge())
	}
	wantRefused(t, "replayed proof", do(t, "GET", url, "DPoP "+tok, p), 401, "invalid_dpop_proof")

	// Forged tokens: the real token's claims under another header or key.
	parts := strings.Split(tok, ".")
	var hdr map[string]string
	raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(raw, &hdr)
	kid := hdr["kid"]
	b64 := base64.RawURLEncoding.EncodeToString
	reheader := func(h map[string]string) string {
		b, _ := json.Marshal(h)
		return b64(b) + "." + parts[1]
	}
	jwks := fetchBody(t, is.url+"/.well-known/jwks.json")
	var set struct{ Keys []json.RawMessage }
	json.Unmarshal(jwks, &set)
	none := reheader(map[string]string{"typ": "at+jwt", "alg": "none", "kid": kid}) + "."
	wantRefused(t, "alg none", s.call(t, exec, "GET", "/tickets", none), 401, "invalid_token")
	for i, secret := range [][]byte{jwks, set.Keys[0], []byte(kid)} {
		input := reheader(map[string]string{"typ": "at+jwt", "alg": "HS256", "kid": kid})
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		hs := input + "." + b64(m.Sum(nil))
		wantRefused(t, "HS256 keyed with the public key "+string(rune('a'+i)), s.call(t, exec, "GET", "/tickets", hs), 401, "invalid_token")
	}
	var claims map[string]any
	raw, _ = base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(raw, &claims)
	rogue, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wantRefused(t, "signed by another key under the issuer's kid", s.call(t, exec, "GET", "/tickets", signJWT(t, rogue, kid, "at+jwt", claims)), 401, "invalid_token")
	claims["scope"] = "tickets:read tickets:write"
	wantRefused(t, "scope widened after signing", s.call(t, exec, "GET", "/tickets", reheader(hdr)[:len(parts[0])]+"."+b64(mustJSON(claims))+"."+parts[2]), 401, "invalid_token")

	// An unknown kid refetches the JWKS once per interval, no more.
	before := s.jwksFetches.get("/.well-known/jwks.json")
	unknown := signJWT(t, rogue, "sha256:rogue", "at+jwt", claims)
	wantRefused(t, "unknown kid", s.call(t, exec, "GET", "/tickets", unknown), 401, "invalid_token")
	if got := s.jwksFetches.get("/.well-known/jwks.json"); got != before {
		t.Fatalf("an unknown kid within the refetch interval fetched the JWKS (%d -> %d)", before, got)
	}
	s.clock.Add(31 * time.Second)
	for range 3 {
		wantRefused(t, "unknown kid", s.call(t, exec, "GET", "/tickets", unknown), 401, "invalid_token")
	}
	if got := s.jwksFetches.get("/.well-known/jwks.json"); got != before+1 {
		t.Fatalf("unknown kids past the interval fetched the JWKS %d times, want once", got-before)
	}

	// Time: expired, and not yet valid.
	s.clock.Add(6 * time.Minute)
	wantRefused(t, "expired token", s.call(t, exec, "GET", "/tickets", tok), 401, "invalid_token")
	s.clock.Add(-6*time.Minute - 31*time.Second - 2*time.Minute)
	wantRefused(t, "token before its nbf", s.call(t, exec, "GET", "/tickets", tok), 401, "invalid_token")
	s.clock.Add(2 * time.Minute)
	if a := s.call(t, exec, "GET", "/tickets", tok); a.status != http.StatusOK {
		t.Fatalf("back in the window: %d %s", a.status, a.challenge())
	}

	// The protected resource metadata names warrant.
	var meta resource.Metadata
	if err := json.Unmarshal(fetchBody(t, s.url+resource.MetadataPath), &meta); err != nil || meta.Resource != s.url ||
		!slices.Equal(meta.AuthorizationServers, []string{is.url}) || !meta.DPoPBoundAccessTokensRequired {
		t.Fatalf("metadata %+v %v", meta, err)
	}
}

// TestNonce: a server that requires nonces answers use_dpop_nonce with
// one, and accepts the retry that carries it.
func TestNonce(t *testing.T) {
	is := newIssuer(t)
	s := newServer(t, is.url, func(c *resource.Config) { c.RequireNonce, c.NonceWindow = true, time.Minute })
	_, hop := is.chain(t, []string{"tickets:read"}, []string{"tickets:read"}, []string{s.url})
	tok := is.token(t, hop, s.url)
	a := s.call(t, is.executor.key, "GET", "/tickets", tok)
	wantRefused(t, "proof without nonce", a, 401, "use_dpop_nonce")
	nonce := a.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce")
	}
	url := s.url + "/tickets"
	p, err := dpop.NewProof(is.executor.key, "GET", url, s.clock.Now(), dpop.ProofOptions{AccessToken: tok, Nonce: "made-up"})
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "made-up nonce", do(t, "GET", url, "DPoP "+tok, p), 401, "use_dpop_nonce")
	p, _ = dpop.NewProof(is.executor.key, "GET", url, s.clock.Now(), dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
	if a := do(t, "GET", url, "DPoP "+tok, p); a.status != http.StatusOK {
		t.Fatalf("retry with the nonce: %d %s", a.status, a.challenge())
	}
	// Two windows later the nonce is stale.
	s.clock.Add(2*time.Minute + time.Second)
	p, _ = dpop.NewProof(is.executor.key, "GET", url, s.clock.Now(), dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
	wantRefused(t, "stale nonce", do(t, "GET", url, "DPoP "+tok, p), 401, "use_dpop_nonce")
}

func fetchBody(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return b
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// signJWT signs claims with go-jose (a JOSE library warrant does not use)
// as ES256 under kid and typ.
func signJWT(t testing.TB, key *ecdsa.PrivateKey, kid, typ string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(mustJSON(claims))
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIndependentProof: a proof made by a JOSE library warrant does not
// use (go-jose), with the ath of the token, is accepted; the same proof
// without ath is not.
func TestIndependentProof(t *testing.T) {
	is := newIssuer(t)
	s := newServer(t, is.url, nil)
	_, hop := is.chain(t, []string{"tickets:read"}, []string{"tickets:read"}, []string{s.url})
	tok := is.token(t, hop, s.url)
	url := s.url + "/tickets"
	proof := func(claims map[string]any) string {
		opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.executor.key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := sg.Sign(mustJSON(claims))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	jti := make([]byte, 12)
	rand.Read(jti)
	claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": "GET", "htu": url, "iat": s.clock.Now().Unix()}
	wantRefused(t, "go-jose proof without ath", do(t, "GET", url, "DPoP "+tok, proof(claims)), 401, "invalid_dpop_proof")
	sum := sha256.Sum256([]byte(tok))
	claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	claims["jti"] = claims["jti"].(string) + "x"
	if a := do(t, "GET", url, "DPoP "+tok, proof(claims)); a.status != http.StatusOK {
		t.Fatalf("go-jose proof: %d %s", a.status, a.challenge())
	}
}

// TestProofBeforeStart: without nonces, a proof made before the resource
// server started is refused (a restart empties the replay cache, and such
// a proof may have been used before it).
func TestProofBeforeStart(t *testing.T) {
	is := newIssuer(t)
	s := newServer(t, is.url, nil)
	_, hop := is.chain(t, []string{"tickets:read"}, []string{"tickets:read"}, []string{s.url})
	tok := is.token(t, hop, s.url)
	url := s.url + "/tickets"
	p, err := dpop.NewProof(is.executor.key, "GET", url, s.clock.Now().Add(-2*time.Second), dpop.ProofOptions{AccessToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "proof from before the start", do(t, "GET", url, "DPoP "+tok, p), 401, "invalid_dpop_proof")
}

// TestReplayCacheFull: while the verifier remembers as many proofs as it
// may (MaxProofs), a fresh proof is refused as unavailable (503 with
// Retry-After), not as an invalid proof, and a replay is still a replay.
func TestReplayCacheFull(t *testing.T) {
	is := newIssuer(t)
	s := newServer(t, is.url, func(c *resource.Config) { c.MaxProofs = 1 })
	_, hop := is.chain(t, []string{"tickets:read"}, []string{"tickets:read"}, []string{s.url})
	tok := is.token(t, hop, s.url)
	url := s.url + "/tickets"
	s.clock.Add(2 * time.Second) // proofs made after the start
	proof := func() string {
		p, err := dpop.NewProof(is.executor.key, "GET", url, s.clock.Now(), dpop.ProofOptions{AccessToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A thief's proof with the stolen token is refused before it takes
	// room in the cache.
	_, thief, _ := ed25519.GenerateKey(rand.Reader)
	stolen, err := dpop.NewProof(thief, "GET", url, s.clock.Now(), dpop.ProofOptions{AccessToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "a stolen token with the thief's proof", do(t, "GET", url, "DPoP "+tok, stolen), 401, "invalid_token")
	first := proof()
	if a := do(t, "GET", url, "DPoP "+tok, first); a.status != http.StatusOK {
		t.Fatalf("first proof: %d %s", a.status, a.challenge())
	}
	// Full: retry when the oldest proof leaves its 70-second window.
	if a := do(t, "GET", url, "DPoP "+tok, proof()); a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") < "60" || len(a.header.Get("Retry-After")) != 2 {
		t.Fatalf("a fresh proof with the cache full: %d %s, Retry-After %q", a.status, a.challenge(), a.header.Get("Retry-After"))
	}
	wantRefused(t, "the first proof again", do(t, "GET", url, "DPoP "+tok, first), 401, "invalid_dpop_proof")
	s.clock.Add(dpop.MaxAge + dpop.MaxAhead + time.Second)
	if a := do(t, "GET", url, "DPoP "+tok, proof()); a.status != http.StatusOK {
		t.Fatalf("after the window: %d %s", a.status, a.challenge())
	}
}

// TestMaxProofsOff: the replay cache cannot be turned off.
func TestMaxProofsOff(t *testing.T) {
	if _, err := resource.New(resource.Config{Resource: "https://api.example", Issuer: "https://log.example", MaxProofs: -1}); err == nil || !strings.Contains(err.Error(), "MaxProofs") {
		t.Fatalf("MaxProofs -1: %v, want it refused", err)
	}
}
