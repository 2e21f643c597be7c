package dpop

import (
	"sync"
	"time"
)

// ReplayCache remembers the proofs seen while they could still be
// accepted, up to a bound, so that each is accepted once. When full of
// proofs not yet expired it refuses new ones rather than forgetting: an
// attacker filling it can delay honest clients for at most one window,
// never replay a proof.
type ReplayCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // key -> when it can be forgotten
}

// NewReplayCache returns a cache of at most max entries.
func NewReplayCache(max int) *ReplayCache {
	return &ReplayCache{max: max, seen: make(map[string]time.Time)}
}

// Add records key until until, refusing a key already held, and a new
// one when the cache is full of keys not yet expired.
func (c *ReplayCache) Add(key string, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.seen[key]; ok && now.Before(t) {
		return errorf("the DPoP proof was used before (jti replayed)")
	}
	if len(c.seen) >= c.max {
		for k, t := range c.seen {
			if !now.Before(t) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return errorf("too many DPoP proofs in the window; retry with a fresh proof shortly")
		}
	}
	c.seen[key] = until
	return nil
}

// Len is the number of proofs remembered.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
