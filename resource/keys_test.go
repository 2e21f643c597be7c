package resource_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/resource"
)

// fakeIssuer serves a JWKS the test rotates and signs tokens with go-jose,
// for the claims and headers a real issuer never makes.
type fakeIssuer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey
	hits int
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	f := &fakeIssuer{keys: map[string]*ecdsa.PrivateKey{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.hits++
		var set jose.JSONWebKeySet
		for kid, k := range f.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) addKey(kid string) *ecdsa.PrivateKey {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[kid] = k
	return k
}

func (f *fakeIssuer) fetches() int { f.mu.Lock(); defer f.mu.Unlock(); return f.hits }

// TestTokenChecks: the token's header and claims, one wrong at a time,
// and key rotation, against a JWKS the test controls.
func TestTokenChecks(t *testing.T) {
	f := newFakeIssuer(t)
	const iss = "https://warrant.example"
	k1 := f.addKey("k1")
	clk := &clock{}
	mux := http.NewServeMux()
	rs := httptest.NewServer(mux)
	defer rs.Close()
	v, err := resource.New(resource.Config{Resource: rs.URL + "/api", Issuer: iss, JWKSURL: f.srv.URL, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/api/x", v.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(resource.FromContext(r.Context()))
	}), resource.Rule{}))
	holder, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(&holder.PublicKey)
	var now int64
	good := func() map[string]any {
		now = clk.Now().Unix()
		return map[string]any{"iss": iss, "sub": aliceID, "aud": rs.URL + "/api", "client_id": executorID, "jti": "j1",
			"iat": now, "nbf": now, "exp": now + 300, "cnf": map[string]string{"jkt": jkt}, "scope": "a b"}
	}
	call := func(tok string) *answer {
		url := rs.URL + "/api/x"
		p, err := dpop.NewProof(holder, "GET", url, clk.Now(), dpop.ProofOptions{AccessToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, "GET", url, "DPoP "+tok, p)
	}
	if a := call(signJWT(t, k1, "k1", "at+jwt", good())); a.status != http.StatusOK {
		t.Fatalf("a good token: %d %s", a.status, a.challenge())
	}
	if a := call(signJWT(t, k1, "k1", "application/at+jwt", good())); a.status != http.StatusOK {
		t.Fatalf("typ application/at+jwt: %d %s", a.status, a.challenge())
	}
	for name, mutate := range map[string]func(map[string]any){
		"another issuer":      func(c map[string]any) { c["iss"] = "https://evil.example" },
		"aud a parent path":   func(c map[string]any) { c["aud"] = rs.URL },
		"aud of two":          func(c map[string]any) { c["aud"] = []string{rs.URL + "/api", otherAPI} },
		"aud an array of one": func(c map[string]any) { c["aud"] = []string{rs.URL + "/api"} },
		"no aud":              func(c map[string]any) { delete(c, "aud") },
		"no exp":              func(c map[string]any) { delete(c, "exp") },
		"no iat":              func(c map[string]any) { delete(c, "iat") },
		"iat ahead":           func(c map[string]any) { c["iat"] = now + 120 },
		"expired past skew":   func(c map[string]any) { c["exp"] = now - 31 },
		"not a bound token":   func(c map[string]any) { delete(c, "cnf") },
		"bound to another":    func(c map[string]any) { c["cnf"] = map[string]string{"jkt": "AAAA"} },
		"no client_id":        func(c map[string]any) { delete(c, "client_id") },
		"no jti":              func(c map[string]any) { delete(c, "jti") },
		"exp not a number":    func(c map[string]any) { c["exp"] = "tomorrow" },
		"nbf ahead":           func(c map[string]any) { c["nbf"] = now + 120 },
		"aud not a string":    func(c map[string]any) { c["aud"] = 7 },
		"no sub":              func(c map[string]any) { delete(c, "sub") },
		"claims not a object": nil,
	} {
		var tok string
		if mutate == nil {
			tok = signRaw(t, k1, "k1", "at+jwt", []byte(`["x"]`))
		} else {
			c := good()
			mutate(c)
			tok = signJWT(t, k1, "k1", "at+jwt", c)
		}
		wantRefused(t, name, call(tok), 401, "invalid_token")
	}
	if a := call(signJWT(t, k1, "k1", "at+jwt", func() map[string]any { c := good(); c["exp"] = now - 10; return c }())); a.status != http.StatusOK {
		t.Errorf("expired within the skew: %d %s", a.status, a.challenge())
	}
	wantRefused(t, "typ JWT", call(signJWT(t, k1, "k1", "JWT", good())), 401, "invalid_token")
	wantRefused(t, "no typ", call(signRaw(t, k1, "k1", "", mustJSON(good()))), 401, "invalid_token")
	wantRefused(t, "crit header", call(signCrit(t, k1, good())), 401, "invalid_token")
	wantRefused(t, "no kid", call(signRaw(t, k1, "", "at+jwt", mustJSON(good()))), 401, "invalid_token")

	// Rotation: a token under a new kid is accepted once the JWKS has it,
	// after one refetch; the old key keeps verifying while published.
	hits := f.fetches()
	k2 := f.addKey("k2")
	clk.Add(31 * time.Second)
	if a := call(signJWT(t, k2, "k2", "at+jwt", good())); a.status != http.StatusOK {
		t.Fatalf("a token under the rotated key: %d %s", a.status, a.challenge())
	}
	if a := call(signJWT(t, k1, "k1", "at+jwt", good())); a.status != http.StatusOK || f.fetches() != hits+1 {
		t.Fatalf("old key after rotation: %d, %d fetches (want %d)", a.status, f.fetches(), hits+1)
	}
	// Keys held past their max age are read again.
	clk.Add(time.Hour)
	if a := call(signJWT(t, k1, "k1", "at+jwt", good())); a.status != http.StatusOK || f.fetches() != hits+2 {
		t.Fatalf("after max age: %d, %d fetches (want %d)", a.status, f.fetches(), hits+2)
	}
}

// TestIssuerUnreachable: without any key the resource server cannot judge
// a token; it answers 503, not a refusal of the client's token.
func TestIssuerUnreachable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	mux := http.NewServeMux()
	rs := httptest.NewServer(mux)
	defer rs.Close()
	v, err := resource.New(resource.Config{Resource: rs.URL, Issuer: gone.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", v.Protect(http.NotFoundHandler(), resource.Rule{}))
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := signJWT(t, k, "k1", "at+jwt", map[string]any{"iss": gone.URL})
	p, _ := dpop.NewProof(k, "GET", rs.URL+"/", time.Now(), dpop.ProofOptions{AccessToken: tok})
	if a := do(t, "GET", rs.URL+"/", "DPoP "+tok, p); a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("issuer unreachable: %d %v", a.status, a.header)
	}
	for _, bad := range []resource.Config{{Resource: "tickets", Issuer: gone.URL}, {Resource: rs.URL, Issuer: ""}, {Resource: rs.URL + "#f", Issuer: gone.URL},
		{Resource: rs.URL, Issuer: gone.URL, Introspector: &resource.Introspector{}}} {
		if _, err := resource.New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// signRaw signs payload bytes as given, with typ when not empty.
func signRaw(t testing.TB, key *ecdsa.PrivateKey, kid, typ string, payload []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

func signCrit(t testing.TB, key *ecdsa.PrivateKey, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1").WithHeader("crit", []string{"exp"}).WithHeader("exp", 1)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(mustJSON(claims))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}
