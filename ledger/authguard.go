package ledger

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/warrantlog/warrant/proofs"
)

// Slowing down peers that fail authentication.
//
// Refusing a forged request costs the log its signature checks, and a peer
// with no key can send forged requests as fast as it likes. So each peer
// (the client's IP address; an IPv6 address counts by its /64) has a
// budget of authentication failures, a token bucket: every request of it
// refused as not authentic (an Unauthenticated answer, or a malformed
// signature) spends a token, and while the bucket is empty its requests are
// refused with ReasonAuthBackoff (ResourceExhausted) before their
// signatures are checked, at the cost of a map lookup. An AppendBatch
// checks at most as many distinct envelopes at once as the peer has tokens
// left, so one batch cannot spend more than the budget either.
//
// A peer whose requests authenticate never spends anything. Peers share a
// budget when they share an address (behind a NAT or a proxy that does not
// pass the client address on); a forger behind the same address then slows
// them down too, which is why the default budget is generous and the
// setting can be turned off (Options.AuthFailureRate < 0).
//
// The per-peer state is bounded (Options.MaxTrackedPeers): buckets that
// have filled up again are dropped first, then the least recently used. A
// peer dropped starts again with a full bucket, so cycling through many
// addresses gains an attacker a budget per address, never more.

// Default authentication failure budget (see Options).
const (
	DefaultAuthFailureRate  = 2
	DefaultAuthFailureBurst = 64
	DefaultMaxTrackedPeers  = 10_000
)

// authGuard holds per-peer budgets of refusals of one kind: failed
// authentications (newAuthGuard), or appends over their rate limits
// (newFloodGuard). Safe for concurrent use.
type authGuard struct {
	rate  rate.Limit // rate.Inf: off
	burst int
	now   func() time.Time // the clock; time.Now outside tests
	// refuse words the refusal of a peer whose budget is spent.
	refuse func(burst int, rate float64, retry time.Duration) error

	mu  sync.Mutex
	m   map[string]*list.Element // of *peerBudget
	lru list.List                // front: most recently used
	max int
}

type peerBudget struct {
	key string
	bucket
}

// bucket is a token bucket that may go into debt, and that gives tokens
// back (which golang.org/x/time/rate does not for a reservation already
// due). Its owner's lock guards it.
type bucket struct {
	tokens float64
	last   time.Time
}

// at brings b to now (refilled at r, up to burst) and returns its tokens.
func (b *bucket) at(now time.Time, r rate.Limit, burst int) float64 {
	if now.After(b.last) {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*float64(r))
		b.last = now
	}
	return b.tokens
}

func newAuthGuard(opts Options) *authGuard {
	return newPeerGuard(opts.AuthFailureRate, DefaultAuthFailureRate, opts.AuthFailureBurst, DefaultAuthFailureBurst, opts.MaxTrackedPeers,
		func(burst int, r float64, retry time.Duration) error {
			return proofs.Errorf(proofs.ReasonAuthBackoff, "too many requests from this address failed authentication (budget %d, refilling at %g per second): refused before checking signatures; retry in %v", burst, r, retry)
		})
}

// newPeerGuard builds a guard of per-peer budgets: a zero rate or burst
// selects the default, a negative rate turns the guard off.
func newPeerGuard(r, defRate float64, burst, defBurst, maxPeers int, refuse func(int, float64, time.Duration) error) *authGuard {
	g := &authGuard{rate: rate.Limit(defRate), burst: burst, now: time.Now, refuse: refuse, m: make(map[string]*list.Element), max: maxPeers}
	switch {
	case r < 0:
		g.rate = rate.Inf
	case r > 0:
		g.rate = rate.Limit(r)
	}
	if g.burst <= 0 {
		g.burst = defBurst
	}
	if g.max <= 0 {
		g.max = DefaultMaxTrackedPeers
	}
	return g
}

// budgetKey is the budget a client address counts against: the IP address,
// an IPv6 one by its /64 (one host usually holds the whole prefix). An
// address that does not parse counts as itself.
func budgetKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// allowance is how many requests of peer may have their signatures checked
// now: the failures it may still afford (0 when its bucket is empty; the
// burst when it has no record), or math.MaxInt when the guard is off.
func (g *authGuard) allowance(peer string) int {
	if g == nil || g.rate == rate.Inf || peer == "" {
		return math.MaxInt
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.m[peer]
	if !ok {
		return g.burst
	}
	t := e.Value.(*peerBudget).at(g.now(), g.rate, g.burst)
	if t < 1 {
		return 0
	}
	return int(t)
}

// check refuses a request of peer when its budget is spent.
func (g *authGuard) check(peer string) error {
	if g.allowance(peer) > 0 {
		return nil
	}
	g.mu.Lock()
	d := time.Second
	if e, ok := g.m[peer]; ok {
		d = time.Duration((1 - e.Value.(*peerBudget).at(g.now(), g.rate, g.burst)) / float64(g.rate) * float64(time.Second))
	}
	g.mu.Unlock()
	return g.refuse(g.burst, float64(g.rate), retryHint(d))
}

// fail spends n tokens of peer's budget for n refusals. The bucket may go
// into debt, so a burst of failures keeps the peer out for as long as it
// would take to earn them.
func (g *authGuard) fail(peer string, n int) {
	if g == nil || g.rate == rate.Inf || peer == "" || n <= 0 {
		return
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.budget(peer, now)
	b.at(now, g.rate, g.burst)
	b.tokens -= float64(n)
}

// reserve takes n tokens (at most the burst) of peer's budget now,
// creating its record, or refuses, spending nothing, if the budget does
// not hold them. giveBack returns them, for a request that turned out not
// to spend them.
func (g *authGuard) reserve(peer string, n int) (giveBack func(), err error) {
	if g == nil || g.rate == rate.Inf || peer == "" || n <= 0 {
		return func() {}, nil
	}
	n = min(n, g.burst)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.budget(peer, now)
	if t := b.at(now, g.rate, g.burst); t < float64(n) {
		d := time.Duration((float64(n) - t) / float64(g.rate) * float64(time.Second))
		return nil, g.refuse(g.burst, float64(g.rate), retryHint(d))
	}
	b.tokens -= float64(n)
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		b.at(g.now(), g.rate, g.burst)
		b.tokens = min(float64(g.burst), b.tokens+float64(n))
	}, nil
}

// budget returns peer's bucket, creating it full if it has none. g.mu is
// held.
func (g *authGuard) budget(peer string, now time.Time) *bucket {
	if e, ok := g.m[peer]; ok {
		g.lru.MoveToFront(e)
		return &e.Value.(*peerBudget).bucket
	}
	for range 2 { // drop refilled budgets from the cold end as we go
		e := g.lru.Back()
		if e == nil || e.Value.(*peerBudget).at(now, g.rate, g.burst) < float64(g.burst) {
			break
		}
		g.remove(e)
	}
	for g.lru.Len() >= g.max {
		g.remove(g.lru.Back())
	}
	pb := &peerBudget{key: peer, bucket: bucket{tokens: float64(g.burst), last: now}}
	g.m[peer] = g.lru.PushFront(pb)
	return &pb.bucket
}

func (g *authGuard) remove(e *list.Element) {
	g.lru.Remove(e)
	delete(g.m, e.Value.(*peerBudget).key)
}

// tracked is the number of peers with a budget record.
func (g *authGuard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lru.Len()
}

// authFailure reports whether err refuses a request as not authentic: what
// spends a peer's failure budget.
func authFailure(err error) bool {
	r := proofs.Reason(err)
	return proofs.RPCStatus(r) == proofs.RPCUnauthenticated || r == proofs.ReasonSignatureHighS
}
