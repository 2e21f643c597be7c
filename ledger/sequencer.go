package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"

	"github.com/warrantlog/warrant/proofs"
)

// request is one append on its way through the sequencer. Exactly one of
// env (a signed event, already verified by the stateless stage) and config
// (a log-config entry the log writes itself) is set.
type request struct {
	env     *proofs.Envelope
	canon   []byte
	envHash [32]byte
	kb      *proofs.KeyBinding
	del     *proofs.Delegation
	// signers are the key ids whose signatures the stateless stage checked,
	// against the bindings in force then; the sequencer re-checks any whose
	// binding changed since.
	signers map[string]*proofs.PublicKey

	config *proofs.LogConfig

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
	// committed marks an answer about an entry committed by an earlier
	// transaction (a resubmission), which a failed commit does not undo.
	committed bool
}

// seqState is the state the sequencer owns; it is replaced, never mutated,
// when a batch commits, so a failed commit leaves it untouched.
type seqState struct {
	size           uint64
	rng            *compact.Range
	edge           *edgeTiles
	logTime        int64
	bindings       *bindingSet
	needCheckpoint bool
}

// binding is an agent's key binding in force.
type binding struct {
	index uint64
	kb    *proofs.KeyBinding
	key   *proofs.PublicKey
}

// bindingSet is an immutable snapshot of the bindings in force. The
// sequencer publishes a new one after each commit that changes it; the
// stateless stage reads the published one.
type bindingSet struct {
	byAgent map[string]*binding
	byKeyID map[string]*binding
}

func (b *bindingSet) with(nb *binding) *bindingSet {
	c := &bindingSet{byAgent: maps.Clone(b.byAgent), byKeyID: maps.Clone(b.byKeyID)}
	if old := c.byAgent[nb.kb.Agent]; old != nil {
		delete(c.byKeyID, old.key.ID)
	}
	c.byAgent[nb.kb.Agent] = nb
	c.byKeyID[nb.key.ID] = nb
	return c
}

func loadBindings(txn *badger.Txn) (*bindingSet, error) {
	bs := &bindingSet{byAgent: map[string]*binding{}, byKeyID: map[string]*binding{}}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tBinding}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < 10 {
			return nil, fmt.Errorf("%w: malformed binding index key", ErrStoreMismatch)
		}
		idx := beUint64(k[len(k)-8:])
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
		bs = bs.with(&binding{index: idx, kb: p.KeyBinding, key: key})
	}
	return bs, nil
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Appended describes an appended (or previously appended) entry.
type Appended struct {
	Index      uint64
	Leaf       []byte
	ID         string
	Duplicate  bool
	Decision   *proofs.Decision
	Checkpoint *proofs.Checkpoint
}

// Append is the stateless stage: it canonicalises and checks the envelope,
// verifies its signatures against the registrar keys or the bindings in
// force, and hands it to the sequencer. It returns once the entry is
// committed and covered by a signed checkpoint. A denial is not an error:
// the entry is appended and Appended.Decision says why it was denied.
func (l *Log) Append(ctx context.Context, envelope []byte) (*Appended, error) {
	env, err := proofs.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	r := &request{env: env, canon: env.Canonical()}
	r.envHash = proofs.EnvelopeHash(r.canon)
	switch env.PayloadType {
	case proofs.PayloadTypeAgent:
		if r.kb, err = proofs.ParseKeyBinding(env.Payload); err != nil {
			return nil, err
		}
		if len(env.Signatures) != 1 {
			return nil, proofs.Errorf(ReasonRegistrarUnknown, "a key binding carries exactly one signature, by a registrar")
		}
		reg := l.registrars[env.Signatures[0].KeyID]
		if reg == nil {
			return nil, proofs.Errorf(ReasonRegistrarUnknown, "key binding signed by %s, which is not a registrar key of this log", env.Signatures[0].KeyID)
		}
		if err := reg.VerifyDSSE(env.PayloadType, env.Payload, env.Signatures[0].Sig); err != nil {
			return nil, err
		}
	case proofs.PayloadTypeDelegation:
		if r.del, err = proofs.ParseDelegation(env.Payload); err != nil {
			return nil, err
		}
		if r.signers, err = l.verifySigners(env, r.del.Issuer, l.bindings.Load()); err != nil {
			return nil, err
		}
	case proofs.PayloadTypeRevocation, proofs.PayloadTypePolicy:
		return nil, proofs.Errorf(ReasonPayloadTypeUnsupport, "payload type %q is not accepted by this version", env.PayloadType)
	default:
		return nil, proofs.Errorf(proofs.ReasonPayloadTypeUnknown, "unknown payload type %q", env.PayloadType)
	}
	res, err := l.submit(ctx, r)
	if err != nil {
		return nil, err
	}
	return &Appended{Index: res.Index, Leaf: res.Leaf, ID: res.ID, Duplicate: res.Duplicate, Decision: res.Decision, Checkpoint: res.Checkpoint}, nil
}

// verifySigners checks every signature on a signed event: the issuer's,
// under its binding in force, and any other, each under the binding of the
// registered agent it names. Nothing unverified is ever logged.
func (l *Log) verifySigners(env *proofs.Envelope, issuer string, bs *bindingSet) (map[string]*proofs.PublicKey, error) {
	ib := bs.byAgent[issuer]
	if ib == nil {
		return nil, proofs.Errorf(ReasonIssuerNotRegistered, "issuer %s is not registered", issuer)
	}
	if env.Signature(ib.key.ID) == nil {
		return nil, proofs.Errorf(proofs.ReasonSignatureMissing, "no signature by the issuer's registered key %s", ib.key.ID)
	}
	signers := make(map[string]*proofs.PublicKey, len(env.Signatures))
	for _, s := range env.Signatures {
		b := bs.byKeyID[s.KeyID]
		if b == nil {
			return nil, proofs.Errorf(ReasonSignerNotRegistered, "signature by %s, which is not the key of a registered agent", s.KeyID)
		}
		if err := b.key.VerifyDSSE(env.PayloadType, env.Payload, s.Sig); err != nil {
			return nil, err
		}
		signers[s.KeyID] = b.key
	}
	return signers, nil
}

// submit queues a request for the sequencer and waits for its answer.
func (l *Log) submit(ctx context.Context, r *request) (result, error) {
	r.done = make(chan result, 1)
	select {
	case <-l.stop:
		return result{}, proofs.Errorf(ReasonShuttingDown, "the log is shutting down")
	default:
	}
	select {
	case l.queue <- r:
	default:
		return result{}, proofs.Errorf(ReasonQueueFull, "the sequencer queue is full (%d requests); retry with back-off", cap(l.queue))
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
		var first *request
		select {
		case first = <-l.queue:
		case <-retry.C:
			l.retryCheckpoint()
			continue
		case <-l.stop:
			// Finish what is already queued, then stop.
			for {
				select {
				case r := <-l.queue:
					l.sequence(l.collect(r))
				default:
					return
				}
			}
		}
		l.sequence(l.collect(first))
	}
}

// collect forms a batch: first plus whatever is queued, up to the count and
// byte bounds, waiting up to MaxBatchWait for more.
func (l *Log) collect(first *request) []*request {
	batch := []*request{first}
	size := len(first.canon)
	var deadline <-chan time.Time
	if l.opts.MaxBatchWait > 0 {
		t := time.NewTimer(l.opts.MaxBatchWait)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < l.opts.MaxBatchEntries && size < l.opts.MaxBatchBytes {
		select {
		case r := <-l.queue:
			batch = append(batch, r)
			size += len(r.canon)
			continue
		default:
		}
		if deadline == nil {
			break
		}
		select {
		case r := <-l.queue:
			batch = append(batch, r)
			size += len(r.canon)
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
	if !l.seq.needCheckpoint {
		return
	}
	root, err := l.seq.rng.GetRootHash(nil)
	if err != nil {
		return
	}
	cp, err := l.signCheckpoint(l.seq.size, root)
	if err != nil {
		l.log.Error("signing checkpoint failed again", "size", l.seq.size, "err", err)
		return
	}
	l.latest.Store(cp)
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
	n, written, st, err := l.apply(batch, results)
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
		l.bindings.Store(st.bindings)
		root, _ := st.rng.GetRootHash(nil)
		cp, err := l.signCheckpoint(st.size, root)
		if err != nil {
			l.seq.needCheckpoint = true
			l.log.Error("entries committed but checkpoint signing failed; will retry", "size", st.size, "err", err)
		} else {
			l.latest.Store(cp)
			l.seq.needCheckpoint = false
		}
	}
	cp := l.latest.Load()
	for i, r := range batch[:n] {
		res := results[i]
		if res.err == nil {
			if res.Index >= cp.Size {
				res.err = proofs.Errorf(ReasonCheckpointPending, "entry %d is committed but not yet covered by a signed checkpoint; resubmit the same envelope to get its receipt", res.Index)
			}
			res.Checkpoint = cp
		}
		r.done <- res
	}
	return n
}

// apply runs the stateful checks on a working copy of the sequencer state
// and commits as many requests of batch as fit one transaction. It returns
// how many requests it consumed, how many entries it wrote and the new
// state; on error nothing was written and the old state stands.
func (l *Log) apply(batch []*request, results []result) (consumed, written int, _ *seqState, _ error) {
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	st := &seqState{
		size:     l.seq.size,
		rng:      cloneRange(l.seq.rng),
		edge:     l.seq.edge.clone(),
		logTime:  l.seq.logTime,
		bindings: l.seq.bindings,
	}
	tw := &tileWriter{edge: st.edge, dirty: make(map[string][]byte)}
	inBatch := make(map[[32]byte]int) // envelope hash -> result slot
	ids := make(map[string]bool)      // delegation ids accepted in this batch
	nonces := make(map[string]bool)   // issuer/nonce pairs accepted in this batch
	var staged int64                  // estimated transaction bytes
	for consumed = 0; consumed < len(batch); consumed++ {
		i, r := consumed, batch[consumed]
		if r.env != nil {
			if j, ok := inBatch[r.envHash]; ok {
				results[i] = results[j]
				results[i].Duplicate = true
				continue
			}
			idx, ok, err := getIndex(txn, hashKey(tEnvelope, r.envHash[:]))
			if err != nil {
				return consumed, 0, nil, storeError(err)
			}
			if ok {
				if results[i], err = l.duplicate(txn, idx); err != nil {
					return consumed, 0, nil, err
				}
				continue
			}
		}
		leaf := proofs.Leaf{Version: proofs.LeafVersion}
		switch {
		case r.config != nil:
			leaf.Kind = proofs.KindLogConfig
			leaf.Config = r.config
		case r.kb != nil:
			leaf.Kind = proofs.KindKeyBinding
			leaf.Envelope = r.canon
			leaf.Decision = &proofs.Decision{Outcome: proofs.OutcomeAccepted}
		case r.del != nil:
			if err := l.recheckSigners(r, st.bindings); err != nil {
				results[i].err = err
				continue
			}
			leaf.Kind = proofs.KindDelegation
			leaf.Envelope = r.canon
			d, err := l.decideDelegation(txn, r.del, ids, nonces)
			if err != nil {
				return consumed, 0, nil, err
			}
			leaf.Decision = d
		}
		logTime := max(st.logTime, l.opts.Now().UnixNano())
		leaf.LogTime = proofs.FormatLogTime(time.Unix(0, logTime))
		raw, err := leaf.Marshal()
		if err != nil {
			results[i].err = err
			continue
		}
		idx := st.size
		lh := proofs.LeafHash(raw)
		sets := [][2][]byte{
			{leafKey(idx), raw},
			{hashKey(tLeafHash, lh), u64(idx)},
		}
		id := proofs.HashID(raw)
		if r.env != nil {
			id = proofs.HashID(r.canon)
			sets = append(sets, [2][]byte{hashKey(tEnvelope, r.envHash[:]), u64(idx)})
		}
		var key *proofs.PublicKey
		switch {
		case r.config != nil:
			sets = append(sets, [2][]byte{keyConfig, u64(idx)})
		case r.kb != nil:
			if key, err = proofs.ParsePublicKeyDER(r.kb.PublicKey); err != nil {
				results[i].err = err // validated in the stateless stage: cannot happen
				continue
			}
			sets = append(sets,
				[2][]byte{pairKey(tBinding, r.kb.Agent, idx), nil},
				[2][]byte{pairKey(tAgent, r.kb.Agent, idx), {roleSubject}})
		case r.del != nil:
			id = r.del.ID
			sets = append(sets,
				[2][]byte{pairKey(tAgent, r.del.Issuer, idx), {roleIssuer}},
				[2][]byte{pairKey(tAgent, r.del.Delegate, idx), {roleDelegate}})
			if r.del.Parent != "" {
				sets = append(sets, [2][]byte{pairKey(tChild, r.del.Parent, idx), nil})
			}
			if leaf.Decision.Outcome == proofs.OutcomeAccepted {
				sets = append(sets,
					[2][]byte{strKey(tDelegID, r.del.ID), u64(idx)},
					[2][]byte{nonceKey(r.del.Issuer, r.del.Nonce), u64(idx)})
			}
		}
		var size int64
		for _, kv := range sets {
			size += int64(len(kv[0]) + len(kv[1]) + txnEntryOverhead)
		}
		if staged+size > l.txnBudget {
			if written > 0 {
				break // the rest goes into the next transaction
			}
			results[i].err = proofs.Errorf(ReasonRequestTooLarge, "entry of %d bytes does not fit one store transaction (budget %d bytes)", size, l.txnBudget)
			continue
		}
		// The entry fits: make it part of the working state.
		staged += size
		if err := st.rng.Append(lh, tw.visit); err != nil {
			return consumed, 0, nil, fmt.Errorf("extending the tree: %w", err)
		}
		st.size++
		st.logTime = logTime
		if r.env != nil {
			inBatch[r.envHash] = i
		}
		if key != nil {
			st.bindings = st.bindings.with(&binding{index: idx, kb: r.kb, key: key})
		}
		if r.del != nil && leaf.Decision.Outcome == proofs.OutcomeAccepted {
			ids[r.del.ID] = true
			nonces[r.del.Issuer+"\x00"+r.del.Nonce] = true
		}
		for _, kv := range sets {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return consumed, 0, nil, storeError(fmt.Errorf("staging entry %d: %w", idx, err))
			}
		}
		results[i] = result{Index: idx, Leaf: raw, ID: id, Decision: leaf.Decision}
		written++
	}
	if written == 0 {
		return consumed, 0, st, nil
	}
	root, err := st.rng.GetRootHash(nil)
	if err != nil {
		return consumed, 0, nil, fmt.Errorf("computing root: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(tw.dirty)) {
		if err := txn.Set([]byte(k), tw.dirty[k]); err != nil {
			return consumed, 0, nil, storeError(fmt.Errorf("staging tile: %w", err))
		}
	}
	if err := txn.Set(keyHead, head{Size: st.size, Root: root, LogTime: st.logTime}.marshal()); err != nil {
		return consumed, 0, nil, storeError(fmt.Errorf("staging tree head: %w", err))
	}
	if err := l.faults.commit.Load(); err != nil {
		return consumed, 0, nil, storeError(*err)
	}
	if err := txn.Commit(); err != nil {
		return consumed, 0, nil, storeError(fmt.Errorf("committing batch: %w", err))
	}
	return consumed, written, st, nil
}

// recheckSigners re-verifies, under the bindings in force now, any signature
// whose binding changed since the stateless stage checked it.
func (l *Log) recheckSigners(r *request, bs *bindingSet) error {
	ib := bs.byAgent[r.del.Issuer]
	same := ib != nil && r.signers[ib.key.ID] != nil
	for id, k := range r.signers {
		if b := bs.byKeyID[id]; b == nil || b.key != k {
			same = false
		}
	}
	if same {
		return nil
	}
	signers, err := l.verifySigners(r.env, r.del.Issuer, bs)
	if err != nil {
		return err
	}
	r.signers = signers
	return nil
}

// decideDelegation runs the stateful rules on a delegation whose signatures
// are valid. The chain and policy rules (DESIGN.md, rules 2-10) build on
// this; what is decided here is uniqueness: a delegation id and an issuer's
// nonce are consumed only by an accepted entry.
func (l *Log) decideDelegation(txn *badger.Txn, d *proofs.Delegation, ids, nonces map[string]bool) (*proofs.Decision, error) {
	var reasons []string
	_, idUsed, err := getIndex(txn, strKey(tDelegID, d.ID))
	if err != nil {
		return nil, storeError(err)
	}
	if idUsed || ids[d.ID] {
		reasons = append(reasons, ReasonIDReused)
	}
	_, nonceUsed, err := getIndex(txn, nonceKey(d.Issuer, d.Nonce))
	if err != nil {
		return nil, storeError(err)
	}
	if nonceUsed || nonces[d.Issuer+"\x00"+d.Nonce] {
		reasons = append(reasons, ReasonNonceReused)
	}
	if len(reasons) > 0 {
		return &proofs.Decision{Outcome: proofs.OutcomeDenied, Reasons: reasons}, nil
	}
	return &proofs.Decision{Outcome: proofs.OutcomeAccepted}, nil
}

// duplicate describes an already committed entry for a resubmission.
func (l *Log) duplicate(txn *badger.Txn, idx uint64) (result, error) {
	raw, err := getValue(txn, leafKey(idx))
	if err != nil {
		return result{}, storeError(err)
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil {
		return result{}, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("entry %d: %w", idx, err)}
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
