package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// Badger key layout. Every key starts with a one-byte table prefix; integers
// are big-endian so that keys sort in index order.
//
//	'L' idx                 -> leaf bytes
//	'T' level idx           -> tile: up to 256 hashes of tree level 8*level
//	'E' sha256(envelope)    -> idx   (dedup, logs written before 'S')
//	'S' sha256(PAE(payload)) -> idx  (dedup by signed payload)
//	'H' leaf hash           -> idx   (inclusion proofs by leaf hash)
//	'D' delegation id       -> idx   (accepted delegations only)
//	'N' issuer 0x00 nonce   -> idx   (accepted delegations only)
//	'A' agent 0x00 idx      -> role  (agent -> entries, as issuer or delegate)
//	'C' parent 0x00 idx     -> ""    (parent -> children)
//	'B' agent 0x00 idx      -> ""    (key bindings of an agent)
//	'R' delegation id       -> idx   (accepted revocation of it)
//	'K' key id 0x00 idx     -> ""    (key bindings of a key)
//	'P' idx                 -> ""    (policy entries)
//	'G' idx                 -> ""    (log-config entries)
//	'M' name                -> metadata: "head", "checkpoint", "config"
const (
	tLeaf     = 'L'
	tTile     = 'T'
	tEnvelope = 'E'
	tPayload  = 'S'
	tLeafHash = 'H'
	tDelegID  = 'D'
	tNonce    = 'N'
	tAgent    = 'A'
	tChild    = 'C'
	tBinding  = 'B'
	tRevoked  = 'R'
	tKeyID    = 'K'
	tPolicy   = 'P'
	tConfig   = 'G'
	tMeta     = 'M'
)

var (
	keyHead       = []byte("Mhead")
	keyCheckpoint = []byte("Mcheckpoint")
	keyConfig     = []byte("Mconfig")
	keyPolicy     = []byte("Mpolicy")
)

// Roles recorded in the agent index.
const (
	roleIssuer   = 'i'
	roleDelegate = 'd'
	roleSubject  = 'b'
)

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func leafKey(idx uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tLeaf}, idx) }

func tileKey(level uint8, idx uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tTile, level}, idx)
}

func hashKey(table byte, h []byte) []byte { return append([]byte{table}, h...) }

func strKey(table byte, s string) []byte { return append([]byte{table}, s...) }

func pairKey(table byte, s string, idx uint64) []byte {
	k := append([]byte{table}, s...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, idx)
}

func nonceKey(issuer, nonce string) []byte {
	k := append([]byte{tNonce}, issuer...)
	k = append(k, 0)
	return append(k, nonce...)
}

// head is the tree head committed with every batch.
type head struct {
	Size    uint64
	Root    []byte
	LogTime int64 // unix nanoseconds of the last entry
}

func (h head) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, h.Size)
	b = append(b, h.Root...)
	return binary.BigEndian.AppendUint64(b, uint64(h.LogTime))
}

func parseHead(b []byte) (head, error) {
	if len(b) != 8+32+8 {
		return head{}, fmt.Errorf("tree head record is %d bytes, want 48", len(b))
	}
	return head{
		Size:    binary.BigEndian.Uint64(b),
		Root:    append([]byte(nil), b[8:40]...),
		LogTime: int64(binary.BigEndian.Uint64(b[40:])),
	}, nil
}

// getValue reads a key in txn, returning (nil, nil) when it is absent.
func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", key[:1], err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("reading value of %q: %w", key[:1], err)
	}
	return v, nil
}

// getIndex reads a key whose value is an 8-byte index.
// getIndexVia is getIndex, answered "absent" without the store when the
// filter (nil: none) knows the key is not there.
func getIndexVia(txn *badger.Txn, absent *keyFilter, key []byte) (uint64, bool, error) {
	if !absent.mayContain(key) {
		return 0, false, nil
	}
	return getIndex(txn, key)
}

func getIndex(txn *badger.Txn, key []byte) (uint64, bool, error) {
	v, err := getValue(txn, key)
	if err != nil || v == nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, proofs.Errorf(ReasonDataLoss, "index record %q is %d bytes, want 8", key[:1], len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// BadgerOptions are the Badger settings the ledger uses. Badger's defaults
// are tuned for large servers (five 64 MiB memtables, a 256 MiB block cache,
// 1 GiB value-log files). These bound the server's memory under sustained
// appends (bench/RESULTS.md, "Sustained load"):
//
//   - two 32 MiB memtables: each is a 32 MiB arena on the heap, and each
//     flush builds a table of its size in memory (Badger's table builder
//     keeps the raw and the compressed blocks, in buffers that double as
//     they fill, then pools them). A transaction may take 15% of a
//     memtable, 4.8 MiB: a batch (at most 1,024 entries and 2 MiB of
//     envelopes) needs about half of that, and one that would not fit is
//     split (Log.txnBudget);
//   - tables of 2 MiB at every level (a table size multiplier of 1):
//     compactions build up to a dozen tables at once in memory, and with
//     Badger's default multiplier of 2 the deeper levels' tables reach
//     16 MiB, which took the heap to 850 MiB of table builders in a
//     20-minute flat-out run;
//   - a 16 MiB block cache and a 32 MiB index cache: proofs read tiles
//     through the ledger's own tile cache; the block cache serves bulk leaf
//     reads.
//
// SyncWrites is always on: an acknowledged append must survive power loss.
func BadgerOptions(dir string, logger *slog.Logger) badger.Options {
	o := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithMemTableSize(32 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(32 << 20).
		WithValueLogFileSize(256 << 20).
		WithNumCompactors(2).
		WithLogger(badgerLogger{logger})
	o.TableSizeMultiplier = 1 // no setter
	return o
}

// badgerLogger routes Badger's logs to slog; its chatty info lines go to
// debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
