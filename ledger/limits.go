package ledger

import (
	"container/list"
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/warrantlog/warrant/proofs"
)

// Rate limits on appends.
//
// Every append that passed the stateless stage (parsed, canonical, its
// signatures verified) is counted against two token buckets before it is
// queued for the sequencer: its agent's, then the log's global one. A
// refused append writes nothing and is answered ResourceExhausted with
// reason rate_limited; clients retry with back-off (resubmitting the same
// envelope is safe: it returns the original entry).
//
// The order is chosen so that nobody can spend another's budget:
//
//   - The limiters run after authentication. An agent's bucket is spent
//     only by requests that carry its valid signature, so a flood of forged
//     or unsigned requests naming a victim as issuer cannot lock the victim
//     out; such a flood is refused by the signature checks (on the request
//     goroutines, in parallel, before any queue or disk), costs only CPU, and
//     never reaches the sequencer. Bounding raw request volume before
//     authentication is the transport's job (mutual TLS, a proxy's
//     connection limits).
//   - The agent's bucket is looked at before the global one, so an agent
//     over its own limit is refused without spending the global budget
//     that other agents share; and it is spent only once the global bucket
//     allowed the request.
//   - A request whose agent's bucket is already empty is refused even
//     before its signatures are checked (Log.shed): that spends nothing, so
//     it is as safe as the check after authentication (a forger learns no
//     more than that the agent is over its limit), and it makes the excess
//     of a flood cost a parse rather than a signature verification.
//
// The agent is the payload's issuer for delegations and issuer-signed
// revocations, and the signing key id for key bindings, policies and
// administrative revocations (a registrar or an admin key).

// Default rate limits (see Options). Each agent has two budgets: appends
// and envelope bytes. The byte budget holds an agent sending the largest
// envelopes to what the store and the sequencer absorb without slowing
// the others (1 MiB/s is 1,700 typical 600-byte envelopes a second, more
// than the count allows, but only 32 of the largest).
const (
	DefaultAgentRate        = 500
	DefaultAgentBurst       = 1000
	DefaultAgentByteRate    = 1 << 20
	DefaultAgentByteBurst   = 8 << 20
	DefaultMaxTrackedAgents = 100_000
)

// ReasonRateLimited refuses an append over its agent's or the global rate
// limit (ResourceExhausted; nothing is written; retry with back-off).
const ReasonRateLimited = proofs.ReasonRateLimited

// limiters are a log's rate limiters. Safe for concurrent use.
type limiters struct {
	agentRate      rate.Limit // rate.Inf: no per-agent count limit
	agentBurst     int
	agentByteRate  rate.Limit // rate.Inf: no per-agent byte limit
	agentByteBurst int
	global         *rate.Limiter // nil: no global limit
	shards         []limiterShard
	seed           maphash.Seed
}

// limiterShard is an LRU set of per-agent limiters behind one lock.
type limiterShard struct {
	mu  sync.Mutex
	m   map[string]*list.Element // of *agentLimiter
	lru list.List                // front: most recently used
	max int
}

type agentLimiter struct {
	key   string
	lim   *rate.Limiter // appends; nil without a count limit
	bytes *rate.Limiter // envelope bytes; nil without a byte limit
}

// full reports whether both of a's buckets are full at now: such a limiter
// holds no state (a new one starts full).
func (a *agentLimiter) full(now time.Time) bool {
	return (a.lim == nil || a.lim.TokensAt(now) >= float64(a.lim.Burst())) &&
		(a.bytes == nil || a.bytes.TokensAt(now) >= float64(a.bytes.Burst()))
}

// perAgent reports whether any per-agent limit is on.
func (l *limiters) perAgent() bool {
	return l.agentRate != rate.Inf || l.agentByteRate != rate.Inf
}

// newLimiters builds the limiters for opts, applying the defaults: a zero
// AgentRate or AgentBurst selects the default, a negative AgentRate turns
// the per-agent limit off; a GlobalRate of zero or less means no global
// limit, and a zero GlobalBurst one second's worth (at least 1).
func newLimiters(opts Options) *limiters {
	l := &limiters{agentRate: rate.Inf, agentByteRate: rate.Inf, seed: maphash.MakeSeed()}
	switch {
	case opts.AgentRate == 0:
		l.agentRate = DefaultAgentRate
	case opts.AgentRate > 0:
		l.agentRate = rate.Limit(opts.AgentRate)
	}
	l.agentBurst = opts.AgentBurst
	if l.agentBurst <= 0 {
		l.agentBurst = DefaultAgentBurst
	}
	switch {
	case opts.AgentByteRate == 0:
		l.agentByteRate = DefaultAgentByteRate
	case opts.AgentByteRate > 0:
		l.agentByteRate = rate.Limit(opts.AgentByteRate)
	}
	// A burst below one envelope of the largest size would refuse such an
	// envelope forever.
	l.agentByteBurst = max(opts.AgentByteBurst, proofs.MaxEnvelopeBytes)
	if opts.AgentByteBurst <= 0 {
		l.agentByteBurst = DefaultAgentByteBurst
	}
	if opts.GlobalRate > 0 {
		burst := opts.GlobalBurst
		if burst <= 0 {
			burst = int(max(1, math.Ceil(opts.GlobalRate)))
		}
		l.global = rate.NewLimiter(rate.Limit(opts.GlobalRate), burst)
	}
	tracked := opts.MaxTrackedAgents
	if tracked <= 0 {
		tracked = DefaultMaxTrackedAgents
	}
	// Shard the set when it is large, to keep lock contention low on the
	// request goroutines; each shard holds an equal share of the bound.
	n := 1
	if tracked >= 64*256 {
		n = 64
	}
	l.shards = make([]limiterShard, n)
	for i := range l.shards {
		l.shards[i] = limiterShard{m: make(map[string]*list.Element), max: tracked / n}
	}
	return l
}

// allow counts one append by agent against its bucket and the global one.
// It returns a rate_limited error, having spent nothing, if either is empty.
//
// The buckets are checked with AllowN, which changes nothing when it
// refuses, rather than with reservations cancelled on refusal: cancelling
// concurrent reservations does not restore every token, which would hold a
// busy agent below its rate. The agent's bucket is looked at first, the
// global one spent next, the agent's last; only two requests racing for an
// agent's last token can spend a global token for nothing.
func (l *limiters) allow(agent string, size int) error {
	now := time.Now()
	var mine *agentLimiter
	if l.perAgent() {
		mine = l.agent(agent, now)
		if err := l.agentEmpty(mine, size, now); err != nil {
			return err
		}
	}
	if l.global != nil && !l.global.AllowN(now, 1) {
		d := time.Duration((1 - l.global.TokensAt(now)) / float64(l.global.Limit()) * float64(time.Second))
		return proofs.Errorf(ReasonRateLimited, "the log is over its global rate limit of %g appends per second (burst %d); retry in %v", float64(l.global.Limit()), l.global.Burst(), retryHint(d))
	}
	if mine == nil {
		return nil
	}
	if mine.lim != nil && !mine.lim.AllowN(now, 1) {
		return l.agentEmpty(mine, size, now)
	}
	if mine.bytes != nil && !mine.bytes.AllowN(now, size) {
		return l.agentEmpty(mine, size, now)
	}
	return nil
}

// agentEmpty returns a rate_limited error if a's buckets cannot take one
// append of size bytes at now.
func (l *limiters) agentEmpty(a *agentLimiter, size int, now time.Time) error {
	if a.lim != nil {
		if tokens := a.lim.TokensAt(now); tokens < 1 {
			d := time.Duration((1 - tokens) / float64(l.agentRate) * float64(time.Second))
			return proofs.Errorf(ReasonRateLimited, "%s is over its rate limit of %g appends per second (burst %d); retry in %v", a.key, float64(l.agentRate), l.agentBurst, retryHint(d))
		}
	}
	if a.bytes != nil {
		if tokens := a.bytes.TokensAt(now); tokens < float64(size) {
			d := time.Duration((float64(size) - tokens) / float64(l.agentByteRate) * float64(time.Second))
			return proofs.Errorf(ReasonRateLimited, "%s is over its rate limit of %g envelope bytes per second (burst %d); retry in %v", a.key, float64(l.agentByteRate), l.agentByteBurst, retryHint(d))
		}
	}
	return nil
}

func retryHint(d time.Duration) time.Duration {
	if d > time.Hour {
		return time.Hour
	}
	return max(d.Round(time.Millisecond), time.Millisecond)
}

// agent returns the limiters of agent, creating them if needed.
func (l *limiters) agent(agent string, now time.Time) *agentLimiter {
	s := l.shard(agent)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[agent]; ok {
		s.lru.MoveToFront(e)
		return e.Value.(*agentLimiter)
	}
	// An idle limiter whose bucket has filled up again holds no state (a new
	// one starts full): drop such limiters from the cold end as we go, so the
	// set shrinks back when agents fall quiet.
	for range 2 {
		e := s.lru.Back()
		if e == nil || !e.Value.(*agentLimiter).full(now) {
			break
		}
		s.remove(e)
	}
	// At the bound, the least recently used limiter goes even if its bucket
	// is not full; its agent starts again with a full bucket.
	for s.lru.Len() >= max(s.max, 1) {
		s.remove(s.lru.Back())
	}
	a := &agentLimiter{key: agent}
	if l.agentRate != rate.Inf {
		a.lim = rate.NewLimiter(l.agentRate, l.agentBurst)
	}
	if l.agentByteRate != rate.Inf {
		a.bytes = rate.NewLimiter(l.agentByteRate, l.agentByteBurst)
	}
	s.m[agent] = s.lru.PushFront(a)
	return a
}

func (l *limiters) shard(agent string) *limiterShard {
	if len(l.shards) == 1 {
		return &l.shards[0]
	}
	return &l.shards[maphash.String(l.seed, agent)%uint64(len(l.shards))]
}

func (s *limiterShard) remove(e *list.Element) {
	s.lru.Remove(e)
	delete(s.m, e.Value.(*agentLimiter).key)
}

// tracked is the number of per-agent limiters held.
func (l *limiters) tracked() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// limitKey is the agent an append is counted against: the issuer of a
// delegation or issuer-signed revocation, else the signing key.
func limitKey(r *request) string {
	switch {
	case r.ev.Delegation != nil:
		return r.ev.Delegation.Issuer
	case r.ev.Revocation != nil && !r.ev.ByAdmin:
		return r.ev.Revocation.Issuer
	case r.ev.Token != nil:
		return r.ev.Token.Requester
	case r.env != nil && len(r.env.Signatures) > 0:
		return r.env.Signatures[0].KeyID
	default:
		return ""
	}
}

// shed refuses, before its signatures are checked, a request whose agent's
// bucket is empty right now: it would be refused after authentication
// anyway, and a flood from one agent then costs a parse per request, not a
// signature check. It spends nothing and tracks no new agent, so forged
// requests naming an agent still cannot lock it out or crowd real agents
// out of the limiter set: they are refused only while the agent's own
// appends keep its bucket empty.
func (l *Log) shed(r *request, size int) error {
	if l.limits == nil || !l.limits.perAgent() {
		return nil
	}
	key := limitKey(r)
	if r.ev.Revocation != nil && len(r.env.Signatures) > 0 {
		if _, ok := l.admins[r.env.Signatures[0].KeyID]; ok {
			key = r.env.Signatures[0].KeyID // an administrative revocation
		}
	}
	return l.limits.empty(key, size) // the canonical form is not made yet: the bytes as sent
}

// empty returns a rate_limited error if agent is tracked and its buckets
// cannot take one append of size bytes now.
func (l *limiters) empty(agent string, size int) error {
	s := l.shard(agent)
	s.mu.Lock()
	var a *agentLimiter
	if e, ok := s.m[agent]; ok {
		a = e.Value.(*agentLimiter)
	}
	s.mu.Unlock()
	if a == nil {
		return nil
	}
	return l.agentEmpty(a, size, time.Now())
}

// admit is the last step of the stateless stage, after the signatures
// verified: the transport identity check (mutual TLS), then the rate
// limits. A refusal writes nothing.
func (l *Log) admit(ctx context.Context, r *request) error {
	if err := checkPeer(ctx, r); err != nil {
		return err
	}
	if l.limits == nil {
		return nil
	}
	return l.limits.allow(limitKey(r), len(r.canon))
}
