package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"

	"github.com/warrantlog/warrant/proofs"
)

// request is one append on its way through the sequencer: an event for
// the state machine (proofs.State), either a signed one the stateless
// stage parsed and authenticated, or an entry the log writes itself (its
// configuration, its first policy; ev.Env is nil).
type request struct {
	ev    proofs.Event
	env   *proofs.Envelope // ev.Env
	canon []byte
	// envHash hashes canon (the entry id of non-delegations); payloadHash
	// is the deduplication key (proofs.PayloadHash).
	envHash     [32]byte
	payloadHash [32]byte

	done chan result
}

// result is the sequencer's answer to a request.
type result struct {
	Index      uint64
	Leaf       []byte
	ID         string
	Duplicate  bool
	Decision   *proofs.Decision
	Checkpoint *proofs.Checkpoint
	err        error
	// nodes prove the entry if the batch that answers committed it.
	nodes *batchNodes
	// committed marks an answer about an entry committed by an earlier
	// transaction (a resubmission), which a failed commit does not undo.
	committed bool
}

// seqState is the state the sequencer owns; it is replaced, never mutated,
// when a batch commits, so a failed commit leaves it untouched.
type seqState struct {
	size    uint64
	rng     *compact.Range
	edge    *edgeTiles
	logTime int64
	// state is the state machine as of the last commit (configuration,
	// bindings and policy in force); each batch works on a fork of it over
	// the store seen through the batch's transaction.
	state          *proofs.State
	needCheckpoint bool
	// unstored is a published checkpoint not yet written to the store; the
	// next batch's transaction writes it (see signCheckpoint).
	unstored []byte
	// nodes are those of the batch that made this state, for its answers'
	// inclusion proofs (batchproofs.go).
	nodes *batchNodes
}

func loadBindings(txn *badger.Txn) (*proofs.Bindings, error) {
	bs := proofs.NewBindings()
	var idxs []uint64
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tBinding}})
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < 10 {
			it.Close()
			return nil, fmt.Errorf("%w: malformed binding index key", ErrStoreMismatch)
		}
		idxs = append(idxs, binary.BigEndian.Uint64(k[len(k)-8:]))
	}
	it.Close()
	slices.Sort(idxs) // apply in log order
	for _, idx := range idxs {
		raw, err := getValue(txn, leafKey(idx))
		if err != nil {
			return nil, err
		}
		p, err := proofs.ParseLeaf(raw)
		if err != nil || p.KeyBinding == nil {
			return nil, fmt.Errorf("%w: key binding entry %d: %v", ErrStoreMismatch, idx, err)
		}
		key, err := proofs.ParsePublicKeyDER(p.KeyBinding.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: key binding entry %d: %v", ErrStoreMismatch, idx, err)
		}
		bs = bs.With(p.KeyBinding, key, idx)
	}
	return bs, nil
}

// Appended describes an appended (or previously appended) entry.
type Appended struct {
	Index      uint64
	Leaf       []byte
	ID         string
	Duplicate  bool
	Decision   *proofs.Decision
	Checkpoint *proofs.Checkpoint

	// nodes, if the batch that committed the entry answers, prove it from
	// memory (appendedProof).
	nodes *batchNodes
}

// append (exported as Append, metrics.go) is the stateless stage:
// prepare, then admit, then the sequencer. It returns once the entry is
// committed and covered by a signed checkpoint. A denial is not an error:
// the entry is appended and Appended.Decision says why.
func (l *Log) append(ctx context.Context, envelope []byte) (*Appended, error) {
	r, err := l.prepare(envelope)
	if err != nil {
		return nil, err
	}
	return l.appendPrepared(ctx, r)
}

// appendPrepared admits (mutual TLS identity, rate limits) and sequences an
// authenticated request.
func (l *Log) appendPrepared(ctx context.Context, r *request) (*Appended, error) {
	if err := l.admit(ctx, r); err != nil {
		return nil, err
	}
	res, err := l.submit(ctx, r)
	if err != nil {
		return nil, err
	}
	if w := l.witnesses; w != nil && l.opts.WitnessMode == WitnessSync {
		// Answered with a witnessed checkpoint covering the entry, or not at
		// all: the entry stays committed, and a resubmission returns it.
		if res.Checkpoint, err = w.waitCosigned(ctx, res.Index+1); err != nil {
			return nil, err
		}
	}
	return &Appended{Index: res.Index, Leaf: res.Leaf, ID: res.ID, Duplicate: res.Duplicate, Decision: res.Decision, Checkpoint: res.Checkpoint, nodes: res.nodes}, nil
}

// prepare parses an envelope as DSSE allows it to be written, decodes its
// payload and authenticates it against the signers in force
// (proofs.Signers.AuthenticateRequest, the rules every auditor checks a
// recorded entry by): every signature must verify under a key the log
// holds for this payload, or the request is refused, unauthenticated,
// having written and spent nothing. The request then holds the envelope's
// one canonical form (standard base64, canonical key ids, signatures
// sorted), which is what the log stores.
func (l *Log) prepare(envelope []byte) (*request, error) {
	env, err := proofs.ParseDSSE(envelope)
	if err != nil {
		return nil, err
	}
	ev, err := proofs.ParseEvent(env)
	if err != nil {
		return nil, err
	}
	r := &request{ev: ev, env: env}
	signers := l.signers.Load()
	if err := l.shed(r, signers, len(envelope)); err != nil { // over its rate limits: refused unverified (limits.go)
		return nil, err
	}
	if err := signers.AuthenticateRequest(&r.ev); err != nil {
		return nil, err
	}
	// The canonical form is what the log stores: bound it too.
	r.canon = env.CanonicalBytes(envelope)
	if n := len(r.canon); n > proofs.MaxEnvelopeBytes {
		return nil, proofs.Errorf(proofs.ReasonEnvelopeTooLarge, "canonical envelope is %d bytes, limit %d", n, proofs.MaxEnvelopeBytes)
	}
	r.envHash = proofs.EnvelopeHash(r.canon)
	r.payloadHash = proofs.PayloadHash(env.PayloadType, env.Payload)
	return r, nil
}

// submit queues a request for the sequencer and waits for its answer.
func (l *Log) submit(ctx context.Context, r *request) (result, error) {
	r.done = make(chan result, 1)
	select {
	case <-l.stop:
		return result{}, proofs.Errorf(ReasonShuttingDown, "the log is shutting down")
	default:
	}
	if l.cluster != nil {
		if err := l.refuseWrite(ctx); err != nil {
			return result{}, err
		}
	}
	if err := l.intake.push(limitKey(r), r); err != nil {
		return result{}, err
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-l.stopped:
		select {
		case res := <-r.done:
			return res, res.err
		default:
			return result{}, proofs.Errorf(ReasonShuttingDown, "the log shut down before sequencing the request")
		}
	case <-ctx.Done():
		// The request may still be appended; resubmitting the same envelope
		// returns it.
		return result{}, ctx.Err()
	}
}

// run is the sequencer loop.
func (l *Log) run() {
	defer close(l.stopped)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-l.stop:
			// Finish what is already queued, then stop.
			for r := l.intake.pop(); r != nil; r = l.intake.pop() {
				l.sequence(l.collect(r))
			}
			return
		case <-retry.C:
			l.retryCheckpoint()
		default:
		}
		first := l.intake.pop()
		if first == nil {
			select {
			case <-l.intake.ready:
			case <-retry.C:
				l.retryCheckpoint()
			case <-l.stop:
			}
			continue
		}
		l.sequence(l.collect(first))
	}
}

// collect forms a batch: first plus whatever is queued, in the intake's
// fair order, up to the count and byte bounds and, for each agent, up to
// MaxBatchAgentBytes, waiting up to MaxBatchWait for more. The per-agent
// bound keeps a flooding agent's envelopes from making every group commit
// a long one: a request of another agent that arrives meanwhile waits for
// a short commit, not for megabytes of the flood's.
func (l *Log) collect(first *request) []*request {
	batch := []*request{first}
	size := len(first.canon)
	used := map[string]int{limitKey(first): size}
	room := func(agent string, n int) bool {
		return agent == "" || used[agent] == 0 || used[agent]+n <= l.opts.MaxBatchAgentBytes
	}
	var deadline <-chan time.Time
	if l.opts.MaxBatchWait > 0 {
		t := time.NewTimer(l.opts.MaxBatchWait)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < l.opts.MaxBatchEntries && size < l.opts.MaxBatchBytes {
		if r := l.intake.popWithin(room); r != nil {
			batch = append(batch, r)
			size += len(r.canon)
			used[limitKey(r)] += len(r.canon)
			continue
		}
		if deadline == nil {
			break
		}
		select {
		case <-l.intake.ready:
			continue
		case <-deadline:
		}
		break
	}
	return batch
}

// retryCheckpoint signs a checkpoint for committed entries that a failed
// signing left uncovered.
func (l *Log) retryCheckpoint() {
	if l.seq.unstored != nil {
		if err := l.storeCheckpoint(l.seq.unstored); err == nil {
			l.seq.unstored = nil
		}
	}
	if !l.seq.needCheckpoint {
		return
	}
	root, err := l.seq.rng.GetRootHash(nil)
	if err != nil {
		return
	}
	cp, err := l.signCheckpoint(l.seq.size, root, true)
	if err != nil {
		l.log.Error("signing checkpoint failed again", "size", l.seq.size, "err", err)
		return
	}
	l.publish(cp)
	l.seq.needCheckpoint = false
}

// sequence runs the stateful stage over a batch. A batch that would not
// fit one transaction is committed in several, each signed and answered in
// turn.
func (l *Log) sequence(batch []*request) {
	for len(batch) > 0 {
		batch = batch[l.sequenceSome(batch):]
	}
}

// sequenceSome commits a prefix of batch in one transaction, then signs,
// stores and publishes a checkpoint, then answers the prefix. It returns
// the prefix length.
func (l *Log) sequenceSome(batch []*request) int {
	results := make([]result, len(batch))
	var unpublished error // distributed mode: the batch is committed but not swapped in
	n, written, st, err := l.apply(batch, results)
	if err != nil {
		// Nothing of this transaction was written: answer every request of
		// the batch (they may retry), or the loop would meet them again.
		n = len(batch)
	}
	results = results[:n]
	if err != nil {
		for i := range results {
			if results[i].err == nil && !results[i].committed {
				results[i].err = err
			}
		}
		l.log.Error("batch commit failed; nothing written", "entries", n, "err", err)
	} else if written > 0 {
		l.seq = *st
		l.logTime.Store(st.logTime)
		l.signers.Store(st.state.Signers())
		l.policy.Store(st.state.Policy())
		root, _ := st.rng.GetRootHash(nil)
		st.nodes.seal(root)
		cp, err := l.signCheckpoint(st.size, root, false)
		if err != nil {
			l.seq.needCheckpoint = true
			l.log.Error("entries committed but checkpoint signing failed; will retry", "size", st.size, "err", err)
		} else if l.cluster != nil {
			l.seq.needCheckpoint = false
			if unpublished = l.publishBatch(cp); unpublished == nil {
				l.publish(cp)
				l.seq.unstored = cp.Note
			}
		} else {
			l.publish(cp)
			l.seq.needCheckpoint = false
			l.seq.unstored = cp.Note
		}
		if l.cluster != nil {
			l.cluster.pending.Store(l.seq.size > l.cluster.swappedSize)
		}
	}
	l.opts.Metrics.sequenced(batch[:n], results, err)
	cp := l.latest.Load()
	for i, r := range batch[:n] {
		res := results[i]
		if res.err == nil {
			if res.Index >= cp.Size && unpublished != nil {
				res.err = unpublished
			} else if res.Index >= cp.Size {
				res.err = proofs.Errorf(ReasonCheckpointPending, "entry %d is committed but not yet covered by a signed checkpoint; resubmit the same envelope to get its receipt", res.Index)
			}
			res.Checkpoint = cp
			if written > 0 && err == nil && unpublished == nil {
				// They prove only in this batch's tree (batchNodes.proves);
				// an unpublished batch's may be discarded, so none are given.
				res.nodes = st.nodes
			}
		}
		r.done <- res
	}
	return n
}

// clockBehind is the refusal of an append while the clock is further than
// MaxLogTimeAhead behind log time; it logs an error at most every ten
// seconds (by the log's clock).
func (l *Log) clockBehind(now time.Time, logTime int64, ahead time.Duration) error {
	if d := now.Sub(l.clockAlerted); d >= 10*time.Second || d < 0 {
		l.clockAlerted = now
		l.log.Error("the clock is behind log time: appends are refused until it catches up (was it set back?)",
			"log_time", proofs.FormatLogTime(time.Unix(0, logTime)), "clock", proofs.FormatLogTime(now), "ahead", ahead, "bound", l.opts.MaxLogTimeAhead)
	}
	return proofs.Errorf(ReasonClockBehind, "log time %s is %s ahead of the server clock %s (bound %s): the clock was set back; appends resume when it catches up",
		proofs.FormatLogTime(time.Unix(0, logTime)), ahead.Round(time.Millisecond), proofs.FormatLogTime(now), l.opts.MaxLogTimeAhead)
}

// committedPayload returns the index of the committed entry holding r's
// signed payload, if any. Every entry is indexed by its signed payload:
// stores written before deduplication moved from the envelope to the
// payload, which indexed envelopes only, are indexed at open
// (backfillPayloadIndex) before the sequencer runs, so the old envelope
// index is never consulted (an exact resubmission has the same payload).
func (l *Log) committedPayload(txn *badger.Txn, r *request) (uint64, bool, error) {
	return getIndexVia(txn, l.absent, hashKey(tPayload, r.payloadHash[:]))
}

// duplicate describes an already committed entry for a resubmission of
// the same signed payload.
func (l *Log) duplicate(txn *badger.Txn, idx uint64, env *proofs.Envelope) (result, error) {
	raw, err := getValue(txn, leafKey(idx))
	if err != nil {
		return result{}, readError(err)
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil {
		return result{}, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("entry %d: %w", idx, err)}
	}
	if p.Env == nil || !proofs.SamePayload(p.Env, env) {
		return result{}, proofs.Errorf(ReasonDataLoss, "the payload index points at entry %d, which holds another payload", idx)
	}
	return result{Index: idx, Leaf: raw, ID: p.ID(), Duplicate: true, Decision: p.Decision, committed: true}, nil
}

func cloneRange(r *compact.Range) *compact.Range {
	c, err := proofs.NewRange(r.Begin(), r.End(), slices.Clone(r.Hashes()))
	if err != nil {
		panic(fmt.Sprintf("ledger: cloning a valid compact range: %v", err))
	}
	return c
}
