package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// Config is what a resource server says about itself and its issuer.
type Config struct {
	// Resource is this resource server's URI, as delegations name it in
	// their destinations: a token's aud must be exactly this. Its scheme
	// and host are also the public origin of the requests' URLs that DPoP
	// proofs name (htu), whatever Host a proxy in front forwards. It may
	// be empty only for a Verifier used through Check alone, each Request
	// naming its Audience (an ext_authz server in front of many
	// resources).
	Resource string
	// Issuer is warrant's issuer URL: a token's iss must be exactly this.
	Issuer string
	// JWKSURL is where the token keys are; empty: the jwks_uri of the
	// issuer's RFC 8414 metadata.
	JWKSURL string
	// JWKS, when set, is the issuer's JWKS document itself (read from a
	// file): its keys are used and never fetched, and JWKSURL is unused.
	JWKS []byte
	// ResourceMetadata, when set, is the URL of this resource's RFC 9728
	// metadata, named in every challenge (resource_metadata).
	ResourceMetadata string
	// Introspector, when set, lets routes ask for a live answer
	// (Rule.Introspect).
	Introspector *Introspector
	// RequireNonce makes every proof carry a nonce of this server
	// (RFC 9449 section 9): a proof without one is answered
	// use_dpop_nonce with a fresh DPoP-Nonce, which a client retries with.
	RequireNonce bool

	// HTTPClient fetches the metadata and keys and calls introspection
	// (default: a client with FetchTimeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Skew is the clock skew allowed on exp, nbf and iat (default 30s;
	// negative: none).
	Skew time.Duration
	// KeysRefetch is the least time between two JWKS fetches (default
	// 30s): a token with an unknown kid triggers one only past it.
	KeysRefetch time.Duration
	// KeysMaxAge is how long keys are used before the JWKS is read again
	// (default 1h).
	KeysMaxAge time.Duration
	// FetchTimeout bounds each call to the issuer (default 5s).
	FetchTimeout time.Duration
	// MaxProofs bounds the replay cache of DPoP proof ids (default
	// 262144). A proof id is held for its window (dpop.MaxAge +
	// dpop.MaxAhead, 70s), so the default serves about 3,700 requests a
	// second in some 50 MB; when the cache is full of proofs still in
	// their window, new ones are refused, 503 with Retry-After, until some age out (never
	// forgotten early, which would let a proof be replayed).
	MaxProofs int
	// NonceWindow is how long a DPoP nonce lasts (default 5m).
	NonceWindow time.Duration
	// Logger logs what the resource server itself failed at (default:
	// slog.Default()). Refused requests are answered, not logged.
	Logger *slog.Logger
}

// Verifier checks access tokens and their DPoP proofs for one resource.
// It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	keys   *keySet
	proofs *dpop.ReplayCache
	nonces *nonces
	// origin is Resource's scheme://host.
	origin string
	// started is the second the Verifier was made in: without nonces, a
	// proof made before it is refused, since the replay cache, in memory,
	// does not know the proofs seen before a restart.
	started time.Time
}

// New checks cfg, fills its defaults and returns its Verifier. It does not
// call the issuer: the keys are fetched on the first request.
func New(cfg Config) (*Verifier, error) {
	var origin string
	if cfg.Resource != "" {
		u, err := url.Parse(cfg.Resource)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return nil, fmt.Errorf("resource: Resource %q is not an absolute http(s) URI", cfg.Resource)
		}
		origin = u.Scheme + "://" + u.Host
	}
	if iu, err := url.Parse(cfg.Issuer); err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" {
		return nil, fmt.Errorf("resource: Issuer %q is not an absolute http(s) URL", cfg.Issuer)
	}
	if cfg.Introspector != nil && cfg.Introspector.Key == nil {
		return nil, errors.New("resource: Introspector needs the resource server's agent key")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Skew < 0:
		cfg.Skew = 0
	case cfg.Skew == 0:
		cfg.Skew = 30 * time.Second
	}
	if cfg.KeysRefetch == 0 {
		cfg.KeysRefetch = 30 * time.Second
	}
	if cfg.KeysMaxAge == 0 {
		cfg.KeysMaxAge = time.Hour
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 5 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.FetchTimeout}
	}
	if cfg.MaxProofs == 0 {
		cfg.MaxProofs = 1 << 18
	}
	if cfg.MaxProofs < 0 {
		return nil, errors.New("resource: MaxProofs cannot be off (a DPoP proof must be remembered to refuse its replay)")
	}
	if cfg.NonceWindow == 0 {
		cfg.NonceWindow = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, proofs: dpop.NewReplayCache(cfg.MaxProofs), origin: origin, started: cfg.Now().Truncate(time.Second)}
	v.keys = &keySet{v: v, jwksURL: cfg.JWKSURL}
	if len(cfg.JWKS) > 0 {
		keys, err := parseJWKS(cfg.JWKS)
		if err != nil {
			return nil, fmt.Errorf("resource: %w", err)
		}
		v.keys.keys, v.keys.static = keys, true
	}
	if cfg.RequireNonce {
		v.nonces = newNonces(cfg.NonceWindow)
	}
	return v, nil
}

// Rule is what a route requires beyond a valid token.
type Rule struct {
	// Scopes must all be in the token.
	Scopes []string
	// Introspect asks the issuer, for each request, whether the token is
	// still active (Config.Introspector): for high-impact routes, where
	// a revoked chain must stop at once rather than at the token's expiry.
	Introspect bool
}

// Request is what Check reads of an HTTP request: for a caller that
// holds no *http.Request (an Envoy ext_authz server), the parts the checks
// need.
type Request struct {
	// Method is the request's method; URL its absolute URL as the client
	// called it: the public origin and the path as received, which the
	// proof's htu must name, and the query, read only to refuse a token
	// in it.
	Method, URL string
	// Authorization and DPoP are those headers' values, one per header
	// line received.
	Authorization, DPoP []string
	// Audience is the resource the token must be for (its aud); empty:
	// Config.Resource.
	Audience string
}

// Authorize checks r's access token and DPoP proof for rule and returns
// the token's claims. A refusal is an *Error (WriteError answers it).
func (v *Verifier) Authorize(r *http.Request, rule Rule) (*Claims, error) {
	u := v.requestURL(r)
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return v.Check(r.Context(), Request{Method: r.Method, URL: u, Authorization: r.Header.Values("Authorization"), DPoP: r.Header.Values("DPoP")}, rule)
}

// Check is Authorize for a request described by req: the one
// implementation of the checks, which Protect (net/http) and warrant's
// Envoy ext_authz server both run. A refusal is an *Error; any other
// error means the request could not be judged.
func (v *Verifier) Check(ctx context.Context, req Request, rule Rule) (*Claims, error) {
	now := v.cfg.Now()
	audience := req.Audience
	if audience == "" {
		audience = v.cfg.Resource
	}
	if audience == "" {
		return nil, errors.New("resource: no audience: Config.Resource is empty and the request names none")
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, ErrInvalidRequest, "the request URL does not parse")
	}
	if u.Query().Has("access_token") {
		return nil, refuse(http.StatusBadRequest, ErrInvalidRequest, "an access token in the URL is refused: send it in an Authorization: DPoP header")
	}
	token, err := credentials(req.Authorization)
	if err != nil {
		return nil, err
	}
	c, err := v.verifyToken(ctx, token, audience, now)
	if err != nil {
		return nil, err
	}
	if len(req.DPoP) != 1 {
		return nil, refuse(http.StatusUnauthorized, ErrInvalidDPoPProof, "exactly one DPoP proof header is required with a DPoP token")
	}
	want := dpop.Request{Method: req.Method, URL: req.URL, AccessToken: token}
	if v.nonces != nil {
		want.Nonce = func(n string) bool { return v.nonces.valid(n, now) }
	}
	p, err := dpop.Verify(req.DPoP[0], want, now, nil) // replay checked below
	if err != nil {
		var de *dpop.Error
		if !errors.As(err, &de) {
			return nil, err
		}
		if de.UseNonce {
			return nil, &Error{Status: http.StatusUnauthorized, Code: ErrUseDPoPNonce, Description: de.Description, Nonce: v.nonces.at(now)}
		}
		return nil, refuse(http.StatusUnauthorized, ErrInvalidDPoPProof, "%s", de.Description)
	}
	if v.nonces == nil && p.IAT.Before(v.started) {
		return nil, refuse(http.StatusUnauthorized, ErrInvalidDPoPProof, "the DPoP proof was made before this server started; make a fresh one")
	}
	// The proof's key must be the one the token is bound to: a stolen
	// token is useless without its holder's key.
	if p.JKT != c.JKT {
		return nil, refuse(http.StatusUnauthorized, ErrInvalidToken, "the DPoP proof's key is not the key the token is bound to (cnf.jkt)")
	}
	// Replay last: only the token holder's proofs take room in the cache,
	// so a stolen token cannot fill it.
	if err := v.proofs.AddProof(p, now); err != nil {
		var de *dpop.Error
		if errors.As(err, &de) && de.Busy { // the cache is full: retry shortly
			e := refuse(http.StatusServiceUnavailable, ErrUnavailable, "%s", de.Description)
			e.RetryAfter = de.RetryAfter
			return nil, e
		}
		return nil, refuse(http.StatusUnauthorized, ErrInvalidDPoPProof, "%s", err.Error())
	}
	var missing []string
	for _, s := range rule.Scopes {
		if !c.HasScope(s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		e := refuse(http.StatusForbidden, ErrInsufficientScope, "the token lacks scope %s", strings.Join(missing, " "))
		e.Scopes = rule.Scopes
		return nil, e
	}
	if rule.Introspect {
		if err := v.CheckActive(ctx, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// credentials is the access token of the request's one DPoP
// Authorization header. A token in a Bearer header is refused: a
// DPoP-bound token goes in the DPoP scheme only (RFC 9449 section 7.1).
// (A token in the query string is refused by Check, and a form body is
// never read for one.)
func credentials(auth []string) (string, error) {
	switch len(auth) {
	case 0:
		return "", &Error{Status: http.StatusUnauthorized, Description: "an access token is required (Authorization: DPoP)"}
	case 1:
	default:
		return "", refuse(http.StatusBadRequest, ErrInvalidRequest, "more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(auth[0], " ")
	token = strings.TrimSpace(token)
	if !ok || token == "" || strings.ContainsAny(token, " \t") {
		return "", refuse(http.StatusUnauthorized, ErrInvalidToken, "the Authorization header is not a scheme and a token")
	}
	if !strings.EqualFold(scheme, "DPoP") {
		return "", refuse(http.StatusUnauthorized, ErrInvalidToken, "the %s scheme is refused: the token is DPoP-bound, send it as Authorization: DPoP with a DPoP proof", scheme)
	}
	return token, nil
}

// requestURL is the URL the client called, as its proof names it (htu):
// the resource's public origin and the request's path as received
// (RequestURI, which a StripPrefix inside does not alter).
func (v *Verifier) requestURL(r *http.Request) string {
	path := r.URL.EscapedPath()
	if r.RequestURI != "" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Host == "" {
			path = u.EscapedPath()
		}
	}
	return v.origin + path
}

// Protect serves next only for requests that pass rule, with the claims in
// the request's context (FromContext); others get the refusal's answer.
// When the server requires nonces, every answer carries the current one.
func (v *Verifier) Protect(next http.Handler, rule Rule) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v.nonces != nil {
			w.Header().Set("DPoP-Nonce", v.nonces.at(v.cfg.Now()))
		}
		c, err := v.Authorize(r, rule)
		if err != nil {
			v.WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), c)))
	})
}

// Resource is this resource's URI (Config.Resource).
func (v *Verifier) Resource() string { return v.cfg.Resource }
