package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// tokenWorld is a log that issues tokens, served on loopback, with a
// human → planner → executor chain on it.
type tokenWorld struct {
	f        *fixture
	clock    *testClock
	srv      *httptest.Server
	exec     *dpopClient
	planner  *dpopClient
	tokenKey *ecdsa.PrivateKey
}

func newTokenWorld(t *testing.T, opts ...func(*Options)) *tokenWorld {
	t.Helper()
	w := &tokenWorld{clock: &testClock{t: time.Now().UTC().Truncate(time.Second)}}
	var err error
	if w.tokenKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	w.f = newFixture(t, func(o *Options) {
		o.Now = w.clock.Now
		o.TokenKey = w.tokenKey
		for _, f := range opts {
			f(o)
		}
	})
	w.srv = httptest.NewServer(NewHandler(w.f.log))
	t.Cleanup(w.srv.Close)
	ctx := context.Background()
	execPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	execSigner, err := client.NewSigner(execPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.f.log.Append(ctx, bindingEnvelope(t, w.f.registrar, executorID, &testKey{signer: execSigner}, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	w.exec = &dpopClient{priv: execPriv, alg: jose.ES256}
	w.planner = &dpopClient{priv: w.f.agent.priv, alg: jose.EdDSA}
	base := w.clock.Now()
	root := &proofs.Delegation{ID: "d-root", Issuer: humanID, Delegate: agentID, RootSubject: humanID, Task: "/tickets",
		Scopes: []string{"tickets:read", "tickets:write"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(base.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(base.Add(time.Hour)), Nonce: "nonce-root-1"}
	hop := &proofs.Delegation{ID: "d-exec", Issuer: agentID, Delegate: executorID, RootSubject: humanID, Parent: "d-root", Task: "/tickets",
		Scopes: []string{"tickets:read", "tickets:write"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(base.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(base.Add(10 * time.Minute)), Nonce: "nonce-exec-1"}
	for _, d := range []struct {
		key *testKey
		d   *proofs.Delegation
	}{{w.f.human, root}, {w.f.agent, hop}} {
		a, err := w.f.log.Append(ctx, signDelegation(t, d.key, d.d))
		if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("delegation %s: %v %+v", d.d.ID, err, a.Decision)
		}
	}
	return w
}

// exchange gets a token for the executor's delegation.
func (w *tokenWorld) exchange(t *testing.T) string {
	t.Helper()
	endpoint := w.srv.URL + TokenEndpointPath
	a := postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:read"), w.exec.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()))
	if a.status != http.StatusOK {
		t.Fatalf("exchange: %d %s %s", a.status, a.Error, a.Description)
	}
	return a.AccessToken
}

// introspectAnswer is the endpoint's JSON, answer or error.
type introspectAnswer struct {
	IntrospectionAnswer
	Error       string `json:"error"`
	Description string `json:"error_description"`
	status      int
	header      http.Header
	raw         map[string]any
}

func postIntrospect(t *testing.T, endpoint string, form url.Values, dpop ...string) *introspectAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, p := range dpop {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	a := &introspectAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, a); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(raw, &a.raw)
	return a
}

func TestIntrospect(t *testing.T) {
	w := newTokenWorld(t)
	ctx := context.Background()
	endpoint := w.srv.URL + IntrospectionEndpointPath
	// The resource server asking is a registered agent: the planner.
	ask := func(token string) *introspectAnswer {
		t.Helper()
		return postIntrospect(t, endpoint, url.Values{"token": {token}, "token_type_hint": {"access_token"}},
			w.planner.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()))
	}
	var meta map[string]any
	getJSON(t, w.srv.URL+AuthServerMetadataPath, &meta)
	if meta["introspection_endpoint"] != endpoint {
		t.Fatalf("metadata introspection_endpoint %v", meta["introspection_endpoint"])
	}

	token := w.exchange(t)
	size := w.f.log.Checkpoint().Size
	a := ask(token)
	if a.status != 200 || !a.Active || a.TokenType != "DPoP" || a.Scope != "tickets:read" || a.ClientID != executorID ||
		a.Sub != humanID || a.Aud != ticketsAPI || a.Iss != w.srv.URL || a.Cnf == nil || a.Cnf.JKT != w.exec.thumbprint(t) ||
		a.Warrant == nil || a.Warrant.Delegation != "d-exec" || a.JTI == "" || a.Exp != a.Iat+300 || a.Nbf != a.Iat {
		t.Fatalf("active answer: %d %+v", a.status, a)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if got := w.f.log.Checkpoint().Size; got != size {
		t.Fatalf("an introspection wrote entries: size %d, want %d", got, size)
	}

	// Tokens the log did not sign, or that were altered, are inactive.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parts := strings.Split(token, ".")
	var claims map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(b, &claims)
	forged, err := signJWT(other, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": w.f.log.tokens.pub.ID}, claims)
	if err != nil {
		t.Fatal(err)
	}
	claims["scope"] = "tickets:read tickets:write"
	widened, _ := json.Marshal(claims)
	for name, tok := range map[string]string{
		"signed by another key": forged,
		"claims altered":        parts[0] + "." + base64.RawURLEncoding.EncodeToString(widened) + "." + parts[2],
		"not a JWT":             "garbage",
		"signature stripped":    parts[0] + "." + parts[1] + ".",
	} {
		if a := ask(tok); a.status != 200 || a.Active || len(a.raw) != 1 {
			t.Errorf("%s: %d %v, want exactly {\"active\":false}", name, a.status, a.raw)
		}
	}

	// The caller must be a registered agent proving its key: 401.
	stranger := &dpopClient{priv: newTestKey(t).priv, alg: jose.EdDSA}
	form := url.Values{"token": {token}}
	for _, c := range []struct {
		name string
		dpop []string
		err  string
	}{
		{"no DPoP", nil, "invalid_dpop_proof"},
		{"wrong htu", []string{w.planner.proof(t, "dpop+jwt", "POST", w.srv.URL+TokenEndpointPath, w.clock.Now())}, "invalid_dpop_proof"},
		{"stale", []string{w.planner.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now().Add(-2*time.Minute))}, "invalid_dpop_proof"},
		{"unregistered key", []string{stranger.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now())}, "invalid_client"},
	} {
		a := postIntrospect(t, endpoint, form, c.dpop...)
		if a.status != 401 || a.Error != c.err || a.Active {
			t.Errorf("%s: %d %q (%s), want 401 %s", c.name, a.status, a.Error, a.Description, c.err)
		}
		if h := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `DPoP error="`+c.err+`"`) || !strings.Contains(h, `algs="ES256 EdDSA"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, h)
		}
	}
	// Bounded requests.
	proof := func() string { return w.planner.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()) }
	for name, f := range map[string]url.Values{
		"no token":       {},
		"token twice":    {"token": {token, token}},
		"too many names": {"token": {token}, "a": {"1"}, "b": {"2"}, "c": {"3"}, "d": {"4"}},
		"huge body":      {"token": {token}, "x": {strings.Repeat("x", 20<<10)}},
	} {
		if a := postIntrospect(t, endpoint, f, proof()); a.status != 400 || a.Error != "invalid_request" {
			t.Errorf("%s: %d %q, want 400 invalid_request", name, a.status, a.Error)
		}
	}

	// Revoking an ancestor turns the token inactive as soon as the
	// revocation's append is acknowledged.
	if a := ask(token); !a.Active {
		t.Fatal("token inactive before the revocation")
	}
	rv := &proofs.Revocation{Delegation: "d-root", Issuer: humanID, Reason: "done", IssuedAt: proofs.FormatTime(w.clock.Now()), Nonce: "revoke-root-1"}
	if _, err := w.f.log.Append(ctx, signPayload(t, w.f.human, proofs.PayloadTypeRevocation, rv)); err != nil {
		t.Fatal(err)
	}
	if a := ask(token); a.status != 200 || a.Active || len(a.raw) != 1 {
		t.Fatalf("after revoking the root grant: %d %v", a.status, a.raw)
	}
}

func TestIntrospectExpiry(t *testing.T) {
	w := newTokenWorld(t)
	endpoint := w.srv.URL + IntrospectionEndpointPath
	ask := func(token string) *introspectAnswer {
		t.Helper()
		return postIntrospect(t, endpoint, url.Values{"token": {token}}, w.planner.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()))
	}
	token := w.exchange(t)
	w.clock.Add(299 * time.Second)
	if a := ask(token); !a.Active {
		t.Fatalf("a second before expiry: %+v", a)
	}
	w.clock.Add(time.Second)
	if a := ask(token); a.status != 200 || a.Active {
		t.Fatalf("at expiry: %d %+v", a.status, a)
	}
}

// TestIntrospectKeyWithdrawn: withdrawing the delegate's key binding ends
// its tokens at once, though they have not expired.
func TestIntrospectKeyWithdrawn(t *testing.T) {
	w := newTokenWorld(t)
	endpoint := w.srv.URL + IntrospectionEndpointPath
	token := w.exchange(t)
	execSigner, _ := client.NewSigner(w.exec.priv)
	if _, err := w.f.log.Append(context.Background(), revokedBinding(t, w.f.registrar, executorID, &testKey{signer: execSigner})); err != nil {
		t.Fatal(err)
	}
	a := postIntrospect(t, endpoint, url.Values{"token": {token}}, w.planner.proof(t, "dpop+jwt", "POST", endpoint, w.clock.Now()))
	if a.status != 200 || a.Active {
		t.Fatalf("after the delegate's key withdrawal: %d %+v", a.status, a)
	}
}
