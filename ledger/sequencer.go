package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"

	"github.com/warrantlog/warrant/proofs"
)

// request is one append on its way through the sequencer. Either env (a
// signed event, already verified by the stateless stage) is set, or the
// request is an entry the log writes itself (config or logPolicy).
type request struct {
	env   *proofs.Envelope
	canon []byte
	// envHash hashes canon (the entry id of non-delegations); payloadHash
	// is the deduplication key (proofs.PayloadHash).
	envHash     [32]byte
	payloadHash [32]byte

	// The decoded payload: exactly one is set for a signed event.
	kb  *proofs.KeyBinding
	del *proofs.Delegation
	rev *proofs.Revocation
	pol *proofs.Policy // an admin's policy update

	// sigs is what the stateless stage found of a delegation's (or an
	// issuer-signed revocation's) signatures, checked against the bindings
	// snapshot; the sequencer re-checks when the bindings changed since.
	sigs     proofs.SignatureCheck
	snapshot *proofs.Bindings
	byAdmin  bool // a revocation signed by an admin key

	config    *proofs.LogConfig
	logPolicy *proofs.Policy

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
	bindings       *proofs.Bindings
	policy         *proofs.Policy
	needCheckpoint bool
	// unstored is a published checkpoint not yet written to the store; the
	// next batch's transaction writes it (see signCheckpoint).
	unstored []byte
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
	return &Appended{Index: res.Index, Leaf: res.Leaf, ID: res.ID, Duplicate: res.Duplicate, Decision: res.Decision, Checkpoint: res.Checkpoint}, nil
}

// prepare parses an envelope as DSSE allows it to be written, decodes its
// payload and authenticates it: every signature must verify under a key the
// log holds for this payload (Envelope.MatchKeys), or the request is
// refused, unauthenticated, having written and spent nothing. The request
// then holds the envelope's one canonical form (standard base64, canonical
// key ids, signatures sorted), which is what the log stores.
//
// The candidate keys of a signature that does not name its key: the
// registrar keys for a key binding, the admin keys for a policy, the
// issuer's key in force and the admin keys for a revocation, and for a
// delegation the issuer's key in force and that of the chain's root subject
// (the human the chain acts for, the usual approver). Any other co-signer
// must name its key by its canonical key id.
func (l *Log) prepare(envelope []byte) (*request, error) {
	env, err := proofs.ParseDSSE(envelope)
	if err != nil {
		return nil, err
	}
	r := &request{env: env}
	switch env.PayloadType {
	case proofs.PayloadTypeAgent:
		if r.kb, err = proofs.ParseKeyBinding(env.Payload); err != nil {
			return nil, err
		}
		if err := l.shed(r); err != nil { // over its rate limit: refused unverified (limits.go)
			return nil, err
		}
		if err := verifySole(env, l.registrars, ReasonRegistrarUnknown, "a registrar"); err != nil {
			return nil, err
		}
	case proofs.PayloadTypePolicy:
		if _, r.pol, err = proofs.ParsePolicyUpdate(env.Payload); err != nil {
			return nil, err
		}
		if err := l.shed(r); err != nil {
			return nil, err
		}
		if err := verifySole(env, l.admins, ReasonAdminUnknown, "an admin"); err != nil {
			return nil, err
		}
	case proofs.PayloadTypeDelegation:
		if r.del, err = proofs.ParseDelegation(env.Payload); err != nil {
			return nil, err
		}
		if err := l.shed(r); err != nil {
			return nil, err
		}
		r.snapshot = l.bindings.Load()
		issuer := r.snapshot.Agent(r.del.Issuer)
		if issuer == nil {
			return nil, proofs.Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force", r.del.Issuer)
		}
		fallback := []*proofs.PublicKey{issuer.Key}
		if root := r.snapshot.Agent(r.del.RootSubject); root != nil && root != issuer {
			fallback = append(fallback, root.Key)
		}
		if err := env.MatchKeys(boundKey(r.snapshot), fallback); err != nil {
			return nil, issuerMissing(env, issuer, err)
		}
		if r.sigs, err = proofs.CheckSignatures(env, issuer, r.snapshot.KeyID); err != nil {
			return nil, issuerError(err, r.del.Issuer)
		}
	case proofs.PayloadTypeRevocation:
		if r.rev, err = proofs.ParseRevocation(env.Payload); err != nil {
			return nil, err
		}
		if len(env.Signatures) != 1 {
			return nil, proofs.Errorf(proofs.ReasonTooManySignatures, "a revocation carries exactly one signature")
		}
		if err := l.shed(r); err != nil {
			return nil, err
		}
		r.snapshot = l.bindings.Load()
		issuer := r.snapshot.Agent(r.rev.Issuer)
		if r.rev.Issuer == "" || issuer == nil {
			// Only an admin key can sign it.
			if err := verifySole(env, l.admins, ReasonAdminUnknown, "an admin"); err != nil {
				if r.rev.Issuer != "" && proofs.Reason(err) == ReasonAdminUnknown {
					return nil, proofs.Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force, and the revocation is not signed by an admin key", r.rev.Issuer)
				}
				return nil, err
			}
			r.byAdmin = true
			if err := r.rev.CheckSigner(true); err != nil {
				return nil, err
			}
			break
		}
		named := func(id string) *proofs.PublicKey {
			if k := l.admins[id]; k != nil {
				return k
			}
			return boundKey(r.snapshot)(id)
		}
		if err := env.MatchKeys(named, append([]*proofs.PublicKey{issuer.Key}, sortedKeys(l.admins)...)); err != nil {
			return nil, issuerMissing(env, issuer, err)
		}
		if l.admins[env.Signatures[0].KeyID] != nil {
			r.byAdmin = true
			if err := r.rev.CheckSigner(true); err != nil {
				return nil, err
			}
			break
		}
		if r.sigs, err = proofs.CheckSignatures(env, issuer, r.snapshot.KeyID); err != nil {
			return nil, issuerError(err, r.rev.Issuer)
		}
	default:
		return nil, proofs.Errorf(proofs.ReasonPayloadTypeUnknown, "unknown payload type %q", env.PayloadType)
	}
	// The canonical form is what the log stores: bound it too.
	r.canon = env.Canonical()
	if n := len(r.canon); n > proofs.MaxEnvelopeBytes {
		return nil, proofs.Errorf(proofs.ReasonEnvelopeTooLarge, "canonical envelope is %d bytes, limit %d", n, proofs.MaxEnvelopeBytes)
	}
	r.envHash = proofs.EnvelopeHash(r.canon)
	r.payloadHash = proofs.PayloadHash(env.PayloadType, env.Payload)
	return r, nil
}

// issuerMissing reports an envelope that failed authentication without a
// valid signature by the issuer's key in force as signature_missing (a key
// rotated away, a request signed by someone else), which says what to fix;
// otherwise it returns err.
func issuerMissing(env *proofs.Envelope, issuer *proofs.Binding, err error) error {
	if proofs.Reason(err) == proofs.ReasonSignatureKeyUnknown && !env.Matched(issuer.Key) {
		return proofs.Errorf(proofs.ReasonSignatureMissing, "no signature by the issuer's registered key %s (%v)", issuer.Key.ID, err)
	}
	return err
}

// boundKey looks keys up among the bindings in force by key id.
func boundKey(bs *proofs.Bindings) func(string) *proofs.PublicKey {
	return func(id string) *proofs.PublicKey {
		if b := bs.KeyID(id); b != nil {
			return b.Key
		}
		return nil
	}
}

// sortedKeys lists a trust-anchor key set in key id order, so that
// signatures without a key id are tried in the same order every time.
func sortedKeys(keys map[string]*proofs.PublicKey) []*proofs.PublicKey {
	out := slices.Collect(maps.Values(keys))
	slices.SortFunc(out, func(a, b *proofs.PublicKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// issuerError names the issuer in an unregistered-issuer error.
func issuerError(err error, issuer string) error {
	if proofs.Reason(err) == ReasonIssuerNotRegistered {
		return proofs.Errorf(ReasonIssuerNotRegistered, "issuer %s has no key binding in force", issuer)
	}
	return err
}

// verifySole checks that env carries exactly one signature and that it is
// by one of keys (a trust anchor set: registrars or admins), matching a
// signature without a known key id by trying each key.
func verifySole(env *proofs.Envelope, keys map[string]*proofs.PublicKey, reason, who string) error {
	if len(env.Signatures) != 1 {
		return proofs.Errorf(proofs.ReasonTooManySignatures, "this envelope carries exactly one signature, by %s key", who)
	}
	err := env.MatchKeys(func(id string) *proofs.PublicKey { return keys[id] }, sortedKeys(keys))
	if proofs.Reason(err) == proofs.ReasonSignatureKeyUnknown {
		return proofs.Errorf(reason, "the signature (key id %q) is not by %s key of this log", env.Signatures[0].KeyID, who)
	}
	return err
}

// submit queues a request for the sequencer and waits for its answer.
func (l *Log) submit(ctx context.Context, r *request) (result, error) {
	r.done = make(chan result, 1)
	select {
	case <-l.stop:
		return result{}, proofs.Errorf(ReasonShuttingDown, "the log is shutting down")
	default:
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
// fair order, up to the count and byte bounds, waiting up to MaxBatchWait
// for more.
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
		if r := l.intake.pop(); r != nil {
			batch = append(batch, r)
			size += len(r.canon)
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
		l.bindings.Store(st.bindings)
		root, _ := st.rng.GetRootHash(nil)
		cp, err := l.signCheckpoint(st.size, root, false)
		if err != nil {
			l.seq.needCheckpoint = true
			l.log.Error("entries committed but checkpoint signing failed; will retry", "size", st.size, "err", err)
		} else {
			l.publish(cp)
			l.seq.needCheckpoint = false
			l.seq.unstored = cp.Note
		}
	}
	l.opts.Metrics.sequenced(batch[:n], results, err)
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
	t0 := time.Now()
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	st := &seqState{
		size:     l.seq.size,
		rng:      cloneRange(l.seq.rng),
		edge:     l.seq.edge.clone(),
		logTime:  l.seq.logTime,
		bindings: l.seq.bindings,
		policy:   l.seq.policy,
	}
	cs := newChainState(txn, st.bindings, l.delegations)
	tw := &tileWriter{edge: st.edge, dirty: make(map[string][]byte)}
	inBatch := make(map[[32]byte]int) // payload hash -> result slot
	var staged int64                  // estimated transaction bytes
	for consumed = 0; consumed < len(batch); consumed++ {
		i, r := consumed, batch[consumed]
		if r.env != nil {
			// Deduplication is on what the issuer signed, not on the
			// envelope: the same signed payload with other (valid)
			// signatures is the same request and gets the original entry.
			if j, ok := inBatch[r.payloadHash]; ok {
				results[i] = results[j]
				results[i].Duplicate = true
				continue
			}
			idx, ok, err := l.committedPayload(txn, r)
			if err != nil {
				results[i].err = readError(err) // this request only: the batch goes on
				continue
			}
			if ok {
				if results[i], err = l.duplicate(txn, idx, r.env); err != nil {
					results[i] = result{err: err}
				}
				continue
			}
		}
		now := l.opts.Now()
		if ahead := time.Duration(st.logTime - now.UnixNano()); r.env != nil && l.opts.MaxLogTimeAhead > 0 && ahead > l.opts.MaxLogTimeAhead {
			// A signed event would get a log time pinned in the future:
			// hold it off until the clock catches up. (Entries the log
			// writes itself when it opens are not held: they decide nothing.)
			results[i].err = l.clockBehind(now, st.logTime, ahead)
			continue
		}
		logTime := max(st.logTime, now.UnixNano())
		at := time.Unix(0, logTime)
		cs.bindings = st.bindings
		leaf := proofs.Leaf{Version: proofs.LeafVersion, LogTime: proofs.FormatLogTime(at)}
		accepted := &proofs.Decision{Outcome: proofs.OutcomeAccepted}
		var err error
		switch {
		case r.config != nil:
			leaf.Kind = proofs.KindLogConfig
			leaf.Config = r.config
		case r.logPolicy != nil:
			leaf.Kind = proofs.KindPolicy
			leaf.Policy = &proofs.LogPolicy{Text: string(r.logPolicy.Text)}
		case r.kb != nil:
			leaf.Kind, leaf.Envelope, leaf.Decision = proofs.KindKeyBinding, r.canon, st.bindings.DecideKeyBinding(r.kb)
		case r.pol != nil:
			leaf.Kind, leaf.Envelope, leaf.Decision = proofs.KindPolicy, r.canon, accepted
		case r.del != nil:
			leaf.Kind, leaf.Envelope = proofs.KindDelegation, r.canon
			if err := l.recheck(r, r.del.Issuer, st.bindings); err != nil {
				results[i].err = err
				continue
			}
			if leaf.Decision, err = proofs.DecideDelegation(cs, r.del, r.sigs, at, l.config.Rules, st.policy); err != nil {
				results[i].err = readError(err) // e.g. a damaged parent: this request only
				continue
			}
		case r.rev != nil:
			leaf.Kind, leaf.Envelope = proofs.KindRevocation, r.canon
			if !r.byAdmin {
				if err := l.recheck(r, r.rev.Issuer, st.bindings); err != nil {
					results[i].err = err
					continue
				}
			}
			if leaf.Decision, err = proofs.DecideRevocation(cs, r.rev, r.byAdmin, l.config.Rules); err != nil {
				results[i].err = readError(err)
				continue
			}
		}
		if f := l.faults.decision.Load(); f != nil && leaf.Decision != nil {
			(*f)(&leaf)
		}
		raw, err := leaf.Marshal()
		if err != nil {
			results[i].err = err
			continue
		}
		idx := st.size
		lh := proofs.LeafHash(raw)
		ok := leaf.Decision == nil || leaf.Decision.Outcome == proofs.OutcomeAccepted
		sets := [][2][]byte{
			{leafKey(idx), raw},
			{hashKey(tLeafHash, lh), u64(idx)},
		}
		var id string
		if r.env != nil {
			id = proofs.SumID(r.envHash) // HashID of the canonical envelope
			sets = append(sets, [2][]byte{hashKey(tPayload, r.payloadHash[:]), u64(idx)})
		} else {
			id = proofs.HashID(raw)
		}
		var key *proofs.PublicKey
		switch {
		case r.config != nil:
			sets = append(sets, [2][]byte{keyConfig, u64(idx)}, [2][]byte{binary.BigEndian.AppendUint64([]byte{tConfig}, idx), nil})
		case r.logPolicy != nil || r.pol != nil:
			sets = append(sets, [2][]byte{keyPolicy, u64(idx)}, [2][]byte{binary.BigEndian.AppendUint64([]byte{tPolicy}, idx), nil})
		case r.kb != nil:
			if key, err = proofs.ParsePublicKeyDER(r.kb.PublicKey); err != nil {
				results[i].err = err // validated in the stateless stage: cannot happen
				continue
			}
			sets = append(sets, [2][]byte{pairKey(tAgent, r.kb.Agent, idx), {roleSubject}})
			if ok {
				sets = append(sets,
					[2][]byte{pairKey(tBinding, r.kb.Agent, idx), nil},
					[2][]byte{pairKey(tKeyID, key.ID, idx), nil})
			}
		case r.del != nil:
			id = r.del.ID
			sets = append(sets,
				[2][]byte{pairKey(tAgent, r.del.Issuer, idx), {roleIssuer}},
				[2][]byte{pairKey(tAgent, r.del.Delegate, idx), {roleDelegate}})
			if r.del.Parent != "" {
				sets = append(sets, [2][]byte{pairKey(tChild, r.del.Parent, idx), nil})
			}
			if ok {
				sets = append(sets,
					[2][]byte{strKey(tDelegID, r.del.ID), u64(idx)},
					[2][]byte{nonceKey(r.del.Issuer, r.del.Nonce), u64(idx)})
			}
		case r.rev != nil:
			// Indexed under its actor: the issuer, or the admin's key id
			// (ListAgentEntries of the key id lists the admin's acts).
			actor := r.rev.Issuer
			if r.byAdmin {
				actor = r.env.Signatures[0].KeyID
			}
			sets = append(sets, [2][]byte{pairKey(tAgent, actor, idx), {roleIssuer}})
			sets = append(sets, [2][]byte{pairKey(tChild, r.rev.Delegation, idx), nil})
			if ok {
				if revoked, err := cs.Revoked(r.rev.Delegation); err != nil {
					results[i].err = readError(err)
					continue
				} else if !revoked {
					sets = append(sets, [2][]byte{strKey(tRevoked, r.rev.Delegation), u64(idx)})
				}
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
		if err := st.rng.Append(lh, tw.visit); err != nil || tw.err != nil {
			return consumed, 0, nil, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("extending the tree: %w", errors.Join(err, tw.err))}
		}
		st.size++
		st.logTime = logTime
		if r.env != nil {
			inBatch[r.payloadHash] = i
		}
		if ok {
			switch {
			case r.kb != nil:
				st.bindings = st.bindings.With(r.kb, key, idx)
			case r.logPolicy != nil:
				st.policy = r.logPolicy
			case r.pol != nil:
				st.policy = r.pol
			case r.del != nil:
				cs.dels[r.del.ID] = &proofs.DelegationRecord{Index: idx, D: r.del}
				cs.nonces[r.del.Issuer+"\x00"+r.del.Nonce] = true
			case r.rev != nil:
				cs.revoked[r.rev.Delegation] = true
			}
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
	if l.seq.unstored != nil { // the previous batch's checkpoint rides along
		if err := txn.Set(keyCheckpoint, l.seq.unstored); err != nil {
			return consumed, 0, nil, storeError(fmt.Errorf("staging checkpoint: %w", err))
		}
	}
	if err := l.faults.commit.Load(); err != nil {
		return consumed, 0, nil, storeError(*err)
	}
	if err := l.checkFreeSpace(); err != nil {
		return consumed, 0, nil, err
	}
	tc := time.Now()
	if err := txn.Commit(); err != nil {
		return consumed, 0, nil, storeError(fmt.Errorf("committing batch: %w", err))
	}
	l.opts.Metrics.observeCommit(time.Since(tc))
	l.log.Debug("batch committed", "entries", written, "stage_us", tc.Sub(t0).Microseconds(), "commit_us", time.Since(tc).Microseconds())
	for id, r := range cs.dels {
		l.delegations.put(id, r)
	}
	return consumed, written, st, nil
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

// recheck re-verifies a signed event's signatures when the bindings changed
// since the stateless stage checked them (a rotation or revocation that
// landed in between): signatures are judged by the bindings in force at
// the entry's log time.
func (l *Log) recheck(r *request, issuer string, bs *proofs.Bindings) error {
	if bs == r.snapshot {
		return nil
	}
	sigs, err := proofs.CheckSignatures(r.env, bs.Agent(issuer), bs.KeyID)
	if err != nil {
		return issuerError(err, issuer)
	}
	if sigs.Invalid {
		// A co-signer's key went out of force in between: the request is
		// no longer authentic as a whole, and is refused like any other.
		return proofs.Errorf(proofs.ReasonSignatureKeyUnknown, "a co-signature's key is no longer in force for %s", issuer)
	}
	r.sigs, r.snapshot = sigs, bs
	return nil
}

// committedPayload returns the index of the committed entry holding r's
// signed payload, if any. Entries of logs written before deduplication
// moved to the payload are indexed by their canonical envelope only, so an
// exact resubmission of one is still found.
func (l *Log) committedPayload(txn *badger.Txn, r *request) (uint64, bool, error) {
	idx, ok, err := getIndex(txn, hashKey(tPayload, r.payloadHash[:]))
	if err != nil || ok {
		return idx, ok, err
	}
	return getIndex(txn, hashKey(tEnvelope, r.envHash[:]))
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
