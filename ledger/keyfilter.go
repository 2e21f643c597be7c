package ledger

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// keyFilter answers, from memory, that a key is certainly not in the
// store, for the index tables the sequencer looks up for every new entry
// and almost never finds: signed payloads (tPayload, deduplication),
// delegation ids (tDelegID), nonces (tNonce) and revoked delegations
// (tRevoked). Without it, every new delegation cost Badger point lookups
// (memtables, then each level's tables) that missed.
//
// The contract, on which the log's deduplication and the chain rules rest:
//
//   - no false negatives: once add(k) has run, mayContain(k) is true for
//     the filter's lifetime;
//   - false positives are allowed (about 1% of absent keys): mayContain
//     true means "ask the store", which answers exactly;
//   - the filter knows every key of those tables in the store: Open builds
//     it from the store (buildKeyFilter, after recovery and the payload
//     backfill, before the sequencer starts), and the sequencer adds each
//     such key it stages before the transaction commits (a commit that
//     fails leaves false positives only). Nothing else writes those
//     tables while the log is open.
//
// It is a Bloom filter that grows by adding layers (each twice the
// capacity of the last, none ever rebuilt), about 10 bits per key. It is
// owned by the sequencer: not safe for concurrent use. Readers (the read
// API, token checks) ask the store.
type keyFilter struct {
	seed   maphash.Seed
	layers []*bloomLayer
}

// bloomLayer is one Bloom filter of bloomBitsPerKey*capacity bits.
type bloomLayer struct {
	bits     []uint64
	m        uint64 // number of bits
	n        int
	capacity int
}

const (
	bloomBitsPerKey = 10
	bloomProbes     = 7 // optimal for 10 bits per key: about 0.8% false positives
	// minFilterKeys is the capacity of the first layer of a small log.
	minFilterKeys = 1 << 16
)

// filtered reports whether the sequencer's lookups of keys of this table go
// through the filter.
func filtered(table byte) bool {
	return table == tPayload || table == tDelegID || table == tNonce || table == tRevoked
}

func newKeyFilter(capacity int) *keyFilter {
	f := &keyFilter{seed: maphash.MakeSeed()}
	f.grow(max(capacity, minFilterKeys))
	return f
}

func (f *keyFilter) grow(capacity int) {
	m := uint64(capacity) * bloomBitsPerKey
	f.layers = append(f.layers, &bloomLayer{bits: make([]uint64, (m+63)/64), m: m, capacity: capacity})
}

// add records key (of a filtered table; others are ignored; a nil filter
// records nothing).
func (f *keyFilter) add(key []byte) {
	if f == nil || len(key) == 0 || !filtered(key[0]) {
		return
	}
	last := f.layers[len(f.layers)-1]
	if last.n >= last.capacity {
		f.grow(2 * last.capacity)
		last = f.layers[len(f.layers)-1]
	}
	h1, h2 := f.hash(key)
	for i := uint64(0); i < bloomProbes; i++ {
		b := last.bit(h1 + i*h2)
		last.bits[b/64] |= 1 << (b % 64)
	}
	last.n++
}

// mayContain reports whether key may be in the store; false means it
// certainly is not. Keys of tables the filter does not cover may be.
func (f *keyFilter) mayContain(key []byte) bool {
	if f == nil || len(key) == 0 || !filtered(key[0]) {
		return true
	}
	h1, h2 := f.hash(key)
	for _, l := range f.layers {
		if l.has(h1, h2) {
			return true
		}
	}
	return false
}

func (f *keyFilter) hash(key []byte) (h1, h2 uint64) {
	h1 = maphash.Bytes(f.seed, key)
	h2 = bits.RotateLeft64(h1, 32) | 1 // double hashing (Kirsch and Mitzenmacher)
	return h1, h2
}

func (l *bloomLayer) has(h1, h2 uint64) bool {
	for i := uint64(0); i < bloomProbes; i++ {
		b := l.bit(h1 + i*h2)
		if l.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// bit maps a hash onto [0, m) (Lemire's multiply-shift reduction).
func (l *bloomLayer) bit(h uint64) uint64 {
	hi, _ := bits.Mul64(h, l.m)
	return hi
}

// keys is the number of keys added.
func (f *keyFilter) keys() int {
	n := 0
	for _, l := range f.layers {
		n += l.n
	}
	return n
}

// buildKeyFilter reads every key of the filtered tables in the store
// (keys only) into a new filter sized for a log of size entries (at most
// three such keys each, plus room).
func (l *Log) buildKeyFilter() (*keyFilter, error) {
	start := time.Now()
	f := newKeyFilter(int(min(l.seq.size, 1<<40)) * 3)
	err := l.db.View(func(txn *badger.Txn) error {
		for _, table := range []byte{tPayload, tDelegID, tNonce, tRevoked} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{table}})
			for it.Rewind(); it.Valid(); it.Next() {
				f.add(it.Item().Key())
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the index keys: %w", err)
	}
	l.log.Info("index key filter built", "keys", f.keys(), "bytes", f.bytes(), "ms", time.Since(start).Milliseconds())
	return f, nil
}

// bytes is the filter's memory.
func (f *keyFilter) bytes() int {
	n := 0
	for _, l := range f.layers {
		n += 8 * len(l.bits)
	}
	return n
}
