package ledger

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	jose "github.com/go-jose/go-jose/v4"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// tokenProof is a fresh DPoP proof by c for the token endpoint.
func (w *tokenWorld) tokenProof(t *testing.T, c *dpopClient) string {
	t.Helper()
	return c.proof(t, "dpop+jwt", "POST", w.srv.URL+TokenEndpointPath, w.clock.Now())
}

// TestTokenErrorGrantFirst: a grant the requester cannot use is
// invalid_grant even when the resource is outside the destinations too
// (RFC 8693 checks the subject token first).
func TestTokenErrorGrantFirst(t *testing.T) {
	w := newTokenWorld(t)
	endpoint := w.srv.URL + TokenEndpointPath
	// With the grant usable, the resource decides.
	a := postToken(t, endpoint, exchangeForm("d-exec", "https://crm.example"), w.tokenProof(t, w.exec))
	if a.status != 400 || a.Error != "invalid_target" {
		t.Fatalf("resource outside alone: %d %q (%s)", a.status, a.Error, a.Description)
	}
	a = postToken(t, endpoint, exchangeForm("d-exec", "https://crm.example", "tickets:admin"), w.tokenProof(t, w.planner))
	if a.status != 400 || a.Error != "invalid_grant" {
		t.Fatalf("not the delegate, resource outside: %d %q (%s), want invalid_grant", a.status, a.Error, a.Description)
	}
	a = postToken(t, endpoint, exchangeForm("d-nope", "https://crm.example"), w.tokenProof(t, w.exec))
	if a.status != 400 || a.Error != "invalid_grant" {
		t.Fatalf("unknown delegation, resource outside: %d %q (%s)", a.status, a.Error, a.Description)
	}
	rv := &proofs.Revocation{Delegation: "d-root", Issuer: humanID, Reason: "done", IssuedAt: proofs.FormatTime(w.clock.Now()), Nonce: "revoke-root-1"}
	if _, err := w.f.log.Append(context.Background(), signPayload(t, w.f.human, proofs.PayloadTypeRevocation, rv)); err != nil {
		t.Fatal(err)
	}
	a = postToken(t, endpoint, exchangeForm("d-exec", "https://crm.example"), w.tokenProof(t, w.exec))
	if a.status != 400 || a.Error != "invalid_grant" {
		t.Fatalf("revoked chain, resource outside: %d %q (%s), want invalid_grant", a.status, a.Error, a.Description)
	}
}

// setTokenPolicy appends the default policy plus extra as the policy in
// force, signed by the fixture's admin.
func setTokenPolicy(t *testing.T, f *fixture, nonce, extra string) {
	t.Helper()
	upd := &proofs.PolicyUpdate{Text: string(defaultPolicy) + "\n" + extra, IssuedAt: proofs.FormatTime(time.Now()), Nonce: nonce}
	if _, err := f.log.Append(context.Background(), signPayload(t, f.admin, proofs.PayloadTypePolicy, upd)); err != nil {
		t.Fatal(err)
	}
}

// TestTokenPolicyShortensLifetime: a policy that forbids long tokens for
// writing gets the longest rung of the ladder it permits, instead of a
// denial; a policy that permits no rung still denies, at the configured
// lifetime; and the log replays clean (the sequencer decided the
// shortened record itself).
func TestTokenPolicyShortensLifetime(t *testing.T) {
	w := newTokenWorld(t)
	endpoint := w.srv.URL + TokenEndpointPath
	setTokenPolicy(t, w.f, "policy-short-1", `@id("short-write-tokens") @reason("token_too_long")
forbid (principal, action == Action::"issue_token", resource)
when { context.scope_actions.contains("write") && context.lifetime_seconds > 60 };`)
	jwks := func() jose.JSONWebKeySet {
		var k jose.JSONWebKeySet
		getJSON(t, w.srv.URL+JWKSPath, &k)
		return k
	}()

	// Reading: the configured 5 minutes.
	a := postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:read"), w.tokenProof(t, w.exec))
	if a.status != http.StatusOK || a.ExpiresIn != 300 {
		t.Fatalf("read token: %d %q %s, expires_in %d, want 300", a.status, a.Error, a.Description, a.ExpiresIn)
	}
	// Writing: shortened to the 1-minute rung (5m and 2m are refused).
	a = postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:write"), w.tokenProof(t, w.exec))
	if a.status != http.StatusOK || a.ExpiresIn != 60 {
		t.Fatalf("write token: %d %q %s, expires_in %d, want 60", a.status, a.Error, a.Description, a.ExpiresIn)
	}
	claims := verifyAccessToken(t, a.AccessToken, jwks)
	if exp, iat := int64(claims["exp"].(float64)), int64(claims["iat"].(float64)); exp-iat != 60 {
		t.Fatalf("token exp-iat %d, want 60", exp-iat)
	}
	rec := checkTokenEntry(t, w.f, a, proofs.OutcomeAccepted)
	if iat, _ := proofs.ParseTime("issued_at", rec.IssuedAt); rec.ExpiresAt != proofs.FormatTime(iat.Add(time.Minute)) {
		t.Fatalf("recorded expiry %s, issued %s", rec.ExpiresAt, rec.IssuedAt)
	}

	// A policy no rung satisfies (at most 20 s) denies, at the configured
	// lifetime, with the policy's reason.
	setTokenPolicy(t, w.f, "policy-short-2", `@id("very-short-write-tokens") @reason("token_too_long")
forbid (principal, action == Action::"issue_token", resource)
when { context.scope_actions.contains("write") && context.lifetime_seconds > 20 };`)
	a = postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:write"), w.tokenProof(t, w.exec))
	if a.status != 400 || a.Error != "invalid_grant" || !strings.Contains(a.Description, "token_too_long") {
		t.Fatalf("write token under a 20 s policy: %d %q %s", a.status, a.Error, a.Description)
	}
	rec = checkTokenEntry(t, w.f, a, proofs.OutcomeDenied)
	if iat, _ := proofs.ParseTime("issued_at", rec.IssuedAt); rec.ExpiresAt != proofs.FormatTime(iat.Add(5*time.Minute)) {
		t.Fatalf("denied record's expiry %s, issued %s: want the configured lifetime", rec.ExpiresAt, rec.IssuedAt)
	}

	// A limit between rungs gets the rung under it.
	setTokenPolicy(t, w.f, "policy-short-3", `@id("short-write-tokens") @reason("token_too_long")
forbid (principal, action == Action::"issue_token", resource)
when { context.scope_actions.contains("write") && context.lifetime_seconds > 40 };`)
	a = postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:write"), w.tokenProof(t, w.exec))
	if a.status != http.StatusOK || a.ExpiresIn != 30 {
		t.Fatalf("write token under a 40 s policy: %d %q %s, expires_in %d, want 30", a.status, a.Error, a.Description, a.ExpiresIn)
	}

	// The delegation's remaining time bounds every rung: with 90 s left,
	// a limit of 80 s gets the 1-minute rung (5 and 2 minutes are longer
	// than the delegation), a limit of 100 s the 90 s left.
	w.clock.Add(8*time.Minute + 30*time.Second)
	setTokenPolicy(t, w.f, "policy-short-4", `@id("short-write-tokens") @reason("token_too_long")
forbid (principal, action == Action::"issue_token", resource)
when { context.scope_actions.contains("write") && context.lifetime_seconds > 80 };`)
	a = postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:write"), w.tokenProof(t, w.exec))
	if a.status != http.StatusOK || a.ExpiresIn != 60 {
		t.Fatalf("write token, 90 s left, 80 s policy: %d %q %s, expires_in %d, want 60", a.status, a.Error, a.Description, a.ExpiresIn)
	}
	setTokenPolicy(t, w.f, "policy-short-5", `@id("short-write-tokens") @reason("token_too_long")
forbid (principal, action == Action::"issue_token", resource)
when { context.scope_actions.contains("write") && context.lifetime_seconds > 100 };`)
	a = postToken(t, endpoint, exchangeForm("d-exec", ticketsAPI, "tickets:write"), w.tokenProof(t, w.exec))
	if a.status != http.StatusOK || a.ExpiresIn != 90 {
		t.Fatalf("write token, 90 s left, 100 s policy: %d %q %s, expires_in %d, want 90", a.status, a.Error, a.Description, a.ExpiresIn)
	}

	rep := auditServer(t, w.f)
	if !rep.Verified || len(rep.Discrepancies) != 0 {
		t.Fatalf("audit: %+v", rep)
	}
}

// TestTokenEndpointProtocolPoints: a client_id naming another agent than
// the proof's key is refused and writes nothing; GET is 405 with Allow:
// POST; the ExchangeToken RPC's answers, like the endpoint's, are not to
// be cached.
func TestTokenEndpointProtocolPoints(t *testing.T) {
	w := newTokenWorld(t)
	endpoint := w.srv.URL + TokenEndpointPath
	size := w.f.log.Checkpoint().Size
	form := exchangeForm("d-exec", ticketsAPI, "tickets:read")
	form.Set("client_id", agentID)
	a := postToken(t, endpoint, form, w.tokenProof(t, w.exec))
	if a.status != 400 || a.Error != "invalid_request" || a.Warrant != nil || a.AccessToken != "" {
		t.Fatalf("client_id of another agent: %d %q (%s)", a.status, a.Error, a.Description)
	}
	if got := w.f.log.Checkpoint().Size; got != size {
		t.Fatalf("a refused client_id wrote %d entries", got-size)
	}
	form.Set("client_id", executorID)
	if a := postToken(t, endpoint, form, w.tokenProof(t, w.exec)); a.status != http.StatusOK {
		t.Fatalf("client_id of the requester: %d %q (%s)", a.status, a.Error, a.Description)
	}

	resp, err := http.Get(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET %s: %s, Allow %q", TokenEndpointPath, resp.Status, resp.Header.Get("Allow"))
	}

	rpc := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, w.srv.URL)
	htu := w.srv.URL + warrantv1connect.LedgerServiceExchangeTokenProcedure
	scope := "tickets:read"
	call := func(resource string) (http.Header, error) {
		req := connect.NewRequest(&warrantv1.ExchangeTokenRequest{SubjectToken: "d-exec", SubjectTokenType: TokenTypeDelegationID, Resource: resource, Scope: &scope})
		req.Header().Set("DPoP", w.exec.proof(t, "dpop+jwt", "POST", htu, w.clock.Now()))
		resp, err := rpc.ExchangeToken(context.Background(), req)
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("not a Connect error: %v", err)
			}
			return ce.Meta(), err
		}
		return resp.Header(), nil
	}
	for _, c := range []struct {
		name, resource string
		ok             bool
	}{{"accepted", ticketsAPI, true}, {"denied", "https://crm.example", false}} {
		h, err := call(c.resource)
		if (err == nil) != c.ok {
			t.Fatalf("RPC %s: %v", c.name, err)
		}
		if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Errorf("RPC %s: Cache-Control %q, Pragma %q", c.name, h.Get("Cache-Control"), h.Get("Pragma"))
		}
	}
}
