package ledger

// What a distributed log's leader puts in the object store for a batch, in
// the C2SP tlog-tiles layout ("tile/L/N[.p/W]", "tile/entries/N[.p/W]",
// "checkpoint"), and the checkpoint swap that acknowledges it.

import (
	"bytes"
	"context"
	"errors"
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
// from the local store exactly as GET /tile serves them, a few at a time,
// each with putObject. A put that failed, or failed after storing, is
// simply repeated with the batch's next publication.
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
			if err := l.putObject(ctx, tileObjectKey(t), body); err != nil {
				mu.Lock()
				if first == nil || errors.Is(err, errLostLead) {
					first = fmt.Errorf("putting %s: %w", tileObjectKey(t), err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// maxReplaceTries bounds putObject's rounds of reading and replacing an
// object that keeps changing under it. Each change is a write of another
// writer that read the object before this one's last read; only deposed
// leaders' late writes can do that, each at most once per ETag it read.
const maxReplaceTries = 5

// errLostLead is wrapped by putObject when, about to replace another
// leader's object, this node finds it no longer leads.
var errLostLead = errors.New("another node leads now")

// putObject makes key hold body, a tile or entry bundle of the batch being
// published, such that no write of a deposed leader can undo it, however
// late that write lands.
//
// A key does not fix its object's bytes across a change of leader: a
// leader deposed while it published a batch that was never acknowledged
// (its swap failed) may have written, or have in flight, objects at keys
// (a partial bundle "tile/entries/N.p/W", partial and full tiles) that
// the next leader writes with other bytes, for other entries at the same
// indices that it does acknowledge. So objects are never overwritten
// blindly. putObject Creates (If-None-Match: *); when the key is taken it
// reads the object: the same bytes are its own earlier put (a retry after
// a put that failed but was stored) or the same entries' from an earlier
// leader, and it is done; other bytes were left by a deposed leader's
// unacknowledged batch, and it Replaces them conditionally on the ETag it
// just read, reading again if they changed meanwhile.
//
// Why the last write to land at a key is the current leader's, in any
// order of arrival: a Create lands only on an empty key, so a deposed
// leader's late Create fails once the current leader has written. A
// Replace lands only while the key still holds the object read for it; a
// deposed leader read before the current leader's write (the fence
// below), so the current leader's write changed the ETag that the late
// Replace depends on, and it fails. The fence: before a Replace, the
// writer confirms in the coordination service that it still leads, after
// its read, so a writer whose Replace can succeed read the object while
// no later leader had been elected, hence had written. What remains is a
// current leader writing exactly the bytes (so the ETag, which S3 derives
// from them) that a deposed leader read and meant to replace: the same
// entries, log times to the nanosecond included, at the same indices as
// a third leader's unacknowledged batch.
//
// The checkpoint object is not written this way: it is Put, as the
// coordination service's compare-and-swap orders the checkpoints.
func (l *Log) putObject(ctx context.Context, key string, body []byte) error {
	store := l.cluster.store
	err := store.Create(ctx, key, body)
	absent := 0 // rounds in a row where the key was taken yet held nothing
	for try := 1; ; try++ {
		if err == nil || !errors.Is(err, ErrObjectExists) && !errors.Is(err, ErrObjectChanged) {
			return err
		}
		if try > maxReplaceTries {
			return fmt.Errorf("the object kept changing for %d tries: %w", maxReplaceTries, err)
		}
		got, etag, gerr := store.GetWithETag(ctx, key)
		switch {
		case errors.Is(gerr, ErrObjectNotFound) && errors.Is(err, ErrObjectExists) && absent > 0:
			// Twice now the store refused a Create as taken and then had
			// nothing to read there. No writer explains that: the store
			// keeps a key with no object (versitygw's sidecar metadata,
			// killed between storing an object's ETag and linking its
			// data, does). Retrying cannot clear it; an operator must.
			return fmt.Errorf("the store refuses to create %s as taken but holds no object there: it is inconsistent and needs repair (see docs/distributed.md): %w", key, err)
		case errors.Is(gerr, ErrObjectNotFound):
			// Not there after all (a conflicting write that did not land).
			absent++
			err = store.Create(ctx, key, body)
			continue
		case gerr != nil:
			return fmt.Errorf("reading the object that is there: %w", gerr)
		case bytes.Equal(got, body):
			return nil
		}
		if err := l.confirmLead(ctx); err != nil {
			return err
		}
		l.log.Warn("replacing an object left by a deposed leader's unacknowledged batch", "key", key, "found_bytes", len(got), "bytes", len(body))
		absent = 0
		err = store.Replace(ctx, key, body, etag)
	}
}

// confirmLead checks that this node's term still holds, as the
// coordination service says now: putObject's fence between reading an
// object and replacing it.
func (l *Log) confirmLead(ctx context.Context) error {
	c := l.cluster
	select {
	case <-c.term.Done():
		return fmt.Errorf("the term ended: %w", errLostLead)
	default:
	}
	m, err := c.coord.Leader(ctx)
	if err != nil {
		return fmt.Errorf("confirming that this node still leads: %w", err)
	}
	if m.NodeID != c.self.NodeID {
		return fmt.Errorf("%s does: %w", m.NodeID, errLostLead)
	}
	return nil
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
		if err := l.putTiles(ctx, c.swappedSize, cp.Size); errors.Is(err, errLostLead) {
			c.deposed = true
			l.log.Warn("another node leads now: this node's unswapped entries will be discarded", "err", err)
			return &proofs.Error{Reason: ReasonNotLeader, Err: fmt.Errorf("%v: nothing from entry %d on is acknowledged; %w", err, c.swappedSize, &NotLeaderError{})}
		} else if err != nil {
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
// term ends can still land late: putObject makes that harmless.
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
