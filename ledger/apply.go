package ledger

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"

	"github.com/warrantlog/warrant/proofs"
)

// batch is the working state of one transaction of the stateful stage:
// a copy of the sequencer state whose state machine reads the store
// through the transaction plus what the batch staged (chainState).
type batch struct {
	txn     *badger.Txn
	st      *seqState
	cs      *chainState
	tw      *tileWriter
	nodes   *batchNodes      // for the answers' inclusion proofs
	inBatch map[[32]byte]int // payload hash -> result slot
	staged  int64            // estimated transaction bytes
	written int
	// Per entry, reused so that staging an entry allocates only its keys.
	sets [][2][]byte
	ef   proofs.Effects
}

// decided is an entry decided and encoded, not yet staged.
type decided struct {
	raw      []byte
	leafHash []byte
	logTime  int64
	id       string
	decision *proofs.Decision
}

// apply runs the stateful stage on a working copy of the sequencer state
// and commits as many requests of reqs as fit one transaction. It returns
// how many requests it consumed, how many entries it wrote and the new
// state; on error nothing was written and the old state stands.
func (l *Log) apply(reqs []*request, results []result) (consumed, written int, _ *seqState, _ error) {
	t0 := time.Now()
	b := l.newBatch()
	defer b.txn.Discard()
	for consumed = 0; consumed < len(reqs); consumed++ {
		i, r := consumed, reqs[consumed]
		if r.env != nil && l.answerRepeat(b, r, results, i) {
			continue
		}
		full, err := l.stage(b, r, results, i)
		if err != nil {
			return consumed, 0, nil, err
		}
		if full {
			break // the rest goes into the next transaction
		}
	}
	if b.written == 0 {
		return consumed, 0, b.st, nil
	}
	if err := l.commit(b, t0); err != nil {
		return consumed, 0, nil, err
	}
	return consumed, b.written, b.st, nil
}

func (l *Log) newBatch() *batch {
	txn := l.db.NewTransaction(true)
	st := &seqState{
		size:    l.seq.size,
		rng:     cloneRange(l.seq.rng),
		edge:    l.seq.edge.clone(),
		logTime: l.seq.logTime,
	}
	cs := newChainState(txn, l.seq.state.Bindings(), l.delegations)
	cs.absent = l.absent
	st.state = l.seq.state.Fork(cs)
	st.nodes = newBatchNodes(l.seq.rng, l.seq.nodes)
	return &batch{txn: txn, st: st, cs: cs, tw: &tileWriter{edge: st.edge, dirty: make(map[string][]byte)}, nodes: st.nodes, inBatch: make(map[[32]byte]int)}
}

// answerRepeat answers a request whose signed payload is already in the
// batch or in the store with the original entry, reporting whether it did
// (or failed to look, which is this request's error only). Deduplication
// is on what the issuer signed, not on the envelope: the same signed
// payload with other (valid) signatures is the same request.
func (l *Log) answerRepeat(b *batch, r *request, results []result, i int) bool {
	if j, ok := b.inBatch[r.payloadHash]; ok {
		results[i] = results[j]
		results[i].Duplicate = true
		return true
	}
	idx, ok, err := l.committedPayload(b.txn, r)
	if err != nil {
		results[i].err = readError(err) // this request only: the batch goes on
		return true
	}
	if ok {
		if results[i], err = l.duplicate(b.txn, idx, r.env); err != nil {
			results[i] = result{err: err}
		}
	}
	return ok
}

// stage decides request r and, if its writes fit the transaction, stages
// them and applies its effects to the batch's state. full reports that
// the transaction has no room for it (it goes into the next one); an
// error is a failure of the tree or the store, which fails the batch. A
// refusal is results[i].err and stages nothing.
func (l *Log) stage(b *batch, r *request, results []result, i int) (full bool, _ error) {
	d, err := l.decide(b, r)
	if err != nil {
		results[i].err = err
		return false, nil
	}
	idx := b.st.size
	b.sets = appendWrites(b.sets[:0], idx, r, d.raw, d.leafHash, &b.ef)
	var size int64
	for _, kv := range b.sets {
		size += int64(len(kv[0]) + len(kv[1]) + txnEntryOverhead)
	}
	if b.staged+size > l.txnBudget {
		if b.written > 0 {
			return true, nil
		}
		results[i].err = proofs.Errorf(ReasonRequestTooLarge, "entry of %d bytes does not fit one store transaction (budget %d bytes)", size, l.txnBudget)
		return false, nil
	}
	// The entry fits: make it part of the working state.
	b.staged += size
	if err := b.st.rng.Append(d.leafHash, b.visit); err != nil || b.tw.err != nil {
		return false, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("extending the tree: %w", errors.Join(err, b.tw.err))}
	}
	b.st.size++
	b.nodes.extend(b.st.size)
	b.st.logTime = d.logTime
	if r.env != nil {
		b.inBatch[r.payloadHash] = i
	}
	b.st.state.Apply(&b.ef)
	for _, kv := range b.sets {
		l.absent.add(kv[0]) // before the commit: if it fails, a false positive
		if err := b.txn.Set(kv[0], kv[1]); err != nil {
			return false, storeError(fmt.Errorf("staging entry %d: %w", idx, err))
		}
	}
	results[i] = result{Index: idx, Leaf: d.raw, ID: d.id, Decision: d.decision}
	b.written++
	return false, nil
}

// visit is the compact.VisitFn of the batch's appends: tiles to store,
// nodes for the answers' proofs.
func (b *batch) visit(id compact.NodeID, hash []byte) {
	b.nodes.record(id, hash)
	b.tw.visit(id, hash)
}

// decide gives request r its log time, its decision by the state machine
// and its leaf, and leaves the effects of that decision in b.ef. Its
// errors refuse this request only.
func (l *Log) decide(b *batch, r *request) (decided, error) {
	now := l.opts.Now()
	if ahead := time.Duration(b.st.logTime - now.UnixNano()); (r.env != nil || r.ev.Token != nil) && l.opts.MaxLogTimeAhead > 0 && ahead > l.opts.MaxLogTimeAhead {
		// A signed event, or a token exchange, would get a log time pinned
		// in the future: hold it off until the clock catches up. (Entries
		// the log writes itself when it opens are not held: they decide
		// nothing.)
		return decided{}, l.clockBehind(now, b.st.logTime, ahead)
	}
	logTime := max(b.st.logTime, now.UnixNano())
	at := time.Unix(0, logTime)
	dec, err := b.st.state.Decide(&r.ev, at)
	if err != nil {
		return decided{}, readError(err) // e.g. a damaged parent, or a key rotated away since
	}
	leaf := r.ev.Leaf(at, r.canon, dec)
	if f := l.faults.decision.Load(); f != nil && leaf.Decision != nil {
		(*f)(&leaf)
	}
	raw, err := leaf.Marshal()
	if err != nil {
		return decided{}, err
	}
	// The effects are those of the decision recorded, as a replay applies
	// them.
	if b.ef, err = b.st.state.Effects(b.st.size, &r.ev, leaf.Decision); err != nil {
		return decided{}, readError(err)
	}
	d := decided{raw: raw, leafHash: proofs.LeafHash(raw), logTime: logTime, decision: leaf.Decision}
	switch {
	case r.ev.NamedID() != "":
		d.id = r.ev.NamedID()
	case r.env != nil:
		d.id = proofs.SumID(r.envHash) // HashID of the canonical envelope
	default:
		d.id = proofs.HashID(raw)
	}
	return d, nil
}

// commit writes the batch's tiles, tree head and the previous batch's
// checkpoint into its transaction and commits it (a synced write), then
// fills the delegation cache with what it committed.
func (l *Log) commit(b *batch, t0 time.Time) error {
	root, err := b.st.rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("computing root: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(b.tw.dirty)) {
		if err := b.txn.Set([]byte(k), b.tw.dirty[k]); err != nil {
			return storeError(fmt.Errorf("staging tile: %w", err))
		}
	}
	if err := b.txn.Set(keyHead, head{Size: b.st.size, Root: root, LogTime: b.st.logTime}.marshal()); err != nil {
		return storeError(fmt.Errorf("staging tree head: %w", err))
	}
	if l.seq.unstored != nil { // the previous batch's checkpoint rides along
		if err := b.txn.Set(keyCheckpoint, l.seq.unstored); err != nil {
			return storeError(fmt.Errorf("staging checkpoint: %w", err))
		}
	}
	if err := l.faults.commit.Load(); err != nil {
		return storeError(*err)
	}
	if err := l.checkFreeSpace(); err != nil {
		return err
	}
	tc := time.Now()
	if err := b.txn.Commit(); err != nil {
		return storeError(fmt.Errorf("committing batch: %w", err))
	}
	l.opts.Metrics.observeCommit(time.Since(tc))
	l.log.Debug("batch committed", "entries", b.written, "stage_us", tc.Sub(t0).Microseconds(), "commit_us", time.Since(tc).Microseconds())
	for id, r := range b.cs.dels {
		l.delegations.put(id, r)
	}
	return nil
}
