package ledger

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// DPoP proofs (RFC 9449): what the token endpoint checks before it looks
// at the request. A proof is a compact JWS with typ dpop+jwt, signed
// EdDSA (Ed25519) or ES256 (P-256) by the public key in its jwk header,
// for this request's method and URL, made within the iat window, and
// never seen before (its jti). Nothing here knows agents: the caller maps
// the key to a binding.

// DPoP bounds.
const (
	// dpopMaxAge is how old a proof's iat may be, dpopMaxAhead how far in
	// the future (clock skew); a jti is remembered for their sum.
	dpopMaxAge   = time.Minute
	dpopMaxAhead = 10 * time.Second
	// dpopMaxBytes bounds a proof.
	dpopMaxBytes = 4 << 10
)

// dpopAlgs are the signature algorithms accepted, as the metadata and the
// WWW-Authenticate algs parameter list them.
var dpopAlgs = []string{"ES256", "EdDSA"}

// dpopProof is a verified proof: its key and the key's RFC 7638
// thumbprint.
type dpopProof struct {
	Key *proofs.PublicKey
	JKT string
	JTI string
	IAT time.Time
}

// errDPoP is a proof that does not verify; its text is the
// error_description.
type errDPoP struct{ msg string }

func (e *errDPoP) Error() string { return e.msg }

func dpopErr(format string, args ...any) error { return &errDPoP{fmt.Sprintf(format, args...)} }

// verifyDPoP checks proof for a request with method and URL htu at now,
// and records its jti in seen.
func verifyDPoP(proof, method, htu string, now time.Time, seen *jtiCache) (*dpopProof, error) {
	if proof == "" {
		return nil, dpopErr("a DPoP proof is required")
	}
	if len(proof) > dpopMaxBytes {
		return nil, dpopErr("the DPoP proof is over %d bytes", dpopMaxBytes)
	}
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, dpopErr("the DPoP proof is not a compact JWS")
	}
	var hdr struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, dpopErr("DPoP header: %v", err)
	}
	if hdr.Typ != "dpop+jwt" {
		return nil, dpopErr("DPoP typ %q, want dpop+jwt", hdr.Typ)
	}
	key, err := parseJWK(hdr.JWK, hdr.Alg)
	if err != nil {
		return nil, dpopErr("DPoP jwk: %v", err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, dpopErr("DPoP signature is not base64url")
	}
	if !verifyJWS(key.Key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, dpopErr("the DPoP proof's signature does not verify under its jwk")
	}
	var claims struct {
		JTI string          `json:"jti"`
		HTM string          `json:"htm"`
		HTU string          `json:"htu"`
		IAT json.RawMessage `json:"iat"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, dpopErr("DPoP claims: %v", err)
	}
	if claims.HTM != method {
		return nil, dpopErr("DPoP htm %q, want %q", claims.HTM, method)
	}
	if !sameHTU(claims.HTU, htu) {
		return nil, dpopErr("DPoP htu %q is not this endpoint's %q", claims.HTU, htu)
	}
	var iat int64
	if err := json.Unmarshal(claims.IAT, &iat); err != nil {
		return nil, dpopErr("DPoP iat is not a number of seconds")
	}
	at := time.Unix(iat, 0)
	if at.Before(now.Add(-dpopMaxAge)) || at.After(now.Add(dpopMaxAhead)) {
		return nil, dpopErr("DPoP iat %d is outside the accepted window (%v old, %v ahead)", iat, dpopMaxAge, dpopMaxAhead)
	}
	if claims.JTI == "" || len(claims.JTI) > 256 {
		return nil, dpopErr("DPoP jti missing or over 256 bytes")
	}
	jkt, err := proofs.JWKThumbprint(key)
	if err != nil {
		return nil, dpopErr("DPoP jwk: %v", err)
	}
	if err := seen.add(jkt+" "+claims.JTI, at.Add(dpopMaxAge+dpopMaxAhead), now); err != nil {
		return nil, err
	}
	return &dpopProof{Key: key, JKT: jkt, JTI: claims.JTI, IAT: at}, nil
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

// parseJWK parses a public JWK for alg: an OKP Ed25519 key for EdDSA, an
// EC P-256 key for ES256. A JWK with private members is refused (RFC 9449
// section 4.3).
func parseJWK(raw json.RawMessage, alg string) (*proofs.PublicKey, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("missing or not a JSON object")
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := m[private]; ok {
			return nil, errors.New("holds a private key")
		}
	}
	str := func(name string) []byte {
		s, _ := m[name].(string)
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil
		}
		return b
	}
	var pk any
	switch {
	case alg == "EdDSA" && m["kty"] == "OKP" && m["crv"] == "Ed25519":
		x := str("x")
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("an Ed25519 x of the wrong length")
		}
		pk = ed25519.PublicKey(x)
	case alg == "ES256" && m["kty"] == "EC" && m["crv"] == "P-256":
		x, y := str("x"), str("y")
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New("a P-256 coordinate of the wrong length")
		}
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("not a point of P-256")
		}
		pk = k
	default:
		return nil, fmt.Errorf("alg %q with this key is not accepted (want %s)", alg, strings.Join(dpopAlgs, " or "))
	}
	der, err := x509.MarshalPKIXPublicKey(pk)
	if err != nil {
		return nil, err
	}
	return proofs.ParsePublicKeyDER(der)
}

// verifyJWS verifies a JWS signature: Ed25519 over the signing input, or
// ES256's raw r||s over its SHA-256.
func verifyJWS(key any, input, sig []byte) bool {
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

// sameHTU compares a proof's htu with the endpoint's URL as RFC 9449
// section 4.3 asks: without query and fragment, scheme and host compared
// case-insensitively, a default port the same as none.
func sameHTU(got, want string) bool {
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

// jtiCache remembers the DPoP proofs seen while they could still be
// accepted, up to a bound: a proof is accepted once.
type jtiCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // key -> when it can be forgotten
}

func newJTICache(max int) *jtiCache {
	return &jtiCache{max: max, seen: make(map[string]time.Time)}
}

// add records key until until, refusing a key already held, and a new
// one when the cache is full of keys not yet expired.
func (c *jtiCache) add(key string, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.seen[key]; ok && now.Before(t) {
		return dpopErr("the DPoP proof was used before (jti replayed)")
	}
	if len(c.seen) >= c.max {
		for k, t := range c.seen {
			if !now.Before(t) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return dpopErr("too many DPoP proofs in the window; retry with a fresh proof shortly")
		}
	}
	c.seen[key] = until
	return nil
}
