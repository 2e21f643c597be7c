package resource_test

import (
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
	"github.com/warrantlog/warrant/resource"
)

// introspection is an endpoint that keeps the issuer's introspection
// contract (RFC 7662 with the caller proving its registered key by DPoP,
// htu the endpoint, and a DPoP nonce it asks for first), answering what
// the test sets.
type introspection struct {
	srv    *httptest.Server
	caller string // the thumbprint of the only key it answers
	active atomic.Bool
	down   atomic.Bool
	mu     sync.Mutex
	calls  int
	seen   *dpop.ReplayCache
}

func newIntrospection(t *testing.T, callerJKT string) *introspection {
	in := &introspection{caller: callerJKT, seen: dpop.NewReplayCache(100)}
	in.active.Store(true)
	in.srv = httptest.NewServer(http.HandlerFunc(in.serve))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *introspection) count() int { in.mu.Lock(); defer in.mu.Unlock(); return in.calls }

func (in *introspection) serve(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	in.calls++
	in.mu.Unlock()
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if in.down.Load() {
		fail(500, "server_error")
		return
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("token") == "" {
		fail(400, "invalid_request")
		return
	}
	p, err := dpop.Verify(r.Header.Get("DPoP"), dpop.Request{Method: "POST", URL: in.srv.URL + "/oauth2/introspect", Nonce: func(n string) bool { return n == "n-1" }}, time.Now(), in.seen)
	var de *dpop.Error
	if errors.As(err, &de) && de.UseNonce {
		w.Header().Set("DPoP-Nonce", "n-1")
		fail(400, "use_dpop_nonce")
		return
	}
	if err != nil || p.JKT != in.caller {
		fail(401, "invalid_dpop_proof")
		return
	}
	if !in.active.Load() {
		json.NewEncoder(w).Encode(map[string]bool{"active": false})
		return
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(r.PostForm.Get("token"), ".")[1])
	json.Unmarshal(b, &claims)
	json.NewEncoder(w).Encode(map[string]any{"active": true, "jti": claims.JTI, "token_type": "DPoP"})
}

// TestIntrospection: a high-impact route asks the issuer each time; an
// inactive answer refuses the token, an unanswered one fails closed; the
// client side retries once with the endpoint's nonce and proves the
// resource server's own key.
func TestIntrospection(t *testing.T) {
	is := newIssuer(t)
	jkt, _ := dpop.Thumbprint(is.resource.key.Public())
	in := newIntrospection(t, jkt)
	s := newServer(t, is.url, func(c *resource.Config) {
		c.Introspector = &resource.Introspector{Endpoint: in.srv.URL + "/oauth2/introspect", Key: is.resource.key}
	})
	_, hop := is.chain(t, []string{"tickets:read", "tickets:write"}, []string{"tickets:read", "tickets:write"}, []string{s.url})
	tok := is.token(t, hop, s.url)
	exec := is.executor.key

	if a := s.call(t, exec, "POST", "/tickets/delete", tok); a.status != http.StatusOK {
		t.Fatalf("active token on a high-impact route: %d %s %s", a.status, a.challenge(), a.body)
	}
	if in.count() != 2 {
		t.Fatalf("%d introspection calls, want 2 (one asked for a nonce)", in.count())
	}
	// Routes without the rule do not ask.
	if a := s.call(t, exec, "POST", "/tickets", tok); a.status != http.StatusOK || in.count() != 2 {
		t.Fatalf("ordinary route: %d, %d calls", a.status, in.count())
	}
	// The nonce is kept: the next call needs no retry.
	if a := s.call(t, exec, "POST", "/tickets/delete", tok); a.status != http.StatusOK || in.count() != 3 {
		t.Fatalf("second call: %d, %d calls", a.status, in.count())
	}
	in.active.Store(false)
	wantRefused(t, "inactive token", s.call(t, exec, "POST", "/tickets/delete", tok), 401, "invalid_token")
	in.active.Store(true)
	in.down.Store(true)
	if a := s.call(t, exec, "POST", "/tickets/delete", tok); a.status != http.StatusServiceUnavailable {
		t.Fatalf("introspection down: %d, want 503 (fail closed)", a.status)
	}

	// A resource server whose key the endpoint does not know is refused,
	// and so fails closed.
	other := newServer(t, is.url, func(c *resource.Config) {
		c.Introspector = &resource.Introspector{Endpoint: in.srv.URL + "/oauth2/introspect", Key: is.planner.key}
	})
	in.down.Store(false)
	_, hop2 := is.chain(t, []string{"tickets:write"}, []string{"tickets:write"}, []string{other.url})
	tok2 := is.token(t, hop2, other.url)
	if a := other.call(t, exec, "POST", "/tickets/delete", tok2); a.status != http.StatusServiceUnavailable {
		t.Fatalf("introspection refusing the caller: %d, want 503", a.status)
	}
}

// TestIntrospectionAgainstTheLog: the issuer's own introspection endpoint
// (a real ledger), found through its metadata: a high-impact route passes
// while the chain is in force and refuses the same token as soon as Alice's
// revocation of the planner's grant is appended, long before the token
// expires; ordinary routes, which do not ask, still take it.
func TestIntrospectionAgainstTheLog(t *testing.T) {
	is := newIssuer(t)
	s := newServer(t, is.url, func(c *resource.Config) {
		c.Introspector = &resource.Introspector{Key: is.resource.key}
	})
	root, hop := is.chain(t, []string{"tickets:read", "tickets:write"}, []string{"tickets:read", "tickets:write"}, []string{s.url})
	tok := is.token(t, hop, s.url)
	exec := is.executor.key
	if a := s.call(t, exec, "POST", "/tickets/delete", tok); a.status != http.StatusOK {
		t.Fatalf("in force: %d %s %s", a.status, a.challenge(), a.body)
	}
	is.revoke(t, root)
	wantRefused(t, "after the revocation", s.call(t, exec, "POST", "/tickets/delete", tok), 401, "invalid_token")
	if a := s.call(t, exec, "POST", "/tickets", tok); a.status != http.StatusOK {
		t.Fatalf("a route without introspection: %d %s", a.status, a.challenge())
	}

	// An introspecting key that is no registered agent's is refused by the
	// log, and the route fails closed.
	stranger := newParty(t, "spiffe://example.org/nobody", true)
	s2 := newServer(t, is.url, func(c *resource.Config) {
		c.Introspector = &resource.Introspector{Key: stranger.key}
	})
	_, hop2 := is.chain(t, []string{"tickets:write"}, []string{"tickets:write"}, []string{s2.url})
	if a := s2.call(t, exec, "POST", "/tickets/delete", is.token(t, hop2, s2.url)); a.status != http.StatusServiceUnavailable {
		t.Fatalf("introspection by a stranger: %d, want 503", a.status)
	}
}
