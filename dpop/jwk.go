package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/warrantlog/warrant/proofs"
)

// ParseJWK parses a public JWK for alg: an OKP Ed25519 key for EdDSA, an
// EC P-256 key for ES256. A JWK with private members is refused (RFC 9449
// section 4.3).
func ParseJWK(raw json.RawMessage, alg string) (*proofs.PublicKey, error) {
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
		return nil, fmt.Errorf("alg %q with this key is not accepted (want %s)", alg, strings.Join(Algs, " or "))
	}
	return publicKey(pk)
}

// Thumbprint is the RFC 7638 thumbprint of a public key (Ed25519 or
// P-256): the value of a token's cnf.jkt.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := publicKey(pub)
	if err != nil {
		return "", err
	}
	return proofs.JWKThumbprint(k)
}

func publicKey(pub crypto.PublicKey) (*proofs.PublicKey, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonKeyInvalid, "%v", err)
	}
	return proofs.ParsePublicKeyDER(der)
}
