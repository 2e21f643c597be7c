// Package ledger is warrant's server side: a Badger-backed RFC 6962 log of
// signed delegation events, its sequencer and its checkpoint signer.
//
// An append goes through two stages. The stateless stage (Append, on the
// caller's goroutine) bounds, parses and canonicalises the envelope and
// verifies its signatures, concurrently with other callers. The stateful
// stage (the sequencer, one goroutine) sees requests in index order, checks
// what depends on earlier entries (including the ones before it in the same
// batch, exactly as an offline replay does), assigns indices and log time,
// and commits the whole batch (leaves, tiles, indexes, tree head) in one
// synced Badger transaction. Only then does it sign a checkpoint, store it,
// publish it, and answer the callers: an acknowledged append is durable and
// provable at once.
package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// Options configure a Log. A zero field selects its default.
type Options struct {
	// Dir is the data directory (Badger files, log key). Required.
	Dir string
	// Origin is the checkpoint origin; on first start it names the generated
	// log key (default "localhost/warrant/<random>"); later it must match.
	Origin string
	// RegistrarKeys may sign key bindings.
	RegistrarKeys []*proofs.PublicKey
	// AdminKeys may sign policies and administrative revocations.
	AdminKeys []*proofs.PublicKey
	// Rules are the chain rules' bounds (zero fields: proofs.DefaultRuleLimits).
	Rules proofs.RuleLimits

	// MaxBatchEntries bounds the entries of one batch (default 1024).
	MaxBatchEntries int
	// MaxBatchBytes bounds the envelope bytes of one batch (default 2 MiB),
	// which keeps a batch's transaction well under Badger's limit.
	MaxBatchBytes int
	// MaxBatchWait is how long the sequencer waits for more requests once a
	// batch has one (default 0: a batch is what queued while the previous one
	// committed, so there is no merge delay).
	MaxBatchWait time.Duration
	// QueueLength bounds the requests waiting for the sequencer (default
	// 8192); beyond it Append sheds load with ReasonQueueFull.
	QueueLength int
	// AgentQueueLength bounds the requests of one agent waiting for the
	// sequencer (default QueueLength/8), so that one agent cannot fill the
	// queue; the sequencer serves agents in turn (fairqueue.go).
	AgentQueueLength int
	// MinFreeBytes is the free space the data directory's file system must
	// keep (default 192 MiB): below it appends are refused with
	// ReasonDiskFull before anything is written. Badger writes its
	// memtables through memory maps, where a full disk would crash the
	// process instead of failing a write; the reserve keeps it from ever
	// getting there.
	MinFreeBytes int64
	// CheckpointRefresh is how often WatchCheckpoints re-sends the latest
	// checkpoint with a fresh timestamp when the log is idle (default 10 s).
	CheckpointRefresh time.Duration
	// MaxWatchStreams bounds the WatchCheckpoints streams open at once
	// (default DefaultMaxWatchStreams), and MaxWatchStreamsPerPeer those of
	// one peer: one IP address, or one SPIFFE ID under mutual TLS (default
	// DefaultMaxWatchStreamsPerPeer). Beyond them a stream is refused
	// ResourceExhausted with ReasonTooManyStreams. See watch.go.
	MaxWatchStreams        int
	MaxWatchStreamsPerPeer int
	// TreeCacheBytes bounds the memory of the tile-subtree cache that
	// inclusion and consistency proofs read interior nodes from (default
	// DefaultTreeCacheBytes, 64 MiB; negative: no cache). A proof that
	// misses it reads the tile again (see tiles.go).
	TreeCacheBytes int

	// AgentRate bounds each agent's appends per second (default
	// DefaultAgentRate, 500; negative: no per-agent limit), with bursts of
	// up to AgentBurst (default DefaultAgentBurst, 1000). GlobalRate bounds
	// all appends together (default 0: no global limit), with bursts of up
	// to GlobalBurst (default one second's worth). Over a limit, Append
	// refuses with ReasonRateLimited and writes nothing. See limits.go.
	AgentRate   float64
	AgentBurst  int
	GlobalRate  float64
	GlobalBurst int
	// AgentByteRate bounds each agent's envelope bytes per second (default
	// DefaultAgentByteRate, 1 MiB; negative: no byte limit), with bursts of
	// up to AgentByteBurst (default DefaultAgentByteBurst, 8 MiB; at least
	// one largest envelope).
	AgentByteRate  float64
	AgentByteBurst int
	// MaxTrackedAgents bounds the per-agent limiters held in memory
	// (default DefaultMaxTrackedAgents, 100,000); idle ones are dropped
	// first, then the least recently used.
	MaxTrackedAgents int

	// AuthFailureRate and AuthFailureBurst are each peer's budget of
	// requests refused as not authentic (defaults DefaultAuthFailureRate
	// per second, bursts of DefaultAuthFailureBurst; a negative rate: no
	// budget). A peer over it is refused before its signatures are checked
	// (authguard.go). MaxTrackedPeers bounds the budgets held in memory
	// (default DefaultMaxTrackedPeers).
	AuthFailureRate  float64
	AuthFailureBurst int
	MaxTrackedPeers  int
	// FloodByteRate and FloodByteBurst are each peer's budget of envelope
	// bytes refused over their rate limits or queue share (defaults
	// DefaultFloodByteRate per second, bursts of DefaultFloodByteBurst; a
	// negative rate: no budget). A peer over it is refused before its
	// requests are read (floodguard.go).
	FloodByteRate  float64
	FloodByteBurst int

	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for log time (default time.Now).
	Now func() time.Time
	// MaxLogTimeAhead bounds how far log time, which never decreases, may
	// run ahead of Now (default DefaultMaxLogTimeAhead; negative: no
	// bound). After the clock jumped forward and was set back, a signed
	// event would otherwise get a log time pinned in the future until the
	// clock caught up, hours perhaps, with every expiry judged at that
	// future time; instead, appends are refused with ReasonClockBehind,
	// an error is logged and warrant_log_time_ahead_seconds shows the gap,
	// until the clock is within the bound again.
	MaxLogTimeAhead time.Duration
	// Badger adjusts the Badger options (see BadgerOptions) before opening.
	Badger func(badger.Options) badger.Options
	// Metrics, if not nil, receives the ledger's Prometheus metrics (see
	// NewMetrics and metrics.go).
	Metrics *Metrics
}

func (o *Options) setDefaults() {
	if o.MaxBatchEntries <= 0 {
		o.MaxBatchEntries = 1024
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 2 << 20
	}
	if o.QueueLength <= 0 {
		o.QueueLength = 8192
	}
	if o.AgentQueueLength <= 0 {
		o.AgentQueueLength = max(o.QueueLength/8, 1)
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 192 << 20
	}
	if o.TreeCacheBytes == 0 {
		o.TreeCacheBytes = DefaultTreeCacheBytes
	}
	if o.CheckpointRefresh <= 0 {
		o.CheckpointRefresh = 10 * time.Second
	}
	if o.MaxWatchStreams <= 0 {
		o.MaxWatchStreams = DefaultMaxWatchStreams
	}
	if o.MaxWatchStreamsPerPeer <= 0 {
		o.MaxWatchStreamsPerPeer = DefaultMaxWatchStreamsPerPeer
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLogTimeAhead == 0 {
		o.MaxLogTimeAhead = DefaultMaxLogTimeAhead
	}
	def := proofs.DefaultRuleLimits()
	if o.Rules.LifetimeExecuteSeconds <= 0 {
		o.Rules.LifetimeExecuteSeconds = def.LifetimeExecuteSeconds
	}
	if o.Rules.LifetimeDraftSeconds <= 0 {
		o.Rules.LifetimeDraftSeconds = def.LifetimeDraftSeconds
	}
	if o.Rules.LifetimeRootSeconds <= 0 {
		o.Rules.LifetimeRootSeconds = def.LifetimeRootSeconds
	}
	if o.Rules.MaxDepth <= 0 {
		o.Rules.MaxDepth = def.MaxDepth
	}
}

// DefaultMaxLogTimeAhead is the default Options.MaxLogTimeAhead: small
// steps of the clock back (an NTP correction) only pin log time briefly.
const DefaultMaxLogTimeAhead = time.Minute

// Log is an open ledger. Its methods are safe for concurrent use.
type Log struct {
	opts     Options
	log      *slog.Logger
	db       *badger.DB
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	config   proofs.LogConfig
	// registrars and admins map key ids to trust-anchor keys; fixed for the
	// life of the Log.
	registrars map[string]*proofs.PublicKey
	admins     map[string]*proofs.PublicKey
	// delegations caches committed delegations for chain walks.
	delegations *delegationCache
	// trees caches tiles' subtrees for proofs.
	trees *treeCache
	// limits are the append rate limiters (limits.go).
	limits *limiters
	// guard slows down peers that fail authentication (authguard.go).
	guard *authGuard
	// flood slows down peers that keep sending appends over their limits
	// (floodguard.go).
	flood *authGuard

	intake  *fairQueue // the sequencer's queue (fairqueue.go)
	stop    chan struct{}
	stopped chan struct{}

	latest   atomic.Pointer[proofs.Checkpoint]
	bindings atomic.Pointer[proofs.Bindings]
	// changed is closed, and replaced, whenever a new checkpoint is
	// published: watchers wait on it.
	changed atomic.Pointer[chan struct{}]
	// cosigner signs timestamps (C2SP cosignature/v1) with the log key.
	cosigner note.Signer
	// watch bounds WatchCheckpoints streams and shares their work (watch.go).
	watch *watchHub

	seq seqState // owned by the sequencer goroutine
	// logTime is seq.logTime as of the last commit, for the metrics.
	logTime atomic.Int64
	// clockAlerted is when the sequencer last logged that the clock is
	// behind log time (owned by the sequencer goroutine).
	clockAlerted time.Time

	// txnBudget bounds the estimated bytes of one batch transaction, well
	// under Badger's limit (15% of the memtable size).
	txnBudget int64

	// faults injects store failures in tests; nil in production.
	faults faults

	// backups keeps the store open while online backups read it (backup.go).
	backups backupGate
}

// faults are test hooks that make a commit or a checkpoint write fail, to
// check "failed and not persisted" and "persisted but not signed" paths.
type faults struct {
	commit     atomic.Pointer[error]
	checkpoint atomic.Pointer[error]
	// decision rewrites a leaf's recorded decision before it is written:
	// a log that lies about what its rules decided, for auditors to catch.
	decision atomic.Pointer[func(*proofs.Leaf)]
}

// txnEntryOverhead is Badger's per-entry accounting (version, metadata)
// plus slack.
const txnEntryOverhead = 32

// Open opens or creates the ledger in opts.Dir, checks the stored tree
// against the last signed checkpoint, signs a checkpoint if the store holds
// entries it does not cover yet, starts the sequencer, and appends a
// log-config entry if the configuration differs from the last one recorded.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts.setDefaults()
	if opts.Dir == "" {
		return nil, errors.New("ledger: no data directory")
	}
	if err := opts.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("ledger: rule limits: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	signer, cosigner, vkey, err := loadOrCreateLogKey(opts.Dir, opts.Origin)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log verifier key: %w", err)
	}
	bopts := BadgerOptions(opts.Dir, opts.Logger)
	if opts.Badger != nil {
		bopts = opts.Badger(bopts)
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("opening store in %s: %w", opts.Dir, err)
	}
	l := &Log{
		opts:        opts,
		log:         opts.Logger,
		db:          db,
		signer:      signer,
		cosigner:    cosigner,
		verifier:    verifier,
		vkey:        vkey,
		registrars:  make(map[string]*proofs.PublicKey),
		admins:      make(map[string]*proofs.PublicKey),
		delegations: newDelegationCache(1 << 16),
		trees:       newTreeCache(opts.TreeCacheBytes),
		limits:      newLimiters(opts),
		intake:      newFairQueue(opts.QueueLength, opts.AgentQueueLength),
		watch:       newWatchHub(opts),
		guard:       newAuthGuard(opts),
		flood:       newFloodGuard(opts),
		stop:        make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	maxTxn := bopts.MemTableSize * 15 / 100 // Badger's transaction limit
	l.txnBudget = max(maxTxn*3/4-256<<10, maxTxn/2)
	l.config = proofs.LogConfig{Origin: signer.Name(), Limits: proofs.DefaultLimits()}
	l.config.RegistrarKeys = configKeys(opts.RegistrarKeys)
	l.config.AdminKeys = configKeys(opts.AdminKeys)
	l.config.Rules = opts.Rules
	for _, k := range opts.RegistrarKeys {
		l.registrars[k.ID] = k
	}
	for _, k := range opts.AdminKeys {
		l.admins[k.ID] = k
	}
	ch := make(chan struct{})
	l.changed.Store(&ch)
	if err := l.recover(); err != nil {
		db.Close()
		return nil, err
	}
	opts.Metrics.attach(l)
	if ahead := time.Duration(l.seq.logTime - opts.Now().UnixNano()); opts.MaxLogTimeAhead > 0 && ahead > opts.MaxLogTimeAhead {
		l.log.Error("the clock is behind the log's last log time: appends are refused until it catches up (was it set back?)",
			"log_time", proofs.FormatLogTime(time.Unix(0, l.seq.logTime)), "ahead", ahead, "bound", opts.MaxLogTimeAhead)
	}
	go l.run()
	if err := l.ensureConfig(ctx); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.ensurePolicy(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func configKeys(keys []*proofs.PublicKey) []proofs.ConfigKey {
	var out []proofs.ConfigKey
	for _, k := range keys {
		out = append(out, proofs.ConfigKey{ID: k.ID, PublicKey: k.DER})
	}
	slices.SortFunc(out, func(a, b proofs.ConfigKey) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
	return slices.CompactFunc(out, func(a, b proofs.ConfigKey) bool { return a.ID == b.ID })
}

// recover loads the tree head, recomputes the root from the stored tiles and
// checks it against the head and the last checkpoint, then rebuilds the
// sequencer's state.
func (l *Log) recover() error {
	var h head
	var cp *proofs.Checkpoint
	err := l.db.View(func(txn *badger.Txn) error {
		hb, err := getValue(txn, keyHead)
		if err != nil {
			return err
		}
		if hb != nil {
			if h, err = parseHead(hb); err != nil {
				return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
			}
		}
		r := l.nodeReader(txn)
		root, err := r.root(h.Size)
		if err != nil {
			return fmt.Errorf("%w: recomputing the root of %d entries from stored tiles: %v", ErrStoreMismatch, h.Size, err)
		}
		if hb != nil && !bytes.Equal(root, h.Root) {
			return fmt.Errorf("%w: stored tiles give root %x for %d entries, but the stored tree head says %x", ErrStoreMismatch, root, h.Size, h.Root)
		}
		if h.Size > 0 {
			leaf, err := getValue(txn, leafKey(h.Size-1))
			if err != nil {
				return err
			}
			lh, err := r.node(0, h.Size-1)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
			}
			if leaf == nil || !bytes.Equal(proofs.LeafHash(leaf), lh) {
				return fmt.Errorf("%w: leaf %d does not match its stored hash", ErrStoreMismatch, h.Size-1)
			}
		}
		cb, err := getValue(txn, keyCheckpoint)
		if err != nil {
			return err
		}
		if cb != nil {
			if cp, err = proofs.OpenCheckpoint(cb, l.verifier); err != nil {
				return fmt.Errorf("%w: the stored checkpoint does not verify under this log's key: %v", ErrStoreMismatch, err)
			}
			if cp.Size > h.Size {
				return fmt.Errorf("%w: the last checkpoint covers %d entries but the store holds %d: committed entries were lost", ErrStoreMismatch, cp.Size, h.Size)
			}
			at, err := r.root(cp.Size)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
			}
			if !bytes.Equal(at, cp.Root) {
				return fmt.Errorf("%w: the stored tree of %d entries has root %x, but the last checkpoint signed %x", ErrStoreMismatch, cp.Size, at, cp.Root)
			}
		}
		edge, err := loadEdgeTiles(r, h.Size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
		}
		hashes, err := r.rangeHashes(0, h.Size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
		}
		rng, err := proofs.NewRange(0, h.Size, hashes)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStoreMismatch, err)
		}
		bs, err := loadBindings(txn)
		if err != nil {
			return err
		}
		pol, err := loadPolicy(txn)
		if err != nil {
			return err
		}
		l.seq = seqState{size: h.Size, rng: rng, edge: edge, logTime: h.LogTime, bindings: bs, policy: pol}
		l.logTime.Store(h.LogTime)
		l.bindings.Store(bs)
		return nil
	})
	if err != nil {
		return err
	}
	if cp == nil || cp.Size < h.Size {
		root := h.Root
		if h.Size == 0 {
			root = proofs.EmptyRoot()
		}
		if cp, err = l.signCheckpoint(h.Size, root, true); err != nil {
			return err
		}
	}
	l.publish(cp)
	l.log.Info("log opened", "origin", l.signer.Name(), "size", cp.Size, "root", fmt.Sprintf("%x", cp.Root))
	return nil
}

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

// ensureConfig appends a log-config entry when none is recorded or the last
// one differs from this Log's configuration.
func (l *Log) ensureConfig(ctx context.Context) error {
	var current []byte
	err := l.db.View(func(txn *badger.Txn) error {
		idx, ok, err := getIndex(txn, keyConfig)
		if err != nil || !ok {
			return err
		}
		raw, err := getValue(txn, leafKey(idx))
		if err != nil {
			return err
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil {
			return fmt.Errorf("%w: config entry %d: %v", ErrStoreMismatch, idx, err)
		}
		current, err = json.Marshal(p.Config)
		return err
	})
	if err != nil {
		return err
	}
	want, err := json.Marshal(&l.config)
	if err != nil {
		return err
	}
	if bytes.Equal(current, want) {
		return nil
	}
	cfg := l.config
	res, err := l.submit(ctx, &request{config: &cfg})
	if err != nil {
		return fmt.Errorf("appending log-config entry: %w", err)
	}
	l.log.Info("recorded log configuration", "index", res.Index)
	return nil
}

// loadPolicy returns the policy in force: that of the last policy entry.
func loadPolicy(txn *badger.Txn) (*proofs.Policy, error) {
	idx, ok, err := getIndex(txn, keyPolicy)
	if err != nil || !ok {
		return nil, err
	}
	raw, err := getValue(txn, leafKey(idx))
	if err != nil {
		return nil, err
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil || p.Policy == nil {
		return nil, fmt.Errorf("%w: policy entry %d: %v", ErrStoreMismatch, idx, err)
	}
	return p.Policy, nil
}

// ensurePolicy appends the shipped default policy as the first policy
// entry of a log that has none.
func (l *Log) ensurePolicy(ctx context.Context) error {
	var has bool
	err := l.db.View(func(txn *badger.Txn) (err error) {
		_, has, err = getIndex(txn, keyPolicy)
		return err
	})
	if err != nil || has {
		return err
	}
	pol, err := proofs.ParsePolicy(defaultPolicy)
	if err != nil {
		return fmt.Errorf("the shipped default policy: %w", err)
	}
	res, err := l.submit(ctx, &request{logPolicy: pol})
	if err != nil {
		return fmt.Errorf("appending the default policy: %w", err)
	}
	l.log.Info("recorded the default policy", "index", res.Index, "digest", pol.Digest)
	return nil
}

// Status returns the effective status of the accepted delegation id, as of
// the entries committed now and the current time. It is informational: a
// proof shows what is in the log, not the absence of a later revocation.
func (l *Log) Status(ctx context.Context, id string) (proofs.Status, error) {
	var s proofs.Status
	err := l.db.View(func(txn *badger.Txn) (err error) {
		cs := newChainState(txn, l.bindings.Load(), l.delegations)
		s, err = proofs.EffectiveStatus(cs, id, l.opts.Now(), l.config.Rules)
		return err
	})
	return s, err
}

// Close stops the sequencer after it finishes the requests already queued,
// then closes the store.
func (l *Log) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.stopped
	if l.seq.unstored != nil {
		if err := l.storeCheckpoint(l.seq.unstored); err != nil {
			l.log.Warn("storing the last checkpoint at close", "err", err)
		}
	}
	return l.backups.closeStore(l.db.Close)
}

// Origin is the log's checkpoint origin.
func (l *Log) Origin() string { return l.signer.Name() }

// VerifierKey is the log's note verifier key, as in DIR/log.vkey.
func (l *Log) VerifierKey() string { return l.vkey }

// publish makes cp the latest checkpoint and wakes the watchers.
func (l *Log) publish(cp *proofs.Checkpoint) {
	l.latest.Store(cp)
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
// proven against it (or an earlier size).
func (l *Log) Checkpoint() *proofs.Checkpoint { return l.latest.Load() }

// Config is the configuration this Log records.
func (l *Log) Config() proofs.LogConfig { return l.config }

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
	err = l.db.View(func(txn *badger.Txn) (err error) {
		hashes, err = l.nodeReader(txn).inclusion(index, size)
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
	err = l.db.View(func(txn *badger.Txn) (err error) {
		hashes, err = l.nodeReader(txn).consistency(size1, size2)
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
	err = l.db.View(func(txn *badger.Txn) error {
		r := l.nodeReader(txn)
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
