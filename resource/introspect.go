package resource

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/warrantlog/warrant/dpop"
)

// IntrospectionPath is the issuer's introspection endpoint (RFC 7662),
// under its issuer URL, unless its metadata names another.
const IntrospectionPath = "/oauth2/introspect"

const maxIntrospectionBytes = 64 << 10

// Introspector asks the issuer whether a token is still active (RFC 7662):
// a live answer, so that a revocation anywhere up the token's chain stops
// a high-impact call at once rather than when the token expires. The
// resource server authenticates as a registered agent of the log with a
// DPoP proof of its own key; no client secret exists.
type Introspector struct {
	// Endpoint is the introspection endpoint's URL; empty: the issuer's
	// metadata's introspection_endpoint, else issuer + IntrospectionPath.
	Endpoint string
	// Key is the resource server's own agent key, bound in the log
	// (Ed25519 or P-256).
	Key crypto.Signer

	mu    sync.Mutex
	nonce string // the endpoint's last DPoP-Nonce
}

// Introspection is the issuer's answer (RFC 7662 section 2.2).
type Introspection struct {
	Active   bool   `json:"active"`
	Scope    string `json:"scope,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Sub      string `json:"sub,omitempty"`
	Aud      any    `json:"aud,omitempty"`
	Iss      string `json:"iss,omitempty"`
	Exp      int64  `json:"exp,omitempty"`
	JTI      string `json:"jti,omitempty"`
}

// introspect asks the issuer about token, retrying once with the
// endpoint's nonce when it asks for one (use_dpop_nonce).
func (v *Verifier) introspect(ctx context.Context, token string) (*Introspection, error) {
	in := v.cfg.Introspector
	endpoint, err := v.introspectionEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		in.mu.Lock()
		nonce := in.nonce
		in.mu.Unlock()
		ans, retry, err := v.introspectOnce(ctx, endpoint, token, nonce)
		if err == nil || !retry || attempt == 1 {
			return ans, err
		}
	}
}

// introspectionEndpoint is the configured endpoint, else the one the
// issuer's metadata names, else the issuer's default path.
func (v *Verifier) introspectionEndpoint(ctx context.Context) (string, error) {
	in := v.cfg.Introspector
	in.mu.Lock()
	endpoint := in.Endpoint
	in.mu.Unlock()
	if endpoint != "" {
		return endpoint, nil
	}
	// The metadata is read without the lock: concurrent first calls may
	// each read it, and agree.
	meta, err := v.metadata(ctx)
	if err != nil {
		return "", err
	}
	endpoint = meta.IntrospectionEndpoint
	if endpoint == "" {
		endpoint = v.cfg.Issuer + IntrospectionPath
	}
	in.mu.Lock()
	in.Endpoint = endpoint
	in.mu.Unlock()
	return endpoint, nil
}

func (v *Verifier) introspectOnce(ctx context.Context, endpoint, token, nonce string) (ans *Introspection, retry bool, err error) {
	in := v.cfg.Introspector
	proof, err := dpop.NewProof(in.Key, http.MethodPost, endpoint, v.cfg.Now(), dpop.ProofOptions{Nonce: nonce})
	if err != nil {
		return nil, false, fmt.Errorf("introspection proof: %w", err)
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("DPoP", proof)
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("introspection: %w", err)
	}
	defer resp.Body.Close()
	if n := resp.Header.Get("DPoP-Nonce"); n != "" {
		in.mu.Lock()
		in.nonce = n
		in.mu.Unlock()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBytes))
	if err != nil {
		return nil, false, fmt.Errorf("introspection: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		json.Unmarshal(body, &e)
		retry = e.Error == ErrUseDPoPNonce && resp.Header.Get("DPoP-Nonce") != ""
		return nil, retry, fmt.Errorf("introspection answered %s: %s %s", resp.Status, e.Error, e.Description)
	}
	var a Introspection
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, false, fmt.Errorf("introspection answer is not JSON: %w", err)
	}
	return &a, false, nil
}

// CheckActive asks the issuer, with Config.Introspector, whether the
// token c was read from is still active, and refuses it (an *Error) when
// it is not or no answer comes. It is Rule.Introspect for code past the
// HTTP layer: a handler that decides on its own what a request does (an
// MCP tool) checks again there, so that no difference between what the
// HTTP layer read and what the handler executes can skip the question.
func (v *Verifier) CheckActive(ctx context.Context, c *Claims) error {
	if v.cfg.Introspector == nil {
		return errors.New("resource: CheckActive needs a Config.Introspector")
	}
	return v.checkLive(ctx, c)
}

// checkLive refuses a token the issuer no longer holds active. An
// unanswered introspection refuses too (503): the route asked for a live
// answer and did not get one.
func (v *Verifier) checkLive(ctx context.Context, c *Claims) error {
	a, err := v.introspect(ctx, c.Token)
	if err != nil {
		v.log.Warn("resource: introspection failed", "err", err)
		return refuse(http.StatusServiceUnavailable, ErrUnavailable, "the issuer could not confirm the token is active")
	}
	if !a.Active {
		return invalidToken("the issuer says the token is no longer active (revoked or expired up its chain)")
	}
	if a.JTI != "" && a.JTI != c.JTI {
		return invalidToken("the introspection answer is about another token")
	}
	return nil
}
