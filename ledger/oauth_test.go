package ledger

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// The token endpoint is exercised from the outside: a real server on
// loopback, plain HTTP, and a JOSE library warrant does not use (go-jose)
// to make the DPoP proofs and to verify the tokens from the JWKS.

const (
	executorID = "spiffe://example.org/agent/executor"
	ticketsAPI = "https://tickets.example/api"
)

// testClock is an injected clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// dpopClient makes DPoP proofs with go-jose.
type dpopClient struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
}

func (c *dpopClient) proof(t *testing.T, typ, method, htu string, iat time.Time) string {
	t.Helper()
	return c.proofWith(t, typ, method, htu, iat, nil)
}

// proofWith is proof with extra claims (a nonce).
func (c *dpopClient) proofWith(t *testing.T, typ, method, htu string, iat time.Time, extra map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(jose.ContentType(typ))
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: c.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jti := make([]byte, 12)
	rand.Read(jti)
	m := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": method, "htu": htu, "iat": iat.Unix()}
	for k, v := range extra {
		m[k] = v
	}
	claims, _ := json.Marshal(m)
	obj, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *dpopClient) thumbprint(t *testing.T) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: c.priv.Public()}
	b, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenAnswer is the endpoint's JSON answer, success or error.
type tokenAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	Error           string `json:"error"`
	Description     string `json:"error_description"`
	Warrant         *struct {
		Index          uint64   `json:"index"`
		Leaf           []byte   `json:"leaf"`
		Checkpoint     string   `json:"checkpoint"`
		InclusionProof [][]byte `json:"inclusion_proof"`
	} `json:"warrant"`
	status int
	header http.Header
}

func postToken(t *testing.T, endpoint string, form url.Values, dpop ...string) *tokenAnswer {
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
	var a tokenAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	a.status, a.header = resp.StatusCode, resp.Header
	return &a
}

func exchangeForm(delegation, resource string, scope ...string) url.Values {
	f := url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"subject_token":      {delegation},
		"subject_token_type": {TokenTypeDelegationID},
		"resource":           {resource},
	}
	if len(scope) > 0 {
		f.Set("scope", strings.Join(scope, " "))
	}
	return f
}

func TestTokenExchange(t *testing.T) {
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

	// The executor holds a P-256 key (ES256 proofs); the planner an Ed25519
	// key (EdDSA proofs).
	execPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	execSigner, err := client.NewSigner(execPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, bindingEnvelope(t, f.registrar, executorID, &testKey{signer: execSigner}, proofs.TierExecute, false)); err != nil {
		t.Fatal(err)
	}
	exec := &dpopClient{priv: execPriv, alg: jose.ES256}
	planner := &dpopClient{priv: f.agent.priv, alg: jose.EdDSA}

	base := clock.Now()
	root := &proofs.Delegation{ID: "d-root", Issuer: humanID, Delegate: agentID, RootSubject: humanID, Task: "/tickets",
		Scopes: []string{"tickets:read", "tickets:write"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(base.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(base.Add(time.Hour)), Nonce: "nonce-root-1"}
	hop := &proofs.Delegation{ID: "d-exec", Issuer: agentID, Delegate: executorID, RootSubject: humanID, Parent: "d-root", Task: "/tickets",
		Scopes: []string{"tickets:read", "tickets:write"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(base.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(base.Add(10 * time.Minute)), Nonce: "nonce-exec-1"}
	for _, d := range []struct {
		key *testKey
		d   *proofs.Delegation
	}{{f.human, root}, {f.agent, hop}} {
		a, err := f.log.Append(ctx, signDelegation(t, d.key, d.d))
		if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
			t.Fatalf("delegation %s: %v %+v", d.d.ID, err, a.Decision)
		}
	}

	// Discovery.
	var meta map[string]any
	getJSON(t, srv.URL+AuthServerMetadataPath, &meta)
	if meta["issuer"] != srv.URL || meta["token_endpoint"] != endpoint || meta["jwks_uri"] != srv.URL+JWKSPath {
		t.Fatalf("metadata %v", meta)
	}
	var jwks jose.JSONWebKeySet
	getJSON(t, srv.URL+JWKSPath, &jwks)
	if len(jwks.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want the current one", len(jwks.Keys))
	}
	// The token key is the log's, recorded in its configuration.
	if cfg := f.log.Config(); len(cfg.TokenKeys) != 1 || cfg.TokenKeys[0].ID != jwks.Keys[0].KeyID {
		t.Fatalf("log configuration's token keys %+v, JWKS kid %s", cfg.TokenKeys, jwks.Keys[0].KeyID)
	}

	// The executor exchanges its delegation.
	ok := postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:read"), exec.proof(t, "dpop+jwt", "POST", endpoint, clock.Now()))
	if ok.status != http.StatusOK || ok.TokenType != "DPoP" || ok.IssuedTokenType != TokenTypeAccessToken || ok.Scope != "tickets:read" || ok.ExpiresIn != 300 {
		t.Fatalf("exchange: %d %+v", ok.status, ok)
	}
	if cc := ok.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	claims := verifyAccessToken(t, ok.AccessToken, jwks)
	want := map[string]any{
		"iss": srv.URL, "sub": humanID, "aud": ticketsAPI, "client_id": executorID, "scope": "tickets:read",
		"act": map[string]any{"sub": executorID, "act": map[string]any{"sub": agentID}},
		"cnf": map[string]any{"jkt": exec.thumbprint(t)},
	}
	for k, v := range want {
		got, _ := json.Marshal(claims[k])
		w, _ := json.Marshal(v)
		if string(got) != string(w) {
			t.Errorf("claim %s = %s, want %s", k, got, w)
		}
	}
	iat, exp := int64(claims["iat"].(float64)), int64(claims["exp"].(float64))
	if iat != clock.Now().Unix() || exp != iat+300 || int64(claims["nbf"].(float64)) != iat {
		t.Errorf("iat %d nbf %v exp %d, want %d, %d, +300", iat, claims["nbf"], exp, clock.Now().Unix(), iat)
	}
	wc := claims["warrant"].(map[string]any)
	if wc["origin"] != "test.example/log" || wc["delegation"] != "d-exec" || uint64(wc["issuance_index"].(float64)) != ok.Warrant.Index {
		t.Errorf("warrant claim %v", wc)
	}
	rec := checkTokenEntry(t, f, ok, proofs.OutcomeAccepted)
	if rec.JTI != claims["jti"] || rec.JKT != exec.thumbprint(t) || rec.Requester != executorID || rec.KeyID != jwks.Keys[0].KeyID {
		t.Errorf("record %+v does not match the token", rec)
	}
	if strings.Contains(string(ok.Warrant.Leaf), ok.AccessToken) || strings.Contains(string(ok.Warrant.Leaf), strings.Split(ok.AccessToken, ".")[2]) {
		t.Error("the entry holds the token")
	}

	// The planner (EdDSA) exchanges its own root grant; without scope, the
	// token carries the delegation's.
	pl := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", endpoint, clock.Now()))
	if pl.status != http.StatusOK || pl.Scope != "tickets:read tickets:write" {
		t.Fatalf("planner's exchange: %d %+v", pl.status, pl)
	}
	if c := verifyAccessToken(t, pl.AccessToken, jwks); fmt.Sprint(c["act"]) != fmt.Sprint(map[string]any{"sub": agentID}) {
		t.Errorf("root grant's act %v", c["act"])
	}

	// Refusals: nothing written.
	size := f.log.Checkpoint().Size
	stranger := &dpopClient{priv: newTestKey(t).priv, alg: jose.EdDSA}
	fresh := func(c *dpopClient) string { return c.proof(t, "dpop+jwt", "POST", endpoint, clock.Now()) }
	replayed := fresh(exec)
	postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI), replayed)
	size++ // the first use is an exchange, recorded
	twoResources := exchangeForm("d-exec", ticketsAPI)
	twoResources.Add("resource", "https://other.example")
	wrongGrant := exchangeForm("d-exec", ticketsAPI)
	wrongGrant.Set("grant_type", "client_credentials")
	for _, c := range []struct {
		name   string
		form   url.Values
		dpop   []string
		status int
		err    string
	}{
		{"no DPoP", exchangeForm("d-exec", ticketsAPI), nil, 400, "invalid_dpop_proof"},
		{"two DPoP headers", exchangeForm("d-exec", ticketsAPI), []string{fresh(exec), fresh(exec)}, 400, "invalid_dpop_proof"},
		{"malformed", exchangeForm("d-exec", ticketsAPI), []string{"not.a.jws"}, 400, "invalid_dpop_proof"},
		{"wrong typ", exchangeForm("d-exec", ticketsAPI), []string{exec.proof(t, "JWT", "POST", endpoint, clock.Now())}, 400, "invalid_dpop_proof"},
		{"wrong htm", exchangeForm("d-exec", ticketsAPI), []string{exec.proof(t, "dpop+jwt", "GET", endpoint, clock.Now())}, 400, "invalid_dpop_proof"},
		{"wrong htu", exchangeForm("d-exec", ticketsAPI), []string{exec.proof(t, "dpop+jwt", "POST", srv.URL+"/other", clock.Now())}, 400, "invalid_dpop_proof"},
		{"stale", exchangeForm("d-exec", ticketsAPI), []string{exec.proof(t, "dpop+jwt", "POST", endpoint, clock.Now().Add(-2*time.Minute))}, 400, "invalid_dpop_proof"},
		{"from the future", exchangeForm("d-exec", ticketsAPI), []string{exec.proof(t, "dpop+jwt", "POST", endpoint, clock.Now().Add(time.Minute))}, 400, "invalid_dpop_proof"},
		{"replayed", exchangeForm("d-exec", ticketsAPI), []string{replayed}, 400, "invalid_dpop_proof"},
		{"unregistered key", exchangeForm("d-exec", ticketsAPI), []string{fresh(stranger)}, 400, "invalid_dpop_proof"},
		{"two resources", twoResources, []string{fresh(exec)}, 400, "invalid_target"},
		{"resource not a label", exchangeForm("d-exec", "HTTPS://Tickets"), []string{fresh(exec)}, 400, "invalid_target"},
		{"grant type", wrongGrant, []string{fresh(exec)}, 400, "unsupported_grant_type"},
		{"subject token not an id", exchangeForm("sha256:00", ticketsAPI), []string{fresh(exec)}, 400, "invalid_grant"},
	} {
		a := postToken(t, endpoint, c.form, c.dpop...)
		if a.status != c.status || a.Error != c.err || a.AccessToken != "" {
			t.Errorf("%s: %d %q (%s), want %d %q", c.name, a.status, a.Error, a.Description, c.status, c.err)
		}
		if c.err == "invalid_dpop_proof" && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, a.header.Get("WWW-Authenticate"))
		}
	}
	if got := f.log.Checkpoint().Size; got != size {
		t.Fatalf("refusals wrote entries: size %d, want %d", got, size)
	}

	// Denials: recorded, with the entry in the answer.
	for _, c := range []struct {
		name   string
		form   url.Values
		by     *dpopClient
		err    string
		reason string
	}{
		{"not the delegate", exchangeForm("d-exec", ticketsAPI), planner, "invalid_grant", proofs.ReasonTokenNotDelegate},
		{"unknown delegation", exchangeForm("d-nope", ticketsAPI), exec, "invalid_grant", proofs.ReasonDelegationNotFound},
		{"resource outside destinations", exchangeForm("d-exec", "https://crm.example"), exec, "invalid_target", proofs.ReasonAudienceNotAllowed},
		{"scope widened", exchangeForm("d-exec", ticketsAPI, "tickets:admin"), exec, "invalid_scope", proofs.ReasonScopeWidened},
	} {
		a := postToken(t, endpoint, c.form, fresh(c.by))
		if a.status != 400 || a.Error != c.err || a.Warrant == nil {
			t.Fatalf("%s: %d %q (%s), want 400 %q with its entry", c.name, a.status, a.Error, a.Description, c.err)
		}
		if rec := checkTokenEntry(t, f, a, proofs.OutcomeDenied); rec == nil {
			continue
		}
		leaf, _ := proofs.ParseLeaf(a.Warrant.Leaf)
		if !slices.Contains(leaf.Decision.Reasons, c.reason) {
			t.Errorf("%s: reasons %v, want %s", c.name, leaf.Decision.Reasons, c.reason)
		}
	}

	// Revoking the root grant ends the executor's exchanges.
	rv := &proofs.Revocation{Delegation: "d-root", Issuer: humanID, Reason: "done", IssuedAt: proofs.FormatTime(clock.Now()), Nonce: "revoke-root-1"}
	if _, err := f.log.Append(ctx, signPayload(t, f.human, proofs.PayloadTypeRevocation, rv)); err != nil {
		t.Fatal(err)
	}
	a := postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI), fresh(exec))
	if a.status != 400 || a.Error != "invalid_grant" || !strings.Contains(a.Description, proofs.ReasonDelegationRevoked) {
		t.Fatalf("after revocation: %d %q %s", a.status, a.Error, a.Description)
	}
	// And an expired delegation, by the injected clock.
	clock.Add(2 * time.Hour)
	a = postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI), fresh(exec))
	if a.status != 400 || a.Error != "invalid_grant" || !strings.Contains(a.Description, proofs.ReasonDelegationExpired) {
		t.Fatalf("after expiry: %d %q %s", a.status, a.Error, a.Description)
	}

	// The whole log replays clean, token entries included.
	rep := auditServer(t, f)
	if !rep.Verified || len(rep.Discrepancies) != 0 {
		t.Fatalf("audit: %+v", rep)
	}
	if rep.Entries[proofs.KindToken] != 9 {
		t.Errorf("audit counted %d token entries, want 9", rep.Entries[proofs.KindToken])
	}
}

// verifyAccessToken checks an access token with go-jose against the JWKS
// alone, and returns its claims.
func verifyAccessToken(t *testing.T, token string, jwks jose.JSONWebKeySet) map[string]any {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("ParseSigned: %v", err)
	}
	h := tok.Headers[0]
	if h.ExtraHeaders["typ"] != "at+jwt" {
		t.Errorf("typ %v, want at+jwt", h.ExtraHeaders["typ"])
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS", h.KeyID)
	}
	var claims map[string]any
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("the token does not verify under the JWKS: %v", err)
	}
	return claims
}

// checkTokenEntry verifies the entry in an answer (checkpoint, inclusion)
// and returns its record.
func checkTokenEntry(t *testing.T, f *fixture, a *tokenAnswer, outcome string) *proofs.TokenIssuance {
	t.Helper()
	cp, err := proofs.OpenCheckpoint([]byte(a.Warrant.Checkpoint), f.verifier(t))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := proofs.VerifyInclusion(a.Warrant.Index, cp.Size, proofs.LeafHash(a.Warrant.Leaf), a.Warrant.InclusionProof, cp.Root); err != nil {
		t.Fatalf("inclusion: %v", err)
	}
	leaf, err := proofs.ParseLeaf(a.Warrant.Leaf)
	if err != nil || leaf.Kind != proofs.KindToken || leaf.Decision.Outcome != outcome {
		t.Fatalf("entry %d: %v %+v", a.Warrant.Index, err, leaf)
	}
	return leaf.Token
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestTokenAuditCatchesLies: a log that records a token exchange other
// than the rules decide it, or one whose DPoP key is not the requester's,
// is caught by the audit, which re-derives every token entry.
func TestTokenAuditCatchesLies(t *testing.T) {
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newFixture(t, func(o *Options) { o.Now = clock.Now; o.TokenKey = tokenKey })
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	endpoint := srv.URL + TokenEndpointPath
	base := clock.Now()
	grantTicketsRead(t, f, context.Background(), base)
	planner := &dpopClient{priv: f.agent.priv, alg: jose.EdDSA}
	lie := func(l *proofs.Leaf) {
		if l.Token == nil {
			return
		}
		switch l.Token.Audience {
		case "https://crm.example": // denied audience_not_allowed, recorded as accepted
			l.Decision = &proofs.Decision{Outcome: proofs.OutcomeAccepted, PolicyDigest: l.Decision.PolicyDigest,
				PolicyIDs: l.Decision.PolicyIDs, CedarVersion: l.Decision.CedarVersion}
		case ticketsAPI: // the DPoP key recorded is not the requester's
			rec := *l.Token
			rec.JKT = strings.Repeat("B", 43)
			l.Token = &rec
		}
	}
	f.log.faults.decision.Store(&lie)
	a := postToken(t, endpoint, exchangeForm("d-root", "https://crm.example"), planner.proof(t, "dpop+jwt", "POST", endpoint, clock.Now()))
	if a.Warrant == nil {
		t.Fatalf("no entry: %+v", a)
	}
	wrongKey := a.Warrant.Index + 1
	postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", endpoint, clock.Now()))
	rep := auditServer(t, f)
	got := map[uint64]string{}
	for _, d := range rep.Discrepancies {
		got[d.Index] = d.Reason
	}
	if got[a.Warrant.Index] != proofs.ReasonReplayDecision || got[wrongKey] != proofs.ReasonReplayUnauthentic || len(got) != 2 {
		t.Fatalf("audit discrepancies %+v, want %s at %d and %s at %d", rep.Discrepancies,
			proofs.ReasonReplayDecision, a.Warrant.Index, proofs.ReasonReplayUnauthentic, wrongKey)
	}
}

// TestTokenExchangeRateLimited: exchanges spend the requester's append
// budget; over it, the endpoint answers 429 and writes nothing.
func TestTokenExchangeRateLimited(t *testing.T) {
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newFixture(t, func(o *Options) { o.TokenKey = tokenKey; o.AgentRate, o.AgentBurst = 0.001, 2 })
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	endpoint := srv.URL + TokenEndpointPath
	now := time.Now()
	grantTicketsRead(t, f, context.Background(), now)
	planner := &dpopClient{priv: f.agent.priv, alg: jose.EdDSA}
	var statuses []int
	for range 3 {
		a := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", endpoint, time.Now()))
		statuses = append(statuses, a.status)
	}
	size := f.log.Checkpoint().Size
	if !slices.Equal(statuses, []int{200, 200, 429}) {
		t.Fatalf("statuses %v, want 200 200 429", statuses)
	}
	if a := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", endpoint, time.Now())); a.status != 429 || a.header.Get("Retry-After") == "" || f.log.Checkpoint().Size != size {
		t.Fatalf("over the budget: %d %+v, size %d -> %d", a.status, a, size, f.log.Checkpoint().Size)
	}
}

// TestTokenKeyRotation: after a rotation, the JWKS and the log
// configuration hold the new key and the previous one, tokens signed
// before still verify from the JWKS alone, new tokens carry the new kid,
// and the audit is clean across the change.
func TestTokenKeyRotation(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateTokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, TokenKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token key file: %v %v", fi, err)
	}
	f := &fixture{dir: dir, registrar: newTestKey(t), admin: newTestKey(t), human: newTestKey(t), agent: newTestKey(t)}
	open := func(k *ecdsa.PrivateKey, prev []*proofs.PublicKey) *httptest.Server {
		f.log = openTestLog(t, dir, f.registrar, func(o *Options) { f.withAdmin(o); o.TokenKey, o.PreviousTokenKeys = k, prev })
		return httptest.NewServer(NewHandler(f.log))
	}
	srv := open(k1, nil)
	ctx := context.Background()
	for _, b := range [][]byte{
		bindingEnvelope(t, f.registrar, humanID, f.human, proofs.TierDraft, true),
		bindingEnvelope(t, f.registrar, agentID, f.agent, proofs.TierExecute, false),
	} {
		if _, err := f.log.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	grantTicketsRead(t, f, ctx, now)
	planner := &dpopClient{priv: f.agent.priv, alg: jose.EdDSA}
	exchange := func() string {
		ep := srv.URL + TokenEndpointPath
		a := postToken(t, ep, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", ep, time.Now()))
		if a.status != 200 {
			t.Fatalf("exchange: %d %+v", a.status, a)
		}
		return a.AccessToken
	}
	before := exchange()
	srv.Close()
	f.log.Close()

	old, cur, err := RotateTokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateTokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := LoadPreviousTokenKeys(dir)
	if err != nil || len(prev) != 1 || prev[0].ID != old.ID {
		t.Fatalf("previous keys %v %v, want %s", prev, err, old.ID)
	}
	srv = open(k2, prev)
	defer srv.Close()
	defer f.log.Close()
	var jwks jose.JSONWebKeySet
	getJSON(t, srv.URL+JWKSPath, &jwks)
	if len(jwks.Keys) != 2 || jwks.Keys[0].KeyID != cur.ID || jwks.Keys[1].KeyID != old.ID {
		t.Fatalf("JWKS after rotation: %+v, want %s then %s", jwks.Keys, cur.ID, old.ID)
	}
	if ids := f.log.Config().TokenKeys; len(ids) != 2 {
		t.Fatalf("configuration's token keys after rotation: %+v", ids)
	}
	verifyAccessToken(t, before, jwks) // signed by the previous key
	after := exchange()
	tok, _ := jwt.ParseSigned(after, []jose.SignatureAlgorithm{jose.ES256})
	if tok.Headers[0].KeyID != cur.ID {
		t.Fatalf("new token's kid %s, want %s", tok.Headers[0].KeyID, cur.ID)
	}
	verifyAccessToken(t, after, jwks)
	if rep := auditServer(t, f); !rep.Verified || len(rep.Discrepancies) != 0 || rep.Entries[proofs.KindLogConfig] != 2 || rep.Entries[proofs.KindToken] != 2 {
		t.Fatalf("audit across the rotation: %+v", rep)
	}
}

// TestTokenExchangePeerIdentity: with mutual TLS, only the requester's
// own connection may exchange (the peer identity is set here as
// PeerIdentityFromTLS sets it).
func TestTokenExchangePeerIdentity(t *testing.T) {
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newFixture(t, func(o *Options) { o.TokenKey = tokenKey })
	h := NewHandler(f.log)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(WithPeerIdentity(r.Context(), r.Header.Get("X-Test-Peer"))))
	}))
	defer srv.Close()
	endpoint := srv.URL + TokenEndpointPath
	now := time.Now()
	grantTicketsRead(t, f, WithPeerIdentity(context.Background(), humanID), now)
	planner := &dpopClient{priv: f.agent.priv, alg: jose.EdDSA}
	post := func(peer string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(exchangeForm("d-root", ticketsAPI).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", planner.proof(t, "dpop+jwt", "POST", endpoint, time.Now()))
		req.Header.Set("X-Test-Peer", peer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a tokenAnswer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a.Error
	}
	size := f.log.Checkpoint().Size
	if status, code := post(humanID); status != http.StatusUnauthorized || code != "invalid_client" || f.log.Checkpoint().Size != size {
		t.Fatalf("exchange over another agent's connection: %d %q", status, code)
	}
	if status, code := post(agentID); status != http.StatusOK {
		t.Fatalf("exchange over the requester's connection: %d %q", status, code)
	}
}

// TestTokenExchangeBadProofsSpendAuthBudget: a DPoP proof costs a
// signature check, so an address whose proofs keep failing spends the
// authentication budget an append would, and is then refused before its
// proofs are checked; another address is still served; nothing is written.
func TestTokenExchangeBadProofsSpendAuthBudget(t *testing.T) {
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newFixture(t, func(o *Options) { o.TokenKey = tokenKey; o.AuthFailureRate, o.AuthFailureBurst = 1e-6, 3 })
	// The attacker comes from its own address.
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	endpoint := srv.URL + TokenEndpointPath
	size := f.log.Checkpoint().Size
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	attacker := &dpopClient{priv: stranger, alg: jose.ES256}
	post := func(c *http.Client, proof string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(exchangeForm("d-x", ticketsAPI).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proof)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a tokenAnswer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a.Error
	}
	from := httpFrom("127.0.0.21")
	var got []string
	for range 5 {
		// A proof for another URL: well formed, signed, and wrong.
		code, e := post(from, attacker.proof(t, "dpop+jwt", "POST", "https://elsewhere.example/token", time.Now()))
		got = append(got, fmt.Sprint(code, " ", e))
	}
	want := []string{"400 invalid_dpop_proof", "400 invalid_dpop_proof", "400 invalid_dpop_proof", "429 temporarily_unavailable", "429 temporarily_unavailable"}
	if !slices.Equal(got, want) {
		t.Fatalf("bad proofs from one address: %v, want %v", got, want)
	}
	if code, e := post(httpFrom("127.0.0.22"), attacker.proof(t, "dpop+jwt", "POST", "https://elsewhere.example/token", time.Now())); code != 400 || e != "invalid_dpop_proof" {
		t.Fatalf("another address: %d %s, want its proof checked", code, e)
	}
	if f.log.Checkpoint().Size != size {
		t.Fatal("refused exchanges wrote entries")
	}
}

// TestTokenExchangeReplayWindowFull: while the server remembers as many
// DPoP proofs as it may, a fresh proof is refused as the server's
// capacity (503 temporarily_unavailable, too_many_requests, Retry-After),
// nothing is appended, and the refusals are not counted against the
// address as failed authentications: an honest client at a high rate is
// slowed, never locked out.
func TestTokenExchangeReplayWindowFull(t *testing.T) {
	tokenKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newFixture(t, func(o *Options) {
		o.TokenKey, o.MaxDPoPJTIs = tokenKey, 2
		o.AuthFailureRate, o.AuthFailureBurst = 1e-6, 3
	})
	srv := httptest.NewServer(NewHandler(f.log))
	defer srv.Close()
	endpoint := srv.URL + TokenEndpointPath
	now := time.Now()
	grantTicketsRead(t, f, context.Background(), now)
	planner := &dpopClient{priv: f.agent.priv, alg: jose.EdDSA}
	for i := range 2 {
		if a := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", endpoint, time.Now())); a.status != 200 {
			t.Fatalf("exchange %d: %d %s %s", i, a.status, a.Error, a.Description)
		}
	}
	size := f.log.Checkpoint().Size
	// More refusals than the address's failed-authentication budget (3).
	for i := range 6 {
		a := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", endpoint, time.Now()))
		// Retry when the oldest proof leaves its 70-second window.
		if a.status != http.StatusServiceUnavailable || a.Error != "temporarily_unavailable" || len(a.header.Get("Retry-After")) != 2 ||
			a.header.Get("Retry-After") < "60" || !strings.Contains(a.Description, "replay window") {
			t.Fatalf("exchange %d with the window full: %d %s %q, Retry-After %q", i, a.status, a.Error, a.Description, a.header.Get("Retry-After"))
		}
	}
	if f.log.Checkpoint().Size != size {
		t.Fatal("refused exchanges wrote entries")
	}
	// The address's budget is untouched: a bad proof from it is still
	// checked (400), not refused before checking (429).
	if a := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), planner.proof(t, "dpop+jwt", "POST", "https://elsewhere.example/token", time.Now())); a.status != 400 || a.Error != "invalid_dpop_proof" {
		t.Fatalf("a bad proof after the refusals: %d %s, want 400 invalid_dpop_proof", a.status, a.Error)
	}
	// A stranger's key takes no room in the cache and buys no free
	// signature checks: each of its proofs is refused as an unknown key
	// and charged (the budget had 2 left), then the address is refused
	// before any check.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := &dpopClient{priv: stranger, alg: jose.ES256}
	var got []string
	for range 3 {
		a := postToken(t, endpoint, exchangeForm("d-root", ticketsAPI), s.proof(t, "dpop+jwt", "POST", endpoint, time.Now()))
		got = append(got, fmt.Sprint(a.status, " ", a.Error))
	}
	if want := []string{"400 invalid_dpop_proof", "400 invalid_dpop_proof", "429 temporarily_unavailable"}; !slices.Equal(got, want) {
		t.Fatalf("a stranger's proofs with the cache full: %v, want %v", got, want)
	}
	if n := f.log.tokens.jtis.Len(); n != 2 {
		t.Fatalf("the replay cache holds %d proofs, want the agent's 2", n)
	}
}

// grantTicketsRead appends the root grant d-root: the human hands the
// agent tickets:read on the tickets API for an hour from at.
func grantTicketsRead(t *testing.T, f *fixture, ctx context.Context, at time.Time) {
	t.Helper()
	root := &proofs.Delegation{ID: "d-root", Issuer: humanID, Delegate: agentID, RootSubject: humanID, Task: "/tickets",
		Scopes: []string{"tickets:read"}, Destinations: []string{ticketsAPI},
		NotBefore: proofs.FormatTime(at.Add(-time.Minute)), ExpiresAt: proofs.FormatTime(at.Add(time.Hour)), Nonce: "nonce-root-1"}
	if _, err := f.log.Append(ctx, signDelegation(t, f.human, root)); err != nil {
		t.Fatal(err)
	}
}
