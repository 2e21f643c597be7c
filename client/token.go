package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Token exchange (RFC 8693) at the log's /oauth2/token, with a DPoP proof
// (RFC 9449) made with the delegate's own key: what `warrant token` does.

// TokenResponse is an access token the log issued, with its issuance
// entry verified.
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	// Index is the issuance entry's index; Record its record.
	Index  uint64                `json:"issuance_index"`
	Record *proofs.TokenIssuance `json:"-"`
}

// tokenAnswer is the endpoint's JSON, success or error.
type tokenAnswer struct {
	TokenResponse
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Warrant     *struct {
		Index          uint64   `json:"index"`
		Leaf           []byte   `json:"leaf"`
		Checkpoint     string   `json:"checkpoint"`
		InclusionProof [][]byte `json:"inclusion_proof"`
	} `json:"warrant"`
}

// ExchangeToken exchanges the delegation for an access token for
// resource (scopes nil: the delegation's), proving possession of the
// signer's key, the delegate's key in force. The issuance entry in the answer is verified
// against the log key (checkpoint signature, inclusion, and a record that
// is this exchange's) whether the exchange was accepted or denied. A
// denial is a *proofs.Error with the first recorded reason; a refusal
// (nothing recorded) is proofs.ReasonTokenRefused with the OAuth error.
func (c *Client) ExchangeToken(ctx context.Context, s *Signer, delegation, resource string, scopes []string) (*TokenResponse, error) {
	key := s.key
	endpoint := c.tiles.base + "/oauth2/token"
	proof, err := NewDPoPProof(key, http.MethodPost, endpoint, time.Now())
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {delegation},
		"subject_token_type": {"urn:warrantlog:params:oauth:token-type:delegation-id"},
		"resource":           {resource},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "token endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "token endpoint: %v", err)
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "token endpoint answered %s, not OAuth JSON", resp.Status)
	}
	if a.Warrant == nil {
		if a.Error == "" {
			return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "token endpoint answered %s without an issuance entry", resp.Status)
		}
		return nil, proofs.Errorf(proofs.ReasonTokenRefused, "%s: %s", a.Error, a.Description)
	}
	rec, dec, err := c.verifyIssuance(a.Warrant.Index, a.Warrant.Leaf, []byte(a.Warrant.Checkpoint), a.Warrant.InclusionProof)
	if err != nil {
		return nil, err
	}
	jkt, err := keyThumbprint(key)
	if err != nil {
		return nil, err
	}
	if rec.JKT != jkt || rec.Delegation != delegation || rec.Audience != resource {
		return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "the issuance entry %d records another exchange", a.Warrant.Index)
	}
	if dec.Outcome != proofs.OutcomeAccepted {
		return nil, proofs.Errorf(dec.Reasons[0], "token exchange denied (entry %d): %s (%s)", a.Warrant.Index, strings.Join(dec.Reasons, ", "), a.Error)
	}
	if resp.StatusCode != http.StatusOK || a.AccessToken == "" {
		return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "an accepted issuance (entry %d) answered %s without a token", a.Warrant.Index, resp.Status)
	}
	out := a.TokenResponse
	out.Index, out.Record = a.Warrant.Index, rec
	return &out, nil
}

// verifyIssuance checks a token entry against the log key.
func (c *Client) verifyIssuance(index uint64, leaf, note []byte, hashes [][]byte) (*proofs.TokenIssuance, *proofs.Decision, error) {
	cp, err := c.openCheckpoint(note)
	if err != nil {
		return nil, nil, err
	}
	if err := proofs.VerifyInclusion(index, cp.Size, proofs.LeafHash(leaf), hashes, cp.Root); err != nil {
		return nil, nil, err
	}
	p, err := proofs.ParseLeaf(leaf)
	if err != nil {
		return nil, nil, err
	}
	if p.Kind != proofs.KindToken {
		return nil, nil, proofs.Errorf(proofs.ReasonResponseMismatch, "entry %d is a %s entry, not a token issuance", index, p.Kind)
	}
	return p.Token, p.Decision, nil
}

// NewDPoPProof makes an RFC 9449 DPoP proof for a request with method to
// htu at now, signed with key (Ed25519: EdDSA; ECDSA P-256: ES256), the
// public key in its jwk header.
func NewDPoPProof(key crypto.Signer, method, htu string, now time.Time) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var alg string
	var jwk map[string]string
	switch pk := key.Public().(type) {
	case ed25519.PublicKey:
		alg, jwk = "EdDSA", map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(pk)}
	case *ecdsa.PublicKey:
		raw, err := pk.Bytes()
		if err != nil || len(raw) != 65 {
			return "", proofs.Errorf(proofs.ReasonKeyInvalid, "DPoP keys are Ed25519 or P-256")
		}
		alg, jwk = "ES256", map[string]string{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	default:
		return "", proofs.Errorf(proofs.ReasonKeyInvalid, "DPoP keys are Ed25519 or P-256, not %T", pk)
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
	c, _ := json.Marshal(map[string]any{"jti": b64(jti), "htm": method, "htu": htu, "iat": now.Unix()})
	input := b64(h) + "." + b64(c)
	var sig []byte
	var err error
	if alg == "EdDSA" {
		sig, err = key.Sign(rand.Reader, []byte(input), crypto.Hash(0))
	} else {
		sum := sha256.Sum256([]byte(input))
		var der []byte
		if der, err = key.Sign(rand.Reader, sum[:], crypto.SHA256); err == nil {
			var rs struct{ R, S *big.Int }
			if _, err = asn1.Unmarshal(der, &rs); err == nil {
				sig = make([]byte, 64)
				rs.R.FillBytes(sig[:32])
				rs.S.FillBytes(sig[32:])
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("signing DPoP proof: %w", err)
	}
	return input + "." + b64(sig), nil
}

// keyThumbprint is the RFC 7638 thumbprint of key's public key.
func keyThumbprint(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", proofs.Errorf(proofs.ReasonKeyInvalid, "%v", err)
	}
	pk, err := proofs.ParsePublicKeyDER(bytes.Clone(der))
	if err != nil {
		return "", err
	}
	return proofs.JWKThumbprint(pk)
}
