package ledger

import (
	"context"
	"testing"

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
