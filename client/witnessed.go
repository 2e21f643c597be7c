package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/proofs"
)

// Receipts under a witness policy.
//
// A server that witnesses asynchronously answers an append, and a busy one
// a read, with the checkpoint its log just signed; its witnesses cosign a
// later one. A client with a witness policy trusts no checkpoint without
// the quorum, but the entry is in the log all the same: refusing the
// answer outright would tell the caller nothing was done, and a caller
// that then signs a new request gets a second entry (or, for a delegation
// id, a recorded id_reused denial). So the client checks the answer under
// the log key as usual (signature, inclusion, the envelope it sent), then
// waits, up to its witness wait, for a witnessed checkpoint covering the
// entry, and proves the entry's inclusion in that one. Only that
// checkpoint becomes the trusted state.

// DefaultWitnessWait is how long Append waits, by default, for a
// witnessed checkpoint covering an entry the server answered with an
// unwitnessed one.
const DefaultWitnessWait = 10 * time.Second

// WithWitnessWait sets how long Append, AppendBatch and ExchangeToken,
// under a witness policy, wait for a witnessed checkpoint covering their
// entries when the server's answer carries one without the quorum
// (asynchronous witnessing); 0 or less: not at all. Default
// DefaultWitnessWait.
func WithWitnessWait(d time.Duration) Option {
	return func(cfg *config) { cfg.witnessWait = &d }
}

// UnwitnessedError is returned by Append, under a witness policy, when the
// entry is committed (Entry, verified under the log key) but no
// checkpoint covering it reached the policy's quorum within the witness
// wait. Entry's checkpoint is not trusted. Do not sign a new request to
// try again: fetch the entry later (Client.Entry, or Client.Delegation for
// an accepted delegation), or resubmit the same envelope, which returns
// it. Its reason code is proofs.ReasonWitnessUnavailable.
type UnwitnessedError struct {
	Entry *Entry
	err   *proofs.Error
}

func (e *UnwitnessedError) Error() string { return e.err.Error() }
func (e *UnwitnessedError) Unwrap() error { return e.err }

// Key returns what names the entry to Client.Entry or Client.Delegation
// (and `warrant get`): an accepted delegation's id, else its index.
func (e *UnwitnessedError) Key() string {
	l := e.Entry.Leaf
	if l.Delegation != nil && l.Decision != nil && l.Decision.Outcome == proofs.OutcomeAccepted {
		return l.Delegation.ID
	}
	return fmt.Sprint(e.Entry.Index)
}

// waitFailed reports whether err, from witnessedReceipt, means only that
// no witnessed checkpoint covering the entry came (in time): anything
// else (a fork, a bad proof) is reported as itself.
func waitFailed(err error) bool {
	switch proofs.Reason(err) {
	case "", proofs.ReasonWitnessQuorum, proofs.ReasonWitnessUnavailable, ReasonTransport, proofs.ReasonCanceled:
		return true
	}
	return false
}

func unwitnessed(e *Entry, wait time.Duration, cause error) *UnwitnessedError {
	what := "committed"
	if d := e.Leaf.Decision; d != nil {
		what = "committed, " + d.Outcome
	}
	return &UnwitnessedError{Entry: e, err: proofs.Errorf(proofs.ReasonWitnessUnavailable,
		"entry %d is %s (id %s); its checkpoint is not witnessed yet: no checkpoint covering it reached the witness policy's quorum within %s (%v); fetch the entry later rather than signing a new request",
		e.Index, what, e.ID, wait, cause)}
}

// openAnswer opens the checkpoint of an answer under the witness policy
// or, when it falls short of the quorum only, under the log key alone:
// witnessed reports which. An unwitnessed checkpoint must not be trusted
// (advance); it proves only what the log signed.
func (c *Client) openAnswer(signed []byte) (cp *proofs.Checkpoint, witnessed bool, err error) {
	cp, err = c.openCheckpoint(signed)
	if err == nil || c.witnesses == nil || proofs.Reason(err) != proofs.ReasonWitnessQuorum {
		return cp, err == nil, err
	}
	if cp, err = c.open(signed, c.logID, nil); err != nil {
		return nil, false, err
	}
	return cp, false, nil
}

// witnessedReceipt proves e, verified against a checkpoint without the
// quorum, against a witnessed checkpoint that covers it, waiting up to
// wait for one (0: the server's latest witnessed checkpoint only), and
// makes that checkpoint the trusted state. floor is the trusted size read
// before the request.
func (c *Client) witnessedReceipt(ctx context.Context, e *Entry, floor uint64, wait time.Duration) (*Entry, error) {
	cp, err := c.witnessedCovering(ctx, e.Index, wait)
	if err != nil {
		return nil, err
	}
	proof, err := c.inclusionIn(ctx, e.Index, e.Leaf.Raw, cp)
	if err != nil {
		return nil, err
	}
	if err := c.advance(ctx, cp, nil, floor); err != nil {
		return nil, err
	}
	out := *e
	out.Checkpoint, out.InclusionProof = cp, proof
	return &out, nil
}

// inclusionIn fetches the inclusion proof of entry index, whose leaf is
// leaf, in the tree of the (verified) checkpoint cp, and verifies it.
func (c *Client) inclusionIn(ctx context.Context, index uint64, leaf []byte, cp *proofs.Checkpoint) ([][]byte, error) {
	resp, err := c.rpc.GetInclusionProof(ctx, connect.NewRequest(&warrantv1.GetInclusionProofRequest{
		Key: &warrantv1.GetInclusionProofRequest_Index{Index: index}, TreeSize: cp.Size,
	}))
	if err != nil {
		return nil, rpcError(err)
	}
	if resp.Msg.GetIndex() != index || resp.Msg.GetTreeSize() != cp.Size {
		return nil, proofs.Errorf(ReasonMismatch, "asked for an inclusion proof of entry %d at size %d, got %d at %d", index, cp.Size, resp.Msg.GetIndex(), resp.Msg.GetTreeSize())
	}
	if err := proofs.VerifyInclusion(index, cp.Size, proofs.LeafHash(leaf), resp.Msg.GetHashes(), cp.Root); err != nil {
		return nil, fmt.Errorf("entry %d in the witnessed checkpoint: %w", index, err)
	}
	return resp.Msg.GetHashes(), nil
}

// batchProofs bounds the inclusion proofs witnessedBatch asks for at once.
const batchProofs = 8

// witnessedBatch proves the entries of a batch's results, verified against
// the answer's checkpoint without the quorum, against a witnessed
// checkpoint covering them all, waiting up to c.witnessWait for one, and
// makes that checkpoint the trusted state: each result's Entry is then
// proven against it. On failure the results are left as they were
// (verified under the log key only) and the error says why.
func (c *Client) witnessedBatch(ctx context.Context, out []BatchResult, floor uint64) error {
	var last *Entry
	for _, r := range out {
		if r.Entry != nil && (last == nil || r.Entry.Index > last.Index) {
			last = r.Entry
		}
	}
	if last == nil {
		return nil // nothing appended: no receipt to prove
	}
	cp, err := c.witnessedCovering(ctx, last.Index, c.witnessWait)
	if err != nil {
		return err
	}
	proven := make([][][]byte, len(out))
	errs := make([]error, len(out))
	sem := make(chan struct{}, batchProofs)
	var wg sync.WaitGroup
	for i, r := range out {
		if r.Entry == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			proven[i], errs[i] = c.inclusionIn(ctx, r.Entry.Index, r.Entry.Leaf.Raw, cp)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := c.advance(ctx, cp, nil, floor); err != nil {
		return err
	}
	for i := range out {
		if out[i].Entry == nil {
			continue
		}
		e := *out[i].Entry
		e.Checkpoint, e.InclusionProof = cp, proven[i]
		out[i].Entry = &e
	}
	return nil
}

// unwitnessedBatch is the error of AppendBatch when no witnessed
// checkpoint covering its entries came within wait.
func unwitnessedBatch(out []BatchResult, wait time.Duration, cause error) error {
	var first, last uint64
	n := 0
	for _, r := range out {
		if r.Entry == nil {
			continue
		}
		if n == 0 || r.Entry.Index < first {
			first = r.Entry.Index
		}
		last = max(last, r.Entry.Index)
		n++
	}
	return proofs.Errorf(proofs.ReasonWitnessUnavailable,
		"%d entries of the batch (indexes %d to %d) are committed, but their checkpoint is not witnessed yet: no checkpoint covering them reached the witness policy's quorum within %s (%v); the results are returned verified under the log key only: fetch the entries later (or resubmit the same envelopes, which returns them) rather than signing new requests",
		n, first, last, wait, cause)
}

// witnessedCovering returns a checkpoint satisfying the witness policy
// whose size is beyond index: the server's latest witnessed one (wait
// 0), or the first one its witnessed checkpoint feed brings within wait.
func (c *Client) witnessedCovering(ctx context.Context, index uint64, wait time.Duration) (*proofs.Checkpoint, error) {
	if wait <= 0 {
		resp, err := c.rpc.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{Witnessed: true}))
		if err != nil {
			return nil, rpcError(err)
		}
		cp, err := c.openCheckpoint(resp.Msg.GetCheckpoint())
		if err != nil {
			return nil, err
		}
		if cp.Size <= index {
			return nil, proofs.Errorf(proofs.ReasonWitnessQuorum, "the latest witnessed checkpoint (size %d) does not cover entry %d yet", cp.Size, index)
		}
		return cp, nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	last := fmt.Errorf("no witnessed checkpoint came")
	for {
		stream, err := c.rpc.WatchCheckpoints(wctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{FromSize: index + 1, Witnessed: true}))
		if err == nil {
			for stream.Receive() {
				cp, err := c.openCheckpoint(stream.Msg().GetCheckpoint())
				if err != nil {
					last = err // not (yet) witnessed: a later one may be
					continue
				}
				if cp.Size > index {
					stream.Close()
					return cp, nil
				}
			}
			err = stream.Err()
			stream.Close()
		}
		if err != nil && wctx.Err() == nil {
			last = rpcError(err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The feed ended (the server restarted, a proxy cut it): ask
		// again after a pause, until the wait is over.
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-wctx.Done():
			t.Stop()
			return nil, last
		case <-t.C:
		}
	}
}
