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

// Default rate limits (see Options).
const (
	DefaultAgentRate        = 500
	DefaultAgentBurst       = 1000
	DefaultMaxTrackedAgents = 100_000
)

// ReasonRateLimited refuses an append over its agent's or the global rate
// limit (ResourceExhausted; nothing is written; retry with back-off).
const ReasonRateLimited = "rate_limited"

// limiters are a log's rate limiters. Safe for concurrent use.
type limiters struct {
	agentRate  rate.Limit // rate.Inf: no per-agent limit
	agentBurst int
	global     *rate.Limiter // nil: no global limit
	shards     []limiterShard
	seed       maphash.Seed
}

// limiterShard is an LRU set of per-agent limiters behind one lock.
type limiterShard struct {
	mu  sync.Mutex
	m   map[string]*list.Element // of *agentLimiter
	lru list.List                // front: most recently used
	max int
}

type agentLimiter struct {
	key string
	lim *rate.Limiter
}

// newLimiters builds the limiters for opts, applying the defaults: a zero
// AgentRate or AgentBurst selects the default, a negative AgentRate turns
// the per-agent limit off; a GlobalRate of zero or less means no global
// limit, and a zero GlobalBurst one second's worth (at least 1).
func newLimiters(opts Options) *limiters {
	l := &limiters{agentRate: rate.Inf, seed: maphash.MakeSeed()}
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
func (l *limiters) allow(agent string) error {
	now := time.Now()
	var mine *rate.Limiter
	if l.agentRate != rate.Inf {
		mine = l.agent(agent, now)
		if tokens := mine.TokensAt(now); tokens < 1 {
			return l.agentLimited(agent, tokens)
		}
	}
	if l.global != nil && !l.global.AllowN(now, 1) {
		d := time.Duration((1 - l.global.TokensAt(now)) / float64(l.global.Limit()) * float64(time.Second))
		return proofs.Errorf(ReasonRateLimited, "the log is over its global rate limit of %g appends per second (burst %d); retry in %v", float64(l.global.Limit()), l.global.Burst(), retryHint(d))
	}
	if mine != nil && !mine.AllowN(now, 1) {
		return l.agentLimited(agent, mine.TokensAt(now))
	}
	return nil
}

func (l *limiters) agentLimited(agent string, tokens float64) error {
	d := time.Duration((1 - tokens) / float64(l.agentRate) * float64(time.Second))
	return proofs.Errorf(ReasonRateLimited, "%s is over its rate limit of %g appends per second (burst %d); retry in %v", agent, float64(l.agentRate), l.agentBurst, retryHint(d))
}

func retryHint(d time.Duration) time.Duration {
	if d > time.Hour {
		return time.Hour
	}
	return max(d.Round(time.Millisecond), time.Millisecond)
}

// agent returns the limiter of agent, creating it if needed.
func (l *limiters) agent(agent string, now time.Time) *rate.Limiter {
	s := l.shard(agent)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[agent]; ok {
		s.lru.MoveToFront(e)
		return e.Value.(*agentLimiter).lim
	}
	// An idle limiter whose bucket has filled up again holds no state (a new
	// one starts full): drop such limiters from the cold end as we go, so the
	// set shrinks back when agents fall quiet.
	for range 2 {
		e := s.lru.Back()
		if e == nil || e.Value.(*agentLimiter).lim.TokensAt(now) < float64(l.agentBurst) {
			break
		}
		s.remove(e)
	}
	// At the bound, the least recently used limiter goes even if its bucket
	// is not full; its agent starts again with a full bucket.
	for s.lru.Len() >= max(s.max, 1) {
		s.remove(s.lru.Back())
	}
	lim := rate.NewLimiter(l.agentRate, l.agentBurst)
	s.m[agent] = s.lru.PushFront(&agentLimiter{key: agent, lim: lim})
	return lim
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
	case r.del != nil:
		return r.del.Issuer
	case r.rev != nil && !r.byAdmin:
		return r.rev.Issuer
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
func (l *Log) shed(r *request) error {
	if l.limits == nil || l.limits.agentRate == rate.Inf {
		return nil
	}
	key := limitKey(r)
	if r.rev != nil && len(r.env.Signatures) > 0 {
		if _, ok := l.admins[r.env.Signatures[0].KeyID]; ok {
			key = r.env.Signatures[0].KeyID // an administrative revocation
		}
	}
	return l.limits.empty(key)
}

// empty returns a rate_limited error if agent is tracked and its bucket
// holds less than one token now.
func (l *limiters) empty(agent string) error {
	s := l.shard(agent)
	s.mu.Lock()
	var lim *rate.Limiter
	if e, ok := s.m[agent]; ok {
		lim = e.Value.(*agentLimiter).lim
	}
	s.mu.Unlock()
	if lim == nil {
		return nil
	}
	if tokens := lim.TokensAt(time.Now()); tokens < 1 {
		return l.agentLimited(agent, tokens)
	}
	return nil
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
	return l.limits.allow(limitKey(r))
}
