package ledger

// Reads on a node of a distributed log that is behind the client. A client
// sends the size of the checkpoint it trusts with every read; a node that
// has not yet ingested that far (a follower a moment behind the leader, or
// one that restarted) would answer from an older tree, and the client,
// which never goes back, would have to report rollback_detected. So such a
// read waits briefly for the node to catch up and is otherwise refused
// replica_behind (Unavailable): the client tries another node or retries.
// The same goes for a read that names a size or an index past the node's
// tree (a proof, an entry, a page, the checkpoint feed, a tile), which it
// would otherwise answer not_found or out_of_range as if the log ended
// where the node's copy does, and for a lookup by key that finds nothing
// while the node is behind the cluster's checkpoint.

import (
	"context"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// ReasonReplicaBehind refuses a read whose trusted size is past the
// checkpoint this node of a cluster serves, while the cluster's checkpoint
// is past it too.
const ReasonReplicaBehind = proofs.ReasonReplicaBehind

// replicaWait bounds how long a read waits for its node to catch up with
// the client's trusted size before it is refused. A follower ingests a new
// checkpoint within a few hundred milliseconds of its swap; the bound
// leaves room for a busy machine without holding the client long.
const replicaWait = 2 * time.Second

// awaitTrusted returns once the checkpoint this node serves covers trusted
// entries, the size the client trusts (0: none); in the default mode it
// returns at once. Otherwise it waits up to replicaWait for the node to
// ingest that far, then refuses replica_behind, unless the cluster's own
// checkpoint is not past this node's: then the log itself is behind the
// client, and answering lets the client see it (rollback_detected), which
// a retryable refusal would hide.
func (l *Log) awaitTrusted(ctx context.Context, trusted uint64) error {
	if l.cluster == nil || l.Checkpoint().Size >= trusted {
		return nil // the default mode, or not behind: no wait, no timer
	}
	timer := time.NewTimer(replicaWait)
	defer timer.Stop()
	for {
		changed := l.Changed() // before the read: a checkpoint served after it closes it
		served := l.Checkpoint().Size
		if served >= trusted {
			return nil
		}
		select {
		case <-changed:
			continue
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		if !l.clusterCovers(ctx, served+1) {
			return nil
		}
		return proofs.Errorf(ReasonReplicaBehind, "this node serves a checkpoint of %d entries, behind the %d the client trusts, and is catching up; retry, or ask another node", served, trusted)
	}
}

// awaitCovered is awaitTrusted for a read that names a size or an index
// past this node's tree (a consistency proof to a newer size, an inclusion
// proof at one, an entry or a range past the end, a tile): need is the
// tree size the answer needs. In the default mode, or when this node's
// tree or the cluster's checkpoint does not reach need either, it returns
// at once and the read gets its usual answer (out_of_range, not_found, a
// 404): the log itself is that small. Otherwise the node is behind the
// log: it waits up to replicaWait to ingest that far, then refuses
// replica_behind, so that a client asks another node rather than take
// "no such entry" for the log's word.
func (l *Log) awaitCovered(ctx context.Context, need uint64) error {
	if l.cluster == nil || l.Checkpoint().Size >= need || !l.clusterCovers(ctx, need) {
		return nil
	}
	return l.awaitTrusted(ctx, need)
}

// awaitCluster is awaitCovered for a lookup by key that found nothing (a
// delegation id, a leaf hash): it names no size, so "not found" is the
// log's answer only from a node that has caught up with the cluster's
// checkpoint. In the default mode, or on a node not behind it, it returns
// at once.
func (l *Log) awaitCluster(ctx context.Context) error {
	if l.cluster == nil {
		return nil
	}
	served := l.Checkpoint().Size
	size, known := l.clusterSize(ctx)
	if !known {
		size = served + 1 // cannot tell: as if behind (clusterCovers)
	}
	if size <= served {
		return nil
	}
	return l.awaitTrusted(ctx, size)
}

// clusterCovers says whether the cluster's checkpoint (verified under the
// log key) covers need entries, or cannot be read (then the node cannot
// tell that it is not behind, and a retryable refusal is the safe answer).
func (l *Log) clusterCovers(ctx context.Context, need uint64) bool {
	size, known := l.clusterSize(ctx)
	return !known || size >= need
}

// clusterSize is the size of the cluster's checkpoint, verified under the
// log key (0 if there is none yet, or it does not verify: it is not the
// log's), and false if it cannot be read.
func (l *Log) clusterSize(ctx context.Context) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, leaderLookupTimeout)
	defer cancel()
	note, err := l.cluster.coord.Checkpoint(ctx)
	if err != nil {
		return 0, false
	}
	if note == nil {
		return 0, true
	}
	cp, err := proofs.OpenCheckpoint(note, l.verifier)
	if err != nil {
		return 0, true
	}
	return cp.Size, true
}
