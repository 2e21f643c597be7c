package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Bounds on a proof.
const (
	// MaxAge is how old a proof's iat may be, MaxAhead how far in the
	// future (clock skew). A jti is remembered for their sum, so a proof
	// is accepted at most once.
	MaxAge   = time.Minute
	MaxAhead = 10 * time.Second
	// MaxBytes bounds a proof.
	MaxBytes = 4 << 10
)

// Algs are the signature algorithms accepted, as metadata and the
// WWW-Authenticate algs parameter list them.
var Algs = []string{"ES256", "EdDSA"}

// AlgsParam is Algs as a WWW-Authenticate parameter value.
const AlgsParam = "ES256 EdDSA"

// Request is what a proof must match.
type Request struct {
	// Method and URL are the HTTP request's (htm, htu).
	Method, URL string
	// AccessToken, when set, must be hashed in the proof's ath claim.
	AccessToken string
	// Nonce, when set, is a check the proof's nonce claim must pass (the
	// server's current nonces); a proof without a passing nonce gets an
	// Error with UseNonce set.
	Nonce func(string) bool
}

// Proof is a verified proof.
type Proof struct {
	// Key is the proof's public key; JKT its RFC 7638 thumbprint.
	Key *proofs.PublicKey
	JKT string
	JTI string
	IAT time.Time
}

// Error is a proof that does not verify. Its text is the
// error_description an answer carries.
type Error struct {
	Description string
	// UseNonce says the proof lacked the server's current nonce: the
	// answer is use_dpop_nonce with a fresh DPoP-Nonce header, which a
	// client retries with (RFC 9449 section 8).
	UseNonce bool
	// Busy says the server's replay cache is full of proofs that could
	// still be replayed, so it could not accept this one (ReplayCache):
	// the refusal is the server's capacity, not the proof's fault. The
	// answer is "temporarily unavailable, retry shortly", and it must not
	// count as a failed authentication.
	Busy bool
	// RetryAfter, with Busy, is how long until the cache forgets its
	// oldest proof.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Description }

func errorf(format string, args ...any) error {
	return &Error{Description: fmt.Sprintf(format, args...)}
}

// Verify checks proof for want at now and records its jti in seen, which
// may be nil only where replay is checked elsewhere (the caller's own
// checks first, then ReplayCache.AddProof). A proof that does not verify
// is an *Error.
func Verify(proof string, want Request, now time.Time, seen *ReplayCache) (*Proof, error) {
	if proof == "" {
		return nil, errorf("a DPoP proof is required")
	}
	if len(proof) > MaxBytes {
		return nil, errorf("the DPoP proof is over %d bytes", MaxBytes)
	}
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, errorf("the DPoP proof is not a compact JWS")
	}
	var hdr struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, errorf("DPoP header: %v", err)
	}
	if hdr.Typ != "dpop+jwt" {
		return nil, errorf("DPoP typ %q, want dpop+jwt", hdr.Typ)
	}
	key, err := ParseJWK(hdr.JWK, hdr.Alg)
	if err != nil {
		return nil, errorf("DPoP jwk: %v", err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, errorf("DPoP signature is not base64url")
	}
	if !VerifyJWS(key.Key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, errorf("the DPoP proof's signature does not verify under its jwk")
	}
	var claims struct {
		JTI   string          `json:"jti"`
		HTM   string          `json:"htm"`
		HTU   string          `json:"htu"`
		IAT   json.RawMessage `json:"iat"`
		ATH   *string         `json:"ath"`
		Nonce *string         `json:"nonce"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, errorf("DPoP claims: %v", err)
	}
	if claims.HTM != want.Method {
		return nil, errorf("DPoP htm %q, want %q", claims.HTM, want.Method)
	}
	if !SameURL(claims.HTU, want.URL) {
		return nil, errorf("DPoP htu %q is not this endpoint's %q", claims.HTU, want.URL)
	}
	var iat int64
	if err := json.Unmarshal(claims.IAT, &iat); err != nil {
		return nil, errorf("DPoP iat is not a number of seconds")
	}
	at := time.Unix(iat, 0)
	if at.Before(now.Add(-MaxAge)) || at.After(now.Add(MaxAhead)) {
		return nil, errorf("DPoP iat %d is outside the accepted window (%v old, %v ahead)", iat, MaxAge, MaxAhead)
	}
	if claims.JTI == "" || len(claims.JTI) > 256 {
		return nil, errorf("DPoP jti missing or over 256 bytes")
	}
	if err := checkATH(claims.ATH, want.AccessToken); err != nil {
		return nil, err
	}
	if want.Nonce != nil && (claims.Nonce == nil || !want.Nonce(*claims.Nonce)) {
		return nil, &Error{Description: "the DPoP proof must carry the server's current nonce", UseNonce: true}
	}
	jkt, err := proofs.JWKThumbprint(key)
	if err != nil {
		return nil, errorf("DPoP jwk: %v", err)
	}
	p := &Proof{Key: key, JKT: jkt, JTI: claims.JTI, IAT: at}
	if seen != nil {
		if err := seen.AddProof(p, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checkATH checks the ath claim: present and equal to the token's hash
// when a token accompanies the proof, absent otherwise.
func checkATH(ath *string, token string) error {
	switch {
	case token == "" && ath != nil:
		return errorf("DPoP ath is set but no access token accompanies the proof")
	case token == "":
		return nil
	case ath == nil:
		return errorf("DPoP ath is missing: a proof presented with an access token must hash it")
	}
	if subtle.ConstantTimeCompare([]byte(*ath), []byte(TokenHash(token))) != 1 {
		return errorf("DPoP ath does not match the access token")
	}
	return nil
}

// TokenHash is the ath of an access token: base64url(SHA-256(token)).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// VerifyJWS verifies a JWS signature: Ed25519 over the signing input, or
// ES256's raw r||s over its SHA-256.
func VerifyJWS(key any, input, sig []byte) bool {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, input, sig)
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		h := sha256.Sum256(input)
		return ecdsa.Verify(k, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	return false
}

// SameURL compares a proof's htu with the endpoint's URL as RFC 9449
// section 4.3 asks: without query and fragment, scheme and host compared
// case-insensitively, a default port the same as none.
func SameURL(got, want string) bool {
	g, err1 := url.Parse(got)
	w, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || g.Opaque != "" || g.User != nil {
		return false
	}
	norm := func(u *url.URL) string {
		host := strings.ToLower(u.Host)
		scheme := strings.ToLower(u.Scheme)
		host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme])
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(g) == norm(w)
}
