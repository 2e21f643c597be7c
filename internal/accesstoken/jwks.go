package accesstoken

import (
	"context"
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

// Key is a token-signing public key and the one algorithm it signs with.
type Key struct {
	Key *proofs.PublicKey
	Alg string
}

// A KeySource finds the token key named by a token's kid. It returns
// ErrUnknownKey when no key has that kid (the token does not verify), and
// any other error when it cannot tell (the keys could not be fetched: the
// request cannot be decided).
type KeySource interface {
	Key(ctx context.Context, kid string) (Key, error)
}

// ErrUnknownKey is a kid no key of the set carries.
var ErrUnknownKey = errors.New("no token key has this kid")

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

// ParseJWKS reads a JWKS (RFC 7517) into keys by kid. Keys warrant does not
// sign tokens with (another kty or curve, use other than sig, a kid that
// is not the key's id as the log names it) are skipped, not refused, so a
// shared JWKS may hold them; a set with none left is an error.
func ParseJWKS(b []byte) (map[string]Key, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: not a JSON object with keys: %w", err)
	}
	out := make(map[string]Key)
	for _, raw := range doc.Keys {
		var m struct {
			Kid, Kty, Crv, Alg, Use string
		}
		if json.Unmarshal(raw, &m) != nil || m.Kid == "" || (m.Use != "" && m.Use != "sig") {
			continue
		}
		alg := m.Alg
		if alg == "" {
			switch {
			case m.Kty == "EC" && m.Crv == "P-256":
				alg = "ES256"
			case m.Kty == "OKP" && m.Crv == "Ed25519":
				alg = "EdDSA"
			}
		}
		k, err := dpop.ParseJWK(raw, alg)
		if err != nil || k.ID != m.Kid {
			// The log names each token key by its key id; an entry
			// whose kid is not its key's id is not one of them.
			continue
		}
		out[m.Kid] = Key{Key: k, Alg: alg}
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS: no ES256 or EdDSA signing key with a kid")
	}
	return out, nil
}

// StaticKeys is a fixed key set (a JWKS read from a file).
type StaticKeys map[string]Key

// Key implements KeySource.
func (s StaticKeys) Key(_ context.Context, kid string) (Key, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// RemoteJWKS is a JWKS fetched over HTTP and kept for MaxAge. A kid it
// does not hold makes it fetch again, at most once per MinRefetch, so a
// rotated-in key is found within seconds and a stream of tokens with
// made-up kids costs one fetch per MinRefetch.
type RemoteJWKS struct {
	URL    string
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxAge is how long a fetched set is used (default 5 minutes, the
	// log's Cache-Control); MinRefetch the least time between fetches
	// (default 5 seconds).
	MaxAge, MinRefetch time.Duration

	fetch   sync.Mutex // one fetch at a time
	mu      sync.Mutex
	keys    map[string]Key
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

func (s *RemoteJWKS) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// lookup returns the key if held, and whether the set is due a fetch.
func (s *RemoteJWKS) lookup(kid string) (Key, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[kid]
	now := s.now()
	stale := s.keys == nil || now.Sub(s.fetched) >= orDefault(s.MaxAge, 5*time.Minute)
	canRetry := s.tried.IsZero() || now.Sub(s.tried) >= orDefault(s.MinRefetch, 5*time.Second)
	return k, ok, (stale || !ok) && canRetry
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Key implements KeySource.
func (s *RemoteJWKS) Key(ctx context.Context, kid string) (Key, error) {
	k, ok, due := s.lookup(kid)
	if !due {
		if ok {
			return k, nil
		}
		if s.held() {
			return Key{}, ErrUnknownKey
		}
		return Key{}, fmt.Errorf("JWKS %s: not fetched yet", s.URL)
	}
	s.fetch.Lock()
	defer s.fetch.Unlock()
	// Another request may have fetched while this one waited.
	if k, ok, due = s.lookup(kid); !due {
		if ok {
			return k, nil
		}
		return Key{}, ErrUnknownKey
	}
	keys, err := s.get(ctx)
	s.mu.Lock()
	s.tried = s.now()
	if err == nil {
		s.keys, s.fetched = keys, s.tried
	}
	held := s.keys
	s.mu.Unlock()
	if k, ok := held[kid]; ok {
		// A failed refresh keeps serving the keys already held.
		return k, nil
	}
	if err != nil {
		return Key{}, err
	}
	return Key{}, ErrUnknownKey
}

func (s *RemoteJWKS) held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys != nil
}

func (s *RemoteJWKS) get(ctx context.Context) (map[string]Key, error) {
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", s.URL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS %s: %s", s.URL, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS %s: %w", s.URL, err)
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS %s is over %d bytes", s.URL, maxJWKSBytes)
	}
	return ParseJWKS(b)
}
