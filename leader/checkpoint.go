package leader

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Checkpoint returns the latest checkpoint note swapped in, or nil, nil if
// there is none yet. The read is linearizable: no older note than the last
// successful Swap's.
func (c *Coordinator) Checkpoint(ctx context.Context) ([]byte, error) {
	resp, err := c.cli.Get(ctx, c.checkpointKey())
	if err != nil {
		return nil, fmt.Errorf("leader: read checkpoint: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// WatchCheckpoint delivers the current checkpoint note (if there is one),
// then every note swapped in after it, in order, until ctx ends or the
// Coordinator closes; then the channel is closed. A receiver that falls
// behind holds the watch back rather than losing notes. If the watch
// breaks (etcd unreachable or restarted, history compacted), it starts again
// from the current note: notes in between may be skipped, but every note
// delivered is newer than the one before it.
func (c *Coordinator) WatchCheckpoint(ctx context.Context) <-chan []byte {
	ch := make(chan []byte)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	if !c.spawn(func() {
		defer close(ch)
		defer stop()
		defer cancel()
		c.watchCheckpoint(ctx, ch)
	}) {
		stop()
		cancel()
		close(ch)
	}
	return ch
}

func (c *Coordinator) watchCheckpoint(ctx context.Context, ch chan<- []byte) {
	var last int64 // mod revision of the last note delivered
	deliver := func(kv *mvccpb.KeyValue) bool {
		if kv.ModRevision <= last {
			return true
		}
		select {
		case ch <- kv.Value:
			last = kv.ModRevision
			return true
		case <-ctx.Done():
			return false
		}
	}
	key := c.checkpointKey()
	for wait := retryMin; ctx.Err() == nil; wait = min(2*wait, c.cfg.LeaseTTL) {
		resp, err := c.cli.Get(ctx, key)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("leader: watch checkpoint: read", "err", err, "retry_in", wait)
				sleep(ctx, wait)
			}
			continue
		}
		if len(resp.Kvs) > 0 && !deliver(resp.Kvs[0]) {
			return
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range c.cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
			if err := wr.Err(); err != nil {
				c.log.Warn("leader: watch checkpoint", "err", err)
				break
			}
			wait = retryMin
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT && !deliver(ev.Kv) {
					wcancel()
					return
				}
			}
		}
		wcancel()
		sleep(ctx, wait)
	}
}
