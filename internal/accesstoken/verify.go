package accesstoken

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// Verifier checks requests that carry access tokens of one issuer.
type Verifier struct {
	// Keys are the issuer's token keys.
	Keys KeySource
	// Issuer is the tokens' required iss (the log's issuer URL).
	Issuer string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// Replay remembers the proofs' jtis, so that each proof is used once.
	Replay *dpop.ReplayCache
}

// Request is what Verify checks: the parts of an HTTP request the
// checks read, and what the route requires.
type Request struct {
	// Method and URL are the request's, as the client sent it: the proof's
	// htm and htu must match them.
	Method, URL string
	// Authorization and DPoP are the values of those headers, one per
	// header line received.
	Authorization, DPoP []string
	// Audience is the resource the token must be for (its aud).
	Audience string
	// Scopes are the scopes the route requires: the token must carry each.
	Scopes []string
}

// Verify checks r: one Authorization header with the DPoP scheme and a
// token that verifies (checkToken), one DPoP proof for this method and URL
// that hashes the token (ath), made by the key the token is bound to and
// not seen before, and the route's scopes in the token. It returns the
// token's claims, a *Failure, or another error when it cannot decide (the
// issuer's keys could not be fetched).
func (v *Verifier) Verify(ctx context.Context, r Request) (*Claims, error) {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	token, f := credentials(r.Authorization)
	if f != nil {
		return nil, f
	}
	if len(r.DPoP) != 1 {
		return nil, fail(http.StatusUnauthorized, ErrorInvalidDPoPProof, "exactly one DPoP header is required with a DPoP-bound token, not %d", len(r.DPoP))
	}
	claims, err := checkToken(ctx, v.Keys, token, v.Issuer, r.Audience, now, v.Leeway)
	if err != nil {
		return nil, err
	}
	proof, err := dpop.Verify(r.DPoP[0], dpop.Request{Method: r.Method, URL: r.URL, AccessToken: token}, now, v.Replay)
	if err != nil {
		var de *dpop.Error
		if errors.As(err, &de) {
			return nil, fail(http.StatusUnauthorized, ErrorInvalidDPoPProof, "%s", de.Description)
		}
		return nil, err
	}
	// RFC 9449 section 7.1: the proof's key must be the token's.
	if subtle.ConstantTimeCompare([]byte(proof.JKT), []byte(claims.JKT)) != 1 {
		return nil, fail(http.StatusUnauthorized, ErrorInvalidToken, "the token is bound to another key than the DPoP proof's")
	}
	for _, s := range r.Scopes {
		if !slices.Contains(claims.Scopes, s) {
			f := fail(http.StatusForbidden, ErrorInsufficientScope, "the token lacks scope %q", s)
			f.Scope = r.Scopes
			return nil, f
		}
	}
	return claims, nil
}

// credentials reads the token of the one Authorization header: none at
// all is a bare challenge; a Bearer token is refused, since warrant's
// tokens are DPoP-bound and a bound token sent as a bearer token is one
// that may have been stolen (RFC 9449 section 7.2).
func credentials(values []string) (string, *Failure) {
	switch len(values) {
	case 0:
		return "", &Failure{Status: http.StatusUnauthorized, Description: "an access token is required"}
	case 1:
	default:
		return "", fail(http.StatusBadRequest, ErrorInvalidRequest, "more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimLeft(token, " ")
	switch {
	case !ok || token == "":
		return "", fail(http.StatusUnauthorized, ErrorInvalidToken, "the Authorization header has no token")
	case strings.EqualFold(scheme, "Bearer"):
		return "", fail(http.StatusUnauthorized, ErrorInvalidToken, "the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof, not as a bearer token")
	case !strings.EqualFold(scheme, "DPoP"):
		return "", fail(http.StatusUnauthorized, ErrorInvalidToken, "the Authorization scheme %q is not DPoP", scheme)
	case strings.ContainsAny(token, " ,"):
		return "", fail(http.StatusBadRequest, ErrorInvalidRequest, "the Authorization header holds more than one token")
	}
	return token, nil
}
