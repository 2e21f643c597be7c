package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/proofs"
)

// The OAuth side of the log (issue 14): RFC 8693 token exchange of a
// delegation for a DPoP-bound (RFC 9449) JWT access token (RFC 9068), the
// token keys as a JWKS (RFC 7517) and the server's metadata (RFC 8414).
// Every exchange by an authentic requester is a token entry of the log,
// decided by proofs.State like any entry and written before the token is
// returned; the token is minted only from an accepted entry.

// OAuth parameter values.
const (
	GrantTypeTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeDelegationID    = "urn:warrantlog:params:oauth:token-type:delegation-id"
	TokenTypeAccessToken     = "urn:ietf:params:oauth:token-type:access_token"
	TokenEndpointPath        = "/oauth2/token"
	JWKSPath                 = "/.well-known/jwks.json"
	AuthServerMetadataPath   = "/.well-known/oauth-authorization-server"
	maxTokenRequestBodyBytes = 16 << 10
	// tokenRecordBytes is what an exchange counts against the byte rate
	// limits: about a token leaf's size.
	tokenRecordBytes = 512
)

// tokenIssuer holds the token key and the DPoP replay cache.
type tokenIssuer struct {
	key      *ecdsa.PrivateKey
	pub      *proofs.PublicKey
	previous []*proofs.PublicKey
	jtis     *dpop.ReplayCache
	// nonces, when set, issues and checks DPoP nonces.
	nonces *nonceSource
	// started is when the log opened: without nonces, a proof made before
	// it is refused (see checkDPoP).
	started time.Time
}

func newTokenIssuer(opts Options) (*tokenIssuer, error) {
	pub, err := publicKeyOf(&opts.TokenKey.PublicKey)
	if err != nil {
		return nil, err
	}
	// The current key is never listed twice (a rotation cut short).
	previous := slices.DeleteFunc(slices.Clone(opts.PreviousTokenKeys), func(k *proofs.PublicKey) bool { return k.ID == pub.ID })
	ti := &tokenIssuer{key: opts.TokenKey, pub: pub, previous: previous, jtis: dpop.NewReplayCache(opts.MaxDPoPJTIs), started: opts.Now().Truncate(time.Second)}
	if opts.DPoPNonce {
		ti.nonces = newNonceSource(opts.Now)
	}
	return ti, nil
}

// TokenRequest is a token exchange as the endpoint received it, its DPoP
// proof verified.
type TokenRequest struct {
	Delegation string
	Resource   string
	// Scopes are the requested scopes; nil: the delegation's.
	Scopes []string
	// ClientID is the form's client_id, if any: it must then name the
	// agent whose key made the proof (the proof is the only client
	// authentication, so client_id can only confirm it).
	ClientID string
	// Proof is the verified DPoP proof.
	proof *dpop.Proof
}

// TokenResult is an exchange's entry and, when accepted, its token.
type TokenResult struct {
	// Index, Leaf, ID and Checkpoint are the token entry's.
	Index      uint64
	Leaf       []byte
	ID         string
	Checkpoint *proofs.Checkpoint
	Record     *proofs.TokenIssuance
	Decision   *proofs.Decision
	// Token is the signed access token, when accepted.
	Token string
}

// exchangeToken records the exchange req by the agent whose key made its
// DPoP proof and, if the log accepts it, signs the access token for
// issuer. An error is a refusal (nothing written): a proof key that is no
// agent's binding in force is proofs.ReasonSignatureKeyUnknown.
func (l *Log) exchangeToken(ctx context.Context, req *TokenRequest, issuer string) (*TokenResult, error) {
	ti := l.tokens
	bs := l.signers.Load().Bindings()
	b := bs.KeyID(req.proof.Key.ID)
	if b == nil {
		return nil, proofs.Errorf(proofs.ReasonSignatureKeyUnknown, "the DPoP key is not the key in force of a registered agent")
	}
	if req.ClientID != "" && req.ClientID != b.Agent {
		return nil, proofs.Errorf(proofs.ReasonTokenRequestInvalid, "client_id %s is not %s, the agent whose key made the DPoP proof", req.ClientID, b.Agent)
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	txn := l.db.NewTransaction(false)
	defer txn.Discard()
	view := newChainState(txn, bs, l.delegations)
	now := l.opts.Now()
	rec, err := proofs.NewTokenIssuance(view, base64.RawURLEncoding.EncodeToString(jti), b.Agent, req.proof.JKT,
		req.Delegation, req.Resource, req.Scopes, now, l.opts.TokenLifetime, ti.pub.ID)
	if err != nil {
		return nil, readError(err)
	}
	// The policy may shorten the token: the longest lifetime it permits
	// now is the one submitted; the sequencer decides it as any record.
	if rec, err = proofs.FitTokenLifetime(view, rec, now, &l.config, l.policy.Load()); err != nil {
		return nil, readError(err)
	}
	r := &request{ev: proofs.Event{Kind: proofs.KindToken, Token: rec}}
	// With mutual TLS the requester must be the peer; an exchange spends
	// the requester's append budget like a signed request (about the size
	// of its record).
	if err := checkPeer(ctx, r); err != nil {
		return nil, err
	}
	if l.limits != nil {
		if err := l.limits.allow(limitKey(r), tokenRecordBytes); err != nil {
			return nil, err
		}
	}
	res, err := l.submit(ctx, r)
	if err != nil {
		return nil, err
	}
	out := &TokenResult{Index: res.Index, Leaf: res.Leaf, ID: res.ID, Checkpoint: res.Checkpoint, Record: rec, Decision: res.Decision}
	if res.Decision.Outcome != proofs.OutcomeAccepted {
		return out, nil
	}
	chain, err := tokenChain(view, rec.Delegation)
	if err != nil {
		return nil, err
	}
	out.Token, err = ti.sign(rec, chain, issuer, l.config.Origin, res.Index)
	return out, err
}

// tokenChain returns the delegation id and its ancestors, nearest first.
func tokenChain(st proofs.ChainState, id string) ([]*proofs.DelegationRecord, error) {
	var out []*proofs.DelegationRecord
	for id != "" && len(out) <= proofs.MaxChainDepth {
		r, err := st.Delegation(id)
		if err != nil || r == nil {
			return out, readError(err)
		}
		out = append(out, r)
		id = r.D.Parent
	}
	return out, nil
}

// actor is the RFC 8693 act claim: who acts, on behalf of whom it nests.
type actor struct {
	Sub string `json:"sub"`
	Act *actor `json:"act,omitempty"`
}

// sign mints the JWT access token (RFC 9068) of an accepted record.
func (ti *tokenIssuer) sign(rec *proofs.TokenIssuance, chain []*proofs.DelegationRecord, issuer, origin string, index uint64) (string, error) {
	d := chain[0].D
	iat, _ := proofs.ParseTime("issued_at", rec.IssuedAt)
	exp, _ := proofs.ParseTime("expires_at", rec.ExpiresAt)
	// The delegate acts for its delegator, which acts for its own, up to
	// the root grant's delegate, who acts for the root subject (sub).
	act := &actor{Sub: d.Delegate}
	tail := act
	for _, r := range chain {
		if r.D.Parent == "" {
			break
		}
		tail.Act = &actor{Sub: r.D.Issuer}
		tail = tail.Act
	}
	claims := map[string]any{
		"iss":       issuer,
		"sub":       d.RootSubject,
		"aud":       rec.Audience,
		"client_id": d.Delegate,
		"act":       act,
		"iat":       iat.Unix(),
		"nbf":       iat.Unix(),
		"exp":       exp.Unix(),
		"jti":       rec.JTI,
		"cnf":       map[string]string{"jkt": rec.JKT},
		"warrant": map[string]any{
			"origin":           origin,
			"delegation":       rec.Delegation,
			"delegation_index": rec.DelegationIndex,
			"issuance_index":   index,
		},
	}
	if len(rec.Scopes) > 0 {
		claims["scope"] = strings.Join(rec.Scopes, " ")
	}
	return signJWT(ti.key, map[string]string{"typ": "at+jwt", "alg": "ES256", "kid": ti.pub.ID}, claims)
}

// signJWT signs a compact JWS with ES256 (raw r||s).
func signJWT(key *ecdsa.PrivateKey, header map[string]string, claims any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig), nil
}

// registerOAuth mounts the token endpoint, the JWKS and the metadata when
// the log issues tokens.
func registerOAuth(mux *http.ServeMux, l *Log) {
	if l.tokens == nil {
		return
	}
	mux.HandleFunc(TokenEndpointPath, l.serveToken)
	mux.HandleFunc(IntrospectionEndpointPath, l.serveIntrospect)
	mux.HandleFunc("GET "+JWKSPath, l.serveJWKS)
	mux.HandleFunc("GET "+AuthServerMetadataPath, l.serveMetadata)
}

// issuerURL is the configured issuer, or the request's scheme and host.
func (l *Log) issuerURL(r *http.Request) string {
	if l.opts.TokenIssuer != "" {
		return l.opts.TokenIssuer
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// oauthError is an RFC 6749 section 5.2 error answer. reason is its
// catalogued reason code, which the ExchangeToken RPC answers with.
type oauthError struct {
	status int
	code   string
	desc   string
	reason string
	// retryAfter, on a 429 or 503, is the Retry-After to send (at least 1 s).
	retryAfter time.Duration
	// entry is the recorded denial, if any.
	entry *tokenEntryJSON
}

// refuse is an error answer with nothing recorded.
func refuse(status int, code, reason, format string, args ...any) *oauthError {
	return &oauthError{status: status, code: code, reason: reason, desc: fmt.Sprintf(format, args...)}
}

// badTokenRequest refuses a malformed exchange (400).
func badTokenRequest(code, format string, args ...any) *oauthError {
	return refuse(http.StatusBadRequest, code, proofs.ReasonTokenRequestInvalid, format, args...)
}

// tokenEntryJSON is the issuance entry in an answer: enough to verify
// that the exchange is in the log (the leaf, its inclusion proof, the
// signed checkpoint).
type tokenEntryJSON struct {
	Index          uint64   `json:"index"`
	ID             string   `json:"id"`
	Leaf           []byte   `json:"leaf"`
	Checkpoint     string   `json:"checkpoint"`
	InclusionProof [][]byte `json:"inclusion_proof"`
}

func (e *tokenEntryJSON) proto() *warrantv1.ProvenEntry {
	return &warrantv1.ProvenEntry{Index: e.Index, Leaf: e.Leaf, Id: e.ID, Checkpoint: []byte(e.Checkpoint), InclusionProof: e.InclusionProof}
}

// issuerKey is the context key of the issuer URL withIssuer sets.
type issuerKey struct{}

// withIssuer passes h the request's issuer URL (issuerURL) in the
// context, for the ExchangeToken RPC, which sees no Host.
func (l *Log) withIssuer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), issuerKey{}, l.issuerURL(r))))
	})
}

// issuerFrom is the issuer URL withIssuer put in ctx ("" if none).
func issuerFrom(ctx context.Context) string {
	if s, ok := ctx.Value(issuerKey{}).(string); ok {
		return s
	}
	return ""
}

// writeOAuthError writes e; a DPoP error or a 401 carries the DPoP
// challenge of RFC 9449 section 7.1 (error, description, algs).
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.code == "invalid_dpop_proof" || e.code == "use_dpop_nonce" || e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP error=%q, error_description=%q, algs="%s"`,
			e.code, strings.ReplaceAll(e.desc, `"`, `'`), dpop.AlgsParam))
	}
	if e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds(e.retryAfter))
	}
	writeJSON(w, e.status, struct {
		Error       string          `json:"error"`
		Description string          `json:"error_description,omitempty"`
		Warrant     *tokenEntryJSON `json:"warrant,omitempty"`
	}{e.code, e.desc, e.entry})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// tokenParams are a token exchange's parameters as the form or the
// ExchangeToken RPC gives them.
type tokenParams struct {
	grantType, subjectToken, subjectTokenType, requestedTokenType, audience, clientID string
	resources                                                                         []string
	// scope is nil when absent.
	scope *string
}

// checkTokenParams checks p, the same way for the endpoint and the RPC.
func checkTokenParams(p *tokenParams) (*TokenRequest, *oauthError) {
	if p.grantType != GrantTypeTokenExchange {
		return nil, badTokenRequest("unsupported_grant_type", "grant_type must be %s", GrantTypeTokenExchange)
	}
	if p.subjectTokenType != TokenTypeDelegationID {
		return nil, badTokenRequest("invalid_request", "subject_token_type must be %s", TokenTypeDelegationID)
	}
	if rt := p.requestedTokenType; rt != "" && rt != TokenTypeAccessToken {
		return nil, badTokenRequest("invalid_request", "requested_token_type must be %s", TokenTypeAccessToken)
	}
	req := &TokenRequest{Delegation: p.subjectToken, ClientID: p.clientID}
	if req.Delegation == "" {
		return nil, badTokenRequest("invalid_request", "subject_token (a delegation id) is required")
	}
	switch len(p.resources) {
	case 0:
		return nil, badTokenRequest("invalid_target", "exactly one resource is required")
	case 1:
		req.Resource = p.resources[0]
	default:
		return nil, badTokenRequest("invalid_target", "exactly one resource, not %d", len(p.resources))
	}
	if p.audience != "" && p.audience != req.Resource {
		return nil, badTokenRequest("invalid_target", "audience differs from resource")
	}
	if p.scope != nil {
		req.Scopes = strings.Fields(*p.scope)
		if len(req.Scopes) == 0 {
			return nil, badTokenRequest("invalid_scope", "scope is empty")
		}
		slices.Sort(req.Scopes)
		req.Scopes = slices.Compact(req.Scopes)
	}
	// A request the record cannot hold is refused, not recorded.
	if err := proofs.ValidateTokenDelegation(req.Delegation); err != nil {
		return nil, badTokenRequest("invalid_grant", "subject_token: %v", err)
	}
	if err := proofs.ValidateTokenAudience(req.Resource); err != nil {
		return nil, badTokenRequest("invalid_target", "resource: %v", err)
	}
	if err := proofs.ValidateTokenScopes(req.Scopes); err != nil {
		return nil, badTokenRequest("invalid_scope", "scope: %v", err)
	}
	return req, nil
}

// tokenGrant is an accepted exchange: its result and entry.
type tokenGrant struct {
	res   *TokenResult
	entry *tokenEntryJSON
}

// expiresIn is the token's lifetime in seconds.
func (g *tokenGrant) expiresIn() int64 {
	iat, _ := proofs.ParseTime("issued_at", g.res.Record.IssuedAt)
	exp, _ := proofs.ParseTime("expires_at", g.res.Record.ExpiresAt)
	return int64(exp.Sub(iat).Seconds())
}

// exchange is the one implementation of a token exchange, for the
// endpoint and the RPC: req's DPoP proof (dpops, the request's DPoP
// values, from remoteAddr) checked for htu, then the exchange recorded,
// then the entry proven. hdr receives the DPoP-Nonce. A recorded denial is
// an oauthError with its entry.
func (l *Log) exchange(ctx context.Context, hdr http.Header, dpops []string, remoteAddr, issuer, htu string, req *TokenRequest) (*tokenGrant, *oauthError) {
	p, oerr := l.checkDPoP(hdr, dpops, remoteAddr, htu, http.StatusBadRequest, "invalid_dpop_proof")
	if oerr != nil {
		return nil, oerr
	}
	req.proof = p
	res, err := l.exchangeToken(ctx, req, issuer)
	if err != nil {
		switch reason := proofs.Reason(err); reason {
		case proofs.ReasonSignatureKeyUnknown, proofs.ReasonIssuerNotRegistered:
			l.guard.fail(budgetKey(remoteAddr), 1)
			return nil, refuse(http.StatusBadRequest, "invalid_dpop_proof", reason, "%s", err.Error())
		case proofs.ReasonPeerIdentityMismatch:
			return nil, refuse(http.StatusUnauthorized, "invalid_client", reason, "%s", err.Error())
		case proofs.ReasonTokenRequestInvalid:
			return nil, badTokenRequest("invalid_request", "%s", err.Error())
		case proofs.ReasonRateLimited:
			return nil, refuse(http.StatusTooManyRequests, "temporarily_unavailable", reason, "%s", reason)
		case proofs.ReasonQueueFull, proofs.ReasonShuttingDown, proofs.ReasonCheckpointPending, proofs.ReasonClockBehind, proofs.ReasonStoreUnavailable:
			return nil, refuse(http.StatusServiceUnavailable, "temporarily_unavailable", reason, "%s", reason)
		default:
			l.log.Error("token exchange failed", "err", err)
			return nil, refuse(http.StatusInternalServerError, "server_error", proofs.ReasonInternal, "the exchange failed")
		}
	}
	hashes, _, err := l.InclusionProof(ctx, res.Index, res.Checkpoint.Size)
	if err != nil {
		l.log.Error("token entry inclusion proof", "index", res.Index, "err", err)
		return nil, refuse(http.StatusInternalServerError, "server_error", proofs.ReasonInternal, "the entry's proof failed")
	}
	entry := &tokenEntryJSON{Index: res.Index, ID: res.ID, Leaf: res.Leaf, Checkpoint: string(res.Checkpoint.Note), InclusionProof: hashes}
	if res.Token == "" {
		code := proofs.TokenErrorCode(res.Decision.Reasons)
		// The reason answered is the first that the OAuth error stands for.
		reason := res.Decision.Reasons[0]
		for _, r := range res.Decision.Reasons {
			if proofs.TokenErrorCode([]string{r}) == code {
				reason = r
				break
			}
		}
		return nil, &oauthError{status: http.StatusBadRequest, code: code, reason: reason,
			desc: fmt.Sprintf("denied (entry %d): %s", res.Index, strings.Join(res.Decision.Reasons, ", ")), entry: entry}
	}
	return &tokenGrant{res: res, entry: entry}, nil
}

// serveToken is POST /oauth2/token.
func (l *Log) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, refuse(http.StatusMethodNotAllowed, "invalid_request", proofs.ReasonTokenRequestInvalid, "use POST"))
		return
	}
	issuer := l.issuerURL(r)
	req, oerr := parseTokenForm(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	g, oerr := l.exchange(r.Context(), w.Header(), r.Header.Values("DPoP"), r.RemoteAddr, issuer, issuer+TokenEndpointPath, req)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	body := map[string]any{
		"access_token":      g.res.Token,
		"issued_token_type": TokenTypeAccessToken,
		"token_type":        "DPoP",
		"expires_in":        g.expiresIn(),
		"warrant":           g.entry,
	}
	if len(g.res.Record.Scopes) > 0 {
		body["scope"] = strings.Join(g.res.Record.Scopes, " ")
	}
	writeJSON(w, http.StatusOK, body)
}

// parseTokenForm reads and checks the form. Each parameter appears at
// most once (RFC 6749 section 3.2), resource exactly once.
func parseTokenForm(w http.ResponseWriter, r *http.Request) (*TokenRequest, *oauthError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badTokenRequest("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBodyBytes)
	if err := r.ParseForm(); err != nil {
		return nil, badTokenRequest("invalid_request", "the form does not parse: %v", err)
	}
	form := r.PostForm
	for name, v := range form {
		if len(v) > 1 && name != "resource" {
			return nil, badTokenRequest("invalid_request", "parameter %s given more than once", name)
		}
	}
	if form.Has("actor_token") || form.Has("client_secret") || r.Header.Get("Authorization") != "" {
		return nil, badTokenRequest("invalid_request", "no actor token or client authentication is used: the DPoP proof authenticates")
	}
	p := &tokenParams{
		grantType: form.Get("grant_type"), subjectToken: form.Get("subject_token"), subjectTokenType: form.Get("subject_token_type"),
		requestedTokenType: form.Get("requested_token_type"), audience: form.Get("audience"), resources: form["resource"],
		clientID: form.Get("client_id"),
	}
	if form.Has("scope") {
		sc := form.Get("scope")
		p.scope = &sc
	}
	return checkTokenParams(p)
}

// checkDPoP checks a request's one DPoP proof (dpops, its DPoP header
// values, from remoteAddr) for a POST to htu, answering a failure with
// status (400 at the token endpoint, 401 where the proof authenticates a
// caller). A DPoP proof costs a signature check, as an append does: an
// address whose proofs keep failing spends the same authentication budget
// (authguard.go) and is refused before its proof is checked. A proof whose
// key is not a registered agent's is refused with unknownKeyCode (the
// token endpoint: invalid_dpop_proof; introspection: invalid_client)
// before it is recorded against replay, so only agents' proofs take room
// in the replay cache.
//
// With nonces on, every answer carries a fresh DPoP-Nonce (set in hdr),
// and a proof without a current nonce is answered use_dpop_nonce (with
// status as well: 400 from the token endpoint, RFC 9449 section 8; 401
// where the proof authenticates, section 9), spending no budget: an honest
// client meets it once.
//
// The jti replay cache lives in memory, so a proof the previous process
// saw could be replayed to this one within its iat window. With nonces,
// that proof carries (at best) a nonce of the previous process's key,
// which never verifies here. Without them, a proof whose iat (whole
// seconds) is before the second this process started in is refused: a
// client whose clock runs behind the server's is refused,
// invalid_dpop_proof, until its clock passes the start. What remains is a
// proof made in the very second of the start, before it, and seen by the
// previous process: a restart within that second.
func (l *Log) checkDPoP(hdr http.Header, dpops []string, remoteAddr, htu string, status int, unknownKeyCode string) (*dpop.Proof, *oauthError) {
	want := dpop.Request{Method: http.MethodPost, URL: htu}
	if ns := l.tokens.nonces; ns != nil {
		hdr.Set("DPoP-Nonce", ns.current())
		want.Nonce = ns.valid
	}
	if len(dpops) != 1 {
		return nil, refuse(status, "invalid_dpop_proof", proofs.ReasonDPoPProofInvalid, "exactly one DPoP proof is required")
	}
	peer := budgetKey(remoteAddr)
	if err := l.guard.check(peer); err != nil {
		return nil, refuse(http.StatusTooManyRequests, "temporarily_unavailable", proofs.Reason(err), "%s", err.Error())
	}
	now := l.opts.Now()
	p, err := dpop.Verify(dpops[0], want, now, nil) // replay is checked last, below
	if err != nil {
		var de *dpop.Error
		if errors.As(err, &de) && de.UseNonce {
			return nil, refuse(status, "use_dpop_nonce", proofs.ReasonDPoPNonceRequired, "%s", de.Description)
		}
		if errors.As(err, &de) {
			l.guard.fail(peer, 1)
			return nil, refuse(status, "invalid_dpop_proof", proofs.ReasonDPoPProofInvalid, "%s", de.Description)
		}
		return nil, refuse(http.StatusInternalServerError, "server_error", proofs.ReasonInternal, "checking the DPoP proof failed")
	}
	if l.tokens.nonces == nil && p.IAT.Before(l.tokens.started) {
		l.guard.fail(peer, 1)
		return nil, refuse(status, "invalid_dpop_proof", proofs.ReasonDPoPProofInvalid, "the DPoP proof was made before this server started (its iat); make a fresh one")
	}
	// Only a registered agent's proof takes room in the replay cache, so
	// strangers cannot fill it; each stranger's proof is charged to its
	// address. (The exchange and introspection check the key again, at
	// the state they decide with.)
	if l.signers.Load().Bindings().KeyID(p.Key.ID) == nil {
		l.guard.fail(peer, 1)
		return nil, refuse(status, unknownKeyCode, proofs.ReasonSignatureKeyUnknown, "the DPoP key is not the key in force of a registered agent")
	}
	if err := l.tokens.jtis.AddProof(p, now); err != nil {
		var de *dpop.Error
		if errors.As(err, &de) && de.Busy {
			// The replay cache is full (Options.MaxDPoPJTIs), or the
			// clock went back: the server's condition, not a failed
			// authentication.
			e := refuse(http.StatusServiceUnavailable, "temporarily_unavailable", ReasonTooManyRequests, "%s", de.Description)
			e.retryAfter = de.RetryAfter
			return nil, e
		}
		l.guard.fail(peer, 1)
		return nil, refuse(status, "invalid_dpop_proof", proofs.ReasonDPoPProofInvalid, "%s", err.Error())
	}
	return p, nil
}

// serveJWKS is GET /.well-known/jwks.json: the current token key, then
// the previous ones.
func (l *Log) serveJWKS(w http.ResponseWriter, r *http.Request) {
	var keys []map[string]string
	for _, k := range append([]*proofs.PublicKey{l.tokens.pub}, l.tokens.previous...) {
		if jwk := publicJWK(k); jwk != nil {
			keys = append(keys, jwk)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}

// publicJWK is k as a JWK with its kid (the key id) and alg.
func publicJWK(k *proofs.PublicKey) map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	switch pk := k.Key.(type) {
	case *ecdsa.PublicKey:
		raw, err := pk.Bytes()
		if err != nil {
			return nil
		}
		return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:]), "kid": k.ID, "use": "sig", "alg": "ES256"}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(pk), "kid": k.ID, "use": "sig", "alg": "EdDSA"}
	}
	return nil
}

// serveMetadata is GET /.well-known/oauth-authorization-server (RFC 8414).
func (l *Log) serveMetadata(w http.ResponseWriter, r *http.Request) {
	iss := l.issuerURL(r)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + TokenEndpointPath,
		"introspection_endpoint":                iss + IntrospectionEndpointPath,
		"jwks_uri":                              iss + JWKSPath,
		"grant_types_supported":                 []string{GrantTypeTokenExchange},
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"dpop_signing_alg_values_supported":     dpop.Algs,
	})
}

// retryAfterSeconds is a Retry-After value: d rounded up to whole seconds,
// at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}
