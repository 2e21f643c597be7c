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
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/proofs"
)

// Log is an open ledger. Its methods are safe for concurrent use.
type Log struct {
	opts     Options
	log      *slog.Logger
	db       *badger.DB
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	config   proofs.LogConfig
	// admins maps key ids to the admin keys (administrative HTTP
	// requests); fixed for the life of the Log.
	admins map[string]*proofs.PublicKey
	// delegations caches committed delegations for chain walks.
	delegations *delegationCache
	// absent answers most of the sequencer's index lookups without the
	// store (keyfilter.go); the sequencer owns it.
	absent *keyFilter
	// trees caches tiles' subtrees for proofs.
	trees *treeCache
	// limits are the append rate limiters (limits.go).
	limits *limiters
	// guard slows down peers that fail authentication (authguard.go).
	guard *authGuard
	// flood slows down peers that keep sending appends over their limits
	// (floodguard.go).
	flood *authGuard

	// tokens issues access tokens (oauth.go); nil without Options.TokenKey.
	tokens *tokenIssuer

	intake  *fairQueue // the sequencer's queue (fairqueue.go)
	stop    chan struct{}
	stopped chan struct{}

	latest atomic.Pointer[proofs.Checkpoint]
	// signers is who may sign a request now (trust anchors and key
	// bindings in force), replaced after each commit: the stateless stage
	// authenticates against it.
	signers atomic.Pointer[proofs.Signers]
	// policy is the policy in force, replaced after each commit like
	// signers: the token endpoint fits a token's lifetime to it
	// (proofs.FitTokenLifetime) before submitting the exchange.
	policy atomic.Pointer[proofs.Policy]
	// changed is closed, and replaced, whenever a new checkpoint is
	// published: watchers wait on it.
	changed atomic.Pointer[chan struct{}]
	// cosigner signs timestamps (C2SP cosignature/v1) with the log key.
	cosigner note.Signer
	// witnesses sends checkpoints to the witness policy's witnesses and
	// collects their cosignatures (witness.go); nil without a policy. Set
	// by Open before the sequencer starts.
	witnesses *witnessing
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

	// cluster is the distributed state (distributed.go); nil in the
	// default mode.
	cluster *cluster

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

// Origin is the log's checkpoint origin.
func (l *Log) Origin() string { return l.signer.Name() }

// VerifierKey is the log's note verifier key, as in DIR/log.vkey.
func (l *Log) VerifierKey() string { return l.vkey }

// Config is the configuration this Log records.
func (l *Log) Config() proofs.LogConfig { return l.config }
