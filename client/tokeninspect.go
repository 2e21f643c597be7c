package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/proofs"
)

// Checking an access token against the log that issued it: what
// `warrant token inspect` does.

// TokenInspection is an access token verified against its log.
type TokenInspection struct {
	Claims *proofs.AccessTokenClaims
	// KeyID is the signing key's id; KeyEntry the log-config entry, in
	// force at the issuance, that records it.
	KeyID    string
	KeyEntry uint64
	// Issuance is the token entry, verified.
	Issuance *Entry
}

// InspectToken verifies token against the log: its signature under the
// key the server's JWKS gives for its kid; that key recorded in the
// log-config entry in force at the token's issuance entry; and that entry
// (inclusion in a checkpoint consistent with the client's trusted one,
// an accepted token issuance whose jti, key binding, audience,
// delegation, scopes, times and key id are the token's). It does not
// judge the token's expiry or whether its chain is still in force
// (Introspect, ChainInForce).
func (c *Client) InspectToken(ctx context.Context, token string) (*TokenInspection, error) {
	keys, err := c.tokenKeys(ctx)
	if err != nil {
		return nil, err
	}
	claims, key, err := proofs.ParseAccessToken(token, keys)
	if err != nil {
		return nil, err
	}
	idx := claims.Warrant.IssuanceIndex
	e, err := c.Entry(ctx, idx)
	if err != nil {
		return nil, err
	}
	if o := e.Checkpoint.Origin; claims.Warrant.Origin != o {
		return nil, proofs.Errorf(ReasonMismatch, "the token names the log %q, not this log (%s)", claims.Warrant.Origin, o)
	}
	rec, dec := e.Leaf.Token, e.Leaf.Decision
	if e.Leaf.Kind != proofs.KindToken || rec == nil || dec == nil {
		return nil, proofs.Errorf(ReasonMismatch, "entry %d, the token's issuance, is a %s entry", idx, e.Leaf.Kind)
	}
	if dec.Outcome != proofs.OutcomeAccepted {
		return nil, proofs.Errorf(ReasonMismatch, "entry %d records a denied exchange, yet a token names it", idx)
	}
	iat, _ := proofs.ParseTime("issued_at", rec.IssuedAt)
	exp, _ := proofs.ParseTime("expires_at", rec.ExpiresAt)
	var scope string
	if len(rec.Scopes) > 0 {
		scope = strings.Join(rec.Scopes, " ")
	}
	if rec.JTI != claims.JTI || rec.JKT != claims.Cnf.JKT || rec.Audience != claims.Aud || rec.Delegation != claims.Warrant.Delegation ||
		rec.DelegationIndex != claims.Warrant.DelegationIndex || rec.KeyID != key.ID || scope != claims.Scope ||
		iat.Unix() != claims.Iat || exp.Unix() != claims.Exp || claims.Nbf != claims.Iat || rec.Requester != claims.ClientID {
		return nil, proofs.Errorf(ReasonMismatch, "the token's claims differ from its issuance entry %d", idx)
	}
	cfg, err := c.getEntry(ctx, &warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_ConfigBefore{ConfigBefore: idx}})
	if err != nil {
		return nil, err
	}
	if cfg.Leaf.Config == nil || cfg.Index >= idx {
		return nil, proofs.Errorf(ReasonMismatch, "entry %d is not a log-config entry before entry %d", cfg.Index, idx)
	}
	recorded := slices.ContainsFunc(cfg.Leaf.Config.TokenKeys, func(k proofs.ConfigKey) bool {
		pk, err := proofs.ParsePublicKeyDER(k.PublicKey)
		return err == nil && k.ID == key.ID && pk.ID == key.ID
	})
	if !recorded {
		return nil, proofs.Errorf(proofs.ReasonSignatureKeyUnknown, "the token key %s is not among the token keys of log-config entry %d, in force at its issuance", key.ID, cfg.Index)
	}
	return &TokenInspection{Claims: claims, KeyID: key.ID, KeyEntry: cfg.Index, Issuance: e}, nil
}

// tokenKeys reads the server's JWKS (the current and previous token
// keys). They are only candidates: InspectToken checks the one used
// against the log.
func (c *Client) tokenKeys(ctx context.Context) ([]*proofs.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.tiles.base+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "JWKS: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "JWKS: %s (does the server issue tokens? serve --tokens)", resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, proofs.Errorf(ReasonMismatch, "JWKS is not a JSON key set: %v", err)
	}
	var keys []*proofs.PublicKey
	for _, raw := range set.Keys {
		var h struct {
			Alg string `json:"alg"`
		}
		json.Unmarshal(raw, &h)
		if k, err := dpop.ParseJWK(raw, h.Alg); err == nil {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Introspection is the log's live answer about a token (RFC 7662).
type Introspection struct {
	Active bool `json:"active"`
	// The rest is set when Active.
	Scope    string `json:"scope,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Sub      string `json:"sub,omitempty"`
	Aud      string `json:"aud,omitempty"`
	Exp      int64  `json:"exp,omitempty"`
}

// Introspect asks the log whether token is active now: signed by it, not
// expired, its chain in force. s, a registered agent's signer, proves
// possession of its key with a DPoP proof. The answer is the server's
// word, read from its live state.
func (c *Client) Introspect(ctx context.Context, s *Signer, token string) (*Introspection, error) {
	endpoint := c.tiles.base + "/oauth2/introspect"
	resp, body, err := c.postDPoP(ctx, s.key, endpoint, url.Values{"token": {token}})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "the server does not issue tokens (%s answered %s; start it with warrant serve --tokens)", endpoint, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		json.Unmarshal(body, &e)
		return nil, proofs.Errorf(proofs.ReasonTokenRefused, "introspection answered %s: %s: %s", resp.Status, e.Error, e.Description)
	}
	var a Introspection
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, proofs.Errorf(ReasonMismatch, "introspection answered %s, not JSON", resp.Status)
	}
	return &a, nil
}

// ChainInForce tells, from the log's entries, why the chain of delegation
// (at index) is not in force at now: its links verified from their chain
// bundle, none expired, and no accepted revocation listed under any of
// them. A key withdrawal that revoked what a key issued is not listed
// there, and a listing cannot prove that nothing was left out: the live
// answer is Introspect's, the proven one `warrant audit`'s.
func (c *Client) ChainInForce(ctx context.Context, delegation string, index uint64, now time.Time) ([]string, error) {
	_, vc, err := c.Trace(ctx, delegation)
	if err != nil {
		return nil, err
	}
	if last := vc.Links[len(vc.Links)-1]; last.Index != index {
		return nil, proofs.Errorf(ReasonMismatch, "delegation %s is entry %d, not %d", delegation, last.Index, index)
	}
	var why []string
	for _, l := range vc.Links {
		d := l.Leaf.Delegation
		if exp, _ := proofs.ParseTime("expires_at", d.ExpiresAt); !now.Before(exp) && !slices.Contains(why, proofs.ReasonDelegationExpired) {
			why = append(why, proofs.ReasonDelegationExpired)
		}
		for start := uint64(0); ; {
			page, next, err := c.Children(ctx, d.ID, start, 100)
			if err != nil {
				return nil, err
			}
			for _, e := range page {
				if err := checkChild(e, d.ID); err != nil {
					return nil, err
				}
				if e.Leaf.Revocation != nil && e.Leaf.Decision.Outcome == proofs.OutcomeAccepted && !slices.Contains(why, proofs.ReasonDelegationRevoked) {
					why = append(why, proofs.ReasonDelegationRevoked)
				}
			}
			if next == 0 {
				break
			}
			start = next
		}
	}
	return why, nil
}
