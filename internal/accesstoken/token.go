package accesstoken

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// MaxTokenBytes bounds an access token.
const MaxTokenBytes = 8 << 10

// Claims are a verified access token's claims (RFC 9068 and warrant's).
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
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
	Warrant *WarrantClaim
}

// WarrantClaim is the token's warrant claim.
type WarrantClaim struct {
	Origin          string `json:"origin"`
	Delegation      string `json:"delegation"`
	DelegationIndex uint64 `json:"delegation_index"`
	IssuanceIndex   uint64 `json:"issuance_index"`
}

// tokenError is a token that does not verify: 401 invalid_token.
func tokenError(format string, args ...any) *Failure {
	return fail(401, ErrorInvalidToken, format, args...)
}

// checkToken verifies token's signature under keys, its header (typ
// at+jwt, alg the key's), and its claims at now: iss, aud holding
// audience, exp and nbf with leeway, cnf.jkt present. A token that does
// not verify is a *Failure; an error of keys that is not ErrUnknownKey is
// returned as is (the request cannot be decided).
func checkToken(ctx context.Context, keys KeySource, token, issuer, audience string, now time.Time, leeway time.Duration) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, tokenError("the access token is over %d bytes", MaxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, tokenError("the access token is not a compact JWS")
	}
	var hdr struct {
		Typ  string          `json:"typ"`
		Alg  string          `json:"alg"`
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := decode(parts[0], &hdr); err != nil {
		return nil, tokenError("token header: %v", err)
	}
	// RFC 9068 section 4: typ is at+jwt, or its media type.
	if t := strings.ToLower(hdr.Typ); t != "at+jwt" && t != "application/at+jwt" {
		return nil, tokenError("token typ %q, want at+jwt", hdr.Typ)
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
	if hdr.Alg != key.Alg {
		return nil, tokenError("token alg %q, but key %s signs %s", hdr.Alg, hdr.Kid, key.Alg)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, tokenError("token signature is not base64url")
	}
	if !dpop.VerifyJWS(key.Key.Key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, tokenError("the token's signature does not verify under the issuer's key %s", hdr.Kid)
	}
	var raw struct {
		Iss      string          `json:"iss"`
		Sub      string          `json:"sub"`
		Aud      json.RawMessage `json:"aud"`
		ClientID string          `json:"client_id"`
		Scope    string          `json:"scope"`
		JTI      string          `json:"jti"`
		IAT      *json.Number    `json:"iat"`
		NBF      *json.Number    `json:"nbf"`
		EXP      *json.Number    `json:"exp"`
		Act      json.RawMessage `json:"act"`
		Cnf      struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
		Warrant *WarrantClaim `json:"warrant"`
	}
	if err := decode(parts[1], &raw); err != nil {
		return nil, tokenError("token claims: %v", err)
	}
	c := &Claims{Issuer: raw.Iss, Subject: raw.Sub, ClientID: raw.ClientID, Scopes: strings.Fields(raw.Scope),
		JTI: raw.JTI, JKT: raw.Cnf.JKT, Act: raw.Act, Warrant: raw.Warrant}
	if c.Issuer != issuer {
		return nil, tokenError("token iss %q is not the issuer %q", c.Issuer, issuer)
	}
	if c.Audience, err = audiences(raw.Aud); err != nil {
		return nil, tokenError("token aud: %v", err)
	}
	if !slices.Contains(c.Audience, audience) {
		return nil, tokenError("the token is for %q, not this resource %q", strings.Join(c.Audience, " "), audience)
	}
	if raw.EXP == nil {
		return nil, tokenError("the token has no exp")
	}
	for _, t := range []struct {
		name string
		n    *json.Number
		to   *time.Time
	}{{"exp", raw.EXP, &c.Expiry}, {"nbf", raw.NBF, &c.NotBefore}, {"iat", raw.IAT, &c.IssuedAt}} {
		if t.n == nil {
			continue
		}
		f, err := t.n.Float64()
		if err != nil || math.IsNaN(f) || f < 0 || f > 1<<40 {
			return nil, tokenError("token %s is not a time in seconds", t.name)
		}
		*t.to = time.Unix(int64(f), 0)
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

// audiences reads aud: a string or an array of strings.
func audiences(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("missing")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("neither a string nor an array of strings")
	}
	return many, nil
}

func decode(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	return nil
}
