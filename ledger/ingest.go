package ledger

// Ingest: a node of a distributed log brings its local store to the
// cluster's checkpoint with the entry bundles in the object store,
// verified against the checkpoint (log key, tree root) and applied as
// recorded entries, through the same state machine and the same store
// writes as the sequencer's (apply.go, writes.go): nothing is decided
// again, since the decisions are in the leaves, but bindings, revocations
// and policy are current when the node leads. A node whose store holds
// entries the cluster's checkpoint does not cover, or other ones, rebuilds
// its store from the bucket.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// ErrClusterMismatch is returned by Open, and logged by a running node,
// when the cluster's checkpoint cannot be served: it does not verify under
// this node's log key, it is older than or forks from a checkpoint this
// node served, or the bucket's entries do not hash to it. The node serves
// nothing newer until an operator looks.
var ErrClusterMismatch = errors.New("the cluster's checkpoint cannot be served by this node")

// errDiverged means the local store plus the bucket's entries do not make
// the cluster's tree: either side may be at fault, so the local store is
// rebuilt from the bucket alone, and a bucket that still does not match is
// then at fault (errBadObject).
var errDiverged = errors.New("the local store and the object store's entries together do not match the cluster's checkpoint")

// errBadObject means an object in the object store is at fault: an entry
// bundle that does not parse, an entry in it that does not, or, once the
// local store was rebuilt from the bucket alone, entries that do not hash
// to the checkpoint. The local store is not: it is kept.
var errBadObject = errors.New("the object store holds a bad object")

// ingestBundles is how many entry bundles ingest fetches before applying
// them (at most 1,024 entries of 64 KiB in memory).
const ingestBundles = 4

// reconcile makes the cluster's checkpoint the one this node serves: it
// verifies it, ingests what the local store lacks, and rebuilds the store
// from the bucket first if it holds entries the checkpoint does not cover
// or other ones. It runs on the sequencer goroutine (or in Open before it
// starts).
func (l *Log) reconcile(ctx context.Context) error {
	c := l.cluster
	note, err := c.coord.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("reading the cluster's checkpoint: %w", err)
	}
	if note == nil {
		return l.reconcileEmpty(ctx)
	}
	cp, err := proofs.OpenCheckpoint(note, l.verifier)
	if err != nil {
		return fmt.Errorf("%w: its checkpoint does not verify under this node's log key (is %s the cluster's?): %v", ErrClusterMismatch, LogKeyFile, err)
	}
	served := l.Checkpoint()
	switch {
	case cp.Size < served.Size:
		return fmt.Errorf("%w: it covers %d entries, but this node served a checkpoint of %d: the cluster went back", ErrClusterMismatch, cp.Size, served.Size)
	case cp.Size == served.Size && !bytes.Equal(cp.Root, served.Root):
		return fmt.Errorf("%w: it has root %x for %d entries, but this node served %x: a fork", ErrClusterMismatch, cp.Root, cp.Size, served.Root)
	}
	if cp.Size == served.Size && l.seq.size == cp.Size {
		c.swapped, c.swappedSize = note, cp.Size // served already: nothing to do
		return nil
	}
	if l.seq.size > cp.Size {
		if err := l.discardLocal(cp.Size); err != nil {
			return err
		}
	}
	if bytes.Equal(note, c.unservable) {
		return fmt.Errorf("%w: the object store's entries for it were bad (logged before); waiting for the next checkpoint", ErrClusterMismatch)
	}
	err = l.ingest(ctx, cp)
	if errors.Is(err, errDiverged) {
		if err = l.discardLocal(cp.Size); err == nil {
			err = l.ingest(ctx, cp)
		}
		if errors.Is(err, errDiverged) {
			// Rebuilt from the bucket alone and still wrong: the bucket is.
			err = fmt.Errorf("%w: rebuilt from the object store alone, %v", errBadObject, strings.TrimPrefix(err.Error(), errDiverged.Error()+": "))
		}
	}
	if errors.Is(err, errBadObject) {
		// Do not fetch and rebuild again for this checkpoint.
		c.unservable = note
		return fmt.Errorf("%w: %v", ErrClusterMismatch, err)
	}
	if err != nil {
		return err
	}
	c.swapped, c.swappedSize = note, cp.Size
	return nil
}

// reconcileEmpty handles a cluster with no checkpoint yet. Entries in the
// local store were then never swapped in (a first leader's first batch
// whose swap failed) and are discarded, unless the bucket holds a
// checkpoint: then the coordination service lost its state, and this node
// refuses to guess.
func (l *Log) reconcileEmpty(ctx context.Context) error {
	c := l.cluster
	if l.Checkpoint().Size > 0 {
		return fmt.Errorf("%w: the coordination service holds no checkpoint, but this node served one of %d entries", ErrClusterMismatch, l.Checkpoint().Size)
	}
	if l.seq.size > 0 {
		_, err := c.store.Get(ctx, objectCheckpoint)
		switch {
		case err == nil:
			return fmt.Errorf("%w: the coordination service holds no checkpoint but the bucket does: restore the coordination service's state", ErrClusterMismatch)
		case !errors.Is(err, ErrObjectNotFound):
			return fmt.Errorf("reading the bucket's checkpoint: %w", err)
		}
		if err := l.discardLocal(0); err != nil {
			return err
		}
	}
	c.swapped, c.swappedSize = nil, 0
	return nil
}

// discardLocal rebuilds the local store from nothing: the simplest honest
// way to drop entries the cluster's checkpoint does not cover (Badger
// cannot undo a committed transaction, and the indexes an entry wrote are
// many). The caller then ingests the whole log from the bucket. Until that
// ends, reads of this node fail (the checkpoint it serves is unchanged).
func (l *Log) discardLocal(clusterSize uint64) error {
	l.log.Warn("discarding the local store, to rebuild it from the object store", "local_size", l.seq.size, "cluster_size", clusterSize)
	if err := l.db.DropAll(); err != nil {
		return storeError(fmt.Errorf("discarding the local store: %w", err))
	}
	// Caches of committed data that was dropped.
	l.delegations.clear()
	l.trees.clear()
	if _, _, err := l.loadState(); err != nil {
		return err
	}
	l.seq.unstored, l.seq.needCheckpoint = nil, false
	return nil
}

// ingest applies the entries [local size, cp.Size) from the bucket's entry
// bundles, a few bundles at a time, and serves cp once the local tree's
// root is cp's and a consistency proof from the checkpoint served before
// verifies. A bucket whose entries do not hash to cp leaves them applied
// but not served; the next reconcile rebuilds (errDiverged).
func (l *Log) ingest(ctx context.Context, cp *proofs.Checkpoint) error {
	for l.seq.size < cp.Size {
		first := l.seq.size / tileWidth
		last := min(first+ingestBundles, (cp.Size-1)/tileWidth+1)
		var leaves [][]byte
		for n := first; n < last; n++ {
			bundle, err := l.fetchBundle(ctx, n, cp.Size)
			if err != nil {
				return err
			}
			skip := int(max(l.seq.size, n*tileWidth) - n*tileWidth)
			leaves = append(leaves, bundle[skip:]...)
		}
		for len(leaves) > 0 {
			k, err := l.applyRecorded(leaves)
			var bad *badEntryError
			if errors.As(err, &bad) {
				// Name the object the entry came from.
				t := tileRequest{entries: true, index: bad.index / tileWidth, width: int(min(cp.Size-bad.index/tileWidth*tileWidth, tileWidth))}
				return fmt.Errorf("%w: object store key %s: entry %d %v", bad.kind, tileObjectKey(t), bad.index, bad.err)
			}
			if err != nil {
				return err
			}
			leaves = leaves[k:]
		}
	}
	root, err := l.seq.rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("computing root: %w", err)
	}
	if l.seq.size != cp.Size || !bytes.Equal(root, cp.Root) {
		return fmt.Errorf("%w: the tree of %d entries has root %x, the checkpoint of %d says %x", errDiverged, l.seq.size, root, cp.Size, cp.Root)
	}
	if err := l.checkConsistent(l.Checkpoint(), cp); err != nil {
		return err
	}
	if err := l.storeCheckpoint(cp.Note); err != nil {
		return err
	}
	l.publish(cp)
	return nil
}

// checkConsistent verifies, with the local tree, a consistency proof from
// the checkpoint served (old) to cp: a node never serves a checkpoint that
// does not extend the one before.
func (l *Log) checkConsistent(old, cp *proofs.Checkpoint) error {
	if old.Size == 0 || old.Size == cp.Size {
		if old.Size == cp.Size && !bytes.Equal(old.Root, cp.Root) {
			return fmt.Errorf("%w: root %x for %d entries, but this node served %x", ErrClusterMismatch, cp.Root, cp.Size, old.Root)
		}
		return nil
	}
	hashes, err := l.consistencyHashes(old.Size, cp.Size)
	if err != nil {
		return err
	}
	if err := proofs.VerifyConsistency(old.Size, cp.Size, hashes, old.Root, cp.Root); err != nil {
		return fmt.Errorf("%w: it is not consistent with the checkpoint of %d entries this node served: %v", ErrClusterMismatch, old.Size, err)
	}
	return nil
}

// fetchBundle gets the entry bundle n as a checkpoint of size covers it
// (partial if the checkpoint ends inside it) and splits it into leaves.
func (l *Log) fetchBundle(ctx context.Context, n, size uint64) ([][]byte, error) {
	t := tileRequest{entries: true, index: n, width: int(min(size-n*tileWidth, tileWidth))}
	key := tileObjectKey(t)
	data, err := l.cluster.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("fetching %s from the object store: %w", key, err)
	}
	leaves, err := splitBundle(data, t.width)
	if err != nil {
		return nil, fmt.Errorf("%w: object store key %s: not an entry bundle of %d entries: %v", errBadObject, key, t.width, err)
	}
	return leaves, nil
}

// badEntryError is an entry from the object store that applyRecorded
// cannot apply; ingest names the bundle it came from. kind is errBadObject
// (the entry itself is bad) or errDiverged (bad under the state before it).
type badEntryError struct {
	kind  error
	index uint64
	err   error
}

func (e *badEntryError) Error() string { return fmt.Sprintf("%v: entry %d %v", e.kind, e.index, e.err) }
func (e *badEntryError) Unwrap() error { return e.kind }

// splitBundle parses a tlog-tiles entry bundle of exactly want entries.
func splitBundle(data []byte, want int) ([][]byte, error) {
	leaves := make([][]byte, 0, want)
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("truncated entry length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, errors.New("truncated entry")
		}
		leaves = append(leaves, data[2:2+n])
		data = data[2+n:]
	}
	if len(leaves) != want {
		return nil, fmt.Errorf("%d entries, want %d", len(leaves), want)
	}
	return leaves, nil
}

// applyRecorded writes as many of leaves (the next entries of the log) as
// fit one transaction, as the sequencer wrote them: each entry is parsed,
// authenticated under the state in force (which also says who signed,
// e.g. an admin's revocation), its recorded decision's effects are taken
// from the state machine and applied, and appendWrites gives its store
// writes. It returns how many it wrote. The node's state is the new one
// afterwards; the checkpoint it serves is not (ingest decides).
func (l *Log) applyRecorded(leaves [][]byte) (int, error) {
	t0 := time.Now()
	b := l.newBatch()
	defer b.txn.Discard()
	for _, raw := range leaves {
		idx := b.st.size
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			return 0, &badEntryError{errBadObject, idx, fmt.Errorf("is malformed: %w", err)}
		}
		ev, err := p.Event()
		if err != nil {
			return 0, &badEntryError{errBadObject, idx, fmt.Errorf("is malformed: %w", err)}
		}
		if err := b.st.state.Authenticate(ev); err != nil {
			// Under the state the entries before it made, which the local
			// store may have got wrong: errDiverged rebuilds it first.
			return 0, &badEntryError{errDiverged, idx, fmt.Errorf("is not authentic under the entries before it: %w", err)}
		}
		if b.ef, err = b.st.state.Effects(idx, ev, p.Decision); err != nil {
			return 0, readError(err)
		}
		r := &request{ev: *ev, env: p.Env}
		if p.Env != nil {
			r.payloadHash = proofs.PayloadHash(p.Env.PayloadType, p.Env.Payload)
		}
		leafHash := proofs.LeafHash(raw)
		b.sets = appendWrites(b.sets[:0], idx, r, raw, leafHash, &b.ef)
		var size int64
		for _, kv := range b.sets {
			size += int64(len(kv[0]) + len(kv[1]) + txnEntryOverhead)
		}
		if b.staged+size > l.txnBudget && b.written > 0 {
			break // the rest goes into the next transaction
		}
		b.staged += size
		if err := b.st.rng.Append(leafHash, b.visit); err != nil || b.tw.err != nil {
			return 0, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("extending the tree: %w", errors.Join(err, b.tw.err))}
		}
		b.st.size++
		b.nodes.extend(b.st.size)
		b.st.logTime = max(b.st.logTime, p.Time.UnixNano())
		b.st.state.Apply(&b.ef)
		for _, kv := range b.sets {
			l.absent.add(kv[0])
			if err := b.txn.Set(kv[0], kv[1]); err != nil {
				return 0, storeError(fmt.Errorf("staging entry %d: %w", idx, err))
			}
		}
		b.written++
	}
	if err := l.commit(b, t0); err != nil {
		return 0, err
	}
	l.seq = *b.st
	l.logTime.Store(b.st.logTime)
	l.signers.Store(b.st.state.Signers())
	l.policy.Store(b.st.state.Policy())
	return b.written, nil
}

// consistencyHashes reads a consistency proof from the local tree.
func (l *Log) consistencyHashes(size1, size2 uint64) (hashes [][]byte, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		hashes, err = l.nodeReader(txn).consistency(size1, size2)
		return err
	})
	return hashes, err
}
