package proofs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"time"
)

// Reason codes of token issuance (DecideToken). A denied exchange is
// recorded like a denied delegation; the token endpoint answers it with
// the OAuth error TokenErrorCode gives.
const (
	// ReasonTokenNotDelegate: the agent whose bound key made the DPoP
	// proof is not the delegation's delegate.
	ReasonTokenNotDelegate = "token_not_delegate"
	// ReasonDelegationRevoked: the delegation, or one of its ancestors,
	// was revoked (by a revocation or a key withdrawal).
	ReasonDelegationRevoked = "delegation_revoked"
	// ReasonDelegationExpired: the delegation, or one of its ancestors,
	// has expired at log time.
	ReasonDelegationExpired = "delegation_expired"
	// ReasonDelegationNotYetValid: the delegation's not_before lies after
	// the log time.
	ReasonDelegationNotYetValid = "delegation_not_yet_valid"
	// ReasonBindingNotInForce: the delegate, or the issuer of a link of the
	// chain, has no key binding in force (withdrawn).
	ReasonBindingNotInForce = "binding_not_in_force"
	// ReasonAudienceNotAllowed: the requested resource is not one of the
	// delegation's destinations.
	ReasonAudienceNotAllowed = "audience_not_allowed"
	// ReasonTokenRecordInvalid: a token entry whose record contradicts the
	// log (a delegation index that is not the delegation's, a lifetime
	// over MaxTokenLifetime or past the delegation's expiry, an issue time
	// away from the log time, a signing key the configuration does not
	// hold). A log never writes one accepted; an auditor finds it.
	ReasonTokenRecordInvalid = "token_record_invalid"
)

// MaxTokenLifetime bounds an access token's lifetime (expires_at −
// issued_at); a server issues 5 minutes by default.
const MaxTokenLifetime = 15 * time.Minute

// MaxTokenIssueSkew is how far a token's issued_at may lie from the log
// time of its entry: the server fixes the record before the sequencer
// gives it a log time.
const MaxTokenIssueSkew = time.Minute

// TokenIssuance is the record of one token exchange, the `token` member
// of a token leaf. The log writes it itself, after it verified the
// requester's DPoP proof (RFC 9449): there is no envelope, and the
// requester's authenticity is the log's word, bounded by what an auditor
// re-checks (the requester's key binding in force has thumbprint JKT). It
// never holds the token, only what identifies and bounds it.
type TokenIssuance struct {
	// JTI is the token's unique id (its jti claim).
	JTI string `json:"jti"`
	// Requester is the SPIFFE ID of the agent whose bound key made the
	// DPoP proof.
	Requester string `json:"requester"`
	// JKT is the RFC 7638 SHA-256 thumbprint (base64url, unpadded) of that
	// key: the token's cnf.jkt.
	JKT string `json:"jkt"`
	// Delegation is the delegation id exchanged (the subject_token).
	Delegation string `json:"delegation"`
	// DelegationIndex is the delegation's entry, when it is an accepted
	// delegation of the log.
	DelegationIndex uint64 `json:"delegation_index,omitempty"`
	// Audience is the one resource the token is for (RFC 8707).
	Audience string `json:"audience"`
	// Scopes are the scopes granted (requested), a sorted set.
	Scopes []string `json:"scopes,omitempty"`
	// IssuedAt and ExpiresAt bound the token (iat and nbf, exp).
	IssuedAt  string `json:"issued_at"`
	ExpiresAt string `json:"expires_at"`
	// KeyID is the id of the token-signing key (the token's kid), one of
	// the configuration's token_keys.
	KeyID string `json:"key_id"`
}

// Validate checks the record's form (not its truth, which DecideToken
// judges).
func (r *TokenIssuance) Validate() error {
	if err := validateToken("jti", r.JTI); err != nil {
		return err
	}
	if err := validateSPIFFE("requester", r.Requester); err != nil {
		return err
	}
	if len(r.JKT) != 43 {
		return Errorf(ReasonPayloadMalformed, "jkt is not a base64url SHA-256 thumbprint")
	}
	if _, err := base64.RawURLEncoding.DecodeString(r.JKT); err != nil {
		return Errorf(ReasonPayloadMalformed, "jkt is not a base64url SHA-256 thumbprint")
	}
	if err := ValidateTokenDelegation(r.Delegation); err != nil {
		return err
	}
	if err := ValidateTokenAudience(r.Audience); err != nil {
		return err
	}
	if err := ValidateTokenScopes(r.Scopes); err != nil {
		return err
	}
	if _, err := ParseTime("issued_at", r.IssuedAt); err != nil {
		return err
	}
	if _, err := ParseTime("expires_at", r.ExpiresAt); err != nil {
		return err
	}
	return validateToken("key_id", r.KeyID)
}

// ValidateTokenDelegation checks a token record's delegation id (a token
// endpoint refuses a subject_token that fails it, recording nothing).
func ValidateTokenDelegation(id string) error { return validateDelegationID("delegation", id) }

// ValidateTokenAudience checks a token record's audience: a label, like
// the destinations it must be one of.
func ValidateTokenAudience(aud string) error {
	if aud == "" {
		return Errorf(ReasonFieldMissing, "audience is missing")
	}
	return validateSet("audience", []string{aud})
}

// ValidateTokenScopes checks a token record's scopes: a sorted set of
// labels.
func ValidateTokenScopes(scopes []string) error { return validateSet("scopes", scopes) }

// JWKThumbprint returns the RFC 7638 SHA-256 thumbprint of k, base64url
// without padding: over {"crv","kty","x"} for Ed25519 (OKP) and
// {"crv","kty","x","y"} for P-256 (EC), members in that order.
func JWKThumbprint(k *PublicKey) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var canon string
	switch pk := k.Key.(type) {
	case ed25519.PublicKey:
		canon = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(pk) + `"}`
	case *ecdsa.PublicKey:
		raw, err := pk.Bytes() // 0x04 || X || Y, 32 bytes each
		if err != nil || len(raw) != 65 {
			return "", Errorf(ReasonKeyInvalid, "not a P-256 point")
		}
		canon = `{"crv":"P-256","kty":"EC","x":"` + b64(raw[1:33]) + `","y":"` + b64(raw[33:]) + `"}`
	default:
		return "", Errorf(ReasonKeyInvalid, "unsupported key type %T", k.Key)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:]), nil
}

// authenticateToken checks that the record's requester has a key binding
// in force whose key has thumbprint JKT: the one thing about the DPoP
// proof an auditor can re-check. A server refuses a request that fails it
// (the proof's key is not a registered agent's).
func (s *State) authenticateToken(r *TokenIssuance) error {
	b := s.bindings.Agent(r.Requester)
	if b == nil {
		return Errorf(ReasonIssuerNotRegistered, "token requester %s has no key binding in force", r.Requester)
	}
	jkt, err := JWKThumbprint(b.Key)
	if err != nil {
		return err
	}
	if jkt != r.JKT {
		return Errorf(ReasonSignatureKeyUnknown, "the DPoP key %s is not the key bound to %s", r.JKT, r.Requester)
	}
	return nil
}

// DecideToken decides a token exchange at log time t (issue 14's rules):
// the delegation is accepted and in force (neither it nor an ancestor
// revoked or expired, it valid already, the delegate's and every issuer's
// key binding in force); the requester is its delegate; the audience is
// one of its destinations; the scopes a subset of its scopes; the record
// consistent with the log (ReasonTokenRecordInvalid); and the policy pol
// permits Action::"issue_token" (Policy.EvaluateToken).
func DecideToken(st ChainState, r *TokenIssuance, t time.Time, cfg *LogConfig, pol *Policy) (*Decision, error) {
	reasons, chain, err := tokenRules(st, r, t, cfg)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return &Decision{Outcome: OutcomeDenied, Reasons: compactReasons(reasons)}, nil
	}
	dec := &Decision{Outcome: OutcomeAccepted}
	if pol != nil {
		pd := pol.EvaluateToken(tokenPolicyInput(st, r, chain))
		dec.PolicyDigest, dec.PolicyIDs, dec.CedarVersion = pol.Digest, pd.PolicyIDs, CedarVersion
		if !pd.Allowed {
			reasons = append(reasons, pd.Reasons...)
		}
	} else {
		reasons = append(reasons, ReasonPolicyForbid) // no policy, no permit: fail closed
	}
	if len(reasons) > 0 {
		dec.Outcome = OutcomeDenied
		dec.Reasons = compactReasons(reasons)
	}
	return dec, nil
}

// tokenPolicyInput is the policy's view of the exchange r of chain[0].
func tokenPolicyInput(st ChainState, r *TokenIssuance, chain []*DelegationRecord) TokenPolicyInput {
	d := chain[0].D
	return TokenPolicyInput{T: r, D: d, Delegate: st.Binding(d.Delegate), Depth: len(chain)}
}

// tokenRules are DecideToken's rules but the policy: the reasons they deny
// r for at t, and the delegation's chain, nearest first (empty for a
// delegation st does not hold).
func tokenRules(st ChainState, r *TokenIssuance, t time.Time, cfg *LogConfig) ([]string, []*DelegationRecord, error) {
	var reasons []string
	deny := func(c string) { reasons = append(reasons, c) }
	chain, err := ancestors(st, r.Delegation)
	if err != nil {
		return nil, nil, err
	}
	iat, _ := ParseTime("issued_at", r.IssuedAt)
	exp, _ := ParseTime("expires_at", r.ExpiresAt)
	if d := iat.Sub(t); d > MaxTokenIssueSkew || d < -MaxTokenIssueSkew ||
		!exp.After(iat) || exp.Sub(iat) > MaxTokenLifetime ||
		!slices.ContainsFunc(cfg.TokenKeys, func(k ConfigKey) bool { return k.ID == r.KeyID }) {
		deny(ReasonTokenRecordInvalid)
	}
	if len(chain) == 0 {
		deny(ReasonDelegationNotFound)
		if r.DelegationIndex != 0 {
			deny(ReasonTokenRecordInvalid)
		}
		return reasons, nil, nil
	}
	d := chain[0].D
	if r.DelegationIndex != chain[0].Index {
		deny(ReasonTokenRecordInvalid)
	}
	if d.Delegate != r.Requester {
		deny(ReasonTokenNotDelegate)
	}
	for _, a := range chain {
		revoked, err := isRevoked(st, a)
		if err != nil {
			return nil, nil, err
		}
		if revoked {
			deny(ReasonDelegationRevoked)
			break
		}
	}
	for _, a := range chain {
		if aexp, _ := ParseTime("expires_at", a.D.ExpiresAt); !t.Before(aexp) {
			deny(ReasonDelegationExpired)
			break
		}
	}
	if nb, _ := ParseTime("not_before", d.NotBefore); t.Before(nb) {
		deny(ReasonDelegationNotYetValid)
	}
	if dexp, _ := ParseTime("expires_at", d.ExpiresAt); t.Before(dexp) && exp.After(dexp) {
		deny(ReasonTokenRecordInvalid) // a token must not outlive its delegation
	}
	inForce := st.Binding(d.Delegate) != nil
	for _, a := range chain {
		inForce = inForce && st.Binding(a.D.Issuer) != nil
	}
	if !inForce {
		deny(ReasonBindingNotInForce)
	}
	if !slices.Contains(d.Destinations, r.Audience) {
		deny(ReasonAudienceNotAllowed)
	}
	if !subset(r.Scopes, d.Scopes) {
		deny(ReasonScopeWidened)
	}
	return reasons, chain, nil
}

// TokenLifetimeLadder returns the shorter lifetimes FitTokenLifetime
// tries, longest first, when the policy refuses a token's lifetime: 5
// minutes, 2 minutes, 1 minute, 30 seconds. It is fixed, so that the
// lifetime a policy obtains does not depend on the server.
func TokenLifetimeLadder() []time.Duration {
	return []time.Duration{5 * time.Minute, 2 * time.Minute, time.Minute, 30 * time.Second}
}

// FitTokenLifetime lets the policy shorten a token: if DecideToken's rules
// allow r at t but the policy pol refuses it, it returns a copy of r with
// the longest lifetime of TokenLifetimeLadder shorter than r's that pol
// permits (the same record otherwise). It returns r itself when pol
// permits it, when the rules deny it (a shorter token would be denied
// too), or when no rung is permitted: then the policy's refusal is not
// about the lifetime, and the decision stands. A server calls it before
// submitting r; the sequencer still decides the record it gets with
// DecideToken, so an auditor re-derives the same decision from the
// recorded expires_at, and never needs to know a record was shortened.
func FitTokenLifetime(st ChainState, r *TokenIssuance, t time.Time, cfg *LogConfig, pol *Policy) (*TokenIssuance, error) {
	if pol == nil {
		return r, nil
	}
	// The common case first: the policy permits the record as it is.
	chain, err := ancestors(st, r.Delegation)
	if err != nil || len(chain) == 0 || pol.EvaluateToken(tokenPolicyInput(st, r, chain)).Allowed {
		return r, err
	}
	if reasons, _, err := tokenRules(st, r, t, cfg); err != nil || len(reasons) > 0 {
		return r, err
	}
	iat, _ := ParseTime("issued_at", r.IssuedAt)
	exp, _ := ParseTime("expires_at", r.ExpiresAt)
	for _, l := range TokenLifetimeLadder() {
		if l >= exp.Sub(iat) {
			continue
		}
		c := *r
		c.ExpiresAt = FormatTime(iat.Add(l))
		if pol.EvaluateToken(tokenPolicyInput(st, &c, chain)).Allowed {
			return &c, nil
		}
	}
	return r, nil
}

// TokenErrorCode is the OAuth error (RFC 6749 section 5.2, RFC 8707) a
// token endpoint answers a denied exchange with. The grant is judged
// first, as RFC 8693 checks the subject token before the rest: a
// delegation unknown, not the requester's or not in force is
// invalid_grant whatever else is wrong with the request. Then an audience
// outside the destinations is invalid_target, scopes beyond the
// delegation's invalid_scope, and anything else (the policy's refusal, a
// record the log contradicts) invalid_grant.
func TokenErrorCode(reasons []string) string {
	switch {
	case slices.ContainsFunc(reasons, grantReason):
		return "invalid_grant"
	case slices.Contains(reasons, ReasonAudienceNotAllowed):
		return "invalid_target"
	case slices.Contains(reasons, ReasonScopeWidened):
		return "invalid_scope"
	}
	return "invalid_grant"
}

// grantReason reports whether r makes the subject token (the delegation)
// itself unusable by the requester.
func grantReason(r string) bool {
	switch r {
	case ReasonDelegationNotFound, ReasonTokenNotDelegate, ReasonDelegationRevoked,
		ReasonDelegationExpired, ReasonDelegationNotYetValid, ReasonBindingNotInForce:
		return true
	}
	return false
}

// NewTokenIssuance builds the record of an exchange by requester (whose
// key has thumbprint jkt) of delegation for audience and scopes (nil: the
// delegation's), issued at now for lifetime (clamped to MaxTokenLifetime
// and to the delegation's expiry) under token key keyID. st tells the
// delegation, which may be unknown (the record is then denied). It does
// not decide.
func NewTokenIssuance(st ChainState, jti, requester, jkt, delegation, audience string, scopes []string, now time.Time, lifetime time.Duration, keyID string) (*TokenIssuance, error) {
	r := &TokenIssuance{JTI: jti, Requester: requester, JKT: jkt, Delegation: delegation, Audience: audience, KeyID: keyID}
	lifetime = min(lifetime, MaxTokenLifetime)
	iat := now.UTC().Truncate(time.Second)
	exp := iat.Add(lifetime)
	rec, err := st.Delegation(delegation)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		r.DelegationIndex = rec.Index
		if scopes == nil {
			scopes = rec.D.Scopes
		}
		if dexp, err := ParseTime("expires_at", rec.D.ExpiresAt); err == nil && dexp.Before(exp) {
			exp = dexp
		}
	}
	r.Scopes = slices.Clone(scopes)
	slices.Sort(r.Scopes)
	r.Scopes = slices.Compact(r.Scopes)
	if !exp.After(iat) {
		exp = iat.Add(time.Second) // an expired delegation: denied anyway
	}
	r.IssuedAt, r.ExpiresAt = FormatTime(iat), FormatTime(exp)
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("token record: %w", err)
	}
	return r, nil
}

// TokenInForce tells why an issued token's chain is no longer in force at
// t, by the state st: the reasons a new exchange of r would be denied for
// (ReasonDelegationRevoked, ReasonDelegationExpired,
// ReasonBindingNotInForce; ReasonDelegationNotFound for a delegation st
// does not hold), and ReasonSignatureKeyUnknown when the requester's key
// binding in force is no longer the key the token is bound to (its
// binding withdrawn or replaced). None: the chain is in force. It does
// not check the token's own expiry, nor the policy (which judged the
// issuance once).
func TokenInForce(st ChainState, r *TokenIssuance, t time.Time) ([]string, error) {
	chain, err := ancestors(st, r.Delegation)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 || chain[0].Index != r.DelegationIndex {
		return []string{ReasonDelegationNotFound}, nil
	}
	var reasons []string
	for _, a := range chain {
		revoked, err := isRevoked(st, a)
		if err != nil {
			return nil, err
		}
		if revoked {
			reasons = append(reasons, ReasonDelegationRevoked)
			break
		}
	}
	for _, a := range chain {
		if aexp, _ := ParseTime("expires_at", a.D.ExpiresAt); !t.Before(aexp) {
			reasons = append(reasons, ReasonDelegationExpired)
			break
		}
	}
	inForce := st.Binding(chain[0].D.Delegate) != nil
	for _, a := range chain {
		inForce = inForce && st.Binding(a.D.Issuer) != nil
	}
	if !inForce {
		reasons = append(reasons, ReasonBindingNotInForce)
	}
	if b := st.Binding(r.Requester); b == nil {
		reasons = append(reasons, ReasonBindingNotInForce)
	} else if jkt, err := JWKThumbprint(b.Key); err != nil || jkt != r.JKT {
		reasons = append(reasons, ReasonSignatureKeyUnknown)
	}
	return compactReasons(reasons), nil
}
