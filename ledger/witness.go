package ledger

// The witness client: the log sends each new checkpoint to the witnesses
// of its policy (C2SP tlog-witness add-checkpoint), verifies the
// cosignatures they return (C2SP tlog-cosignature) and, once they satisfy
// the policy's quorum, serves the checkpoint with them.
//
// Each witness has one goroutine and at most one request in flight: while
// it waits, newer checkpoints replace each other, and the next request
// carries the newest (a witness cosigning size n has cosigned every
// smaller size consistent with it). So that a quorum cosigns the same
// size even while the log grows faster than witnesses answer, checkpoints
// are witnessed in rounds (schedule): a round starts once the previous one
// is witnessed and the round budget allows, with the newest checkpoint at
// that moment, which every witness is sent at once; the cosigned
// checkpoint is published when the quorum is met, not when every witness
// has answered. Each request proves consistency from
// the size the witness last cosigned for us, which is kept in the store so
// that a restart does not start over from zero; a witness that holds
// another size says so (409, text/x.tlog.size) and the request is sent
// again from there.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/time/rate"

	"github.com/warrantlog/warrant/proofs"
)

// WitnessMode says when an append is answered under a witness policy.
type WitnessMode int

const (
	// WitnessAsync answers with the log-signed checkpoint; the cosigned
	// one follows (Checkpoint, GET /checkpoint, WatchCheckpoints).
	WitnessAsync WitnessMode = iota
	// WitnessSync answers once a checkpoint covering the entry satisfies
	// the quorum, or with ReasonWitnessUnavailable after the timeout.
	WitnessSync
)

// ParseWitnessMode reads "async" or "sync".
func ParseWitnessMode(s string) (WitnessMode, error) {
	switch s {
	case "async":
		return WitnessAsync, nil
	case "sync":
		return WitnessSync, nil
	}
	return 0, fmt.Errorf("witness mode %q: it is async or sync", s)
}

func (m WitnessMode) String() string {
	if m == WitnessSync {
		return "sync"
	}
	return "async"
}

// Failure kinds of a witness request, the kind label of
// warrant_witness_failures_total and proofs.WitnessStatus.LastErrorKind.
const (
	// witnessUnreachable: no HTTP answer (connection refused, timeout).
	witnessUnreachable = "unreachable"
	// witnessConflict: the witness holds a size this log never signed
	// (409 beyond our latest checkpoint): it saw another history.
	witnessConflict = proofs.WitnessConflictKind
	// witnessInconsistent: 422, the consistency proof does not verify
	// against what the witness holds: another history, or a fork.
	witnessInconsistent = proofs.WitnessInconsistentKind
	// witnessForbidden: 403, the witness does not accept the log's
	// signature (it knows another key for our origin).
	witnessForbidden = "forbidden"
	// witnessUnknownLog: 404, the witness does not know our origin.
	witnessUnknownLog = "unknown_log"
	// witnessBadRequest: 400, or a 409 without a size.
	witnessBadRequest = "bad_request"
	// witnessBadCosignature: 200 without a cosignature that verifies
	// under the policy's key for that witness.
	witnessBadCosignature = "bad_cosignature"
	// witnessServerError: any other status.
	witnessServerError = "server_error"
)

// maxCollected bounds the sizes whose cosignatures are kept while they do
// not satisfy the quorum yet.
const maxCollected = 8

// maxWitnessAnswer bounds a witness's answer body.
const maxWitnessAnswer = 64 << 10

// witnessing is a Log's witness client; nil without a policy.
type witnessing struct {
	l      *Log
	policy *WitnessPolicy
	ws     []*witnessClient

	// newest is the newest checkpoint offered.
	newest atomic.Pointer[proofs.Checkpoint]

	mu sync.Mutex
	// round is the checkpoint being witnessed (nil between rounds).
	round *proofs.Checkpoint
	// roundStart is when the round began, for the debug log.
	roundStart time.Time
	// rounds is the budget of rounds (nil: no budget), and roundWake is
	// signalled when a round may be due (schedule).
	rounds    *rate.Limiter
	roundWake chan struct{}
	// collected are the verified cosignature lines by tree size (of the
	// sizes not yet superseded by a witnessed checkpoint), by witness.
	collected map[uint64]*cosigning
	// cosigned is the latest checkpoint satisfying the quorum, with every
	// verified cosignature collected for its size.
	cosigned atomic.Pointer[proofs.Checkpoint]
	// changed is closed, and replaced, when cosigned changes.
	changed atomic.Pointer[chan struct{}]

	// storeMu orders the writes of witnessed checkpoints (storeState);
	// storedSize is the size of the last one written.
	storeMu    sync.Mutex
	storedSize uint64

	stop chan struct{}
	done sync.WaitGroup
}

type cosigning struct {
	cp   *proofs.Checkpoint // log-signed
	sigs map[string][]byte  // witness name -> its verified signature lines
}

// witnessClient is the client of one witness.
type witnessClient struct {
	w *witnessing
	proofs.PolicyWitness
	limiter *rate.Limiter // nil: no budget
	// wake is signalled when there may be a checkpoint to send.
	wake chan struct{}

	mu    sync.Mutex
	state proofs.WitnessStatus
	// size is the size the witness holds for us, as far as we know (what
	// it last cosigned, or what it said in a 409); sent as old.
	size uint64
	// sent is the size of the last checkpoint it cosigned in this process:
	// a checkpoint of that size is not sent again.
	sent uint64
}

func witnessSizeKey(vkey string) []byte { return []byte("Mwitness/" + vkey) }

var keyCosigned = []byte("Mcosigned")

// startWitnessing loads the witnesses' sizes and the last cosigned
// checkpoint, starts one goroutine per witness and sends them the latest
// checkpoint.
func (l *Log) startWitnessing() error {
	p, err := ParseWitnessPolicy(l.opts.WitnessPolicy, l.vkey)
	if err != nil {
		return err
	}
	w := &witnessing{l: l, policy: p, collected: map[uint64]*cosigning{}, stop: make(chan struct{}), roundWake: make(chan struct{}, 1)}
	if l.opts.WitnessRate > 0 {
		w.rounds = rate.NewLimiter(rate.Limit(l.opts.WitnessRate), witnessBurst)
	}
	ch := make(chan struct{})
	w.changed.Store(&ch)
	latest := l.Checkpoint()
	err = l.db.View(func(txn *badger.Txn) error {
		for _, pw := range p.Witnesses {
			c := &witnessClient{w: w, PolicyWitness: pw, wake: make(chan struct{}, 1)}
			c.state = proofs.WitnessStatus{Name: pw.Name, URL: pw.URL}
			if l.opts.WitnessRate > 0 {
				c.limiter = rate.NewLimiter(rate.Limit(l.opts.WitnessRate), witnessBurst)
			}
			v, err := getValue(txn, witnessSizeKey(pw.VKey))
			if err != nil {
				return err
			}
			if len(v) == 8 {
				c.size = binary.BigEndian.Uint64(v)
				c.state.CosignedSize = c.size
			}
			w.ws = append(w.ws, c)
		}
		signed, err := getValue(txn, keyCosigned)
		if err != nil || signed == nil {
			return err
		}
		// The last cosigned checkpoint, if it is still the latest one.
		cp, err := proofs.OpenCheckpoint(signed, l.verifier)
		if err == nil && cp.Size == latest.Size && bytes.Equal(cp.Root, latest.Root) && p.Satisfied(signed) {
			w.cosigned.Store(cp)
			l.latest.CompareAndSwap(latest, cp)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading witness state: %w", err)
	}
	l.witnesses = w
	for _, c := range w.ws {
		l.opts.Metrics.witnessSize(c.Name, c.size)
		w.done.Add(1)
		go c.run()
	}
	w.done.Add(1)
	go w.schedule()
	w.offer(l.Checkpoint())
	return nil
}

// offer hands cp, a newly published checkpoint, to the witnesses.
func (w *witnessing) offer(cp *proofs.Checkpoint) {
	for {
		old := w.newest.Load()
		if old != nil && old.Size >= cp.Size {
			return
		}
		if w.newest.CompareAndSwap(old, cp) {
			break
		}
	}
	w.wakeRounds()
	w.wakeAll()
}

func (w *witnessing) wakeRounds() {
	select {
	case w.roundWake <- struct{}{}:
	default:
	}
}

func (w *witnessing) wakeAll() {
	for _, c := range w.ws {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// pick returns the checkpoint c is to send next, or nil: the round's, if
// c has not cosigned it; between rounds, the newest if it is witnessed
// already (c lags behind the quorum), else nothing: schedule starts the
// next round. A witness that has cosigned the round's checkpoint waits for
// the round to end. A witness whose last request failed moves the round
// on to the newest checkpoint (start set: run asks first without, before
// it waits for the witness's budget): a round that cannot be witnessed
// (too many witnesses down, or refusing it) must not hold back newer
// checkpoints.
func (w *witnessing) pick(c *witnessClient, failed, start bool) *proofs.Checkpoint {
	w.mu.Lock()
	defer w.mu.Unlock()
	c.mu.Lock()
	sent := c.sent
	c.mu.Unlock()
	newest := w.newest.Load()
	unwitnessed := w.unwitnessed(newest)
	if r := w.round; r != nil {
		if failed && unwitnessed && newest.Size > r.Size {
			if start {
				w.startRound(newest)
			}
			return newest
		}
		if r.Size > sent {
			return r
		}
		return nil
	}
	if newest == nil || newest.Size <= sent || unwitnessed {
		return nil
	}
	return newest
}

// unwitnessed reports whether cp is newer than the latest witnessed
// checkpoint. The empty tree is never sent to witnesses.
func (w *witnessing) unwitnessed(cp *proofs.Checkpoint) bool {
	cosigned := w.cosigned.Load()
	return cp != nil && cp.Size > 0 && (cosigned == nil || cp.Size > cosigned.Size)
}

// schedule starts the rounds: when none is under way and the newest
// checkpoint is not witnessed, it waits for the round budget and makes
// the newest checkpoint at that moment the round's, waking every witness.
// One budget for the rounds, rather than each witness starting a round
// when its own budget allows, keeps the witnesses in step: each round's
// requests go out together, and the quorum is met as soon as the fastest
// witnesses answer, not after the witnesses' budgets have come round one
// after the other. Each witness gets at most one request per round (and
// has its own budget besides, for the requests of a witness catching up).
func (w *witnessing) schedule() {
	defer w.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.stop
		cancel()
	}()
	due := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.round == nil && w.unwitnessed(w.newest.Load())
	}
	for {
		select {
		case <-w.stop:
			return
		case <-w.roundWake:
		}
		if !due() {
			continue
		}
		if w.rounds != nil {
			if err := w.rounds.Wait(ctx); err != nil {
				return
			}
		}
		w.mu.Lock()
		if newest := w.newest.Load(); w.round == nil && w.unwitnessed(newest) {
			w.startRound(newest)
		}
		w.mu.Unlock()
	}
}

// roundStarted is when the current (or last) round began.
func (w *witnessing) roundStarted() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.roundStart
}

func (w *witnessing) startRound(cp *proofs.Checkpoint) {
	w.round, w.roundStart = cp, time.Now()
	w.wakeAll()
}

// close stops the witness goroutines (and their requests in flight) and
// stores the witnesses' sizes.
func (w *witnessing) close() {
	close(w.stop)
	w.done.Wait()
	if err := w.storeState(nil); err != nil {
		w.l.log.Warn("storing the witnesses' sizes at close", "err", err)
	}
}

// storeState writes, in one transaction, the size each witness holds for
// us as far as we know and, if signed is set, the latest witnessed
// checkpoint. One synced write per witnessed checkpoint rather than one
// per cosignature as well: these writes share the store's commits with
// the appends. A size lost in a crash costs one request: the witness
// answers 409 with the size it holds, and is sent the checkpoint again
// from there.
func (w *witnessing) storeState(signed []byte) error {
	return w.l.db.Update(func(txn *badger.Txn) error {
		for _, c := range w.ws {
			c.mu.Lock()
			size := c.size
			c.mu.Unlock()
			if size == 0 {
				continue
			}
			if err := txn.Set(witnessSizeKey(c.VKey), u64(size)); err != nil {
				return err
			}
		}
		if signed == nil {
			return nil
		}
		return txn.Set(keyCosigned, signed)
	})
}

// Cosigned returns the latest checkpoint whose cosignatures satisfy the
// witness policy, or nil (no policy, or none yet).
func (l *Log) Cosigned() *proofs.Checkpoint {
	if l.witnesses == nil {
		return nil
	}
	return l.witnesses.cosigned.Load()
}

// CosignedChanged returns a channel closed when the witnessed checkpoint
// changes; nil (never ready) without a witness policy.
func (l *Log) CosignedChanged() <-chan struct{} {
	if l.witnesses == nil {
		return nil
	}
	return *l.witnesses.changed.Load()
}

// servedCheckpoint is the checkpoint a read that asked for a witnessed one
// gets: the latest witnessed checkpoint, or the latest checkpoint of a log
// without a witness policy. nil: the log has witnessed none yet.
func (l *Log) servedCheckpoint(witnessed bool) *proofs.Checkpoint {
	if !witnessed || l.witnesses == nil {
		return l.Checkpoint()
	}
	return l.Cosigned()
}

// Witnesses returns the witnesses' state; nil without a witness policy.
func (l *Log) Witnesses() *proofs.WitnessReport {
	w := l.witnesses
	if w == nil {
		return nil
	}
	st := &proofs.WitnessReport{Origin: l.Origin(), Mode: l.opts.WitnessMode.String(), Size: l.Checkpoint().Size}
	if cp := w.cosigned.Load(); cp != nil {
		st.CosignedSize = cp.Size
	}
	for _, c := range w.ws {
		c.mu.Lock()
		st.Witnesses = append(st.Witnesses, c.state)
		c.mu.Unlock()
	}
	return st
}

// waitCosigned waits until a checkpoint of at least size satisfies the
// quorum, up to the witness timeout.
func (w *witnessing) waitCosigned(ctx context.Context, size uint64) (*proofs.Checkpoint, error) {
	timeout := time.NewTimer(w.l.opts.WitnessTimeout)
	defer timeout.Stop()
	for {
		changed := *w.changed.Load()
		if cp := w.cosigned.Load(); cp != nil && cp.Size >= size {
			return cp, nil
		}
		select {
		case <-changed:
		case <-timeout.C:
			return nil, proofs.Errorf(ReasonWitnessUnavailable, "entry %d is committed, but no checkpoint covering it reached the witness quorum within %s; resubmit the same envelope to get its receipt", size-1, w.l.opts.WitnessTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.stop:
			return nil, proofs.Errorf(ReasonShuttingDown, "the log is shutting down")
		}
	}
}

func (c *witnessClient) run() {
	defer c.w.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.w.stop
		cancel()
	}()
	// After a failure the newest checkpoint is sent again after a back-off,
	// even if the log stays idle: a witness that comes back catches up.
	var retry <-chan time.Time
	var backoff time.Duration
	failed := false
	for {
		select {
		case <-c.w.stop:
			return
		case <-c.wake:
		case <-retry:
		}
		retry = nil
		if c.w.pick(c, failed, false) == nil {
			continue
		}
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return
			}
		}
		cp := c.w.pick(c, failed, true)
		if cp == nil { // another witness's answer may have ended the round meanwhile
			continue
		}
		start := time.Now()
		failed = !c.witness(ctx, cp)
		if l := c.w.l.log; l.Enabled(ctx, slog.LevelDebug) {
			l.Debug("witness request", "witness", c.Name, "size", cp.Size, "ok", !failed, "ms", time.Since(start).Milliseconds(),
				"after_round_start_ms", start.Sub(c.w.roundStarted()).Milliseconds())
		}
		if !failed {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, witnessRetryMin), witnessRetryMax)
		retry = time.After(backoff)
	}
}

// witnessBurst is how many requests a witness's budget lets go in a row
// after a quiet spell (a token bucket of witnessBurst tokens, refilled at
// the budget's rate). Over any longer period a witness gets no more than
// its budget; a burst lets the first checkpoint after a quiet spell, and
// a round that follows one that took longer than a budget interval, go at
// once instead of waiting for the next interval.
const witnessBurst = 3

// The back-off between retries after a failed request.
const (
	witnessRetryMin = 250 * time.Millisecond
	witnessRetryMax = 5 * time.Second
)

// witness sends cp to the witness, from the size it holds; after a 409
// naming another size it sends it once more from that size.
func (c *witnessClient) witness(ctx context.Context, cp *proofs.Checkpoint) bool {
	l := c.w.l
	c.mu.Lock()
	old := c.size
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if old > cp.Size {
			// We last knew the witness at a size beyond this checkpoint's
			// (the log was restored from an older backup?): start over.
			old = 0
		}
		status, ctype, body, err := c.post(ctx, old, cp)
		if ctx.Err() != nil {
			return false
		}
		switch {
		case err != nil:
			c.fail(witnessUnreachable, err.Error())
			return false
		case status == http.StatusOK:
			lines, err := c.verify(cp, body)
			if err != nil {
				c.fail(witnessBadCosignature, err.Error())
				return false
			}
			c.cosigned(cp, lines)
			return true
		case status == http.StatusConflict && ctype == "text/x.tlog.size":
			held, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
			if err != nil {
				c.fail(witnessBadRequest, fmt.Sprintf("409 with a malformed size %q", bytes.TrimSpace(body)))
				return false
			}
			if latest := l.Checkpoint().Size; held > latest {
				l.log.Error("witness holds a checkpoint of this log's origin larger than any the log signed: another history (split view) or a lost log state",
					"witness", c.Name, "url", c.URL, "witness_size", held, "log_size", latest)
				c.fail(witnessConflict, fmt.Sprintf("the witness holds size %d, beyond this log's %d", held, latest))
				c.mu.Lock()
				c.size = held
				c.mu.Unlock()
				return false
			}
			c.mu.Lock()
			c.size = held
			c.mu.Unlock()
			if held == old || attempt >= 1 {
				c.fail(witnessBadRequest, fmt.Sprintf("409 naming size %d again", held))
				return false
			}
			old = held
		case status == http.StatusUnprocessableEntity:
			l.log.Error("witness refuses the consistency proof for this log's checkpoint: it holds another history of our origin (split view), or a fork of the log",
				"witness", c.Name, "url", c.URL, "old", old, "size", cp.Size, "answer", firstLine(body))
			c.fail(witnessInconsistent, fmt.Sprintf("422 from size %d to %d: %s", old, cp.Size, firstLine(body)))
			return false
		case status == http.StatusForbidden:
			c.fail(witnessForbidden, "403: "+firstLine(body))
			return false
		case status == http.StatusNotFound:
			c.fail(witnessUnknownLog, "404: "+firstLine(body))
			return false
		case status == http.StatusBadRequest || status == http.StatusConflict:
			c.fail(witnessBadRequest, fmt.Sprintf("%d: %s", status, firstLine(body)))
			return false
		default:
			c.fail(witnessServerError, fmt.Sprintf("%d: %s", status, firstLine(body)))
			return false
		}
	}
}

// post sends one add-checkpoint request: "old N", the consistency proof
// from N, a blank line, the log-signed checkpoint.
func (c *witnessClient) post(ctx context.Context, old uint64, cp *proofs.Checkpoint) (status int, ctype string, body []byte, err error) {
	l := c.w.l
	var req bytes.Buffer
	fmt.Fprintf(&req, "old %d\n", old)
	if old > 0 && old < cp.Size {
		proof, _, err := l.ConsistencyProof(ctx, old, cp.Size)
		if err != nil {
			return 0, "", nil, fmt.Errorf("consistency proof from %d to %d: %w", old, cp.Size, err)
		}
		for _, h := range proof {
			req.WriteString(base64.StdEncoding.EncodeToString(h))
			req.WriteByte('\n')
		}
	}
	req.WriteByte('\n')
	req.Write(logSigned(cp.Note, l.signer.Name()))
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, witnessURL(&c.PolicyWitness), &req)
	if err != nil {
		return 0, "", nil, err
	}
	hr.Header.Set("Content-Type", "text/plain; charset=utf-8")
	start := time.Now()
	resp, err := l.opts.WitnessHTTP.Do(hr)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxWitnessAnswer))
	l.opts.Metrics.witnessRequest(c.Name, time.Since(start))
	if err != nil {
		return 0, "", nil, fmt.Errorf("reading the answer: %w", err)
	}
	ctype, _, _ = strings.Cut(resp.Header.Get("Content-Type"), ";")
	return resp.StatusCode, strings.TrimSpace(ctype), body, nil
}

// verify returns the signature lines of body that are the witness's (its
// name and key hash) and verify over cp under the policy's key. Lines of
// other keys are ignored (C2SP tlog-witness allows a witness several
// keys); none verifying is an error.
func (c *witnessClient) verify(cp *proofs.Checkpoint, body []byte) ([]byte, error) {
	text := proofs.CheckpointBody(cp.Origin, cp.Size, cp.Root)
	var good []byte
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			continue
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok || name != c.Verifier.Name() {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 5 || binary.BigEndian.Uint32(sig) != c.Verifier.KeyHash() {
			continue
		}
		if !c.Verifier.Verify(text, sig[4:]) {
			return nil, fmt.Errorf("a cosignature under the witness's key does not verify")
		}
		good = append(good, line...)
		good = append(good, '\n')
	}
	if good == nil {
		return nil, fmt.Errorf("no cosignature by %s in the answer (%q)", c.Verifier.Name(), firstLine(body))
	}
	return good, nil
}

// cosigned records the witness's cosignature lines for cp: its size, the
// lines with the others' for cp, then its state (so that a state saying it
// cosigned cp means the lines are served, if cp still is the latest). The
// size reaches the store with the next witnessed checkpoint (add), or at
// close (storeState).
func (c *witnessClient) cosigned(cp *proofs.Checkpoint, lines []byte) {
	l := c.w.l
	c.mu.Lock()
	c.size, c.sent = cp.Size, cp.Size
	c.mu.Unlock()
	c.w.add(c.Name, cp, lines)
	c.mu.Lock()
	c.state.CosignedSize = cp.Size
	c.state.LastCosigned = time.Now()
	c.state.LastError, c.state.LastErrorKind, c.state.LastErrorAt = "", "", time.Time{}
	c.mu.Unlock()
	l.opts.Metrics.witnessSize(c.Name, cp.Size)
}

// add adds a witness's verified cosignature lines for cp and, when they
// make cp's cosignatures satisfy the quorum, makes it the cosigned
// checkpoint, served in place of the log-signed one while it is the
// latest.
func (w *witnessing) add(name string, cp *proofs.Checkpoint, lines []byte) {
	out := w.collect(name, cp, lines)
	if out == nil {
		return
	}
	// Stored after it is served and the next round may start: the synced
	// write is no part of the latency to a witnessed checkpoint (a
	// checkpoint lost in a crash is witnessed again).
	w.storeMu.Lock()
	defer w.storeMu.Unlock()
	if out.Size < w.storedSize {
		return // a newer one is stored already
	}
	if err := w.storeState(out.Note); err != nil {
		w.l.log.Warn("storing the cosigned checkpoint", "size", out.Size, "err", err)
		return
	}
	w.storedSize = out.Size
}

// collect is add under w.mu: it returns the witnessed checkpoint when
// cp's cosignatures satisfy the quorum (and serves it), nil otherwise.
func (w *witnessing) collect(name string, cp *proofs.Checkpoint, lines []byte) *proofs.Checkpoint {
	l := w.l
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur := w.cosigned.Load(); cur != nil && cur.Size > cp.Size {
		return nil // superseded
	}
	col := w.collected[cp.Size]
	if col == nil {
		col = &cosigning{cp: cp, sigs: map[string][]byte{}}
		w.collected[cp.Size] = col
	}
	col.sigs[name] = lines
	// The log's signature first, then the cosignatures in policy order.
	signed := bytes.Clone(logSigned(col.cp.Note, l.signer.Name()))
	for _, c := range w.ws {
		signed = append(signed, col.sigs[c.Name]...)
	}
	if !w.policy.Satisfied(signed) {
		// Bound what is kept: the newest sizes only.
		for len(w.collected) > maxCollected {
			delete(w.collected, slices.Min(slices.Collect(maps.Keys(w.collected))))
		}
		return nil
	}
	out := &proofs.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Note: signed}
	w.cosigned.Store(out)
	for size := range w.collected {
		if size < cp.Size {
			delete(w.collected, size)
		}
	}
	if w.round != nil && w.round.Size <= cp.Size {
		// The round is over: the witnesses waiting for it may start the next.
		l.log.Debug("witness round over", "size", cp.Size, "round_ms", time.Since(w.roundStart).Milliseconds(), "by", name)
		w.round = nil
		w.wakeRounds()
		defer w.wakeAll()
	}
	// Served in place of the log-signed checkpoint of the same size.
	if latest := l.latest.Load(); latest.Size == out.Size && l.latest.CompareAndSwap(latest, out) {
		l.wake()
	}
	next := make(chan struct{})
	if old := w.changed.Swap(&next); old != nil {
		close(*old)
	}
	return out
}

// fail records a failed request.
func (c *witnessClient) fail(kind, msg string) {
	l := c.w.l
	c.mu.Lock()
	c.state.LastError, c.state.LastErrorKind, c.state.LastErrorAt = msg, kind, time.Now()
	c.mu.Unlock()
	l.opts.Metrics.witnessFailure(c.Name, kind)
	l.log.Warn("witness request failed", "witness", c.Name, "url", c.URL, "kind", kind, "err", msg)
}

// logSigned returns the note with only the log's signature line: what a
// witness is sent, and what cosignatures are appended to.
func logSigned(signed []byte, origin string) []byte {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return signed
	}
	out := bytes.Clone(signed[:i+2])
	prefix := "\u2014 " + origin + " "
	for line := range strings.SplitSeq(string(signed[i+2:]), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
