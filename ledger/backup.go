package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/proofs"
)

// Online backups.
//
// A backup is one consistent snapshot of the store: every key and value
// seen by a single Badger read transaction, so the tree head, the tiles,
// the leaves and the indexes in it all belong to the same commit. (Badger's
// own DB.Backup is not used: its stream opens one transaction per worker
// goroutine, and under load those may see different commits, pairing a
// tree head with leaves it does not have.) The backup carries a checkpoint
// signed for exactly the snapshot's tree, and ends with a SHA-256 of all
// that precedes it, so a truncated or damaged copy is detected.
//
// The log's signing key (DIR/log.key) is not in the backup: it is the one
// secret of a log, and is backed up separately, once (it never changes).
// Restore takes it as an argument and refuses a key that did not sign the
// backup's checkpoint.
//
// File layout (integers big-endian):
//
//	"warrant-backup/v1\n"
//	u32 length, the signed checkpoint (C2SP tlog-checkpoint) of the snapshot's tree
//	records, in key order: u32 key length (1..MaxBackupKeyBytes), key,
//	                       u32 value length (..MaxBackupValueBytes), value
//	u32 0                  (end of records)
//	u64 record count
//	SHA-256 of every byte above, and nothing after it
const backupMagic = "warrant-backup/v1\n"

// Bounds on a backup's records (the store's keys are at most a few hundred
// bytes, its values at most a 64 KiB leaf).
const (
	MaxBackupKeyBytes   = 4 << 10
	MaxBackupValueBytes = 1 << 20
)

// Reason codes of backups and restores.
const (
	ReasonBackupMalformed   = proofs.ReasonBackupMalformed
	ReasonBackupMismatch    = proofs.ReasonBackupMismatch
	ReasonBackupKeyMismatch = proofs.ReasonBackupKeyMismatch
	ReasonRestoreTarget     = proofs.ReasonRestoreTarget
)

// BackupInfo describes a backup.
type BackupInfo struct {
	// Checkpoint is the signed checkpoint of the snapshot's tree.
	Checkpoint *proofs.Checkpoint
	// Records is the number of key-value records.
	Records uint64
	// Bytes is the size of the backup.
	Bytes int64
	// Audit is the replay of every entry (Restore with RestoreOptions.Audit).
	Audit *proofs.AuditReport
}

// Backup writes a consistent snapshot of the store to w while the log keeps
// serving. The snapshot's tree is committed, so the checkpoint it carries is
// the one the sequencer signs (or has signed) for it: Ed25519 signatures are
// deterministic.
func (l *Log) Backup(ctx context.Context, w io.Writer) (*BackupInfo, error) {
	if !l.backups.enter() {
		return nil, proofs.Errorf(ReasonShuttingDown, "the log is shutting down")
	}
	defer l.backups.exit()
	txn := l.db.NewTransaction(false)
	defer txn.Discard()
	hb, err := getValue(txn, keyHead)
	if err != nil {
		return nil, readError(err)
	}
	h := head{Root: proofs.EmptyRoot()}
	if hb != nil {
		if h, err = parseHead(hb); err != nil {
			return nil, &proofs.Error{Reason: ReasonDataLoss, Err: err}
		}
	}
	cp := l.Checkpoint()
	if cp.Size != h.Size || !bytes.Equal(cp.Root, h.Root) {
		if cp, err = l.signCheckpoint(h.Size, h.Root, false); err != nil {
			return nil, err
		}
	}
	cw := &countWriter{w: w}
	hw := &hashWriter{w: cw, h: sha256.New()}
	bw := bufio.NewWriterSize(hw, 1<<20)
	bw.WriteString(backupMagic)
	bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(cp.Note))))
	bw.Write(cp.Note)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	var n uint64
	var value []byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if value, err = item.ValueCopy(value[:0]); err != nil {
			return nil, readError(err)
		}
		key := item.Key()
		if len(key) > MaxBackupKeyBytes || len(value) > MaxBackupValueBytes {
			return nil, fmt.Errorf("store record %q... of %d+%d bytes is over the backup's bounds", key[:1], len(key), len(value))
		}
		bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(key))))
		bw.Write(key)
		bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(value))))
		if _, err := bw.Write(value); err != nil {
			return nil, err
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			select {
			case <-l.stop:
				return nil, proofs.Errorf(ReasonShuttingDown, "the log is shutting down")
			default:
			}
		}
	}
	bw.Write(binary.BigEndian.AppendUint32(nil, 0))
	bw.Write(binary.BigEndian.AppendUint64(nil, n))
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if _, err := cw.Write(hw.h.Sum(nil)); err != nil {
		return nil, err
	}
	return &BackupInfo{Checkpoint: cp, Records: n, Bytes: cw.n}, nil
}

// backupGate lets Close wait for the backups reading the store, which stop
// at their next check of l.stop, and refuses backups once the store closed.
type backupGate struct {
	mu     sync.RWMutex
	closed bool
}

func (g *backupGate) enter() bool {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return false
	}
	return true
}

func (g *backupGate) exit() { g.mu.RUnlock() }

// closeStore runs closeDB once no backup reads the store.
func (g *backupGate) closeStore(closeDB func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return closeDB()
}

// ReadBackup reads and checks a backup: its checkpoint must verify under
// logKey, its records must be in key order, the leaves among them must be
// exactly the checkpoint's entries and hash to its root, the tree head must
// be the checkpoint's, and the trailing count and SHA-256 must match. visit,
// if not nil, sees every record in order (its slices are reused). A backup
// is accepted only when ReadBackup returns no error, after the last record.
func ReadBackup(r io.Reader, logKey note.Verifier, visit func(key, value []byte) error) (*BackupInfo, error) {
	return readBackup(r, logKey, nil, visit)
}

// readBackup is ReadBackup, calling opened with the verified checkpoint
// before the first record.
func readBackup(r io.Reader, logKey note.Verifier, opened func(*proofs.Checkpoint), visit func(key, value []byte) error) (*BackupInfo, error) {
	cr := &countReader{r: r}
	br := bufio.NewReaderSize(cr, 1<<20)
	h := sha256.New()
	// readFull reads the hashed part of the backup.
	readFull := func(p []byte) error {
		if _, err := io.ReadFull(br, p); err != nil {
			return err
		}
		h.Write(p)
		return nil
	}
	malformed := func(format string, args ...any) error {
		return proofs.Errorf(ReasonBackupMalformed, format, args...)
	}
	magic := make([]byte, len(backupMagic))
	if err := readFull(magic); err != nil || string(magic) != backupMagic {
		return nil, malformed("not a warrant backup (want %q)", strings.TrimSpace(backupMagic))
	}
	var u32 [4]byte
	if err := readFull(u32[:]); err != nil {
		return nil, malformed("truncated before the checkpoint")
	}
	cpLen := binary.BigEndian.Uint32(u32[:])
	if cpLen > proofs.MaxCheckpointBytes {
		return nil, malformed("checkpoint length %d over %d", cpLen, proofs.MaxCheckpointBytes)
	}
	signed := make([]byte, cpLen)
	if err := readFull(signed); err != nil {
		return nil, malformed("truncated in the checkpoint")
	}
	cp, err := proofs.OpenCheckpoint(signed, logKey)
	if err != nil {
		return nil, &proofs.Error{Reason: ReasonBackupKeyMismatch, Err: fmt.Errorf("the backup's checkpoint does not verify under the log key %s (another log's backup, or the wrong key): %w", logKey.Name(), err)}
	}
	if opened != nil {
		opened(cp)
	}
	rng := proofs.NewEmptyRange(0)
	var n uint64
	var key, value, prev []byte
	sawHead := false
	for {
		if err := readFull(u32[:]); err != nil {
			return nil, malformed("truncated after %d records", n)
		}
		kl := binary.BigEndian.Uint32(u32[:])
		if kl == 0 {
			break
		}
		if kl > MaxBackupKeyBytes {
			return nil, malformed("record %d: key length %d over %d", n, kl, MaxBackupKeyBytes)
		}
		key = grow(key, int(kl))
		if err := readFull(key); err != nil {
			return nil, malformed("truncated in record %d", n)
		}
		if err := readFull(u32[:]); err != nil {
			return nil, malformed("truncated in record %d", n)
		}
		vl := binary.BigEndian.Uint32(u32[:])
		if vl > MaxBackupValueBytes {
			return nil, malformed("record %d: value length %d over %d", n, vl, MaxBackupValueBytes)
		}
		value = grow(value, int(vl))
		if err := readFull(value); err != nil {
			return nil, malformed("truncated in record %d", n)
		}
		if n > 0 && bytes.Compare(prev, key) >= 0 {
			return nil, malformed("record %d is out of key order", n)
		}
		prev = append(prev[:0], key...)
		switch {
		case key[0] == tLeaf:
			if !bytes.Equal(key, leafKey(rng.End())) {
				return nil, proofs.Errorf(ReasonBackupMismatch, "record %d: leaf key %x where entry %d belongs", n, key, rng.End())
			}
			if err := rng.Append(proofs.LeafHash(value), nil); err != nil {
				return nil, err
			}
		case bytes.Equal(key, keyHead):
			hd, err := parseHead(value)
			if err != nil {
				return nil, proofs.Errorf(ReasonBackupMismatch, "tree head: %v", err)
			}
			if hd.Size != cp.Size || !bytes.Equal(hd.Root, cp.Root) {
				return nil, proofs.Errorf(ReasonBackupMismatch, "the tree head (%d entries, root %x) is not the backup's checkpoint (%d, %x)", hd.Size, hd.Root, cp.Size, cp.Root)
			}
			sawHead = true
		}
		if visit != nil {
			if err := visit(key, value); err != nil {
				return nil, err
			}
		}
		n++
	}
	var u64b [8]byte
	if err := readFull(u64b[:]); err != nil {
		return nil, malformed("truncated in the trailer")
	}
	if c := binary.BigEndian.Uint64(u64b[:]); c != n {
		return nil, malformed("the trailer counts %d records, the backup holds %d", c, n)
	}
	sum := h.Sum(nil)
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(br, want); err != nil {
		return nil, malformed("truncated in the trailer")
	}
	if !bytes.Equal(sum, want) {
		return nil, malformed("SHA-256 mismatch: the backup is damaged")
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, malformed("data after the trailer")
	}
	if rng.End() != cp.Size {
		return nil, proofs.Errorf(ReasonBackupMismatch, "the backup holds %d leaves, its checkpoint %d", rng.End(), cp.Size)
	}
	root := proofs.EmptyRoot()
	if cp.Size > 0 {
		if root, err = rng.GetRootHash(nil); err != nil {
			return nil, err
		}
		if !sawHead {
			return nil, proofs.Errorf(ReasonBackupMismatch, "the backup has no tree head")
		}
	}
	if !bytes.Equal(root, cp.Root) {
		return nil, proofs.Errorf(ReasonBackupMismatch, "the backup's leaves hash to %x, its checkpoint says %x", root, cp.Root)
	}
	return &BackupInfo{Checkpoint: cp, Records: n, Bytes: cr.n}, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// RestoreOptions adjust Restore.
type RestoreOptions struct {
	// Logger receives Badger's logs and progress (default slog.Default()).
	Logger *slog.Logger
	// Audit replays every entry as it is restored, as `warrant audit` does
	// (signatures, chain rules, policy decisions); the report is in
	// BackupInfo.Audit. A restore with discrepancies still completes: it
	// is a faithful copy of what the log holds.
	Audit bool
}

// Restore rebuilds a data directory from a backup. dir must not exist or be
// empty. logKey is the log's signing key, the content of the log.key file
// saved from the original data directory; it must be the key that signed
// the backup's checkpoint. Restore checks the backup as ReadBackup does,
// loads it, then runs the same recovery check as Open (tiles against the
// tree head and the last stored checkpoint, key bindings and policy
// readable), and only then writes log.key (0600) and log.vkey: a directory
// left without log.key is an incomplete restore. On failure it removes what
// it wrote.
func Restore(ctx context.Context, r io.Reader, dir, logKey string, opts RestoreOptions) (_ *BackupInfo, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	skey := strings.TrimSpace(logKey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, &proofs.Error{Reason: ReasonBackupKeyMismatch, Err: fmt.Errorf("the log key is not a note signing key: %v", err)}
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, &proofs.Error{Reason: ReasonBackupKeyMismatch, Err: err}
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	created, err := prepareRestoreDir(dir)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(BadgerOptions(dir, opts.Logger))
	if err != nil {
		cleanRestoreDir(dir, created)
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	closed := false
	defer func() {
		if !closed {
			db.Close()
		}
		if err != nil {
			cleanRestoreDir(dir, created)
		}
	}()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	var records uint64
	var auditor *proofs.Auditor
	var leaves [][]byte
	opened := func(cp *proofs.Checkpoint) {
		if opts.Audit {
			auditor = proofs.NewAuditor(cp, nil)
		}
	}
	info, err := readBackup(r, verifier, opened, func(key, value []byte) error {
		if records++; records%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if key[0] == tLeaf && auditor != nil {
			if leaves = append(leaves, bytes.Clone(value)); len(leaves) == 2048 {
				auditor.AddBatch(leaves)
				leaves = nil
			}
		}
		return wb.Set(bytes.Clone(key), bytes.Clone(value))
	})
	if err != nil {
		return nil, err
	}
	if auditor != nil {
		auditor.AddBatch(leaves)
		info.Audit = auditor.Finish()
	}
	if err := wb.Flush(); err != nil {
		return nil, fmt.Errorf("writing the restored store: %w", err)
	}
	// The recovery check Open runs, on the restored store.
	l := &Log{opts: Options{Dir: dir, Logger: opts.Logger}, log: opts.Logger, db: db, signer: signer, verifier: verifier, vkey: vkey}
	ch := make(chan struct{})
	l.changed.Store(&ch)
	if err := l.recover(); err != nil {
		return nil, err
	}
	if got := l.Checkpoint(); got.Size != info.Checkpoint.Size || !bytes.Equal(got.Root, info.Checkpoint.Root) {
		return nil, proofs.Errorf(ReasonBackupMismatch, "the restored store is at %d/%x, the backup's checkpoint at %d/%x", got.Size, got.Root, info.Checkpoint.Size, info.Checkpoint.Root)
	}
	closed = true
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("closing the restored store: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, LogVerifierKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing verifier key: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, LogKeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing log key: %w", err)
	}
	return info, nil
}

// prepareRestoreDir creates dir (0700), or accepts it if it is an empty
// directory; it reports whether it created it.
func prepareRestoreDir(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("creating %s: %w", dir, err)
		}
		return true, nil
	case err != nil:
		return false, err
	case len(ents) > 0:
		return false, proofs.Errorf(ReasonRestoreTarget, "%s is not empty: restore into a new directory", dir)
	}
	return false, nil
}

// cleanRestoreDir undoes a failed restore: it removes dir if Restore
// created it, else empties it.
func cleanRestoreDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// BackupOptions configures BackupHandler.
type BackupOptions struct {
	// RequireAdmin demands an admin-signed request (see
	// proofs.ParseAdminAuthorization). Set it wherever the handler is
	// reachable by anyone but the operator, as on the main listener; a
	// separate operations listener on a private address may leave it off.
	RequireAdmin bool
	// MaxDuration bounds one backup, however slowly its client reads
	// (default 15 minutes), so that no reader holds the one backup slot
	// for longer.
	MaxDuration time.Duration
}

// defaultBackupMaxDuration is BackupOptions.MaxDuration's default.
const defaultBackupMaxDuration = 15 * time.Minute

// BackupHandler serves GET requests with a backup of l (application/octet-
// stream), one at a time (503 while another runs). A client that stops
// reading for a minute is cut off, and no backup runs longer than
// opts.MaxDuration, so a stalled or trickling download cannot hold the
// snapshot (and the slot) open. A failure after the first byte aborts the
// response; the backup's trailer makes any truncation evident.
func BackupHandler(l *Log, opts BackupOptions) http.Handler {
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = defaultBackupMaxDuration
	}
	auth := newAdminAuth(l)
	busy := make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if opts.RequireAdmin {
			if err := auth.check(r); err != nil {
				l.log.Warn("backup refused", "remote", r.RemoteAddr, "err", err)
				refuseAdmin(w, err)
				return
			}
		}
		select {
		case busy <- struct{}{}:
			defer func() { <-busy }()
		default:
			w.Header().Set("Retry-After", "60")
			http.Error(w, proofs.ReasonBackupInProgress+": another backup is running", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Disposition", `attachment; filename="warrant.backup"`)
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), opts.MaxDuration)
		defer cancel()
		dw := &deadlineWriter{w: w, rc: http.NewResponseController(w), end: start.Add(opts.MaxDuration)}
		info, err := l.Backup(ctx, dw)
		if err != nil {
			l.log.Warn("backup failed", "remote", r.RemoteAddr, "err", err)
			if dw.n == 0 {
				http.Error(w, "backup failed: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			panic(http.ErrAbortHandler)
		}
		l.log.Info("backup streamed", "remote", r.RemoteAddr, "size", info.Checkpoint.Size, "records", info.Records, "bytes", info.Bytes, "took", time.Since(start).Round(time.Millisecond))
	})
}

// backupWriteTimeout is how long one write of a backup may block.
const backupWriteTimeout = time.Minute

// deadlineWriter extends the response's write deadline before each write,
// never past end.
type deadlineWriter struct {
	w   io.Writer
	rc  *http.ResponseController
	end time.Time
	n   int64
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	deadline := time.Now().Add(backupWriteTimeout)
	if deadline.After(d.end) {
		deadline = d.end
	}
	_ = d.rc.SetWriteDeadline(deadline) // unsupported: no deadline
	n, err := d.w.Write(p)
	d.n += int64(n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	hw.h.Write(p)
	return hw.w.Write(p)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
