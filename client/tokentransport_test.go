package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
	"github.com/warrantlog/warrant/resource"
)

// shiftClock is real time moved by an offset the test sets.
type shiftClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}
func (c *shiftClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// TestTokenTransport: an http.Client with the transport calls a resource
// server that checks tokens and requires DPoP nonces: the first request
// exchanges the delegation, is asked for a nonce and retried with it (the
// body sent again); later requests reuse the token and the nonce; a token
// near its expiry is replaced.
func TestTokenTransport(t *testing.T) {
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := openLog(t, envOptions{tokenKey: tokenKey})
	logURL := e.serve(t)
	exchanges := new(atomic.Int32)
	counting := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/token") {
			exchanges.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := client.New(logURL, e.verifier, client.WithHTTPClient(counting))
	alice, exec := newAgent(t, "alice", false), newAgent(t, "executor", true)
	mustAppend(t, c, e.bindingEnvelope(t, alice, true))
	mustAppend(t, c, e.bindingEnvelope(t, exec, false))

	// The resource server: POST /tickets needs tickets:write and echoes
	// the body it got.
	clk := &shiftClock{}
	mux := http.NewServeMux()
	rs := httptest.NewServer(mux)
	defer rs.Close()
	v, err := resource.New(resource.Config{Resource: rs.URL, Issuer: logURL, RequireNonce: true, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	calls := new(atomic.Int32)
	mux.Handle("POST /tickets", v.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]string{"body": string(b), "client": resource.FromContext(r.Context()).ClientID})
	}), resource.Rule{Scopes: []string{"tickets:write"}}))

	d := e.rootGrant(t, "d-transport", alice, exec)
	d.Destinations = []string{rs.URL}
	mustAppend(t, c, sign(t, alice, d))

	tt := client.NewTokenTransport(c, exec.signer, d.ID, rs.URL, nil)
	tt.Now = clk.Now
	hc := &http.Client{Transport: tt}
	post := func(body string) map[string]string {
		t.Helper()
		resp, err := hc.Post(rs.URL+"/tickets", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
			t.Fatalf("POST: %s %v", resp.Status, resp.Header)
		}
		return out
	}
	if got := post("ticket 1"); got["body"] != "ticket 1" || got["client"] != exec.id {
		t.Fatalf("first call answered %v", got)
	}
	if exchanges.Load() != 1 || calls.Load() != 1 {
		t.Fatalf("%d exchanges, %d handler calls; want 1 and 1", exchanges.Load(), calls.Load())
	}
	first, err := tt.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	post("ticket 2")
	if exchanges.Load() != 1 {
		t.Fatalf("a second call exchanged again (%d exchanges)", exchanges.Load())
	}
	// Near its expiry (5 minutes), the token is replaced.
	clk.Add(4*time.Minute + 35*time.Second)
	post("ticket 3")
	if exchanges.Load() != 2 {
		t.Fatalf("%d exchanges after the token neared its expiry, want 2", exchanges.Load())
	}
	if second, _ := tt.Token(context.Background()); second == first {
		t.Fatal("the token was not replaced")
	}

	// A delegation that does not reach this resource: the exchange's
	// refusal is the request's error.
	bad := client.NewTokenTransport(c, exec.signer, d.ID, "https://elsewhere.example", nil)
	if _, err := (&http.Client{Transport: bad}).Get(rs.URL + "/tickets"); err == nil || !strings.Contains(err.Error(), "audience_not_allowed") {
		t.Fatalf("exchange for a resource outside the destinations: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTokenTransportDenialHold: once the log denies an exchange (Alice
// revoked the grant), the transport answers the next requests with that
// denial without exchanging again, so two requests leave one denial entry
// in the log, not two; after DenialHold it asks again.
func TestTokenTransportDenialHold(t *testing.T) {
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := openLog(t, envOptions{tokenKey: tokenKey})
	c := client.New(e.serve(t), e.verifier)
	alice, exec := newAgent(t, "alice", false), newAgent(t, "executor", true)
	mustAppend(t, c, e.bindingEnvelope(t, alice, true))
	mustAppend(t, c, e.bindingEnvelope(t, exec, false))
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer rs.Close()
	d := e.rootGrant(t, "d-hold", alice, exec)
	d.Destinations = []string{rs.URL}
	mustAppend(t, c, sign(t, alice, d))
	mustAppend(t, c, revocation(t, alice.signer, d.ID, alice.id))

	clk := &shiftClock{}
	tt := client.NewTokenTransport(c, exec.signer, d.ID, rs.URL, nil)
	tt.Now = clk.Now
	hc := &http.Client{Transport: tt}
	// denials are the token entries the log denied after entry from.
	denials := func(from uint64) int {
		t.Helper()
		size := e.log.Checkpoint().Size
		leaves, err := e.log.Entries(context.Background(), from, int(size-from))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, leaf := range leaves {
			p, err := proofs.ParseLeaf(leaf)
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind == proofs.KindToken && p.Decision.Outcome != proofs.OutcomeAccepted {
				n++
			}
		}
		return n
	}
	from := e.log.Checkpoint().Size
	var errs []error
	for range 2 {
		_, err := hc.Get(rs.URL)
		if proofs.Reason(err) != proofs.ReasonDelegationRevoked {
			t.Fatalf("a request under a revoked grant: %v, want delegation_revoked", err)
		}
		var de *client.ExchangeDenied
		if !errors.As(err, &de) || de.OAuthError != "invalid_grant" {
			t.Fatalf("the error %v is not an ExchangeDenied (invalid_grant)", err)
		}
		errs = append(errs, err)
	}
	if n := denials(from); n != 1 {
		t.Fatalf("two requests after the revocation left %d denial entries, want 1", n)
	}
	if errs[0].Error() != errs[1].Error() {
		t.Fatalf("the second request's error %q is not the denial %q", errs[1], errs[0])
	}
	// Once the denial is DenialHold old, the transport asks again.
	clk.Add(client.DenialHold)
	if _, err := hc.Get(rs.URL); proofs.Reason(err) != proofs.ReasonDelegationRevoked {
		t.Fatalf("a request after the hold: %v", err)
	}
	if n := denials(from); n != 2 {
		t.Fatalf("%d denial entries after the hold ended, want 2", n)
	}
}
