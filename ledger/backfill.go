package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// keyPayloadIndex marks a store whose signed-payload index (tPayload)
// covers every entry. Logs written before deduplication moved from the
// envelope bytes to the signed payload index only envelopes; without the
// payload index, a variant of an old entry's signed payload (a co-signature
// stripped or added) would not be recognised as a resubmission and would
// make a new entry under the issuer's name.
var keyPayloadIndex = []byte("Mpayload-index")

// backfillPayloadIndex indexes, once, the signed payload of every entry of
// a store that lacks the index, each payload under its first entry (as the
// sequencer would have). A new store is marked complete at once. It runs
// at open, before the sequencer starts, and writes in Badger write batches
// (any size of log); the marker is written last, so an interrupted
// backfill runs again.
func (l *Log) backfillPayloadIndex() error {
	var done bool
	if err := l.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, keyPayloadIndex)
		done = v != nil
		return err
	}); err != nil {
		return err
	}
	if done {
		return nil
	}
	// Newest entry first: when a payload was logged more than once, the
	// batch's later write, the first entry, wins, with no set of the
	// payloads seen to keep in memory.
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	added := 0
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tLeaf}, Reverse: true, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(leafKey(l.seq.size)); it.Valid(); it.Next() {
			key := it.Item().Key()
			if len(key) != 9 {
				return fmt.Errorf("%w: malformed leaf key %x", ErrStoreMismatch, key)
			}
			idx := binary.BigEndian.Uint64(key[1:])
			if idx >= l.seq.size {
				continue // beyond the tree head: not the log's
			}
			leaf, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			p, err := proofs.ParseLeaf(leaf)
			if err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrStoreMismatch, idx, err)
			}
			if p.Env == nil {
				continue // the log's own config entries sign nothing
			}
			h := proofs.PayloadHash(p.Env.PayloadType, p.Env.Payload)
			at, indexed, err := getIndex(txn, hashKey(tPayload, h[:]))
			if err != nil {
				return err
			}
			if indexed && at <= idx {
				continue
			}
			if err := wb.Set(hashKey(tPayload, h[:]), u64(idx)); err != nil {
				return err
			}
			added++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := wb.Set(keyPayloadIndex, []byte{1}); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("writing the signed-payload index: %w", err)
	}
	if added > 0 {
		l.log.Info("indexed the signed payloads of entries written before payload deduplication", "entries", added)
	}
	return nil
}
