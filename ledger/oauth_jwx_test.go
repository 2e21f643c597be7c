package ledger

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// A second JOSE implementation warrant does not use, lestrrat-go/jwx,
// makes the DPoP proofs (jwx has no DPoP helper: a JWT signed with typ
// dpop+jwt and the public jwk in its protected header, as RFC 9449 section
// 4.2 describes it) and verifies the access tokens from the JWKS alone.

// jwxDPoP makes DPoP proofs with jwx.
type jwxDPoP struct {
	priv, pub jwk.Key
	alg       jwa.SignatureAlgorithm
}

func newJWXDPoP(t *testing.T, raw crypto.Signer, alg jwa.SignatureAlgorithm) *jwxDPoP {
	t.Helper()
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &jwxDPoP{priv: priv, pub: pub, alg: alg}
}

// proof signs a proof for method and htu at iat; extra claims are added
// (for the adversarial cases).
func (c *jwxDPoP) proof(t *testing.T, method, htu string, iat time.Time, extra map[string]any) string {
	t.Helper()
	jti := make([]byte, 16)
	rand.Read(jti)
	b := jwt.NewBuilder().JwtID(base64.RawURLEncoding.EncodeToString(jti)).IssuedAt(iat).Claim("htm", method).Claim("htu", htu)
	for k, v := range extra {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "dpop+jwt"); err != nil {
		t.Fatal(err)
	}
	if err := hdr.Set(jws.JWKKey, c.pub); err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(c.alg, c.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// thumbprint is jwx's RFC 7638 thumbprint of the proof key.
func (c *jwxDPoP) thumbprint(t *testing.T) string {
	t.Helper()
	b, err := c.pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestTokenJWXInterop: proofs made by jwx (ES256 and EdDSA) are accepted
// by the token endpoint, and its tokens verify with jwx from the JWKS it
// fetches: signature, typ at+jwt, iss, aud, exp and nbf by an injected
// clock, cnf.jkt as jwx computes the thumbprint. A replayed jwx proof and
// one carrying an ath without a token are refused; the token is refused
// by jwx for another audience, after its expiry, and altered.
func TestTokenJWXInterop(t *testing.T) {
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Now = clock.Now; o.TokenKey = tokenKey })
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	endpoint := srv.URL + TokenEndpointPath
	ctx := context.Background()

	execPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	execSigner, err := client.NewSigner(execPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, executorID, &testKey{signer: execSigner}, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	base := clock.Now()
	root := &proofs.Delegation{ID: "d-root", Issuer: humanID, Delegate: agentID, RootSubject: humanID, Task: "/tickets",
		Scopes: []string{"tickets:read", "tickets:write"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(base.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(base.Add(time.Hour)), Nonce: "nonce-root-jwx"}
	hop := &proofs.Delegation{ID: "d-exec", Issuer: agentID, Delegate: executorID, RootSubject: humanID, Parent: "d-root", Task: "/tickets",
		Scopes: []string{"tickets:read"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(base.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(base.Add(10 * time.Minute)), Nonce: "nonce-exec-jwx"}
	for _, d := range []struct {
		key *testKey
		d   *proofs.Delegation
	}{{f.human, root}, {f.agent, hop}} {
		a, err := f.log.Append(ctx, signDelegation(t, d.key, d.d))
		if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("delegation %s: %v %+v", d.d.ID, err, a.Decision)
		}
	}

	set, err := jwk.Fetch(ctx, srv.URL+JWKSPath)
	if err != nil {
		t.Fatalf("jwx fetching the JWKS: %v", err)
	}
	at := jwt.ClockFunc(clock.Now)
	verify := func(token string, opts ...jwt.ParseOption) (jwt.Token, error) {
		return jwt.ParseString(token, append([]jwt.ParseOption{jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithClock(at),
			jwt.WithIssuer(srv.URL), jwt.WithRequiredClaim("cnf"), jwt.WithRequiredClaim("jti")}, opts...)...)
	}

	for _, c := range []struct {
		name       string
		by         *jwxDPoP
		delegation string
		clientID   string
	}{
		{"ES256 executor", newJWXDPoP(t, execPriv, jwa.ES256()), "d-exec", executorID},
		{"EdDSA planner", newJWXDPoP(t, f.agent.priv, jwa.EdDSA()), "d-root", agentID},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := postToken(t, endpoint, exchangeForm(c.delegation, ticketsAPI), c.by.proof(t, "POST", endpoint, clock.Now(), nil))
			if a.status != http.StatusOK || a.TokenType != "DPoP" {
				t.Fatalf("exchange with a jwx proof: %d %s: %s", a.status, a.Error, a.Description)
			}
			msg, err := jws.Parse([]byte(a.AccessToken))
			if err != nil || len(msg.Signatures()) != 1 {
				t.Fatalf("jws.Parse: %v", err)
			}
			if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
				t.Errorf("typ %q, want at+jwt", typ)
			}
			tok, err := verify(a.AccessToken, jwt.WithAudience(ticketsAPI))
			if err != nil {
				t.Fatalf("jwx does not verify the token: %v", err)
			}
			var clientID string
			var cnf map[string]any
			if err := tok.Get("client_id", &clientID); err != nil || clientID != c.clientID {
				t.Errorf("client_id %q (%v), want %s", clientID, err, c.clientID)
			}
			if err := tok.Get("cnf", &cnf); err != nil || cnf["jkt"] != c.by.thumbprint(t) {
				t.Errorf("cnf %v (%v), want jkt %s", cnf, err, c.by.thumbprint(t))
			}
			if sub, _ := tok.Subject(); sub != humanID {
				t.Errorf("sub %q", sub)
			}

			// jwx refuses the token for another audience, after its
			// expiry, before its iat and nbf, and altered.
			if _, err := verify(a.AccessToken, jwt.WithAudience("https://crm.example")); err == nil {
				t.Error("jwx accepted the token for another audience")
			}
			exp, _ := tok.Expiration()
			late := jwt.ClockFunc(func() time.Time { return exp.Add(time.Second) })
			if _, err := verify(a.AccessToken, jwt.WithAudience(ticketsAPI), jwt.WithClock(late)); !errors.Is(err, jwt.TokenExpiredError()) {
				t.Errorf("after exp: %v, want expired", err)
			}
			early := jwt.ClockFunc(func() time.Time { return clock.Now().Add(-time.Minute) })
			if _, err := verify(a.AccessToken, jwt.WithAudience(ticketsAPI), jwt.WithClock(early)); !errors.Is(err, jwt.ValidateError()) {
				t.Errorf("before iat and nbf: %v, want a validation error", err)
			}
			sig := []byte(a.AccessToken)
			sig[len(sig)-2] ^= 'A' ^ 'B'
			if _, err := verify(string(sig), jwt.WithAudience(ticketsAPI)); err == nil {
				t.Error("jwx accepted an altered token")
			}
		})
	}

	// The endpoint refuses jwx proofs that are replayed, that carry an ath
	// though no token accompanies them, or that are made for another URL.
	exec := newJWXDPoP(t, execPriv, jwa.ES256())
	once := exec.proof(t, "POST", endpoint, clock.Now(), nil)
	if a := postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI), once); a.status != http.StatusOK {
		t.Fatalf("first use: %d %s", a.status, a.Error)
	}
	for name, p := range map[string]string{
		"replayed":  once,
		"ath":       exec.proof(t, "POST", endpoint, clock.Now(), map[string]any{"ath": "x"}),
		"other URL": exec.proof(t, "POST", srv.URL+"/elsewhere", clock.Now(), nil),
	} {
		if a := postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI), p); a.status != http.StatusBadRequest || a.Error != "invalid_dpop_proof" {
			t.Errorf("%s jwx proof: %d %q, want 400 invalid_dpop_proof", name, a.status, a.Error)
		}
	}
}
