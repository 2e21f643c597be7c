package ledger

// Reads: entries, index lookups and proofs, never beyond what the latest
// published checkpoint covers, and the status of a delegation.

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// Status returns the effective status of the accepted delegation id, as of
// the entries committed now and the current time. It is informational: a
// proof shows what is in the log, not the absence of a later revocation.
func (l *Log) Status(ctx context.Context, id string) (proofs.Status, error) {
	var s proofs.Status
	err := l.db.View(func(txn *badger.Txn) (err error) {
		cs := newChainState(txn, l.signers.Load().Bindings(), l.delegations)
		s, err = proofs.EffectiveStatus(cs, id, l.opts.Now(), l.config.Rules)
		return err
	})
	return s, err
}

// checkSize bounds reads to what the latest checkpoint covers.
func (l *Log) checkSize(size uint64) (uint64, error) {
	latest := l.latest.Load().Size
	if size == 0 {
		return latest, nil
	}
	if size > latest {
		return 0, proofs.Errorf(ReasonOutOfRange, "tree size %d is beyond the latest checkpoint size %d", size, latest)
	}
	return size, nil
}

// Entry returns the leaf at index; the index must be covered by the latest
// checkpoint.
func (l *Log) Entry(ctx context.Context, index uint64) ([]byte, error) {
	if size := l.latest.Load().Size; index >= size {
		return nil, proofs.Errorf(ReasonNotFound, "no entry %d (log size %d)", index, size)
	}
	var leaf []byte
	err := l.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, leafKey(index))
		if err != nil {
			return err
		}
		if v == nil {
			return proofs.Errorf(ReasonDataLoss, "entry %d is missing from the store", index)
		}
		leaf = v
		return nil
	})
	return leaf, readError(err)
}

// lookup resolves an index key (delegation id, leaf hash) to an index the
// latest checkpoint covers.
func (l *Log) lookup(key []byte, what string) (uint64, error) {
	var idx uint64
	err := l.db.View(func(txn *badger.Txn) error {
		i, ok, err := getIndex(txn, key)
		if err != nil {
			return err
		}
		if !ok || i >= l.latest.Load().Size {
			return proofs.Errorf(ReasonNotFound, "no entry with %s", what)
		}
		idx = i
		return nil
	})
	return idx, readError(err)
}

// IndexOfDelegation returns the index of the accepted delegation with id.
func (l *Log) IndexOfDelegation(ctx context.Context, id string) (uint64, error) {
	return l.lookup(strKey(tDelegID, id), fmt.Sprintf("delegation id %q", id))
}

// IndexOfConfigBefore returns the index of the log-config entry in force
// at the entry index: the latest one before it.
func (l *Log) IndexOfConfigBefore(ctx context.Context, index uint64) (uint64, error) {
	var idx uint64
	var ok bool
	err := l.db.View(func(txn *badger.Txn) error {
		idx, ok = latestBefore(txn, []byte{tConfig}, index)
		return nil
	})
	if err != nil {
		return 0, readError(err)
	}
	if !ok {
		return 0, proofs.Errorf(ReasonNotFound, "no log-config entry before entry %d", index)
	}
	return idx, nil
}

// IndexOfLeafHash returns the index of the entry with the given leaf hash.
func (l *Log) IndexOfLeafHash(ctx context.Context, h []byte) (uint64, error) {
	if len(h) != hashSize {
		return 0, proofs.Errorf(proofs.ReasonFieldMissing, "leaf hash must be %d bytes", hashSize)
	}
	return l.lookup(hashKey(tLeafHash, h), fmt.Sprintf("leaf hash %x", h))
}

// MaxEntriesPerRead and MaxEntriesBytes bound one Entries call.
const (
	MaxEntriesPerRead = 1000
	MaxEntriesBytes   = 4 << 20
)

// Entries returns up to count leaves from start, stopping at the latest
// checkpoint size, MaxEntriesPerRead entries or MaxEntriesBytes bytes
// (always at least one entry when start is in range).
func (l *Log) Entries(ctx context.Context, start uint64, count int) ([][]byte, error) {
	size := l.latest.Load().Size
	if start >= size {
		return nil, proofs.Errorf(ReasonOutOfRange, "start %d is not below the log size %d", start, size)
	}
	count = min(count, MaxEntriesPerRead)
	if uint64(count) > size-start {
		count = int(size - start)
	}
	var out [][]byte
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte{tLeaf}})
		defer it.Close()
		total := 0
		next := start
		for it.Seek(leafKey(start)); it.Valid() && len(out) < count; it.Next() {
			if !bytes.Equal(it.Item().Key(), leafKey(next)) {
				return proofs.Errorf(ReasonDataLoss, "entry %d is missing from the store", next)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(out) > 0 && total+len(v) > MaxEntriesBytes {
				break
			}
			total += len(v)
			out = append(out, v)
			next++
		}
		if len(out) == 0 {
			return proofs.Errorf(ReasonDataLoss, "entry %d is missing from the store", start)
		}
		return ctx.Err()
	})
	return out, readError(err)
}

// ProvenLeaves returns the leaves at idxs and their inclusion proofs in the
// tree of size, read in one transaction with one node reader: a page of a
// blast radius proves hundreds of entries whose proofs share most nodes,
// and each is then read once. size must be a checkpoint's size at least
// each index; the hashes may share memory with the tile cache.
func (l *Log) ProvenLeaves(ctx context.Context, idxs []uint64, size uint64) (leaves [][]byte, hashes [][][]byte, err error) {
	if size, err = l.checkSize(size); err != nil {
		return nil, nil, err
	}
	err = l.db.View(func(txn *badger.Txn) error {
		r := l.nodeReader(txn)
		for _, idx := range idxs {
			if idx >= size {
				return proofs.Errorf(ReasonOutOfRange, "index %d is not below tree size %d", idx, size)
			}
			leaf, err := getValue(txn, leafKey(idx))
			if err != nil {
				return err
			}
			if leaf == nil {
				return proofs.Errorf(ReasonDataLoss, "entry %d is missing from the store", idx)
			}
			h, err := r.inclusion(idx, size)
			if err != nil {
				return err
			}
			leaves, hashes = append(leaves, leaf), append(hashes, h)
		}
		return ctx.Err()
	})
	return leaves, hashes, readError(err)
}

// InclusionProof returns the inclusion proof of index in the tree of size
// (0: the latest checkpoint's size) and the size used. The hashes of this
// and the other proof methods may share memory with the log's tile cache:
// callers must not modify them.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, uint64, error) {
	size, err := l.checkSize(size)
	if err != nil {
		return nil, 0, err
	}
	if index >= size {
		return nil, 0, proofs.Errorf(ReasonOutOfRange, "index %d is not below tree size %d", index, size)
	}
	var hashes [][]byte
	err = l.withProofReader(func(r *nodeReader) (err error) {
		hashes, err = r.inclusion(index, size)
		return err
	})
	return hashes, size, readError(err)
}

// ConsistencyProof returns the proof that tree size1 is a prefix of tree
// size2 (0: the latest checkpoint's size) and the size2 used.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, uint64, error) {
	size2, err := l.checkSize(size2)
	if err != nil {
		return nil, 0, err
	}
	if size1 > size2 {
		return nil, 0, proofs.Errorf(ReasonOutOfRange, "size %d is larger than %d", size1, size2)
	}
	var hashes [][]byte
	err = l.withProofReader(func(r *nodeReader) (err error) {
		hashes, err = r.consistency(size1, size2)
		return err
	})
	return hashes, size2, readError(err)
}

// RangeProof returns the compact-range hashes of [0, start) and [end, size)
// that, with the leaves [start, end), fold into the root of tree size.
func (l *Log) RangeProof(ctx context.Context, start, end, size uint64) (left, right [][]byte, err error) {
	if start > end || end > size {
		return nil, nil, proofs.Errorf(ReasonOutOfRange, "range [%d, %d) is outside tree size %d", start, end, size)
	}
	err = l.withProofReader(func(r *nodeReader) error {
		if left, err = r.rangeHashes(0, start); err != nil {
			return err
		}
		right, err = r.rangeHashes(end, size)
		return err
	})
	return left, right, readError(err)
}

// readError classifies read failures: errors with a reason pass through;
// missing nodes mean data loss; anything else is the store being unavailable.
func readError(err error) error {
	if err == nil {
		return nil
	}
	var pe *proofs.Error
	if errors.As(err, &pe) {
		return err
	}
	var mn errMissingNode
	if errors.As(err, &mn) {
		return &proofs.Error{Reason: ReasonDataLoss, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &proofs.Error{Reason: ReasonStoreUnavailable, Err: err}
}
