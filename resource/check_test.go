package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/resource"
)

// TestCheck: Check, the checks without an *http.Request (as warrant authz
// runs them for Envoy), with keys from a JWKS document and no fixed
// Resource: each request names its audience, a token for another is
// refused, a request naming none cannot be judged; a token in the query
// is refused; the headers are counted as given; the challenge is the
// RFC 6750/9449 one.
func TestCheck(t *testing.T) {
	const iss, api, u = "https://warrant.example", "https://api.example/tickets", "https://api.example/tickets/7"
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	v, err := resource.New(resource.Config{Issuer: iss, JWKS: jwks, JWKSURL: "http://127.0.0.1:1/never", Now: clk.Now, Skew: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resource.New(resource.Config{Issuer: iss, JWKS: []byte(`{"keys":[{"kty":"RSA","kid":"x"}]}`)}); err == nil {
		t.Error("New accepted a JWKS without an ES256 key")
	}
	holder, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(&holder.PublicKey)
	now := clk.Now().Unix()
	tok := signJWT(t, k, "k1", "at+jwt", map[string]any{"iss": iss, "sub": aliceID, "aud": api, "client_id": executorID, "jti": "j1",
		"iat": now, "exp": now + 300, "cnf": map[string]string{"jkt": jkt}, "scope": "tickets:read"})
	proof := func(url string) string {
		p, err := dpop.NewProof(holder, "GET", url, clk.Now(), dpop.ProofOptions{AccessToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(r resource.Request, scopes ...string) error {
		_, err := v.Check(context.Background(), r, resource.Rule{Scopes: scopes})
		return err
	}
	c, err := v.Check(context.Background(), resource.Request{Method: "GET", URL: u + "?q=1", Authorization: []string{"DPoP " + tok}, DPoP: []string{proof(u)}, Audience: api}, resource.Rule{Scopes: []string{"tickets:read"}})
	if err != nil || c.ClientID != executorID || c.Audience != api {
		t.Fatalf("a good request: %v %+v", err, c)
	}
	for _, tc := range []struct {
		name   string
		r      resource.Request
		scopes []string
		status int
		code   string
	}{
		{"another audience", resource.Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + tok}, DPoP: []string{proof(u)}, Audience: "https://api.example"}, nil, 401, resource.ErrInvalidToken},
		{"token in the query", resource.Request{Method: "GET", URL: u + "?access_token=" + tok, Authorization: []string{"DPoP " + tok}, DPoP: []string{proof(u)}, Audience: api}, nil, 400, resource.ErrInvalidRequest},
		{"two Authorization lines", resource.Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + tok, "DPoP " + tok}, DPoP: []string{proof(u)}, Audience: api}, nil, 400, resource.ErrInvalidRequest},
		{"two DPoP lines", resource.Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + tok}, DPoP: []string{proof(u), proof(u)}, Audience: api}, nil, 401, resource.ErrInvalidDPoPProof},
		{"bearer", resource.Request{Method: "GET", URL: u, Authorization: []string{"Bearer " + tok}, DPoP: []string{proof(u)}, Audience: api}, nil, 401, resource.ErrInvalidToken},
		{"no credentials", resource.Request{Method: "GET", URL: u, Audience: api}, nil, 401, ""},
		{"missing scope", resource.Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + tok}, DPoP: []string{proof(u)}, Audience: api}, []string{"tickets:write"}, 403, resource.ErrInsufficientScope},
		{"unknown kid, static keys", resource.Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + signJWT(t, k, "k2", "at+jwt", map[string]any{"iss": iss})}, DPoP: []string{proof(u)}, Audience: api}, nil, 401, resource.ErrInvalidToken},
	} {
		var e *resource.Error
		if err := check(tc.r, tc.scopes...); !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
			t.Errorf("%s: %v, want %d %s", tc.name, err, tc.status, tc.code)
		}
	}
	var e *resource.Error
	if err := check(resource.Request{Method: "GET", URL: u, Authorization: []string{"DPoP " + tok}, DPoP: []string{proof(u)}}); err == nil || errors.As(err, &e) {
		t.Errorf("no audience anywhere: %v, want an error that is no refusal", err)
	}
	if s := (&resource.Error{Status: 403, Code: resource.ErrInsufficientScope, Description: `needs "x"` + "\n", Scopes: []string{"a", "b"}}).Challenge("https://api.example/.well-known/oauth-protected-resource"); s != `DPoP error="insufficient_scope", error_description="needs 'x' ", scope="a b", resource_metadata="https://api.example/.well-known/oauth-protected-resource", algs="ES256 EdDSA"` {
		t.Errorf("challenge %s", s)
	}
	if s := (&resource.Error{Status: 401}).Challenge(""); s != `DPoP algs="ES256 EdDSA"` {
		t.Errorf("bare challenge %s", s)
	}
}
