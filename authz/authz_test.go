package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrantlog/warrant/authz"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
	"github.com/warrantlog/warrant/resource"
)

const (
	alice    = "spiffe://example.org/human/alice"
	planner  = "spiffe://example.org/agent/planner"
	executor = "spiffe://example.org/agent/executor"
	api      = "https://api.example"
	tickets  = "https://api.example/tickets"
)

// clock is the authz server's injected clock: the wall clock moved by a
// test's offset.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }
func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

// agent is a registered agent's key.
type agent struct {
	id     string
	key    crypto.Signer
	signer *client.Signer
}

func newAgent(t *testing.T, id string, p256 bool) *agent {
	t.Helper()
	var k crypto.Signer
	var err error
	if p256 {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{id: id, key: k, signer: s}
}

// world is a real ledger issuing tokens on loopback, a chain Alice →
// planner → executor, and `warrant authz`'s server on a loopback gRPC
// listener with the generated Envoy client.
type world struct {
	t        *testing.T
	log      *ledger.Log
	url      string
	client   *client.Client
	planner  *agent
	executor *agent
	root     string // Alice → planner
	hop      string // planner → executor
	clock    *clock
	authz    authv3.AuthorizationClient
}

func newWorld(t *testing.T, cfg authz.Config) *world {
	t.Helper()
	ctx := context.Background()
	registrar, human := newAgent(t, "", false), newAgent(t, alice, false)
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir(), Origin: "test.example/authz", AgentRate: -1,
		RegistrarKeys: []*proofs.PublicKey{registrar.signer.Public()}, TokenKey: tokenKey,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(ledger.NewHandler(l))
	t.Cleanup(srv.Close)
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, log: l, url: srv.URL, client: client.New(srv.URL, v, client.WithState(&client.MemoryState{})),
		planner: newAgent(t, planner, false), executor: newAgent(t, executor, true), clock: &clock{}}
	now := time.Now()
	for _, a := range []struct {
		a     *agent
		human bool
	}{{human, true}, {w.planner, false}, {w.executor, false}} {
		env, err := registrar.signer.SignKeyBinding(&proofs.KeyBinding{Agent: a.a.id, PublicKey: a.a.signer.Public().DER, Tier: proofs.TierExecute, Human: a.human}, now)
		if err != nil {
			t.Fatal(err)
		}
		w.append(env)
	}
	root := &proofs.Delegation{Issuer: alice, Delegate: planner, Task: "/tickets", Scopes: []string{"tickets:read", "tickets:write"},
		Destinations: []string{api, api + "/health", tickets}, ExpiresAt: proofs.FormatTime(now.Add(time.Hour))}
	env, err := human.signer.SignDelegation(root, now)
	if err != nil {
		t.Fatal(err)
	}
	w.append(env)
	hop := &proofs.Delegation{Issuer: planner, Delegate: executor, RootSubject: alice, Parent: root.ID, Task: "/tickets",
		Scopes: []string{"tickets:read"}, Destinations: []string{api, api + "/health", tickets}, ExpiresAt: proofs.FormatTime(now.Add(10 * time.Minute))}
	if env, err = w.planner.signer.SignDelegation(hop, now); err != nil {
		t.Fatal(err)
	}
	w.append(env)
	w.root, w.hop = root.ID, hop.ID

	// authz, with the log's JWKS over HTTP, on a loopback gRPC listener.
	if cfg.Verifier, err = resource.New(resource.Config{Issuer: srv.URL, JWKSURL: srv.URL + ledger.JWKSPath,
		Now: w.clock.Now, Skew: -1, MaxProofs: 1 << 10, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	as, err := authz.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, as)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	w.authz = authv3.NewAuthorizationClient(cc)
	return w
}

func (w *world) append(env []byte) {
	w.t.Helper()
	a, err := w.log.Append(context.Background(), env)
	if err != nil || a.Decision.Outcome != proofs.OutcomeAccepted {
		w.t.Fatalf("append: %v %+v", err, a)
	}
}

// token exchanges a delegation for an access token for resource.
func (w *world) token(a *agent, delegation, resource string, scopes ...string) string {
	w.t.Helper()
	tr, err := w.client.ExchangeToken(context.Background(), a.signer, delegation, resource, scopes)
	if err != nil {
		w.t.Fatalf("exchange: %v", err)
	}
	return tr.AccessToken
}

// proof is a's DPoP proof for method and URL with token, at the authz
// server's time.
func (w *world) proof(a *agent, method, u, token string) string {
	w.t.Helper()
	p, err := dpop.NewProof(a.key, method, u, w.clock.Now(), dpop.ProofOptions{AccessToken: token})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// check asks authz about a request as Envoy does, with the headers in
// the headers map (Envoy's default encoding).
func (w *world) check(method, host, path string, headers map[string]string) *authv3.CheckResponse {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := w.authz.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path, Scheme: "https", Headers: headers, Protocol: "HTTP/1.1"},
	}}})
	if err != nil {
		w.t.Fatalf("Check: %v", err)
	}
	return resp
}

func dpopHeaders(token, proof string) map[string]string {
	return map[string]string{"authorization": "DPoP " + token, "dpop": proof, "host": "api.example"}
}

// wantDenied checks a denial's status, gRPC code and challenge.
func wantDenied(t *testing.T, name string, r *authv3.CheckResponse, status int, errCode string) {
	t.Helper()
	d := r.GetDeniedResponse()
	if d == nil {
		t.Errorf("%s: allowed, want %d %s", name, status, errCode)
		return
	}
	if int(d.GetStatus().GetCode()) != status {
		t.Errorf("%s: status %d, want %d (%s)", name, d.GetStatus().GetCode(), status, r.GetStatus().GetMessage())
	}
	want := map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied}[status]
	if codes.Code(r.GetStatus().GetCode()) != want {
		t.Errorf("%s: gRPC status %v, want %v", name, codes.Code(r.GetStatus().GetCode()), want)
	}
	challenge := headerOf(d.GetHeaders(), "www-authenticate")
	if status == 401 || errCode == "insufficient_scope" {
		if !strings.HasPrefix(challenge, "DPoP ") || !strings.Contains(challenge, `algs="ES256 EdDSA"`) {
			t.Errorf("%s: WWW-Authenticate %q", name, challenge)
		}
		if errCode != "" && !strings.Contains(challenge, `error="`+errCode+`"`) {
			t.Errorf("%s: WWW-Authenticate %q, want error %s", name, challenge, errCode)
		}
		if errCode == "" && strings.Contains(challenge, "error=") {
			t.Errorf("%s: a request without credentials gets a bare challenge, not %q", name, challenge)
		}
	}
	if errCode != "" && !strings.Contains(d.GetBody(), `"error":"`+errCode+`"`) {
		t.Errorf("%s: body %s, want error %s", name, d.GetBody(), errCode)
	}
	// Without credentials there is no error to name (RFC 6750 section
	// 3.1): the body omits it, as the resource middleware's does.
	if errCode == "" && strings.Contains(d.GetBody(), `"error"`) {
		t.Errorf("%s: body %s names an empty error", name, d.GetBody())
	}
}

func headerOf(hs []*corev3.HeaderValueOption, name string) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// TestAuthzEnvoy: a real gRPC client (go-control-plane's) asks `warrant
// authz` about requests carrying real tokens of a real ledger. Allowed: a
// fresh proof by the token's key for this method and URL and the route's
// scopes, with the verified client, subject and delegation passed
// upstream; denied, each with its status and RFC 6750/9449 challenge: no
// token, a bearer token, no proof, a token for another audience, an
// expired token (by the injected clock), a proof for another URL or
// method, a replayed proof, a proof by another key, an altered token, a
// missing scope, a path no route covers or not normalized, two tokens,
// a token in the query.
func TestAuthzEnvoy(t *testing.T) {
	w := newWorld(t, authz.Config{AudienceFrom: authz.AudienceFromRoute, Routes: []authz.Route{
		{Prefix: "/tickets", Scopes: []string{"tickets:read"}},
		{Method: "POST", Prefix: "/tickets", Scopes: []string{"tickets:write"}},
		{Prefix: "/health"},
	}})
	tok := w.token(w.executor, w.hop, tickets)
	const u = tickets + "/7"

	ok := w.check("GET", "api.example", "/tickets/7?verbose=1", dpopHeaders(tok, w.proof(w.executor, "GET", u, tok)))
	if ok.GetOkResponse() == nil || codes.Code(ok.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("a good request is denied: %v", ok)
	}
	hs := ok.GetOkResponse().GetHeaders()
	if headerOf(hs, authz.HeaderClientID) != executor || headerOf(hs, authz.HeaderSubject) != alice ||
		headerOf(hs, authz.HeaderDelegation) != w.hop || headerOf(hs, authz.HeaderScope) != "tickets:read" {
		t.Errorf("upstream headers %v", hs)
	}
	for _, h := range hs {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s is appended, not set: a client could supply its own", h.GetHeader().GetKey())
		}
	}
	// A route without scopes needs a valid token, no scope; the same
	// token is for /tickets, so the audience there is wrong.
	health := w.check("GET", "api.example", "/health", dpopHeaders(tok, w.proof(w.executor, "GET", api+"/health", tok)))
	wantDenied(t, "token for /tickets at /health", health, 401, "invalid_token")
	healthTok := w.token(w.executor, w.hop, api+"/health")
	if r := w.check("GET", "api.example", "/health", dpopHeaders(healthTok, w.proof(w.executor, "GET", api+"/health", healthTok))); r.GetOkResponse() == nil {
		t.Errorf("a valid token at a route without scopes is denied: %v", r)
	}

	replayed := w.proof(w.executor, "GET", u, tok)
	if r := w.check("GET", "api.example", "/tickets/7", dpopHeaders(tok, replayed)); r.GetOkResponse() == nil {
		t.Fatalf("first use of a proof denied: %v", r)
	}
	hostTok := w.token(w.executor, w.hop, api)
	altered := []byte(tok)
	altered[len(altered)-3] ^= 'A' ^ 'B'
	plannerTok := w.token(w.planner, w.root, tickets, "tickets:read")
	for _, c := range []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		err     string
	}{
		{"no token", "GET", "/tickets/7", map[string]string{"host": "api.example"}, 401, ""},
		{"bearer scheme", "GET", "/tickets/7", map[string]string{"authorization": "Bearer " + tok}, 401, "invalid_token"},
		{"bearer scheme with a proof", "GET", "/tickets/7", map[string]string{"authorization": "Bearer " + tok, "dpop": w.proof(w.executor, "GET", u, tok)}, 401, "invalid_token"},
		{"no proof", "GET", "/tickets/7", map[string]string{"authorization": "DPoP " + tok}, 401, "invalid_dpop_proof"},
		{"two proofs", "GET", "/tickets/7", map[string]string{"authorization": "DPoP " + tok, "dpop": w.proof(w.executor, "GET", u, tok) + "," + w.proof(w.executor, "GET", u, tok)}, 401, "invalid_dpop_proof"},
		{"two tokens", "GET", "/tickets/7", map[string]string{"authorization": "DPoP " + tok + ",DPoP " + tok, "dpop": w.proof(w.executor, "GET", u, tok)}, 400, "invalid_request"},
		{"token for another audience", "GET", "/tickets/7", dpopHeaders(hostTok, w.proof(w.executor, "GET", u, hostTok)), 401, "invalid_token"},
		{"proof for another URL", "GET", "/tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", tickets+"/8", tok)), 401, "invalid_dpop_proof"},
		{"proof for another host", "GET", "/tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", "https://evil.example/tickets/7", tok)), 401, "invalid_dpop_proof"},
		{"proof for another method", "GET", "/tickets/7", dpopHeaders(tok, w.proof(w.executor, "DELETE", u, tok)), 401, "invalid_dpop_proof"},
		{"proof without ath", "GET", "/tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", u, "")), 401, "invalid_dpop_proof"},
		{"proof hashing another token", "GET", "/tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", u, hostTok)), 401, "invalid_dpop_proof"},
		{"replayed proof", "GET", "/tickets/7", dpopHeaders(tok, replayed), 401, "invalid_dpop_proof"},
		{"proof by another key", "GET", "/tickets/7", dpopHeaders(tok, w.proof(w.planner, "GET", u, tok)), 401, "invalid_token"},
		{"altered token", "GET", "/tickets/7", dpopHeaders(string(altered), w.proof(w.executor, "GET", u, string(altered))), 401, "invalid_token"},
		{"token in the query", "GET", "/tickets/7?access_token=" + tok, dpopHeaders(tok, w.proof(w.executor, "GET", u, tok)), 400, "invalid_request"},
		{"not a JWT", "GET", "/tickets/7", dpopHeaders("abc", w.proof(w.executor, "GET", u, "abc")), 401, "invalid_token"},
		{"missing scope", "POST", "/tickets", dpopHeaders(tok, w.proof(w.executor, "POST", tickets, tok)), 403, "insufficient_scope"},
		{"scope narrowed at exchange", "POST", "/tickets", dpopHeaders(plannerTok, w.proof(w.planner, "POST", tickets, plannerTok)), 403, "insufficient_scope"},
		{"no route", "GET", "/admin", dpopHeaders(tok, w.proof(w.executor, "GET", api+"/admin", tok)), 403, "access_denied"},
		{"prefix is not a path prefix", "GET", "/ticketsx", dpopHeaders(tok, w.proof(w.executor, "GET", api+"/ticketsx", tok)), 403, "access_denied"},
		{"dot segments", "GET", "/health/../tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", api+"/health/../tickets/7", tok)), 400, "invalid_request"},
		{"encoded dot segments", "GET", "/health/%2e%2e/admin", dpopHeaders(tok, w.proof(w.executor, "GET", api+"/health/%2e%2e/admin", tok)), 400, "invalid_request"},
		{"double slash", "GET", "//tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", api+"//tickets/7", tok)), 400, "invalid_request"},
	} {
		wantDenied(t, c.name, w.check(c.method, "api.example", c.path, c.headers), c.status, c.err)
	}
	if r := w.check("POST", "api.example", "/tickets", dpopHeaders(tok, w.proof(w.executor, "POST", tickets, tok))); !strings.Contains(headerOf(r.GetDeniedResponse().GetHeaders(), "www-authenticate"), `scope="tickets:write"`) {
		t.Errorf("insufficient_scope names the scope required: %v", r.GetDeniedResponse().GetHeaders())
	}

	// The token expires (5 minutes by default): the authz clock moves on,
	// the client's proof with it.
	w.clock.set(6 * time.Minute)
	wantDenied(t, "expired token", w.check("GET", "api.example", "/tickets/7", dpopHeaders(tok, w.proof(w.executor, "GET", u, tok))), 401, "invalid_token")
	// And a proof made long before the request is stale.
	stale, err := dpop.NewProof(w.executor.key, "GET", u, time.Now(), dpop.ProofOptions{AccessToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	w.clock.set(2 * time.Minute)
	wantDenied(t, "stale proof", w.check("GET", "api.example", "/tickets/7", dpopHeaders(tok, stale)), 401, "invalid_dpop_proof")
}

// TestAuthzRawHeaders: with Envoy's encode_raw_headers the headers come
// as a list, repeated lines apart; the checks read them the same way.
func TestAuthzRawHeaders(t *testing.T) {
	w := newWorld(t, authz.Config{Audience: tickets, Routes: []authz.Route{{Prefix: "/", Scopes: []string{"tickets:read"}}}})
	tok := w.token(w.executor, w.hop, tickets)
	raw := func(proofs ...string) *authv3.CheckResponse {
		hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("DPoP " + tok)}}}
		for _, p := range proofs {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: "dpop", RawValue: []byte(p)})
		}
		resp, err := w.authz.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "API.example:443", Path: "/tickets", Scheme: "https", HeaderMap: hm},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// The fixed audience holds whatever the host; the URL is compared as
	// RFC 9449 says (case of the host, default port).
	if r := raw(w.proof(w.executor, "GET", tickets, tok)); r.GetOkResponse() == nil {
		t.Fatalf("raw headers: %v", r)
	}
	wantDenied(t, "two DPoP lines", raw(w.proof(w.executor, "GET", tickets, tok), w.proof(w.executor, "GET", tickets, tok)), 401, "invalid_dpop_proof")
}

// TestAuthzConfig: a server is not built without routes or an audience.
func TestAuthzConfig(t *testing.T) {
	v, err := resource.New(resource.Config{Issuer: "https://log.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []authz.Config{
		{Verifier: v, Audience: api},
		{Verifier: v, Routes: []authz.Route{{Prefix: "/"}}},
		{Verifier: v, Routes: []authz.Route{{Prefix: "/"}}, AudienceFrom: "path"},
		{Verifier: v, Routes: []authz.Route{{Prefix: "/"}}, Audience: api, Scheme: "ftp"},
		{Routes: []authz.Route{{Prefix: "/"}}, Audience: api},
	} {
		if _, err := authz.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
