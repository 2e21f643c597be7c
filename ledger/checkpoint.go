package ledger

// Checkpoints: signing, storing and publishing the log's C2SP checkpoints,
// and timestamps (cosignatures) over them.

import (
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// signCheckpoint signs a checkpoint for (size, root), a tree already
// committed, and with store set also stores it (a synced write).
//
// The sequencer does not store each checkpoint at once: it writes it with
// the next batch's transaction (or within a second when idle). Nothing
// depends on that write: the tree it covers is committed, and after a
// crash the log signs the stored tree head again, which gives the very
// same checkpoint (Ed25519 signatures are deterministic). So answering
// after commit and sign costs one fsync per batch, not two.
func (l *Log) signCheckpoint(size uint64, root []byte, store bool) (*proofs.Checkpoint, error) {
	body := proofs.CheckpointBody(l.signer.Name(), size, root)
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint: %w", err)
	}
	if err := l.faults.checkpoint.Load(); err != nil {
		return nil, fmt.Errorf("signing checkpoint: %w", *err)
	}
	if store {
		if err := l.storeCheckpoint(signed); err != nil {
			return nil, err
		}
	}
	return &proofs.Checkpoint{Origin: l.signer.Name(), Size: size, Root: slices.Clone(root), Note: signed}, nil
}

func (l *Log) storeCheckpoint(signed []byte) error {
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(keyCheckpoint, signed) }); err != nil {
		return fmt.Errorf("storing checkpoint: %w", err)
	}
	return nil
}

// publish makes cp the latest checkpoint, wakes the watchers and sends it
// to the witnesses, if any (witness.go).
func (l *Log) publish(cp *proofs.Checkpoint) {
	l.latest.Store(cp)
	l.wake()
	if l.witnesses != nil {
		l.witnesses.offer(cp)
	}
}

// wake wakes the watchers of the latest checkpoint.
func (l *Log) wake() {
	next := make(chan struct{})
	if old := l.changed.Swap(&next); old != nil {
		close(*old)
	}
}

// Changed returns a channel closed when a checkpoint newer than the one
// Checkpoint returned before this call is published.
func (l *Log) Changed() <-chan struct{} { return *l.changed.Load() }

// Timestamp signs cp's text as a C2SP cosignature/v1 with the log key: a
// fresh timestamp anyone with the log's verifier key can check, proving
// the log was alive and still at cp now.
func (l *Log) Timestamp(cp *proofs.Checkpoint) ([]byte, error) {
	body := proofs.CheckpointBody(cp.Origin, cp.Size, cp.Root)
	return note.Sign(&note.Note{Text: string(body)}, l.cosigner)
}

// Checkpoint returns the latest signed checkpoint. Every read answer is
// proven against it (or an earlier size). Under a witness policy it carries
// the witnesses' cosignatures once they satisfy the quorum for its size
// (see Cosigned for the latest witnessed one).
func (l *Log) Checkpoint() *proofs.Checkpoint { return l.latest.Load() }
