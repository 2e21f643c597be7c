package resource

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Bounds on a token.
const (
	// MaxTokenBytes bounds an access token: a warrant token is well under
	// 2 KiB even with a deep act chain.
	MaxTokenBytes = proofs.MaxAccessTokenBytes
	maxActDepth   = 64
)

// verifyToken checks an access token's signature against the issuer's
// keys and its claims at now, its aud audience; the DPoP proof is checked
// by the caller. The JWS is read by proofs.ParseAccessTokenFunc, the
// parser the log's own introspection and `warrant token inspect` use.
// Every refusal is an invalid_token Error, but for the issuer's keys
// being unavailable (503).
func (v *Verifier) verifyToken(ctx context.Context, token, audience string, now time.Time) (*Claims, error) {
	raw, _, err := proofs.ParseAccessTokenFunc(token, func(kid string) (*proofs.PublicKey, error) {
		return v.keys.lookup(ctx, kid, now)
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, invalidToken("%v", err)
	}
	return v.checkClaims(raw, token, audience, now)
}

// checkClaims checks a signed token's claims at now, for audience.
func (v *Verifier) checkClaims(c *proofs.AccessTokenClaims, token, audience string, now time.Time) (*Claims, error) {
	if c.Iss != v.cfg.Issuer {
		return nil, invalidToken("token iss %q is not the issuer %q", c.Iss, v.cfg.Issuer)
	}
	if c.Aud == "" {
		return nil, invalidToken("token aud must name exactly one resource")
	}
	if c.Aud != audience {
		return nil, invalidToken("token aud %q is not this resource %q", c.Aud, audience)
	}
	if c.Exp == 0 || c.Iat == 0 {
		return nil, invalidToken("token exp and iat are required")
	}
	exp, iat := time.Unix(c.Exp, 0), time.Unix(c.Iat, 0)
	skew := v.cfg.Skew
	if !now.Before(exp.Add(skew)) {
		return nil, invalidToken("the token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if iat.After(now.Add(skew)) {
		return nil, invalidToken("the token's iat %s is in the future", iat.UTC().Format(time.RFC3339))
	}
	nbf := iat
	if c.Nbf != 0 {
		nbf = time.Unix(c.Nbf, 0)
		if nbf.After(now.Add(skew)) {
			return nil, invalidToken("the token is not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	if c.Cnf.JKT == "" {
		return nil, invalidToken("the token is not bound to a key (cnf.jkt): only DPoP-bound tokens are accepted")
	}
	if c.Sub == "" || c.ClientID == "" || c.JTI == "" {
		return nil, invalidToken("token sub, client_id and jti are required")
	}
	var act *Actor
	if len(c.Act) > 0 {
		if err := json.Unmarshal(c.Act, &act); err != nil {
			return nil, invalidToken("token act is not an RFC 8693 actor claim")
		}
	}
	if len(act.Chain()) > maxActDepth {
		return nil, invalidToken("token act nests over %d actors", maxActDepth)
	}
	var w *WarrantClaim
	if c.Warrant != (WarrantClaim{}) {
		w = &c.Warrant
	}
	return &Claims{
		Issuer: c.Iss, Subject: c.Sub, Audience: c.Aud, ClientID: c.ClientID, Actor: act,
		Scopes: strings.Fields(c.Scope), JTI: c.JTI, JKT: c.Cnf.JKT,
		IssuedAt: iat, NotBefore: nbf, Expiry: exp, Warrant: w, Token: token,
	}, nil
}
