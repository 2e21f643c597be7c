package ledger

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/proofs"
)

// Token introspection (RFC 7662) for resource servers that want a live
// answer: is this token, signed by the log, still backed by a chain in
// force? The answer is read from the live state (the bindings in force and
// the store after the latest commit), so a token turns inactive as soon as
// the append of a revocation up its chain is acknowledged. The caller is a
// registered agent proving possession of its bound key with a DPoP proof
// (no client secret exists). Introspections are reads: nothing is logged.

const (
	IntrospectionEndpointPath = "/oauth2/introspect"
	maxIntrospectBodyBytes    = 16 << 10
	// maxAccessTokenBytes bounds a token presented for introspection; the
	// log's tokens are well under 2 KiB.
	maxAccessTokenBytes = 8 << 10
	// maxIntrospectParams bounds the distinct form parameters.
	maxIntrospectParams = 4
)

// AccessTokenClaims are the claims of an access token the log signs
// (tokenIssuer.sign), as introspection and token inspection read them.
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

// IntrospectionAnswer is the endpoint's answer (RFC 7662 section 2.2): an
// inactive token is {"active":false} and nothing else.
type IntrospectionAnswer struct {
	Active    bool               `json:"active"`
	Scope     string             `json:"scope,omitempty"`
	ClientID  string             `json:"client_id,omitempty"`
	Sub       string             `json:"sub,omitempty"`
	Aud       string             `json:"aud,omitempty"`
	Iss       string             `json:"iss,omitempty"`
	Exp       int64              `json:"exp,omitempty"`
	Iat       int64              `json:"iat,omitempty"`
	Nbf       int64              `json:"nbf,omitempty"`
	JTI       string             `json:"jti,omitempty"`
	TokenType string             `json:"token_type,omitempty"`
	Act       json.RawMessage    `json:"act,omitempty"`
	Cnf       *TokenConfirmation `json:"cnf,omitempty"`
	Warrant   *TokenWarrantClaim `json:"warrant,omitempty"`
}

// ParseAccessToken verifies token's ES256 signature under the one of keys
// its kid names and returns its claims. It checks the JWS, not the claims'
// times or the log.
func ParseAccessToken(token string, keys []*proofs.PublicKey) (*AccessTokenClaims, *proofs.PublicKey, error) {
	parts := strings.Split(token, ".")
	if len(token) > maxAccessTokenBytes || len(parts) != 3 {
		return nil, nil, proofs.Errorf(proofs.ReasonPayloadMalformed, "not a compact JWS of at most %d bytes", maxAccessTokenBytes)
	}
	dec := base64.RawURLEncoding.Strict().DecodeString
	h, err1 := dec(parts[0])
	c, err2 := dec(parts[1])
	sig, err3 := dec(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, nil, proofs.Errorf(proofs.ReasonPayloadMalformed, "a JWS segment is not base64url")
	}
	var hdr struct {
		Typ, Alg, Kid string
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return nil, nil, proofs.Errorf(proofs.ReasonPayloadMalformed, "the JWS header is not a JSON object")
	}
	if hdr.Typ != "at+jwt" || hdr.Alg != "ES256" {
		return nil, nil, proofs.Errorf(proofs.ReasonPayloadMalformed, "typ %q alg %q, want at+jwt ES256", hdr.Typ, hdr.Alg)
	}
	var key *proofs.PublicKey
	for _, k := range keys {
		if k.ID == hdr.Kid {
			key = k
		}
	}
	if key == nil {
		return nil, nil, proofs.Errorf(proofs.ReasonSignatureKeyUnknown, "kid %q is not a token key of this log", hdr.Kid)
	}
	if _, ok := key.Key.(*ecdsa.PublicKey); !ok || !dpop.VerifyJWS(key.Key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, nil, proofs.Errorf(proofs.ReasonSignatureInvalid, "the token's signature does not verify under key %s", key.ID)
	}
	var claims AccessTokenClaims
	if err := json.Unmarshal(c, &claims); err != nil {
		return nil, nil, proofs.Errorf(proofs.ReasonPayloadMalformed, "the token's claims are not a JSON object of the expected shape")
	}
	return &claims, key, nil
}

// introspect answers whether token is active for issuer now.
func (l *Log) introspect(ctx context.Context, token, issuer string) (*IntrospectionAnswer, error) {
	inactive := &IntrospectionAnswer{}
	ti := l.tokens
	claims, _, err := ParseAccessToken(token, append([]*proofs.PublicKey{ti.pub}, ti.previous...))
	if err != nil {
		return inactive, nil
	}
	now := l.opts.Now()
	if claims.Iss != issuer || claims.Warrant.Origin != l.config.Origin ||
		now.Unix() >= claims.Exp || now.Add(dpop.MaxAhead).Unix() < claims.Nbf {
		return inactive, nil
	}
	// The live state: the bindings in force, then a store transaction
	// opened after them, so both are at least as recent as any append
	// already acknowledged.
	bs := l.signers.Load().Bindings()
	txn := l.db.NewTransaction(false)
	defer txn.Discard()
	raw, err := getValue(txn, leafKey(claims.Warrant.IssuanceIndex))
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return inactive, nil
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil {
		return nil, fmt.Errorf("issuance entry %d: %w", claims.Warrant.IssuanceIndex, err)
	}
	rec := p.Token
	if p.Kind != proofs.KindToken || p.Decision == nil || p.Decision.Outcome != proofs.OutcomeAccepted ||
		rec.JTI != claims.JTI || rec.JKT != claims.Cnf.JKT || rec.Audience != claims.Aud || rec.Delegation != claims.Warrant.Delegation {
		// A token signed by the log's key that its log does not back: the
		// token key is misused or leaked.
		l.log.Warn("introspected token disagrees with its issuance entry", "index", claims.Warrant.IssuanceIndex, "jti", claims.JTI)
		return inactive, nil
	}
	reasons, err := proofs.TokenInForce(newChainState(txn, bs, l.delegations), rec, now)
	if err != nil {
		return nil, err
	}
	if len(reasons) > 0 {
		return inactive, nil
	}
	return &IntrospectionAnswer{
		Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Sub: claims.Sub, Aud: claims.Aud, Iss: claims.Iss,
		Exp: claims.Exp, Iat: claims.Iat, Nbf: claims.Nbf, JTI: claims.JTI, TokenType: "DPoP", Act: claims.Act,
		Cnf: &claims.Cnf, Warrant: &claims.Warrant,
	}, nil
}

// serveIntrospect is POST /oauth2/introspect.
func (l *Log) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "use POST"})
		return
	}
	bad := func(format string, args ...any) {
		writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: fmt.Sprintf(format, args...)})
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		bad("the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxIntrospectBodyBytes)
	if err := r.ParseForm(); err != nil {
		bad("the form does not parse: %v", err)
		return
	}
	form := r.PostForm
	if len(form) > maxIntrospectParams {
		bad("at most %d parameters", maxIntrospectParams)
		return
	}
	for name, v := range form {
		if len(v) > 1 {
			bad("parameter %s given more than once", name)
			return
		}
	}
	token := form.Get("token")
	if token == "" {
		bad("token is required")
		return
	}
	if r.Header.Get("Authorization") != "" {
		bad("no client authentication is used: the DPoP proof authenticates")
		return
	}
	issuer := l.issuerURL(r)
	p, oerr := l.checkDPoP(w.Header(), r.Header.Values("DPoP"), r.RemoteAddr, issuer+IntrospectionEndpointPath, http.StatusUnauthorized)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	if l.signers.Load().Bindings().KeyID(p.Key.ID) == nil {
		l.guard.fail(budgetKey(r.RemoteAddr), 1)
		writeOAuthError(w, &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
			desc: "the DPoP key is not the key in force of a registered agent"})
		return
	}
	a, err := l.introspect(r.Context(), token, issuer)
	if err != nil {
		l.log.Error("introspection failed", "err", err)
		writeOAuthError(w, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "the introspection failed"})
		return
	}
	writeJSON(w, http.StatusOK, a)
}
