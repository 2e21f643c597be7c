package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// ProofOptions are a proof's optional claims.
type ProofOptions struct {
	// AccessToken, when set, is hashed into the ath claim: a proof sent
	// with a token to a resource server.
	AccessToken string
	// Nonce is the server's DPoP-Nonce, when it gave one.
	Nonce string
}

// NewProof makes a proof for a request with method to url at now, signed
// with key (Ed25519: EdDSA; ECDSA P-256: ES256), its public key in the
// jwk header and a fresh random jti.
func NewProof(key crypto.Signer, method, url string, now time.Time, opts ProofOptions) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var alg string
	var jwk map[string]string
	switch pk := key.Public().(type) {
	case ed25519.PublicKey:
		alg, jwk = "EdDSA", map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(pk)}
	case *ecdsa.PublicKey:
		raw, err := pk.Bytes()
		if err != nil || len(raw) != 65 || pk.Curve.Params().Name != "P-256" {
			return "", proofs.Errorf(proofs.ReasonKeyInvalid, "DPoP keys are Ed25519 or P-256")
		}
		alg, jwk = "ES256", map[string]string{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	default:
		return "", proofs.Errorf(proofs.ReasonKeyInvalid, "DPoP keys are Ed25519 or P-256, not %T", pk)
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := map[string]any{"jti": b64(jti), "htm": method, "htu": url, "iat": now.Unix()}
	if opts.AccessToken != "" {
		claims["ath"] = TokenHash(opts.AccessToken)
	}
	if opts.Nonce != "" {
		claims["nonce"] = opts.Nonce
	}
	h, err := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64(h) + "." + b64(c)
	sig, err := signJWS(key, alg, []byte(input))
	if err != nil {
		return "", fmt.Errorf("signing DPoP proof: %w", err)
	}
	return input + "." + b64(sig), nil
}

// signJWS signs a JWS signing input: Ed25519 directly, ES256 as raw r||s
// over its SHA-256 (RFC 7518 section 3.4), not the DER a crypto.Signer
// returns.
func signJWS(key crypto.Signer, alg string, input []byte) ([]byte, error) {
	if alg == "EdDSA" {
		return key.Sign(rand.Reader, input, crypto.Hash(0))
	}
	sum := sha256.Sum256(input)
	der, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, err
	}
	sig := make([]byte, 64)
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return sig, nil
}
