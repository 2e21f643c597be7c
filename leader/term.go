package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Term is one period during which this node leads, from a successful
// Campaign until Done closes. A Term is never reused: after it ends the node
// campaigns again for a new one.
type Term struct {
	c     *Coordinator
	sess  *concurrency.Session
	lease clientv3.LeaseID
	key   string // the election key, set under mu once elected
	rev   int64  // its create revision, set with key

	// ctx is cancelled when the term ends; it bounds the term's goroutines
	// and its Swaps.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	validUntil time.Time // by Config.Now: the term ends here unless renewed
	cause      error     // why the term ended
}

// Campaign blocks until this node leads, and returns its term, or until ctx
// ends (or the Coordinator closes), and returns an error. While etcd is
// unreachable it keeps trying; it never returns a term whose election key is
// not in etcd. A node holds one term at a time: a Campaign made while one of
// its terms lasts queues behind it and returns when it has ended.
func (c *Coordinator) Campaign(ctx context.Context) (*Term, error) {
	for wait := retryMin; ; wait = min(2*wait, c.cfg.LeaseTTL) {
		t, err := c.campaign(ctx)
		if err == nil {
			return t, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("leader: campaign: %w", context.Cause(ctx))
		}
		if c.ctx.Err() != nil {
			return nil, fmt.Errorf("leader: campaign: %w", errClosed)
		}
		c.log.Warn("leader: campaign", "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("leader: campaign: %w", context.Cause(ctx))
		case <-c.ctx.Done():
			return nil, fmt.Errorf("leader: campaign: %w", errClosed)
		}
	}
}

// campaign makes one attempt: a new lease, a candidate key under it, and a
// wait until every earlier candidate is gone.
func (c *Coordinator) campaign(ctx context.Context) (*Term, error) {
	sess, sent, err := c.grant(ctx)
	if err != nil {
		return nil, err
	}
	t := &Term{
		c:          c,
		sess:       sess,
		lease:      sess.Lease(),
		done:       make(chan struct{}),
		validUntil: sent.Add(c.cfg.LeaseTTL - Margin(c.cfg.LeaseTTL)),
	}
	t.ctx, t.cancel = context.WithCancel(c.ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		t.cancel()
		sess.Orphan()
		return nil, errClosed
	}
	c.terms[t] = struct{}{}
	// The lease is renewed and watched from now on: a candidate whose
	// lease is lost while it waits gives up and starts again.
	c.wg.Go(t.renew)
	c.wg.Go(t.watchdog)
	c.mu.Unlock()

	el := concurrency.NewElection(sess, c.electionPrefix())
	// Election.Campaign may block past its context (it resigns with the
	// client's context when cancelled), so it runs on its own goroutine
	// and this call returns when ctx ends whatever it does.
	cctx, ccancel := context.WithCancel(t.ctx)
	defer ccancel()
	errc := make(chan error, 1)
	go func() { errc <- el.Campaign(cctx, c.self()) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-t.done:
		err = t.err()
	}
	if err != nil {
		t.endAndRevoke(fmt.Errorf("campaign: %w", err))
		return nil, err
	}
	// Election.Campaign returns once every earlier key is gone, even if
	// ours went with them (its lease ran out while etcd was away): check
	// that it is there, under our lease, before calling this a term.
	resp, err := c.cli.Get(ctx, el.Key())
	if err != nil {
		t.endAndRevoke(fmt.Errorf("campaign: %w", err))
		return nil, fmt.Errorf("read own election key: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease != int64(t.lease) || resp.Kvs[0].CreateRevision != el.Rev() {
		t.endAndRevoke(errors.New("campaign: election key lost while waiting"))
		return nil, errors.New("election key lost while waiting")
	}
	t.mu.Lock()
	t.key, t.rev = el.Key(), el.Rev()
	t.mu.Unlock()
	if !c.spawn(func() { t.watchKey(resp.Header.Revision + 1) }) {
		t.end(errClosed)
		return nil, errClosed
	}
	c.log.Info("leader: elected", "lease", fmt.Sprintf("%x", int64(t.lease)), "key", t.key, "revision", t.rev)
	return t, nil
}

// Done is closed when the term is over (see the package's consistency
// contract): lease lost or revoked, election key deleted, resigned,
// Coordinator closed, or the lease not renewed for LeaseTTL minus
// Margin(LeaseTTL) by Config.Now. A leader stops sequencing when it closes.
func (t *Term) Done() <-chan struct{} { return t.done }

// err is why the term ended, wrapping ErrDeposed; nil while it lasts.
func (t *Term) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cause
}

// end ends the term for cause: Done closes, its goroutines stop, and the
// lease is no longer renewed. It reports whether this call ended it. It does
// not revoke the lease: see revoke and endAndRevoke.
func (t *Term) end(cause error) bool {
	t.mu.Lock()
	if t.cause != nil {
		t.mu.Unlock()
		return false
	}
	t.cause = fmt.Errorf("%w: %w", ErrDeposed, cause)
	close(t.done)
	elected := t.key != ""
	t.mu.Unlock()
	t.cancel()
	t.sess.Orphan()
	t.c.mu.Lock()
	delete(t.c.terms, t)
	t.c.mu.Unlock()
	if elected {
		t.c.log.Warn("leader: term ended", "lease", fmt.Sprintf("%x", int64(t.lease)), "cause", cause)
	}
	return true
}

// endAndRevoke ends the term and revokes its lease in the background, so
// that its election key goes at once (if etcd is reachable) instead of
// when the lease runs out.
func (t *Term) endAndRevoke(cause error) {
	if t.end(cause) {
		t.c.revokeLater(t.lease)
	}
}

func (t *Term) revoke(ctx context.Context) error {
	if _, err := t.c.cli.Revoke(ctx, t.lease); err != nil {
		return fmt.Errorf("leader: revoke term lease %x (it runs out by itself within the lease TTL): %w", int64(t.lease), err)
	}
	return nil
}

// Resign ends the term and deletes its election key (by revoking its
// lease), so that another node can be elected at once. Done is closed
// before the key is deleted. Resigning an ended term does nothing. If etcd
// does not answer, Resign returns an error and the key goes when the lease
// runs out.
func (t *Term) Resign(ctx context.Context) error {
	if !t.end(errors.New("resigned")) {
		return nil
	}
	return t.revoke(ctx)
}

// renew renews the term's lease every third of the time it may go
// unrenewed (sooner after a failure), each renewal bounded by that time. A
// renewal that succeeds moves the local deadline to the moment it was sent
// plus LeaseTTL minus the margin: etcd received it after it was sent, so
// the lease lives at least until then. (The concurrency.Session renews the
// same lease too; those renewals keep the lease longer but do not move the
// deadline, because their send times are unknown.)
func (t *Term) renew() {
	ttl := t.c.cfg.LeaseTTL
	every := (ttl - Margin(ttl)) / 3
	next := every
	t.mu.Lock()
	if t.validUntil.Sub(t.c.cfg.Now()) < 2*every {
		// The grant took long (it waited for etcd): part of the time the
		// lease may go unrenewed is gone already.
		next = 0
	}
	t.mu.Unlock()
	for {
		if !sleep(t.ctx, next) {
			return
		}
		next = every
		sent := t.c.cfg.Now()
		ctx, cancel := context.WithTimeout(t.ctx, every)
		_, err := t.c.cli.KeepAliveOnce(ctx, t.lease)
		cancel()
		switch {
		case err == nil:
			t.mu.Lock()
			if d := sent.Add(ttl - Margin(ttl)); d.After(t.validUntil) {
				t.validUntil = d
			}
			t.mu.Unlock()
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			t.endAndRevoke(errors.New("lease not found (expired or revoked)"))
			return
		case t.ctx.Err() != nil:
			return
		default:
			// Try again soon: the deadline allows three renewal periods.
			t.c.log.Debug("leader: renew term lease", "err", err)
			next = every / 4
		}
	}
}

// watchdogPoll is how often the watchdog reads the clock. Done closes at
// most this late after the deadline; Margin covers it.
const watchdogPoll = 50 * time.Millisecond

// watchdog ends the term when its deadline passes by Config.Now or the
// session's own keepalive gives up on the lease.
func (t *Term) watchdog() {
	tick := time.NewTicker(watchdogPoll)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.sess.Done():
			t.endAndRevoke(errors.New("lease keepalive ended"))
			return
		case <-tick.C:
			t.mu.Lock()
			expired := !t.c.cfg.Now().Before(t.validUntil)
			t.mu.Unlock()
			if expired {
				t.endAndRevoke(fmt.Errorf("lease not renewed in time (%v minus a margin of %v)", t.c.cfg.LeaseTTL, Margin(t.c.cfg.LeaseTTL)))
				return
			}
		}
	}
}

// watchKey ends the term when its election key is deleted (the lease
// expired or was revoked, or someone deleted the key by hand).
func (t *Term) watchKey(rev int64) {
	for t.ctx.Err() == nil {
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(t.ctx))
		for wr := range t.c.cli.Watch(wctx, t.key, clientv3.WithRev(rev)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					wcancel()
					t.endAndRevoke(errors.New("election key deleted"))
					return
				}
				rev = ev.Kv.ModRevision + 1
			}
		}
		wcancel()
		// The watch broke (etcd lost its quorum or the history was
		// compacted): see whether the key is still there, then watch
		// again from there.
		for t.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(t.ctx, t.c.cfg.LeaseTTL)
			resp, err := t.c.cli.Get(ctx, t.key)
			cancel()
			if err == nil {
				if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != t.rev {
					t.endAndRevoke(errors.New("election key deleted"))
					return
				}
				rev = resp.Header.Revision + 1
				break
			}
			sleep(t.ctx, retryMin*5)
		}
	}
}

// Swap replaces the checkpoint old (nil or empty: there is none yet) by new,
// atomically, only while t leads. It is one etcd transaction that compares
// the checkpoint key's value (or its absence) AND that the term's election
// key still exists with the term's create revision and lease (fencing). It
// returns nil if new was written; an error wrapping ErrDeposed if the term
// is over (t.Done is closed, or etcd found the key gone); ErrConflict if
// the checkpoint is not old; ErrUnknown if etcd did not answer, when new may
// or may not have been written (if the term ended while the swap waited,
// the error wraps both ErrUnknown and ErrDeposed). The swap waits no longer
// than ctx allows and the term lasts.
func (t *Term) Swap(ctx context.Context, old, new []byte) error {
	if len(new) == 0 {
		return errors.New("leader: swap: empty checkpoint")
	}
	if err := t.err(); err != nil {
		return fmt.Errorf("leader: swap: %w", err)
	}
	// A Swap does not outlive its term: a leader cut off from etcd gets its
	// answer (ErrUnknown) when Done closes at the latest.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()

	key := t.c.checkpointKey()
	cmpOld := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if len(old) > 0 {
		cmpOld = clientv3.Compare(clientv3.Value(key), "=", string(old))
	}
	resp, err := t.c.cli.Txn(ctx).If(
		cmpOld,
		clientv3.Compare(clientv3.CreateRevision(t.key), "=", t.rev),
		clientv3.Compare(clientv3.LeaseValue(t.key), "=", t.lease),
	).Then(
		clientv3.OpPut(key, string(new)),
	).Else(
		clientv3.OpGet(t.key),
	).Commit()
	if err != nil {
		if cause := t.err(); cause != nil {
			return fmt.Errorf("leader: swap: %w (%w)", ErrUnknown, cause)
		}
		return fmt.Errorf("leader: swap: %w: %w", ErrUnknown, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 || kvs[0].CreateRevision != t.rev || kvs[0].Lease != int64(t.lease) {
		t.endAndRevoke(errors.New("election key gone at swap"))
		return fmt.Errorf("leader: swap: %w", t.err())
	}
	return fmt.Errorf("leader: swap: %w", ErrConflict)
}
