package resource

import (
	"context"
	"slices"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Claims are a verified access token's claims (RFC 9068 and warrant's).
type Claims struct {
	// Issuer is iss; Subject is sub, the root subject: the human on whose
	// behalf the delegation chain runs.
	Issuer, Subject string
	// Audience is aud: this resource's URI.
	Audience string
	// ClientID is client_id: the delegate, the agent that exchanged its
	// delegation for the token and holds the key (JKT) it is bound to.
	ClientID string
	// Actor is act (RFC 8693): the delegate, nesting the agent it acts
	// for, up to the root grant's delegate.
	Actor *Actor
	// Scopes are the token's scopes (scope, split on spaces).
	Scopes []string
	// JTI is the token's id; JKT the RFC 7638 thumbprint of the key it is
	// bound to (cnf.jkt), which made this request's DPoP proof.
	JTI, JKT                    string
	IssuedAt, NotBefore, Expiry time.Time
	// Warrant is where the token comes from in the issuer's log.
	Warrant *WarrantClaim
	// Token is the access token itself, as presented.
	Token string
}

// Actor is an RFC 8693 act claim.
type Actor struct {
	Sub string `json:"sub"`
	Act *Actor `json:"act,omitempty"`
}

// Chain is the actors, the delegate first, then the agent it acts for,
// and so on up to the root grant's delegate.
func (a *Actor) Chain() []string {
	var out []string
	for ; a != nil && len(out) <= maxActDepth; a = a.Act {
		out = append(out, a.Sub)
	}
	return out
}

// WarrantClaim is the token's warrant claim: the log it is recorded in
// (origin), the delegation exchanged and its index, and the index of the
// issuance entry. It is the log's own type.
type WarrantClaim = proofs.TokenWarrantClaim

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

type claimsKey struct{}

// FromContext returns the claims Protect verified for the request whose
// context ctx is, or nil.
func FromContext(ctx context.Context) *Claims {
	c, _ := ctx.Value(claimsKey{}).(*Claims)
	return c
}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}
