package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Member is a live node: its id and the URL it is reached at.
type Member struct {
	NodeID string `json:"node_id"`
	URL    string `json:"url"`
}

// Coordinator is this node's connection to etcd: its registration as a
// member, its campaigns and the checkpoint. Its methods are safe for
// concurrent use.
type Coordinator struct {
	cfg Config
	log *slog.Logger
	cli *clientv3.Client

	// ctx lives as long as the Coordinator; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines that end with ctx; added to by spawn

	mu     sync.Mutex
	member *concurrency.Session // the session the member key lives under
	terms  map[*Term]struct{}   // terms not yet ended
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// errClosed ends the terms of a closed Coordinator.
var errClosed = errors.New("leader: coordinator closed")

// Dial connects to etcd and registers this node as a member (Members lists
// it from then on). It waits for etcd until ctx ends: a node that cannot
// reach etcd at start fails with an error that says so. It refuses a node
// id that a live process has registered (ErrNodeIDInUse, after waiting as
// long as that process's lease was granted for, in case it has died). Once Dial has
// returned, the registration is kept by itself: if its lease is lost (etcd
// away longer than LeaseTTL) the node registers again when etcd is back.
func Dial(ctx context.Context, cfg Config) (*Coordinator, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		// The client's own zap logs are dropped: what matters to an
		// operator is logged by this package through cfg.Logger.
		Logger: zap.NewNop(),
		// Find a dead connection to etcd (a partition that drops packets)
		// and dial again. gRPC allows no less than 10 s; the lease deadline
		// does not depend on it.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		// Dial etcd again at least every second while it is away (gRPC's
		// default backs off to two minutes), so that a node is back soon
		// after etcd is.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   time.Second,
			},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("leader: etcd client for %v: %w", cfg.Endpoints, err)
	}
	c := &Coordinator{
		cfg:   cfg,
		log:   cfg.Logger.With("node_id", cfg.NodeID),
		cli:   cli,
		terms: map[*Term]struct{}{},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	sess, err := c.register(ctx, 0)
	if err != nil {
		c.cancel()
		cli.Close()
		return nil, fmt.Errorf("leader: register node %s with etcd at %v: %w", cfg.NodeID, cfg.Endpoints, err)
	}
	c.member = sess
	c.spawn(func() { c.keepRegistered(sess) })
	return c, nil
}

func (c *Coordinator) memberKey() string     { return c.cfg.Prefix + "members/" + c.cfg.NodeID }
func (c *Coordinator) membersPrefix() string { return c.cfg.Prefix + "members/" }

// electionPrefix is given to concurrency.NewElection, which appends "/".
func (c *Coordinator) electionPrefix() string { return c.cfg.Prefix + "election" }
func (c *Coordinator) checkpointKey() string  { return c.cfg.Prefix + "checkpoint" }

// self is this node's value in its member and election keys.
func (c *Coordinator) self() string {
	b, _ := json.Marshal(Member{NodeID: c.cfg.NodeID, URL: c.cfg.URL})
	return string(b)
}

// grant asks etcd for a lease of LeaseTTL within ctx and keeps it alive in
// a concurrency.Session that lives until the Coordinator closes (or the
// session is closed). It returns the local time the grant was sent, from
// which the lease is known to live at least LeaseTTL.
func (c *Coordinator) grant(ctx context.Context) (*concurrency.Session, time.Time, error) {
	sent := c.cfg.Now()
	g, err := c.cli.Grant(ctx, int64(c.cfg.LeaseTTL/time.Second))
	if err != nil {
		return nil, sent, fmt.Errorf("grant lease: %w", err)
	}
	// The session is given the lease rather than granting it itself, so
	// that the grant obeys ctx while the keepalive obeys the Coordinator.
	sess, err := concurrency.NewSession(c.cli, concurrency.WithLease(g.ID), concurrency.WithContext(c.ctx))
	if err != nil {
		c.revokeLater(g.ID)
		return nil, sent, fmt.Errorf("keep lease alive: %w", err)
	}
	return sess, sent, nil
}

// register puts this node's member key under a new lease, only if no
// other process holds it: the key is created if absent, or taken over if
// it is this Coordinator's own earlier registration (under lease prev,
// 0 for none). A key under another live lease is waited for as long as
// that lease was granted for, plus a second: a process that died leaves it
// to run out in that time, a live node keeps renewing it, and register
// then fails with ErrNodeIDInUse.
func (c *Coordinator) register(ctx context.Context, prev clientv3.LeaseID) (*concurrency.Session, error) {
	sess, _, err := c.grant(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.claimMemberKey(ctx, sess.Lease(), prev); err != nil {
		sess.Orphan()
		c.revokeLater(sess.Lease())
		return nil, err
	}
	return sess, nil
}

// memberPoll is how often register looks again at a member key another
// lease holds.
const memberPoll = 200 * time.Millisecond

// claimMemberKey puts the member key under lease, as register says.
func (c *Coordinator) claimMemberKey(ctx context.Context, lease, prev clientv3.LeaseID) error {
	key := c.memberKey()
	var expire <-chan time.Time // armed when another lease is first seen
	for {
		// Create the key if absent; otherwise read who holds it.
		resp, err := c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, c.self(), clientv3.WithLease(lease))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("put member key: %w", err)
		}
		if resp.Succeeded {
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			continue // deleted between the compare and the read
		}
		kv := kvs[0]
		held := clientv3.LeaseID(kv.Lease)
		if held == 0 || (prev != 0 && held == prev) {
			// This node's own earlier lease (lost), or a key under no lease
			// that would never run out: take it over, unless it changed.
			r, err := c.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
				Then(clientv3.OpPut(key, c.self(), clientv3.WithLease(lease))).
				Commit()
			if err != nil {
				return fmt.Errorf("put member key: %w", err)
			}
			if r.Succeeded {
				return nil
			}
			continue
		}
		if expire == nil {
			granted := c.cfg.LeaseTTL
			if ttl, err := c.cli.TimeToLive(ctx, held); err == nil && ttl.GrantedTTL > 0 {
				granted = time.Duration(ttl.GrantedTTL) * time.Second
			}
			c.log.Warn("leader: another process is registered under this node id; waiting for its lease to run out", "key", key, "holder", string(kv.Value), "lease_ttl", granted)
			t := time.NewTimer(granted + time.Second)
			defer t.Stop()
			expire = t.C
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for member key %s to be released: %w", key, ctx.Err())
		case <-expire:
			var holder Member
			_ = json.Unmarshal(kv.Value, &holder)
			return fmt.Errorf("%w: node %q is registered at %s by a live process (its lease is being renewed): stop that process, or give this node another id", ErrNodeIDInUse, c.cfg.NodeID, holder.URL)
		case <-time.After(memberPoll):
		}
	}
}

// keepRegistered registers the node again whenever its member lease is lost.
func (c *Coordinator) keepRegistered(sess *concurrency.Session) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-sess.Done():
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		c.log.Warn("leader: member lease lost; registering again")
		for wait := retryMin; ; wait = min(2*wait, c.cfg.LeaseTTL) {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.LeaseTTL)
			s, err := c.register(ctx, sess.Lease())
			cancel()
			if err == nil {
				sess = s
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Warn("leader: register member", "err", err, "retry_in", wait)
			if !sleep(c.ctx, wait) {
				return
			}
		}
		c.mu.Lock()
		closed = c.closed
		if !closed {
			c.member = sess
		}
		c.mu.Unlock()
		if closed {
			// Close has revoked the member lease it knew of; this one
			// runs out by itself.
			sess.Orphan()
			return
		}
		c.log.Info("leader: member registered again")
	}
}

// retryMin is the first wait before retrying a failed call to etcd; waits
// double up to LeaseTTL.
const retryMin = 100 * time.Millisecond

// sleep waits d or until ctx ends, and says whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// revokeLater revokes a lease in the background, giving up after LeaseTTL
// (by then it has run out anyway) or when the Coordinator closes.
func (c *Coordinator) revokeLater(id clientv3.LeaseID) {
	c.spawn(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.LeaseTTL)
		defer cancel()
		if _, err := c.cli.Revoke(ctx, id); err != nil {
			c.log.Debug("leader: revoke lease; it runs out by itself", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
		}
	})
}

// spawn runs f on a goroutine that Close waits for, unless the Coordinator
// is closing (then it does nothing and returns false). f must return when
// c.ctx ends.
func (c *Coordinator) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Go(f)
	return true
}

// Leader says who leads now: the node whose election key was created first.
// It wraps ErrNoLeader if no node holds a term.
func (c *Coordinator) Leader(ctx context.Context) (Member, error) {
	resp, err := c.cli.Get(ctx, c.electionPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return Member{}, fmt.Errorf("leader: read leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Member{}, ErrNoLeader
	}
	var m Member
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return Member{}, fmt.Errorf("leader: election key %s: %w", resp.Kvs[0].Key, err)
	}
	return m, nil
}

// Members lists the live nodes, each registered under its own lease, in
// order of node id. A node that died stays listed until its lease runs out.
func (c *Coordinator) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.cli.Get(ctx, c.membersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("leader: read members: %w", err)
	}
	ms := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("leader: member key %s: %w", kv.Key, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// Close ends this node's terms and its membership (revoking their leases,
// so that other nodes see it gone at once rather than after LeaseTTL; if
// etcd does not answer within LeaseTTL the leases run out by themselves),
// and closes the connection. Calling Close again returns the first result.
func (c *Coordinator) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		terms := make([]*Term, 0, len(c.terms))
		for t := range c.terms {
			terms = append(terms, t)
		}
		member := c.member
		c.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.LeaseTTL)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, len(terms)+1)
		for i, t := range terms {
			if t.end(errClosed) {
				wg.Go(func() { errs[i] = t.revoke(ctx) })
			}
		}
		member.Orphan()
		wg.Go(func() {
			if _, err := c.cli.Revoke(ctx, member.Lease()); err != nil {
				errs[len(terms)] = fmt.Errorf("leader: revoke member lease: %w", err)
			}
		})
		wg.Wait()
		c.cancel()
		c.wg.Wait()
		errs = append(errs, c.cli.Close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
