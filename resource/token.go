package resource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// Bounds on a token.
const (
	// MaxTokenBytes bounds an access token: a warrant token is well under
	// 2 KiB even with a deep act chain.
	MaxTokenBytes = 8 << 10
	maxActDepth   = 64
)

// tokenHeader is the JOSE header of an access token.
type tokenHeader struct {
	Typ  string   `json:"typ"`
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Crit []string `json:"crit"`
}

// tokenClaims is the JSON of the claims, before their checks.
type tokenClaims struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	ClientID string          `json:"client_id"`
	Act      *Actor          `json:"act"`
	Scope    string          `json:"scope"`
	JTI      string          `json:"jti"`
	IAT      *int64          `json:"iat"`
	NBF      *int64          `json:"nbf"`
	EXP      *int64          `json:"exp"`
	Cnf      *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
	Warrant *WarrantClaim `json:"warrant"`
}

// verifyToken checks an access token's signature against the issuer's
// keys and its claims at now, its aud audience; the DPoP proof is checked by the caller.
// Every refusal is an invalid_token Error.
func (v *Verifier) verifyToken(ctx context.Context, token, audience string, now time.Time) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, invalidToken("the access token is over %d bytes", MaxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, invalidToken("the access token is not a compact JWS")
	}
	var h tokenHeader
	if err := decodeSegment(parts[0], &h); err != nil {
		return nil, invalidToken("token header: %v", err)
	}
	// RFC 9068 section 4: typ at+jwt (or its media type); the alg is the
	// one the issuer signs with, never what the token says it may be (no
	// none, no HMAC keyed with the public key).
	if t := strings.ToLower(h.Typ); t != "at+jwt" && t != "application/at+jwt" {
		return nil, invalidToken("token typ %q, want at+jwt", h.Typ)
	}
	if h.Alg != "ES256" {
		return nil, invalidToken("token alg %q, want ES256", h.Alg)
	}
	if len(h.Crit) > 0 {
		return nil, invalidToken("token header has critical extensions %v", h.Crit)
	}
	if h.Kid == "" {
		return nil, invalidToken("token header has no kid")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, invalidToken("token signature is not base64url")
	}
	key, err := v.keys.lookup(ctx, h.Kid, now)
	if err != nil {
		return nil, err
	}
	if !dpop.VerifyJWS(key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, invalidToken("the token's signature does not verify under key %s", h.Kid)
	}
	var c tokenClaims
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, invalidToken("token claims: %v", err)
	}
	return v.checkClaims(&c, token, audience, now)
}

// checkClaims checks a signed token's claims at now, for audience.
func (v *Verifier) checkClaims(c *tokenClaims, token, audience string, now time.Time) (*Claims, error) {
	if c.Iss != v.cfg.Issuer {
		return nil, invalidToken("token iss %q is not the issuer %q", c.Iss, v.cfg.Issuer)
	}
	aud, err := singleAudience(c.Aud)
	if err != nil {
		return nil, err
	}
	if aud != audience {
		return nil, invalidToken("token aud %q is not this resource %q", aud, audience)
	}
	if c.EXP == nil || c.IAT == nil {
		return nil, invalidToken("token exp and iat are required")
	}
	exp, iat := time.Unix(*c.EXP, 0), time.Unix(*c.IAT, 0)
	skew := v.cfg.Skew
	if !now.Before(exp.Add(skew)) {
		return nil, invalidToken("the token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if iat.After(now.Add(skew)) {
		return nil, invalidToken("the token's iat %s is in the future", iat.UTC().Format(time.RFC3339))
	}
	nbf := iat
	if c.NBF != nil {
		nbf = time.Unix(*c.NBF, 0)
		if nbf.After(now.Add(skew)) {
			return nil, invalidToken("the token is not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	if c.Cnf == nil || c.Cnf.JKT == "" {
		return nil, invalidToken("the token is not bound to a key (cnf.jkt): only DPoP-bound tokens are accepted")
	}
	if c.Sub == "" || c.ClientID == "" || c.JTI == "" {
		return nil, invalidToken("token sub, client_id and jti are required")
	}
	if len(c.Act.Chain()) > maxActDepth {
		return nil, invalidToken("token act nests over %d actors", maxActDepth)
	}
	return &Claims{
		Issuer: c.Iss, Subject: c.Sub, Audience: aud, ClientID: c.ClientID, Actor: c.Act,
		Scopes: strings.Fields(c.Scope), JTI: c.JTI, JKT: c.Cnf.JKT,
		IssuedAt: iat, NotBefore: nbf, Expiry: exp, Warrant: c.Warrant, Token: token,
	}, nil
}

// singleAudience is aud: a string, or an array of exactly one (a token for
// several audiences could be replayed by one of them to another).
func singleAudience(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, nil
	}
	var a []string
	if json.Unmarshal(raw, &a) == nil && len(a) == 1 && a[0] != "" {
		return a[0], nil
	}
	return "", invalidToken("token aud must name exactly one resource")
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errNotBase64
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errNotJSON
	}
	return nil
}
