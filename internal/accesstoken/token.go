package accesstoken

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Claims are a verified access token's claims (RFC 9068 and warrant's).
type Claims struct {
	Issuer   string
	Subject  string
	Audience string
	ClientID string
	Scopes   []string
	JTI      string
	// JKT is cnf.jkt: the RFC 7638 thumbprint of the key the token is
	// bound to.
	JKT                         string
	IssuedAt, NotBefore, Expiry time.Time
	// Act is the RFC 8693 actor claim as the token carries it.
	Act json.RawMessage
	// Warrant is the log's claim: where the issuance is recorded.
	Warrant proofs.TokenWarrantClaim
}

// tokenError is a token that does not verify: 401 invalid_token.
func tokenError(format string, args ...any) *Failure {
	return fail(401, ErrorInvalidToken, format, args...)
}

// checkToken verifies token as the log signs them (proofs.ParseAccessToken:
// typ at+jwt, ES256 under the key its kid names) with the key keys holds
// for its kid, and its claims at now: iss, aud the audience, exp and nbf
// with leeway, cnf.jkt present. A token that does not verify is a
// *Failure; an error of keys that is not ErrUnknownKey is returned as is
// (the request cannot be decided).
func checkToken(ctx context.Context, keys KeySource, token, issuer, audience string, now time.Time, leeway time.Duration) (*Claims, error) {
	if len(token) > proofs.MaxAccessTokenBytes {
		return nil, tokenError("the access token is over %d bytes", proofs.MaxAccessTokenBytes)
	}
	// The kid picks the key to fetch; the header is read again, and the
	// signature checked, by proofs.ParseAccessToken.
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return nil, tokenError("the access token is not a compact JWS")
	}
	var hdr struct {
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := decode(head, &hdr); err != nil {
		return nil, tokenError("token header: %v", err)
	}
	if hdr.Crit != nil {
		return nil, tokenError("token header has crit extensions this server does not know")
	}
	if hdr.Kid == "" {
		return nil, tokenError("token header has no kid")
	}
	key, err := keys.Key(ctx, hdr.Kid)
	if errors.Is(err, ErrUnknownKey) {
		return nil, tokenError("no token key of the issuer has kid %q", hdr.Kid)
	}
	if err != nil {
		return nil, err
	}
	if key.Alg != "ES256" {
		return nil, tokenError("key %s signs %s; the log signs its tokens ES256", hdr.Kid, key.Alg)
	}
	raw, _, err := proofs.ParseAccessToken(token, []*proofs.PublicKey{key.Key})
	if err != nil {
		return nil, tokenError("%v", err)
	}
	c := &Claims{Issuer: raw.Iss, Subject: raw.Sub, Audience: raw.Aud, ClientID: raw.ClientID, Scopes: strings.Fields(raw.Scope),
		JTI: raw.JTI, JKT: raw.Cnf.JKT, Act: raw.Act, Warrant: raw.Warrant,
		IssuedAt: time.Unix(raw.Iat, 0), Expiry: time.Unix(raw.Exp, 0)}
	if raw.Nbf != 0 {
		c.NotBefore = time.Unix(raw.Nbf, 0)
	}
	if c.Issuer != issuer {
		return nil, tokenError("token iss %q is not the issuer %q", c.Issuer, issuer)
	}
	if c.Audience != audience {
		return nil, tokenError("the token is for %q, not this resource %q", c.Audience, audience)
	}
	if raw.Exp == 0 {
		return nil, tokenError("the token has no exp")
	}
	if !now.Before(c.Expiry.Add(leeway)) {
		return nil, tokenError("the token expired at %s", c.Expiry.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(leeway).Before(c.NotBefore) {
		return nil, tokenError("the token is not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if c.JKT == "" {
		return nil, tokenError("the token has no cnf.jkt: it is not bound to a DPoP key")
	}
	return c, nil
}

func decode(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	return nil
}
