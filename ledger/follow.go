package ledger

// Following: a node of a distributed log that does not lead follows the
// cluster's checkpoint (a watch, and a poll every clusterRetry in case a
// watch stops), ingests what it lacks from the bucket (ingest.go), serves
// every read from its own store, and campaigns for the next term.

import (
	"context"
	"errors"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// follow runs the node as a follower until it wins a term, which it
// returns, or the log stops (nil). Writes that reach it are refused
// not_leader.
func (l *Log) follow() Term {
	c := l.cluster
	c.role.Store(roleFollower)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a long ingest stops with the log
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	won := make(chan Term, 1)
	// A node campaigns only while its configuration is the log's
	// (clusterconfig.go); it checks again whenever it has caught up.
	campaigning, refused := false, false
	maybeCampaign := func() {
		if campaigning {
			return
		}
		if err := l.checkClusterConfig(); err != nil {
			if !refused {
				refused = true
				l.log.Error("following only, never leading: this node's configuration is not the log's", "node", c.self.NodeID, "err", err)
			}
			return
		}
		campaigning = true
		go l.campaign(ctx, won)
	}
	maybeCampaign()
	watch := c.coord.WatchCheckpoint(ctx)
	tick := time.NewTicker(clusterRetry)
	defer tick.Stop()
	l.lookupLeader(ctx)
	stale := true // the cluster's checkpoint may be ahead of the served one
	var warned time.Time
	for {
		if stale {
			err := l.reconcile(ctx)
			stale = err != nil
			if err == nil {
				maybeCampaign()
			}
			if now := l.opts.Now(); err != nil && (now.Sub(warned) >= 10*time.Second || now.Before(warned)) {
				warned = now
				level := "following: catching up with the cluster's checkpoint; will retry"
				if errors.Is(err, ErrClusterMismatch) {
					l.log.Error(level, "size", l.Checkpoint().Size, "err", err)
				} else {
					l.log.Warn(level, "size", l.Checkpoint().Size, "err", err)
				}
			}
		}
		select {
		case <-l.stop:
			cancel()
			l.refuseQueued(proofs.Errorf(ReasonShuttingDown, "the log is shutting down"))
			select {
			case t := <-won:
				l.resign(t)
			default:
			}
			return nil
		case t := <-won:
			return t
		case _, ok := <-watch:
			if !ok {
				watch = nil // polled below until a new watch is set up
				continue
			}
			// The note is read again by reconcile, which verifies it:
			// the watch only says when.
			stale = true
		case <-tick.C:
			l.lookupLeader(ctx) // for ClusterLeader (forwarding)
			if watch == nil {
				watch = c.coord.WatchCheckpoint(ctx)
			}
			stale = true
		case <-l.intake.ready:
			l.refuseQueued(l.notLeader(ctx))
		}
	}
}

// campaign asks for a term until it gets one or ctx ends, and hands it
// over on won; a term won as ctx ends is resigned.
func (l *Log) campaign(ctx context.Context, won chan<- Term) {
	for {
		t, err := l.cluster.coord.Campaign(ctx)
		if err == nil {
			if ctx.Err() != nil {
				l.resign(t)
				return
			}
			won <- t
			return
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("campaigning for leadership failed; will retry", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(clusterRetry):
		}
	}
}
