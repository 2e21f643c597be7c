package resource_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
	"github.com/warrantlog/warrant/resource"
)

// The tests run a real issuer: a warrant ledger issuing tokens (what
// `warrant serve --tokens` runs), on loopback, with agents registered and
// delegations appended through the SDK, and tokens exchanged with
// client.ExchangeToken.

const (
	aliceID    = "spiffe://example.org/alice"
	plannerID  = "spiffe://example.org/agent/planner"
	executorID = "spiffe://example.org/agent/executor"
	monitorID  = "spiffe://example.org/service/tickets"
)

// party is a registered agent with its key.
type party struct {
	id     string
	key    crypto.Signer
	signer *client.Signer
}

func newParty(t testing.TB, id string, p256 bool) *party {
	t.Helper()
	var key crypto.Signer
	if p256 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	s, err := client.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return &party{id: id, key: key, signer: s}
}

// issuer is a real warrant ledger issuing tokens, with Alice (a human),
// a planner, an executor and the tickets service (the resource server's
// own agent, for introspection) registered.
type issuer struct {
	url                                string
	c                                  *client.Client
	registrar                          *client.Signer
	alice, planner, executor, resource *party
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	reg := newParty(t, "", false)
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Options{
		Dir:           dir,
		RegistrarKeys: []*proofs.PublicKey{reg.signer.Public()},
		Logger:        slog.New(slog.DiscardHandler),
		TokenKey:      tokenKey,
		Badger: func(o badger.Options) badger.Options {
			return o.WithBlockCacheSize(4 << 20).WithIndexCacheSize(2 << 20).WithValueLogFileSize(16 << 20)
		},
	})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(ledger.NewHandler(l))
	t.Cleanup(srv.Close)
	logKey, err := proofs.ParseVerifierKey(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{
		url:       srv.URL,
		c:         client.New(srv.URL, logKey, client.WithState(client.FileState{Path: filepath.Join(dir, "client", "trusted")})),
		registrar: reg.signer,
		alice:     newParty(t, aliceID, false),
		planner:   newParty(t, plannerID, false),
		executor:  newParty(t, executorID, true),
		resource:  newParty(t, monitorID, true),
	}
	for _, p := range []*party{is.alice, is.planner, is.executor, is.resource} {
		env, err := reg.signer.SignKeyBinding(&proofs.KeyBinding{Agent: p.id, PublicKey: p.signer.Public().DER, Tier: proofs.TierExecute, Human: p == is.alice}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := is.c.Append(ctx, env); err != nil {
			t.Fatalf("registering %s: %v", p.id, err)
		}
	}
	return is
}

// chain appends Alice → planner (scopes, destinations) and planner →
// executor (execScopes) and returns the two delegation ids.
func (is *issuer) chain(t testing.TB, scopes, execScopes, destinations []string) (root, hop string) {
	t.Helper()
	ctx := context.Background()
	exp := proofs.FormatTime(time.Now().Add(time.Hour))
	d1 := &proofs.Delegation{Issuer: aliceID, Delegate: plannerID, Task: "/tickets", Scopes: scopes, Destinations: destinations, ExpiresAt: exp}
	env, err := is.alice.signer.SignDelegation(d1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.c.Append(ctx, env); err != nil {
		t.Fatal(err)
	}
	d2 := &proofs.Delegation{Issuer: plannerID, Delegate: executorID, Parent: d1.ID, RootSubject: aliceID, Task: "/tickets", Scopes: execScopes, Destinations: destinations, ExpiresAt: proofs.FormatTime(time.Now().Add(10 * time.Minute))}
	env, err = is.planner.signer.SignDelegation(d2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e, err := is.c.Append(ctx, env); err != nil || e.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		t.Fatalf("hop: %v %+v", err, e)
	}
	return d1.ID, d2.ID
}

// token exchanges the executor's delegation for a token for aud.
func (is *issuer) token(t testing.TB, delegation, aud string, scopes ...string) string {
	t.Helper()
	tr, err := is.c.ExchangeToken(context.Background(), is.executor.signer, delegation, aud, scopes)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tr.AccessToken
}

// revoke has Alice revoke a delegation.
func (is *issuer) revoke(t testing.TB, delegation string) {
	t.Helper()
	env, err := is.alice.signer.SignRevocation(&proofs.Revocation{Delegation: delegation, Issuer: aliceID, Reason: "test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.c.Append(context.Background(), env); err != nil {
		t.Fatalf("revoking: %v", err)
	}
}

// clock is the resource server's injected clock: real time moved by an
// offset the test sets.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// server is a resource server on loopback: GET /tickets needs
// tickets:read, POST /tickets tickets:write, POST /tickets/delete
// tickets:write and a live answer from introspection. Handlers answer the
// claims they got as JSON.
type server struct {
	url   string
	v     *resource.Verifier
	clock *clock
	// jwksFetches counts the JWKS fetches.
	jwksFetches *counter
}

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) get(path string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[path] }

// countingTransport counts requests by path.
type countingTransport struct{ c *counter }

func (ct countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ct.c.mu.Lock()
	ct.c.n[r.URL.Path]++
	ct.c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func newServer(t testing.TB, issuerURL string, configure func(*resource.Config)) *server {
	t.Helper()
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	s := &server{url: hs.URL, clock: &clock{}, jwksFetches: &counter{n: map[string]int{}}}
	cfg := resource.Config{
		Resource:         hs.URL,
		Issuer:           issuerURL,
		ResourceMetadata: hs.URL + resource.MetadataPath,
		Now:              s.clock.Now,
		HTTPClient:       &http.Client{Transport: countingTransport{s.jwksFetches}},
		Logger:           slog.New(slog.DiscardHandler),
	}
	if configure != nil {
		configure(&cfg)
	}
	v, err := resource.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.v = v
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(resource.FromContext(r.Context()))
	})
	mux.Handle("GET /tickets", v.Protect(echo, resource.Rule{Scopes: []string{"tickets:read"}}))
	mux.Handle("POST /tickets", v.Protect(echo, resource.Rule{Scopes: []string{"tickets:write"}}))
	mux.Handle("POST /tickets/delete", v.Protect(echo, resource.Rule{Scopes: []string{"tickets:write"}, Introspect: true}))
	mux.Handle("GET "+resource.MetadataPath, v.Metadata("tickets", "tickets:read", "tickets:write"))
	return s
}

// answer is a resource server's answer.
type answer struct {
	status int
	header http.Header
	body   string
	claims *resource.Claims
}

// challenge is the answer's WWW-Authenticate.
func (a *answer) challenge() string { return a.header.Get("WWW-Authenticate") }

// do sends a request with the given Authorization and DPoP headers
// (empty: none).
func do(t testing.TB, method, url, authorization string, proofs ...string) *answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := &answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode == http.StatusOK {
		a.claims = new(resource.Claims)
		if err := json.Unmarshal(b, a.claims); err != nil {
			t.Fatalf("claims: %v", err)
		}
	}
	return a
}

// proof makes a DPoP proof with key for method and url at the server's
// time, hashing token.
func (s *server) proof(t testing.TB, key crypto.Signer, method, url, token string) string {
	t.Helper()
	p, err := dpop.NewProof(key, method, url, s.clock.Now(), dpop.ProofOptions{AccessToken: token})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// call presents token with a fresh proof by key.
func (s *server) call(t testing.TB, key crypto.Signer, method, path, token string) *answer {
	t.Helper()
	return do(t, method, s.url+path, "DPoP "+token, s.proof(t, key, method, s.url+path, token))
}

func wantRefused(t testing.TB, name string, a *answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Errorf("%s: status %d, want %d (%s)", name, a.status, status, a.body)
		return
	}
	ch := a.challenge()
	if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `algs="ES256 EdDSA"`) {
		t.Errorf("%s: WWW-Authenticate %q is not a DPoP challenge with algs", name, ch)
	}
	if code != "" && !strings.Contains(ch, `error="`+code+`"`) {
		t.Errorf("%s: WWW-Authenticate %q, want error=%q", name, ch, code)
	}
	if code == "" && strings.Contains(ch, "error=") {
		t.Errorf("%s: WWW-Authenticate %q has an error code, want none", name, ch)
	}
}
