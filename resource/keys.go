package resource

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/warrantlog/warrant/dpop"
	"github.com/warrantlog/warrant/proofs"
)

// Bounds on what the issuer's discovery answers.
const (
	maxJWKSBytes     = 64 << 10
	maxJWKSKeys      = 32
	maxMetadataBytes = 64 << 10
)

// keySet is the issuer's token keys, fetched from its JWKS and held until
// a token names a key the set lacks: then the JWKS is fetched again (the
// issuer rotated its key), at most once per refetch interval, so that
// tokens with made-up kids cannot make the resource server hammer the
// issuer. A set older than maxAge is refreshed by the next lookup; when
// that fetch fails, the keys held go on verifying.
type keySet struct {
	v *Verifier
	// fetchMu serializes fetches; mu guards the fields below.
	fetchMu sync.Mutex
	mu      sync.RWMutex
	jwksURL string
	keys    map[string]*proofs.PublicKey
	fetched time.Time // last fetch attempt
	// static is a set given in Config.JWKS: never fetched.
	static bool
}

// lookup returns the key kid names, fetching the JWKS when the set has
// not been loaded, is stale, or lacks kid, unless it was fetched within
// the refetch interval.
func (s *keySet) lookup(ctx context.Context, kid string, now time.Time) (*proofs.PublicKey, error) {
	cfg := &s.v.cfg
	if s.static {
		return s.answer(kid)
	}
	s.mu.RLock()
	k, fetched := s.keys[kid], s.fetched
	s.mu.RUnlock()
	if k != nil && now.Sub(fetched) < cfg.KeysMaxAge {
		return k, nil
	}
	mayFetch := func(fetched time.Time) bool { return fetched.IsZero() || now.Sub(fetched) >= cfg.KeysRefetch }
	if !mayFetch(fetched) {
		return s.answer(kid)
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	s.mu.RLock()
	fetched = s.fetched
	s.mu.RUnlock()
	if !mayFetch(fetched) {
		return s.answer(kid)
	}
	keys, err := s.fetch(ctx)
	s.mu.Lock()
	s.fetched = now
	if err == nil {
		s.keys = keys
	}
	s.mu.Unlock()
	if err != nil {
		s.v.log.Warn("resource: fetching the issuer's JWKS failed", "err", err)
	}
	return s.answer(kid)
}

// answer is the key kid names in the set held: when there is no set at
// all, the resource server cannot judge the token, which is its failure
// (503), not the client's.
func (s *keySet) answer(kid string) (*proofs.PublicKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if k := s.keys[kid]; k != nil {
		return k, nil
	}
	if s.keys == nil {
		return nil, refuse(http.StatusServiceUnavailable, ErrUnavailable, "the issuer's keys could not be fetched")
	}
	return nil, invalidToken("the token's key %s is not one of the issuer's keys", kid)
}

// fetch reads the JWKS, discovering its URL from the issuer's RFC 8414
// metadata the first time when none is configured.
func (s *keySet) fetch(ctx context.Context) (map[string]*proofs.PublicKey, error) {
	if s.jwksURL == "" {
		meta, err := s.v.metadata(ctx)
		if err != nil {
			return nil, err
		}
		if meta.JWKSURI == "" {
			return nil, fmt.Errorf("the issuer's metadata names no jwks_uri")
		}
		s.jwksURL = meta.JWKSURI
	}
	var doc json.RawMessage
	if err := s.v.getJSON(ctx, s.jwksURL, maxJWKSBytes, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys, err := parseJWKS(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.jwksURL, err)
	}
	return keys, nil
}

// parseJWKS reads the issuer's token keys from a JWKS document: its
// ES256 signing keys with a kid, at most maxJWKSKeys of them; other keys
// are skipped, and a set with none is an error.
func parseJWKS(doc []byte) (map[string]*proofs.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("JWKS: not a JSON object with keys: %w", err)
	}
	keys := make(map[string]*proofs.PublicKey)
	for _, raw := range set.Keys {
		if len(keys) == maxJWKSKeys {
			break
		}
		var m struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
			Kty string `json:"kty"`
		}
		// Only the ES256 signing keys: anything else is not a token key.
		if json.Unmarshal(raw, &m) != nil || m.Kid == "" || m.Kty != "EC" || (m.Alg != "" && m.Alg != "ES256") || (m.Use != "" && m.Use != "sig") {
			continue
		}
		pk, err := dpop.ParseJWK(raw, "ES256")
		if err != nil {
			continue
		}
		if _, ok := pk.Key.(*ecdsa.PublicKey); ok {
			keys[m.Kid] = pk
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS holds no ES256 signing key with a kid")
	}
	return keys, nil
}

// authServerMetadata is what the resource server reads of the issuer's
// RFC 8414 metadata.
type authServerMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// metadata fetches the issuer's metadata and checks that it is the
// issuer's (RFC 8414 section 3.3).
func (v *Verifier) metadata(ctx context.Context) (*authServerMetadata, error) {
	var m authServerMetadata
	if err := v.getJSON(ctx, v.cfg.Issuer+"/.well-known/oauth-authorization-server", maxMetadataBytes, &m); err != nil {
		return nil, fmt.Errorf("issuer metadata: %w", err)
	}
	if m.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("issuer metadata names issuer %q, not %q", m.Issuer, v.cfg.Issuer)
	}
	return &m, nil
}

func (v *Verifier) getJSON(ctx context.Context, url string, limit int64, out any) error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("GET %s: answer over %d bytes", url, limit)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
