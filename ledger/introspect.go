package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

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
	// maxIntrospectParams bounds the distinct form parameters.
	maxIntrospectParams = 4
)

// IntrospectionAnswer is the endpoint's answer (RFC 7662 section 2.2): an
// inactive token is {"active":false} and nothing else.
type IntrospectionAnswer struct {
	Active    bool                      `json:"active"`
	Scope     string                    `json:"scope,omitempty"`
	ClientID  string                    `json:"client_id,omitempty"`
	Sub       string                    `json:"sub,omitempty"`
	Aud       string                    `json:"aud,omitempty"`
	Iss       string                    `json:"iss,omitempty"`
	Exp       int64                     `json:"exp,omitempty"`
	Iat       int64                     `json:"iat,omitempty"`
	Nbf       int64                     `json:"nbf,omitempty"`
	JTI       string                    `json:"jti,omitempty"`
	TokenType string                    `json:"token_type,omitempty"`
	Act       json.RawMessage           `json:"act,omitempty"`
	Cnf       *proofs.TokenConfirmation `json:"cnf,omitempty"`
	Warrant   *proofs.TokenWarrantClaim `json:"warrant,omitempty"`
}

// introspect answers whether token is active for issuer now.
func (l *Log) introspect(ctx context.Context, token, issuer string) (*IntrospectionAnswer, error) {
	inactive := &IntrospectionAnswer{}
	ti := l.tokens
	claims, _, err := proofs.ParseAccessToken(token, append([]*proofs.PublicKey{ti.pub}, ti.previous...))
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
	p, oerr := l.checkDPoP(w.Header(), r.Header.Values("DPoP"), r.RemoteAddr, issuer+IntrospectionEndpointPath, http.StatusUnauthorized, "invalid_client")
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
