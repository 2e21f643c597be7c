package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/warrantlog/warrant/dpop"
)

// TokenTransport is an http.RoundTripper for calling a resource server
// with a warrant access token: it exchanges the delegation for a token
// when it has none or the one it has is about to expire, and sends each
// request with Authorization: DPoP and a fresh DPoP proof of the
// delegate's key bound to that request and token (RFC 9449). When the
// resource server asks for a nonce (a 401 use_dpop_nonce with a
// DPoP-Nonce), the request is sent once more with it; the nonce is kept
// for the next requests to that origin.
//
// An exchange the log denies is recorded there (an *ExchangeDenied:
// invalid_grant, invalid_target or invalid_scope), and asking again at
// once would only record another denial: for DenialHold after a denial,
// the transport answers every request with that same error, without
// exchanging. A client such as the MCP SDK's, which sends a second
// request when the first fails, thus leaves one entry, not two.
//
// Configure it before its first use; it is then safe for concurrent use.
type TokenTransport struct {
	// Client exchanges tokens at the log; Signer is the delegate's key.
	Client *Client
	Signer *Signer
	// Delegation is exchanged for tokens for Resource (the resource
	// server's URI, one of the delegation's destinations), with Scopes
	// (nil: the delegation's).
	Delegation string
	Resource   string
	Scopes     []string
	// Base sends the requests (default http.DefaultTransport).
	Base http.RoundTripper
	// Now is the clock of the proofs and of the token's expiry (default
	// time.Now).
	Now func() time.Time
	// RefreshBefore is how long before its expiry a token is replaced
	// (default 30s, at most half its lifetime).
	RefreshBefore time.Duration

	mu     sync.Mutex
	token  string
	expiry time.Time
	life   time.Duration
	// denied is the last exchange's denial, at deniedAt.
	denied   error
	deniedAt time.Time
	// nonces are the last DPoP-Nonce of each origin.
	nonces map[string]string
	// exchanging serializes exchanges, so that concurrent requests share
	// one token.
	exchanging sync.Mutex
}

// DenialHold is how long after an exchange the log denied a
// TokenTransport answers with that denial rather than exchanging again:
// until the denial is 10 seconds old.
const DenialHold = 10 * time.Second

// NewTokenTransport returns a transport presenting tokens exchanged for
// delegation by signer's key, for resource.
func NewTokenTransport(c *Client, signer *Signer, delegation, resource string, scopes []string) *TokenTransport {
	return &TokenTransport{Client: c, Signer: signer, Delegation: delegation, Resource: resource, Scopes: scopes}
}

func (t *TokenTransport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Token returns a token valid for at least RefreshBefore, exchanging the
// delegation for a new one when needed.
func (t *TokenTransport) Token(ctx context.Context) (string, error) {
	if tok := t.current(); tok != "" {
		return tok, nil
	}
	t.exchanging.Lock()
	defer t.exchanging.Unlock()
	if tok := t.current(); tok != "" {
		return tok, nil
	}
	issued := t.now()
	t.mu.Lock()
	denied, at := t.denied, t.deniedAt
	t.mu.Unlock()
	if denied != nil && issued.Sub(at) < DenialHold {
		return "", denied
	}
	tr, err := t.Client.ExchangeToken(ctx, t.Signer, t.Delegation, t.Resource, t.Scopes)
	if err != nil {
		err = fmt.Errorf("exchanging delegation %s for a token for %s: %w", t.Delegation, t.Resource, err)
		var d *ExchangeDenied
		if errors.As(err, &d) {
			t.mu.Lock()
			t.denied, t.deniedAt = err, t.now()
			t.mu.Unlock()
		}
		return "", err
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	t.mu.Lock()
	defer t.mu.Unlock()
	t.token, t.expiry, t.life = tr.AccessToken, issued.Add(life), life
	t.denied = nil
	return t.token, nil
}

// current is the token held, if it is not due for refresh: a token is
// replaced RefreshBefore before its expiry, or at half its life when that
// is shorter, so a short-lived token is not exchanged at every request.
func (t *TokenTransport) current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == "" {
		return ""
	}
	margin := t.RefreshBefore
	if margin == 0 {
		margin = 30 * time.Second
	}
	margin = min(margin, t.life/2)
	if t.expiry.Sub(t.now()) <= margin {
		return ""
	}
	return t.token
}

// RoundTrip sends req with the token and a proof for it, and once more
// with the server's nonce when it asks for one.
func (t *TokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	origin := req.URL.Scheme + "://" + req.URL.Host
	resp, err := t.send(req, tok, origin)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !asksNonce(resp) {
		return resp, err
	}
	// Retry once, with the nonce just received, if the body can be sent
	// again.
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil
	}
	resp.Body.Close()
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("resending the request body: %w", err)
		}
	}
	return t.send(retry, tok, origin)
}

// send sends a copy of req with the token and a fresh proof, and keeps
// the nonce the answer carries.
func (t *TokenTransport) send(req *http.Request, tok, origin string) (*http.Response, error) {
	t.mu.Lock()
	nonce := t.nonces[origin]
	t.mu.Unlock()
	u := *req.URL
	u.RawQuery, u.Fragment, u.User = "", "", nil
	proof, err := dpop.NewProof(t.Signer.key, req.Method, u.String(), t.now(), dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "DPoP "+tok)
	out.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	if n := resp.Header.Get("DPoP-Nonce"); n != "" {
		t.mu.Lock()
		if t.nonces == nil {
			t.nonces = make(map[string]string)
		}
		t.nonces[origin] = n
		t.mu.Unlock()
	}
	return resp, nil
}

// asksNonce reports whether a 401 asks for a DPoP nonce (RFC 9449
// section 9): a use_dpop_nonce challenge with a DPoP-Nonce to use.
func asksNonce(resp *http.Response) bool {
	if resp.Header.Get("DPoP-Nonce") == "" {
		return false
	}
	for _, ch := range resp.Header.Values("WWW-Authenticate") {
		if strings.Contains(ch, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}
