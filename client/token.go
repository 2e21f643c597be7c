package client

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrantlog/warrant/dpop"
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
	// Entry is the issuance entry, proven against a checkpoint the client
	// trusts: under a witness policy, one that satisfies it.
	Entry *Entry `json:"-"`
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
// denial is an *ExchangeDenied, wrapping a *proofs.Error with the first
// recorded reason; a refusal
// (nothing recorded) is proofs.ReasonTokenRefused with the OAuth error.
//
// Under a witness policy, an answer whose checkpoint lacks the quorum
// (asynchronous witnessing) is verified under the log key, and the
// issuance entry is then proven against a witnessed checkpoint covering
// it, waiting as Append does (WithWitnessWait), which becomes the trusted
// state. When none comes in time, the error is an *UnwitnessedError (the
// entry is in the log all the same); for an accepted exchange the token is
// returned with it, the caller deciding whether to use a token whose
// issuance no witness has seen yet.
func (c *Client) ExchangeToken(ctx context.Context, s *Signer, delegation, resource string, scopes []string) (*TokenResponse, error) {
	endpoint := c.tiles.base + "/oauth2/token"
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {delegation},
		"subject_token_type": {"urn:warrantlog:params:oauth:token-type:delegation-id"},
		"resource":           {resource},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	floor, err := c.trustedSize()
	if err != nil {
		return nil, err
	}
	resp, body, err := c.postDPoP(ctx, s.key, endpoint, form)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "the server does not issue tokens (%s answered %s; start it with warrant serve --tokens)", endpoint, resp.Status)
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
	e, witnessed, err := c.verifyIssuance(a.Warrant.Index, a.Warrant.Leaf, []byte(a.Warrant.Checkpoint), a.Warrant.InclusionProof)
	if err != nil {
		return nil, err
	}
	rec, dec := e.Leaf.Token, e.Leaf.Decision
	jkt, err := keyThumbprint(s.key)
	if err != nil {
		return nil, err
	}
	if rec.JKT != jkt || rec.Delegation != delegation || rec.Audience != resource {
		return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "the issuance entry %d records another exchange", a.Warrant.Index)
	}
	if dec.Outcome == proofs.OutcomeAccepted && (resp.StatusCode != http.StatusOK || a.AccessToken == "") {
		return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "an accepted issuance (entry %d) answered %s without a token", a.Warrant.Index, resp.Status)
	}
	// Under a witness policy, an entry answered with a checkpoint without
	// the quorum is proven against a witnessed one (witnessed.go).
	var unwitnessedErr error
	if !witnessed {
		we, err := c.witnessedReceipt(ctx, e, floor, c.witnessWait)
		switch {
		case err == nil:
			e = we
		case waitFailed(err):
			unwitnessedErr = unwitnessed(e, c.witnessWait, err)
		default:
			return nil, err
		}
	}
	if dec.Outcome != proofs.OutcomeAccepted {
		if unwitnessedErr != nil {
			return nil, unwitnessedErr
		}
		return nil, &ExchangeDenied{Index: a.Warrant.Index, OAuthError: a.Error,
			Err: proofs.Errorf(dec.Reasons[0], "token exchange denied (entry %d): %s (%s)", a.Warrant.Index, strings.Join(dec.Reasons, ", "), a.Error)}
	}
	out := a.TokenResponse
	out.Index, out.Record, out.Entry = a.Warrant.Index, rec, e
	return &out, unwitnessedErr
}

// ExchangeDenied is the error of an exchange the log denied and recorded
// (entry Index): a decision on the delegation, not a failure to reach the
// log, which asking again at once would only record again. Its reason
// code is Err's (proofs.Reason).
type ExchangeDenied struct {
	Index uint64
	// OAuthError is the token endpoint's error: invalid_grant,
	// invalid_target or invalid_scope (proofs.TokenErrorCode).
	OAuthError string
	Err        *proofs.Error
}

func (e *ExchangeDenied) Error() string { return e.Err.Error() }
func (e *ExchangeDenied) Unwrap() error { return e.Err }

// postDPoP posts form to endpoint with a DPoP proof made with key, and
// reads the answer. A server that demands nonces (RFC 9449 section 8)
// answers use_dpop_nonce with a DPoP-Nonce header: the request is made
// again, once, with a proof carrying it. The latest nonce the server gave
// is kept for the next request, which then needs one round trip.
//
// With several servers (servers.go) the request goes to each in turn as
// any other does, with a proof made for the URL it is sent to.
func (c *Client) postDPoP(ctx context.Context, key crypto.Signer, endpoint string, form url.Values) (*http.Response, []byte, error) {
	rest, ok := strings.CutPrefix(endpoint, c.tiles.base)
	if c.servers == nil || !ok {
		return c.postDPoPTo(ctx, key, endpoint, form)
	}
	resp, err := c.servers.try(ctx, rest, func(i int) (*http.Response, error) {
		resp, body, err := c.postDPoPTo(pinned(ctx), key, c.servers.base(i)+rest, form)
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	})
	if err != nil {
		if proofs.Reason(err) == "" {
			err = &proofs.Error{Reason: proofs.ReasonUnavailable, Err: err}
		}
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// postDPoPTo is postDPoP to one server.
func (c *Client) postDPoPTo(ctx context.Context, key crypto.Signer, endpoint string, form url.Values) (*http.Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		var nonce string
		if n := c.dpopNonce.Load(); n != nil {
			nonce = *n
		}
		proof, err := dpop.NewProof(key, http.MethodPost, endpoint, time.Now(), dpop.ProofOptions{Nonce: nonce})
		if err != nil {
			return nil, nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proof)
		resp, err := c.httpClient.Do(req)
		if err != nil {
			return nil, nil, proofs.Errorf(proofs.ReasonUnavailable, "%s: %v", endpoint, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, nil, proofs.Errorf(proofs.ReasonUnavailable, "%s: %v", endpoint, err)
		}
		fresh := resp.Header.Get("DPoP-Nonce")
		if fresh != "" && len(fresh) <= 256 {
			c.dpopNonce.Store(&fresh)
		}
		var e struct {
			Error string `json:"error"`
		}
		if attempt == 0 && fresh != "" && fresh != nonce && (resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized) &&
			json.Unmarshal(body, &e) == nil && e.Error == "use_dpop_nonce" {
			continue
		}
		return resp, body, nil
	}
}

// verifyIssuance checks a token entry against the log key: under a
// witness policy, against a checkpoint that may lack the quorum (witnessed
// says whether it has it; witnessed.go).
func (c *Client) verifyIssuance(index uint64, leaf, note []byte, hashes [][]byte) (_ *Entry, witnessed bool, _ error) {
	cp, witnessed, err := c.openAnswer(note)
	if err != nil {
		return nil, false, err
	}
	if err := proofs.VerifyInclusion(index, cp.Size, proofs.LeafHash(leaf), hashes, cp.Root); err != nil {
		return nil, false, err
	}
	p, err := proofs.ParseLeaf(leaf)
	if err != nil {
		return nil, false, err
	}
	if p.Kind != proofs.KindToken || p.Token == nil || p.Decision == nil {
		return nil, false, proofs.Errorf(proofs.ReasonResponseMismatch, "entry %d is a %s entry, not a token issuance", index, p.Kind)
	}
	return &Entry{Index: index, ID: p.ID(), Leaf: p, Checkpoint: cp, InclusionProof: hashes}, witnessed, nil
}

// NewDPoPProof makes an RFC 9449 DPoP proof for a request with method to
// htu at now, signed with key (Ed25519: EdDSA; ECDSA P-256: ES256). It is
// dpop.NewProof without optional claims.
func NewDPoPProof(key crypto.Signer, method, htu string, now time.Time) (string, error) {
	return dpop.NewProof(key, method, htu, now, dpop.ProofOptions{})
}

// keyThumbprint is the RFC 7638 thumbprint of key's public key.
func keyThumbprint(key crypto.Signer) (string, error) {
	return dpop.Thumbprint(key.Public())
}
