package dpop

import (
	"container/heap"
	"sync"
	"time"
)

// ReplayCache remembers the proofs seen while they could still be
// accepted, up to a bound, so that each is accepted once. When full of
// proofs not yet expired it refuses new ones rather than forgetting: an
// attacker filling it can delay honest clients for at most one window,
// never replay a proof. Such a refusal is an *Error with Busy set: the
// server's capacity, not the proof's fault.
//
// Proofs are forgotten in the order they expire (a heap by expiry), a few
// at each Add, so an Add costs O(log n) whether or not the cache is full:
// a full cache does not make every refusal a scan of all it holds.
type ReplayCache struct {
	mu     sync.Mutex
	max    int
	seen   map[string]time.Time // key -> when it can be forgotten; none expired after forget
	expiry expiryHeap           // the keys of seen, soonest expiry first
	// horizon is the latest now the cache has forgotten up to. A key
	// whose window ends by then may already have been forgotten, so it is
	// refused: a caller whose clock is behind (a clock stepped back, or a
	// now taken before another caller's) cannot bring a forgotten proof
	// back.
	horizon time.Time
}

// NewReplayCache returns a cache of at most max entries.
func NewReplayCache(max int) *ReplayCache {
	return &ReplayCache{max: max, seen: make(map[string]time.Time)}
}

// Add records key until until, refusing a key already held, and, as
// Busy, a new one when the cache is full of keys not yet expired, or one
// whose window ends before the latest now the cache has forgotten up to
// (see horizon).
func (c *ReplayCache) Add(key string, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget(now)
	if t, ok := c.seen[key]; ok && now.Before(t) {
		return errorf("the DPoP proof was used before (jti replayed)")
	}
	if !until.After(c.horizon) {
		// Only with a clock behind the cache's (Verify has checked the
		// proof's iat against now): the server's condition, not the
		// proof's fault.
		return &Error{Description: "the server's clock is behind the DPoP replay window it keeps; retry shortly", Busy: true, RetryAfter: c.horizon.Sub(until)}
	}
	if len(c.seen) >= c.max {
		var retry time.Duration
		if len(c.expiry) > 0 {
			retry = c.expiry[0].until.Sub(c.horizon)
		}
		return &Error{Description: "too many DPoP proofs in the replay window; retry with a fresh proof shortly", Busy: true, RetryAfter: retry}
	}
	c.seen[key] = until
	heap.Push(&c.expiry, expiring{key: key, until: until})
	return nil
}

// AddProof records p, verified at now, for its whole window (see Verify).
func (c *ReplayCache) AddProof(p *Proof, now time.Time) error {
	return c.Add(p.JKT+" "+p.JTI, p.IAT.Add(MaxAge+MaxAhead), now)
}

// forget drops the keys expired by now, or by the latest now seen before,
// soonest first.
func (c *ReplayCache) forget(now time.Time) {
	if now.After(c.horizon) {
		c.horizon = now
	}
	for len(c.expiry) > 0 && !c.horizon.Before(c.expiry[0].until) {
		e := heap.Pop(&c.expiry).(expiring)
		// Each key is in the heap once (a held key is refused), so this
		// holds; the check keeps a later entry of the key should that change.
		if t, ok := c.seen[e.key]; ok && t.Equal(e.until) {
			delete(c.seen, e.key)
		}
	}
}

// Len is the number of proofs remembered.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiring struct {
	key   string
	until time.Time
}

// expiryHeap is a min-heap of keys by expiry (container/heap).
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiring{}
	*h = old[:len(old)-1]
	return e
}
