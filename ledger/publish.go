package ledger

// What a distributed log's leader puts in the object store for a batch, in
// the C2SP tlog-tiles layout ("tile/L/N[.p/W]", "tile/entries/N[.p/W]",
// "checkpoint"), and the checkpoint swap that acknowledges it.

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// objectCheckpoint is the bucket's checkpoint object.
const objectCheckpoint = "checkpoint"

// putParallelism bounds the puts of one batch in flight at once.
const putParallelism = 8

// tilesBetween lists the tiles and entry bundles that a tree growing from
// size from to size to adds or widens: for each level, every tile holding
// a new node, full or partial as it stands at size to. A partial tile
// widened by the growth is a new resource (its .p/W path names its width),
// so the bucket keeps every width a swapped checkpoint covered, as a
// tlog-tiles client of any of those checkpoints may ask for it.
func tilesBetween(from, to uint64) []tileRequest {
	var out []tileRequest
	add := func(entries bool, level uint8, c0, c1 uint64) {
		if c1 <= c0 {
			return
		}
		for n := c0 / tileWidth; n <= (c1-1)/tileWidth; n++ {
			out = append(out, tileRequest{entries: entries, level: level, index: n, width: int(min(c1-n*tileWidth, tileWidth))})
		}
	}
	add(true, 0, from, to)
	for level := uint8(0); level <= maxTileLevel; level++ {
		shift := uint(level) * tileHeight
		if shift >= 64 || to>>shift == 0 {
			break
		}
		add(false, level, from>>shift, to>>shift)
	}
	return out
}

// tileObjectKey is the object key of a tile or bundle: its URL path.
func tileObjectKey(t tileRequest) string { return "tile/" + t.path() }

// putTiles puts the tiles and entry bundles of entries [from, to), read
// from the local store exactly as GET /tile serves them, a few at a time.
// Each object's bytes are fixed by its key once a swapped checkpoint
// covers it, so a put that failed, or failed after storing, is simply
// repeated.
func (l *Log) putTiles(ctx context.Context, from, to uint64) error {
	tiles := tilesBetween(from, to)
	sem := make(chan struct{}, putParallelism)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, t := range tiles {
		body, err := l.readTileUpTo(t, to)
		if err != nil {
			return fmt.Errorf("reading %s: %w", tileObjectKey(t), err)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := l.cluster.store.Put(ctx, tileObjectKey(t), body); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("putting %s: %w", tileObjectKey(t), err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// publishBatch makes cp, signed over the committed local tree, the
// cluster's checkpoint: it puts the entries cp adds to the swapped
// checkpoint in the bucket, swaps cp in, then puts it as the bucket's
// checkpoint object. Only after it returns nil may the batch be answered.
// An error is a refusal the caller answers with: store_unavailable (retry:
// the entries stay committed locally, and the leader publishes them before
// sequencing anything new) or not_leader (the term is over: the node will
// discard them).
func (l *Log) publishBatch(cp *proofs.Checkpoint) error {
	c := l.cluster
	ctx, cancel := context.WithTimeout(c.termCtx, publishTimeout)
	defer cancel()
	swapped, err := l.stillLeading(ctx, cp)
	if err != nil {
		return err
	}
	if !swapped {
		if err := l.putTiles(ctx, c.swappedSize, cp.Size); err != nil {
			l.log.Warn("publishing a batch to the object store failed; will retry", "from", c.swappedSize, "to", cp.Size, "err", err)
			return proofs.Errorf(ReasonStoreUnavailable, "the object store did not take entries %d to %d (%v): nothing is acknowledged; resubmit the same envelope", c.swappedSize, cp.Size-1, err)
		}
		if err := l.swap(ctx, cp); err != nil {
			return err
		}
	}
	c.swapped, c.swappedSize = cp.Note, cp.Size
	c.bucketCheckpoint = cp.Note
	l.putBucketCheckpoint(ctx)
	return nil
}

// stillLeading checks, before a batch's puts, that the term holds and the
// cluster's checkpoint is still the one this leader swapped last, or is cp
// itself (swapped reports it: an earlier swap of cp whose outcome could
// not be read had succeeded, and its objects were put before). Puts of
// a leader that lost its term unawares would otherwise overwrite, at the
// same keys, the objects of entries a new leader has swapped in since (a
// partial bundle's key names its width, not its content). It costs one
// read of the coordination service per batch. A put in flight when the
// term ends can still land late; see docs/distributed.md.
func (l *Log) stillLeading(ctx context.Context, cp *proofs.Checkpoint) (swapped bool, _ error) {
	c := l.cluster
	select {
	case <-c.term.Done():
		c.deposed = true
		return false, &proofs.Error{Reason: ReasonNotLeader, Err: fmt.Errorf("the term ended: nothing from entry %d on is acknowledged; %w", c.swappedSize, &NotLeaderError{})}
	default:
	}
	got, err := c.coord.Checkpoint(ctx)
	switch {
	case err != nil:
		return false, proofs.Errorf(ReasonStoreUnavailable, "the cluster's checkpoint cannot be read (%v): nothing is acknowledged; resubmit the same envelope", err)
	case bytes.Equal(got, cp.Note):
		return true, nil
	case !bytes.Equal(got, c.swapped):
		c.deposed = true
		l.log.Warn("another leader swapped a checkpoint: this node's unswapped entries will be discarded")
		return false, &proofs.Error{Reason: ReasonNotLeader, Err: fmt.Errorf("another node leads now: nothing from entry %d on is acknowledged; %w", c.swappedSize, &NotLeaderError{})}
	}
	return false, nil
}

// swap swaps cp in for the checkpoint last swapped. After an error, whose
// outcome may be unknown, it re-reads the cluster's checkpoint: cp itself
// means the swap happened; the old one, that it did not (retry later);
// anything else, that another leader swapped (deposed).
func (l *Log) swap(ctx context.Context, cp *proofs.Checkpoint) error {
	c := l.cluster
	start := time.Now()
	err := c.term.Swap(ctx, c.swapped, cp.Note)
	l.opts.Metrics.observeSwap(time.Since(start), err)
	if err == nil {
		return nil
	}
	got, rerr := c.coord.Checkpoint(ctx)
	switch {
	case rerr != nil:
		l.log.Warn("swapping the checkpoint failed and the cluster's checkpoint cannot be read; will retry", "size", cp.Size, "err", err, "read_err", rerr)
		return proofs.Errorf(ReasonStoreUnavailable, "the checkpoint swap failed (%v) and its outcome cannot be read (%v): nothing is acknowledged; resubmit the same envelope", err, rerr)
	case bytes.Equal(got, cp.Note):
		return nil
	case bytes.Equal(got, c.swapped):
		select {
		case <-c.term.Done():
			c.deposed = true
			return &proofs.Error{Reason: ReasonNotLeader, Err: fmt.Errorf("the term ended before entries %d to %d were swapped in: nothing is acknowledged; %w", c.swappedSize, cp.Size-1, &NotLeaderError{})}
		default:
		}
		l.log.Warn("swapping the checkpoint failed; will retry", "size", cp.Size, "err", err)
		return proofs.Errorf(ReasonStoreUnavailable, "the checkpoint swap failed (%v): nothing is acknowledged; resubmit the same envelope", err)
	default:
		c.deposed = true
		l.log.Warn("another leader swapped a checkpoint: this node's unswapped entries will be discarded", "size", cp.Size, "err", err)
		return &proofs.Error{Reason: ReasonNotLeader, Err: fmt.Errorf("another node leads now: entries %d to %d are not acknowledged; %w", c.swappedSize, cp.Size-1, &NotLeaderError{})}
	}
}

// putBucketCheckpoint puts the last swapped checkpoint as the bucket's
// checkpoint object, if it is not there yet. A failure only leaves the
// bucket's mirror a little behind (the swap is what acknowledges); it is
// retried with the next batch or tick.
func (l *Log) putBucketCheckpoint(ctx context.Context) {
	c := l.cluster
	if c.bucketCheckpoint == nil {
		return
	}
	if err := c.store.Put(ctx, objectCheckpoint, c.bucketCheckpoint); err != nil {
		l.log.Warn("putting the checkpoint object failed; will retry", "err", err)
		return
	}
	c.bucketCheckpoint = nil
}

// retryPublish is the leader's tick: it publishes committed entries that a
// failed publication (or checkpoint signing) left unswapped, and the
// bucket's checkpoint object.
func (l *Log) retryPublish() {
	c := l.cluster
	if l.seq.size > c.swappedSize {
		root, err := l.seq.rng.GetRootHash(nil)
		if err != nil {
			return
		}
		cp, err := l.signCheckpoint(l.seq.size, root, false)
		if err != nil {
			l.log.Error("signing checkpoint failed again", "size", l.seq.size, "err", err)
			return
		}
		l.seq.needCheckpoint = false
		if err := l.publishBatch(cp); err != nil {
			return
		}
		l.seq.unstored = cp.Note
		l.publish(cp)
		c.pending.Store(false)
		l.log.Info("published the pending entries", "size", cp.Size)
		return
	}
	if c.bucketCheckpoint != nil && c.termCtx != nil {
		ctx, cancel := context.WithTimeout(c.termCtx, publishTimeout)
		defer cancel()
		l.putBucketCheckpoint(ctx)
	}
}
