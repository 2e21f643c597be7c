package proofs

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
)

// Access tokens (RFC 9068) as the log signs them at its token endpoint:
// what introspection, `warrant token inspect` and resource servers (package
// resource) read, with this one parser.

// MaxAccessTokenBytes bounds an access token read; the log's are well
// under 2 KiB.
const MaxAccessTokenBytes = 8 << 10

// AccessTokenClaims are the claims of an access token the log signs (see
// docs/formats.md), as introspection and token inspection read them.
type AccessTokenClaims struct {
	Iss      string            `json:"iss"`
	Sub      string            `json:"sub"`
	Aud      string            `json:"aud"`
	ClientID string            `json:"client_id"`
	Act      json.RawMessage   `json:"act,omitempty"`
	Scope    string            `json:"scope,omitempty"`
	Iat      int64             `json:"iat"`
	Nbf      int64             `json:"nbf"`
	Exp      int64             `json:"exp"`
	JTI      string            `json:"jti"`
	Cnf      TokenConfirmation `json:"cnf"`
	Warrant  TokenWarrantClaim `json:"warrant"`
}

// TokenConfirmation is the cnf claim (RFC 7800): the thumbprint of the
// key a token is bound to (RFC 9449 section 6.1).
type TokenConfirmation struct {
	JKT string `json:"jkt"`
}

// TokenWarrantClaim is an access token's warrant claim: where its
// issuance is in the log.
type TokenWarrantClaim struct {
	Origin          string `json:"origin"`
	Delegation      string `json:"delegation"`
	DelegationIndex uint64 `json:"delegation_index"`
	IssuanceIndex   uint64 `json:"issuance_index"`
}

// ParseAccessToken verifies token's ES256 signature under the one of keys
// its kid names and returns its claims. It checks the JWS, not the claims'
// times or the log.
func ParseAccessToken(token string, keys []*PublicKey) (*AccessTokenClaims, *PublicKey, error) {
	return ParseAccessTokenFunc(token, func(kid string) (*PublicKey, error) {
		for _, k := range keys {
			if k.ID == kid {
				return k, nil
			}
		}
		return nil, Errorf(ReasonSignatureKeyUnknown, "kid %q is not a token key of this log", kid)
	})
}

// ParseAccessTokenFunc is ParseAccessToken with the key found by keyFor,
// called with the token's kid once the JWS is well formed: a resource
// server's cache of the issuer's JWKS, which fetches it again on a kid it
// does not hold. An error of keyFor is returned as is.
//
// The header must say typ at+jwt (or its media type, RFC 9068 section 4),
// alg ES256 (whatever else it says: no none, no HMAC keyed with the public
// key), a kid, and no crit: the log signs no critical extension, and one
// not understood must be refused (RFC 7515 section 4.1.11). The claims
// must be a JSON object of AccessTokenClaims' shape: aud one string (a
// token for several audiences could be replayed by one to another), the
// times integers.
func ParseAccessTokenFunc(token string, keyFor func(kid string) (*PublicKey, error)) (*AccessTokenClaims, *PublicKey, error) {
	parts := strings.Split(token, ".")
	if len(token) > MaxAccessTokenBytes || len(parts) != 3 {
		return nil, nil, Errorf(ReasonPayloadMalformed, "not a compact JWS of at most %d bytes", MaxAccessTokenBytes)
	}
	dec := base64.RawURLEncoding.Strict().DecodeString
	h, err1 := dec(parts[0])
	c, err2 := dec(parts[1])
	sig, err3 := dec(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, nil, Errorf(ReasonPayloadMalformed, "a JWS segment is not base64url")
	}
	var hdr struct {
		Typ, Alg, Kid string
		Crit          json.RawMessage
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return nil, nil, Errorf(ReasonPayloadMalformed, "the JWS header is not a JSON object")
	}
	if t := strings.ToLower(hdr.Typ); (t != "at+jwt" && t != "application/at+jwt") || hdr.Alg != "ES256" {
		return nil, nil, Errorf(ReasonPayloadMalformed, "typ %q alg %q, want at+jwt ES256", hdr.Typ, hdr.Alg)
	}
	if hdr.Crit != nil {
		return nil, nil, Errorf(ReasonPayloadMalformed, "the JWS header has critical extensions (crit)")
	}
	if hdr.Kid == "" {
		return nil, nil, Errorf(ReasonPayloadMalformed, "the JWS header has no kid")
	}
	key, err := keyFor(hdr.Kid)
	if err != nil {
		return nil, nil, err
	}
	if key == nil {
		return nil, nil, Errorf(ReasonSignatureKeyUnknown, "no token key has kid %q", hdr.Kid)
	}
	if !verifyES256(key.Key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, nil, Errorf(ReasonSignatureInvalid, "the token's signature does not verify under key %s", hdr.Kid)
	}
	var claims AccessTokenClaims
	if err := json.Unmarshal(c, &claims); err != nil {
		return nil, nil, Errorf(ReasonPayloadMalformed, "the token's claims are not a JSON object of the expected shape")
	}
	return &claims, key, nil
}

// verifyES256 verifies a JWS ES256 signature (raw r||s over the SHA-256
// of input) under an ECDSA P-256 key.
func verifyES256(key any, input, sig []byte) bool {
	k, ok := key.(*ecdsa.PublicKey)
	if !ok || len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(input)
	return ecdsa.Verify(k, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}
