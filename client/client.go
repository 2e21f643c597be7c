// Package client is the Go SDK for a warrant ledger. It appends signed
// events and reads entries over Connect, and verifies everything it gets:
// every checkpoint's signature under the log's key, every entry's inclusion
// in its checkpoint, and the consistency of every new checkpoint with the
// one it already trusts (kept in a State). A server that rewrites history
// is caught: the client returns ErrFork or ErrRollback and leaves its
// trusted state untouched. Checkpoints, consistency proofs and the
// follower's entries can also come from the C2SP tlog-tiles API alone
// (tiles.go), which is what a static mirror of the log serves.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// Errors for a log that presents inconsistent views. Both leave the trusted
// state untouched; an auditor should keep the offending checkpoint (in the
// error's message) as evidence.
var (
	// ErrFork means the log presented a checkpoint that is not consistent
	// with the trusted one: same size with another root, or no valid
	// consistency proof between them.
	ErrFork = errors.New("fork detected: the log's checkpoint is inconsistent with the trusted one")
	// ErrRollback means the log's latest checkpoint is smaller than one it
	// signed before.
	ErrRollback = errors.New("rollback detected: the log's latest checkpoint is older than the trusted one")
)

// Reason codes of client-side failures (catalogued, with their meanings,
// in proofs/reasons.go).
const (
	ReasonFork         = proofs.ReasonForkDetected
	ReasonRollback     = proofs.ReasonRollbackDetected
	ReasonStateInvalid = proofs.ReasonTrustedStateInvalid
	ReasonMismatch     = proofs.ReasonResponseMismatch
	ReasonTransport    = proofs.ReasonUnavailable
	// ReasonResponseTooLarge: a response (a Connect message or a tlog-tiles
	// resource) is larger than the client reads, after decompression.
	ReasonResponseTooLarge = proofs.ReasonResponseTooLarge
)

// Client talks to one log. It is safe for concurrent use.
type Client struct {
	rpc        warrantv1connect.LedgerServiceClient
	copts      []connect.ClientOption
	httpClient connect.HTTPClient
	// tiles reads the same base URL's tlog-tiles API, which is all a static
	// mirror serves.
	tiles tilesSource
	// servers, if the client was given several URLs, are the log's nodes
	// it fails over between (servers.go); httpClient then does it.
	servers *servers
	// noConnect is set once a Connect call got an answer that is not the
	// Connect protocol (a file server's 404, a CDN's 501): from then on the
	// reads that tiles can answer go to tiles directly.
	noConnect atomic.Bool
	// dpopNonce is the latest DPoP-Nonce the server gave (token.go).
	dpopNonce atomic.Pointer[string]
	logKey    note.Verifier
	// witnesses, if set, is the witness policy every checkpoint the client
	// trusts must satisfy.
	witnesses *proofs.WitnessPolicy
	// witnessWait is how long Append waits for a witnessed checkpoint
	// covering its entry (witnessed.go).
	witnessWait time.Duration
	state       State
	// verified remembers checkpoint notes whose signatures verified: many
	// answers carry the same checkpoint, and its bytes need checking once.
	verified *CheckpointCache
	// verifierID names logKey and the witness policy in verified's keys;
	// logID names logKey alone, for the trusted state.
	verifierID, logID string
}

// CheckpointCache remembers the last checkpoint notes that verified, keyed
// by the exact note bytes and the verifier key, so that a note is checked
// once however many answers carry it. Each Client has its own unless given
// one with WithCheckpointCache; Clients of one process that follow the same
// log (a gateway, a load generator) can share one. It is safe for
// concurrent use.
type CheckpointCache struct {
	mu   sync.Mutex
	m    map[string]*proofs.Checkpoint
	ring []string
	next int
}

// NewCheckpointCache returns a cache of the last n notes (at least 1).
func NewCheckpointCache(n int) *CheckpointCache {
	return &CheckpointCache{m: make(map[string]*proofs.Checkpoint, max(n, 1)), ring: make([]string, max(n, 1))}
}

// openCheckpoint is proofs.OpenWitnessedCheckpoint for the client's log
// key and witness policy, verifying each distinct note once.
func (c *Client) openCheckpoint(signed []byte) (*proofs.Checkpoint, error) {
	return c.open(signed, c.verifierID, c.witnesses)
}

// openTrusted opens the trusted state: a checkpoint the client trusted
// before, which needs the log's signature only (it was trusted under the
// policy in force then, and a newer one must be consistent with it).
func (c *Client) openTrusted(signed []byte) (*proofs.Checkpoint, error) {
	return c.open(signed, c.logID, nil)
}

func (c *Client) open(signed []byte, id string, witnesses *proofs.WitnessPolicy) (*proofs.Checkpoint, error) {
	vc := c.verified
	// The key names the verifier too: a shared cache may serve clients of
	// different logs or policies, and a note verified for one says nothing
	// to another.
	key := id + string(signed)
	vc.mu.Lock()
	cp := vc.m[key]
	vc.mu.Unlock()
	if cp != nil {
		return cp, nil
	}
	cp, err := proofs.OpenWitnessedCheckpoint(signed, c.logKey, witnesses)
	if err != nil {
		return nil, err
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if _, ok := vc.m[key]; ok {
		return cp, nil // another caller verified it meanwhile
	}
	delete(vc.m, vc.ring[vc.next])
	vc.ring[vc.next] = key
	vc.next = (vc.next + 1) % len(vc.ring)
	vc.m[key] = cp
	return cp, nil
}

type config struct {
	httpClient connect.HTTPClient
	state      State
	opts       []connect.ClientOption
	retry      *retryPolicy // nil: the defaults (retry.go)
	verified   *CheckpointCache
	witnesses  *proofs.WitnessPolicy
	// witnessWait: nil is DefaultWitnessWait (witnessed.go).
	witnessWait *time.Duration
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient sets the HTTP client (default: one with a 60 s timeout).
func WithHTTPClient(c connect.HTTPClient) Option { return func(cfg *config) { cfg.httpClient = c } }

// WithState sets where the trusted checkpoint is kept (default: in memory,
// for the life of the Client).
func WithState(s State) Option { return func(cfg *config) { cfg.state = s } }

// WithWitnessPolicy makes the client trust only checkpoints whose
// cosignatures satisfy p (C2SP tlog-policy, parsed for this log by
// proofs.ParseWitnessPolicy): a checkpoint without the quorum is refused
// with reason proofs.ReasonWitnessQuorum, whatever call brought it, and
// the trusted state is left untouched. Cosignatures by keys the policy
// does not name are ignored. A server that answers appends before its
// witnesses have cosigned (asynchronous witnessing) has its answer checked
// under the log key, and Append then waits (WithWitnessWait) for a
// witnessed checkpoint covering the entry and returns the entry proven
// against that one; if none comes in time, Append returns an
// *UnwitnessedError: the entry is in the log all the same, and Entry (or
// Delegation) returns it once a witnessed checkpoint covers it. AppendBatch
// and ExchangeToken wait the same way for their entries. Reads
// answered with an unwitnessed checkpoint are proven against the server's
// latest witnessed one the same way, without waiting.
func WithWitnessPolicy(p *proofs.WitnessPolicy) Option {
	return func(cfg *config) { cfg.witnesses = p }
}

// WithCheckpointCache shares a cache of verified checkpoint notes with other
// Clients (default: a cache of 16 notes per Client).
func WithCheckpointCache(c *CheckpointCache) Option {
	return func(cfg *config) { cfg.verified = c }
}

// WithGRPC makes the client speak gRPC instead of the Connect protocol (the
// server must be reachable over HTTP/2).
func WithGRPC() Option {
	return func(cfg *config) { cfg.opts = append(cfg.opts, connect.WithGRPC()) }
}

// MaxResponseBytes bounds a response the client reads.
const MaxResponseBytes = 16 << 20

// New returns a client for the log at baseURL (for example
// "http://127.0.0.1:8750") whose checkpoints verify under logKey.
//
// baseURL may list the nodes of one log run as a cluster, separated by
// commas ("https://a:8750,https://b:8750,https://c:8750"): the client
// then sends each request to the node that answered last and fails over
// to the others when it cannot reach it or is refused with a retryable
// error (servers.go), keeping one trusted state for the log. Its retry
// policy then defaults to DefaultClusterRetryAttempts, enough to ride out
// an election.
func New(baseURL string, logKey note.Verifier, opts ...Option) *Client {
	cfg := &config{}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = &http.Client{Timeout: 60 * time.Second}
	}
	list := SplitServers(baseURL)
	srv := newServers(list)
	if len(list) > 0 {
		baseURL = list[0]
	}
	if srv != nil {
		cfg.httpClient = &failover{hc: cfg.httpClient, s: srv}
		if cfg.retry == nil {
			cfg.retry = &retryPolicy{attempts: DefaultClusterRetryAttempts, base: DefaultRetryBackoff}
		}
	}
	if cfg.state == nil {
		cfg.state = &MemoryState{}
	}
	if cfg.verified == nil {
		cfg.verified = NewCheckpointCache(16)
	}
	copts := append([]connect.ClientOption{connect.WithReadMaxBytes(MaxResponseBytes), boundedGzip()}, cfg.opts...)
	if cfg.retry == nil {
		cfg.retry = &retryPolicy{attempts: DefaultRetryAttempts, base: DefaultRetryBackoff}
	}
	copts = append(copts, connect.WithInterceptors(retryInterceptor(*cfg.retry)))
	var verifierID, logID string
	if logKey != nil {
		logID = fmt.Sprintf("%s+%08x\n", logKey.Name(), logKey.KeyHash())
		verifierID = logID
		if cfg.witnesses != nil {
			verifierID = fmt.Sprintf("%s+%08x witnesses %s\n", logKey.Name(), logKey.KeyHash(), cfg.witnesses.Digest())
		}
	}
	witnessWait := DefaultWitnessWait
	if cfg.witnessWait != nil {
		witnessWait = *cfg.witnessWait
	}
	c := &Client{
		copts:       copts,
		witnessWait: witnessWait,
		rpc:         warrantv1connect.NewLedgerServiceClient(cfg.httpClient, baseURL, copts...),
		httpClient:  cfg.httpClient,
		logKey:      logKey,
		witnesses:   cfg.witnesses,
		servers:     srv,
		state:       cfg.state,
		verified:    cfg.verified,
		verifierID:  verifierID,
		logID:       logID,
	}
	c.tiles = c.tilesAt(baseURL)
	if logKey != nil {
		c.checkIdentity(srv, baseURL)
	}
	return c
}

// Entry is a log entry the client has verified: its leaf is well-formed and
// included in Checkpoint, and Checkpoint is consistent with the trusted
// state.
type Entry struct {
	Index          uint64
	ID             string
	Leaf           *proofs.ParsedLeaf
	Checkpoint     *proofs.Checkpoint
	InclusionProof [][]byte
	// Duplicate is set by Append when the envelope was appended before.
	Duplicate bool
	// Status is the server's account of an accepted delegation's effective
	// status (Entry and Delegation only). It is not proven: only the whole
	// log shows that no revocation followed.
	Status *warrantv1.DelegationStatus
}

// TLogProof returns the entry as a C2SP tlog-proof whose extra data is the
// leaf, verifiable offline with the log key alone.
func (e *Entry) TLogProof() ([]byte, error) {
	p, err := proofs.NewTLogProof(e.Index, e.Leaf.Raw, e.InclusionProof, e.Checkpoint.Note)
	if err != nil {
		return nil, err
	}
	return p.Marshal(), nil
}

// DeniedError is returned by Append when the log recorded the event as a
// denial. Entry is the verified denial entry.
type DeniedError struct {
	Entry   *Entry
	Reasons []string
}

func (e *DeniedError) Error() string {
	if e.Entry.Duplicate {
		return fmt.Sprintf("denied (recorded at index %d): %v; %s", e.Entry.Index, e.Reasons, ResubmittedHint)
	}
	return fmt.Sprintf("denied (recorded at index %d): %v", e.Entry.Index, e.Reasons)
}

// ResubmittedHint explains the answer to a signed request the log decided
// before: the log deduplicates on what the issuer signed, so the same
// payload, even with new signatures (a late approval), gets the first
// decision again.
const ResubmittedHint = "this signed request was decided before, and resubmitting it (even with new signatures, such as a late approval) returns that decision: sign a new request (a new nonce) to try again"

// holds reports whether stored, the envelope of the entry the log answered
// with, is the answer to sent. The log stores the envelope canonicalised
// (standard base64, key ids filled in, signatures sorted, ECDSA signatures
// low-S), so the comparison is of what was signed and of the signatures. A duplicate
// is the original entry of the same signed payload, whatever signatures it
// carries.
func holds(stored, sent *proofs.Envelope, duplicate bool) bool {
	if stored == nil || !proofs.SamePayload(stored, sent) {
		return false
	}
	if duplicate {
		return true
	}
	if len(stored.Signatures) != len(sent.Signatures) {
		return false
	}
	for _, s := range sent.Signatures {
		if !slices.ContainsFunc(stored.Signatures, func(t proofs.Signature) bool { return proofs.SameSignature(t.Sig, s.Sig) }) {
			return false
		}
	}
	return true
}

// Append submits a signed envelope (DSSE JSON) and returns the verified
// entry. The envelope is canonicalised locally first: the returned leaf must
// hold exactly its canonical form. A denial returns *DeniedError.
func (c *Client) Append(ctx context.Context, envelope []byte) (*Entry, error) {
	env, err := proofs.ParseDSSE(envelope)
	if err != nil {
		return nil, err
	}
	floor, err := c.trustedSize()
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{Envelope: envelope, TrustedSize: floor}))
	var denied *warrantv1.AppendResponse
	if err != nil {
		if denied = deniedResponse(err); denied == nil {
			return nil, rpcError(err)
		}
	} else {
		denied = nil
	}
	msg := denied
	if msg == nil {
		msg = resp.Msg
	}
	pe := msg.GetEntry()
	if pe == nil {
		return nil, proofs.Errorf(ReasonMismatch, "the answer carries no entry")
	}
	// Under a witness policy the answer's checkpoint may lack the quorum
	// (asynchronous witnessing): it is checked under the log key, and the
	// receipt is then proven against a witnessed one (witnessed.go).
	cp, witnessed, err := c.openAnswer(pe.GetCheckpoint())
	if err != nil {
		return nil, err
	}
	e, err := verifyProven(pe, cp)
	if err != nil {
		return nil, err
	}
	e.Duplicate = msg.GetDuplicate()
	if !holds(e.Leaf.Env, env, e.Duplicate) {
		return nil, proofs.Errorf(ReasonMismatch, "the log answered with entry %d, which does not hold the submitted envelope", e.Index)
	}
	if denied != nil {
		if e.Leaf.Decision == nil || e.Leaf.Decision.Outcome != proofs.OutcomeDenied {
			return nil, proofs.Errorf(ReasonMismatch, "the log refused the request but entry %d is not a denial", e.Index)
		}
	} else if e.Leaf.Decision != nil && e.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		return nil, proofs.Errorf(ReasonMismatch, "the log reported success but entry %d is a denial", e.Index)
	}
	if witnessed {
		if err := c.advance(ctx, cp, msg.GetConsistencyProof(), floor); err != nil {
			return nil, err
		}
	} else {
		we, err := c.witnessedReceipt(ctx, e, floor, c.witnessWait)
		if err != nil {
			if waitFailed(err) {
				return nil, unwitnessed(e, c.witnessWait, err)
			}
			return nil, err
		}
		e = we
	}
	if denied != nil {
		return e, &DeniedError{Entry: e, Reasons: e.Leaf.Decision.Reasons}
	}
	return e, nil
}

// deniedResponse extracts the AppendResponse of a PermissionDenied error.
func deniedResponse(err error) *warrantv1.AppendResponse {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied {
		return nil
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if r, ok := v.(*warrantv1.AppendResponse); ok {
			return r
		}
	}
	return nil
}

// rpcError turns a Connect error into a *proofs.Error with the server's
// reason code; the Connect error stays in the chain (connect.CodeOf works).
func rpcError(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return &proofs.Error{Reason: ReasonTransport, Err: err}
	}
	reason := ""
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if ed, ok := v.(*warrantv1.ErrorDetail); ok {
				reason = ed.GetReason()
				break
			}
		}
	}
	if reason == "" && ce.Code() == connect.CodeResourceExhausted && !connect.IsWireError(err) {
		// The client's own read limit (MaxResponseBytes), compressed or not.
		reason = ReasonResponseTooLarge
	}
	if reason == "" {
		reason = ce.Code().String()
		if ce.Code() == connect.CodeUnavailable || ce.Code() == connect.CodeUnknown {
			reason = ReasonTransport
		}
	}
	return &proofs.Error{Reason: reason, Err: serverError{ce}}
}

// serverError is a Connect error whose text is the server's message alone
// (the reason code is already in the *proofs.Error around it).
type serverError struct{ ce *connect.Error }

func (e serverError) Error() string { return e.ce.Message() }
func (e serverError) Unwrap() error { return e.ce }

// Entry fetches and verifies the entry at index.
func (c *Client) Entry(ctx context.Context, index uint64) (*Entry, error) {
	return c.getEntry(ctx, &warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_Index{Index: index}})
}

// Delegation fetches and verifies the accepted delegation with id.
func (c *Client) Delegation(ctx context.Context, id string) (*Entry, error) {
	e, err := c.getEntry(ctx, &warrantv1.GetEntryRequest{Key: &warrantv1.GetEntryRequest_DelegationId{DelegationId: id}})
	if err != nil {
		return nil, err
	}
	if e.Leaf.Delegation == nil || e.Leaf.Delegation.ID != id || e.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
		return nil, proofs.Errorf(ReasonMismatch, "asked for the accepted delegation %q, got entry %d (%s, %s)", id, e.Index, e.ID, e.Leaf.Kind)
	}
	return e, nil
}

func (c *Client) getEntry(ctx context.Context, req *warrantv1.GetEntryRequest) (*Entry, error) {
	floor, err := c.trustedSize()
	if err != nil {
		return nil, err
	}
	req.TrustedSize = floor
	resp, err := c.rpc.GetEntry(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, rpcError(err)
	}
	e, err := c.verifyEntry(ctx, resp.Msg.GetEntry(), resp.Msg.GetConsistencyProof(), floor)
	if err != nil {
		return nil, err
	}
	e.Status = resp.Msg.GetStatus()
	if k, ok := req.Key.(*warrantv1.GetEntryRequest_Index); ok && e.Index != k.Index {
		return nil, proofs.Errorf(ReasonMismatch, "asked for entry %d, got %d", k.Index, e.Index)
	}
	return e, nil
}

// Entries fetches and verifies up to count entries from start. The whole
// range is checked at once against the checkpoint root.
func (c *Client) Entries(ctx context.Context, start uint64, count uint32) ([]*proofs.ParsedLeaf, *proofs.Checkpoint, error) {
	floor, err := c.trustedSize()
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.rpc.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: start, Count: count, TrustedSize: floor}))
	if err != nil {
		return nil, nil, rpcError(err)
	}
	m := resp.Msg
	if m.GetStart() != start || len(m.GetLeaves()) == 0 || len(m.GetLeaves()) > int(count) {
		return nil, nil, proofs.Errorf(ReasonMismatch, "asked for %d entries from %d, got %d from %d", count, start, len(m.GetLeaves()), m.GetStart())
	}
	cp, err := c.openCheckpoint(m.GetCheckpoint())
	if err != nil {
		return nil, nil, err
	}
	hashes := make([][]byte, len(m.GetLeaves()))
	for i, l := range m.GetLeaves() {
		hashes[i] = proofs.LeafHash(l)
	}
	if err := proofs.VerifyRange(start, hashes, cp.Size, m.GetLeftHashes(), m.GetRightHashes(), cp.Root); err != nil {
		return nil, nil, err
	}
	leaves := make([]*proofs.ParsedLeaf, len(m.GetLeaves()))
	for i, l := range m.GetLeaves() {
		if leaves[i], err = proofs.ParseLeaf(l); err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", start+uint64(i), err)
		}
	}
	if err := c.advance(ctx, cp, m.GetConsistencyProof(), floor); err != nil {
		return nil, nil, err
	}
	return leaves, cp, nil
}

// Checkpoint fetches the latest checkpoint, verifies it and its consistency
// with the trusted state, and makes it the trusted state. From a static
// tlog-tiles mirror it reads GET /checkpoint and proves consistency from
// the hash tiles.
func (c *Client) Checkpoint(ctx context.Context) (*proofs.Checkpoint, error) {
	floor, err := c.trustedSize()
	if err != nil {
		return nil, err
	}
	signed, proof, err := c.latest(ctx, floor)
	if err != nil {
		return nil, err
	}
	cp, err := c.openCheckpoint(signed)
	if err != nil {
		return nil, err
	}
	if err := c.advance(ctx, cp, proof, floor); err != nil {
		return nil, err
	}
	return cp, nil
}

// latest returns the log's latest signed checkpoint (unverified) and, from
// a live server, a consistency proof from size floor to it; from a mirror
// the proof is nil and callers compute it (consistencyProof).
func (c *Client) latest(ctx context.Context, floor uint64) ([]byte, [][]byte, error) {
	if !c.noConnect.Load() {
		resp, err := c.rpc.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{TrustedSize: floor, Witnessed: c.witnesses != nil}))
		if err == nil {
			return resp.Msg.GetCheckpoint(), resp.Msg.GetConsistencyProof(), nil
		}
		if !c.connectMissing(err) {
			return nil, nil, rpcError(err)
		}
	}
	signed, err := c.tiles.checkpoint(ctx)
	return signed, nil, err
}

// connectMissing reports whether err says that the server does not speak
// the Connect API at all (a static mirror or a CDN in front of one): a 404
// or Unimplemented, or an answer that is not the Connect protocol (wrong
// content type, a non-JSON error body with any status but 429 and 5xx
// gateway errors, which say "not now"). It remembers the answer, so later
// reads go to the tiles first.
func (c *Client) connectMissing(err error) bool {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return false
	}
	missing := false
	switch ce.Code() {
	case connect.CodeUnimplemented:
		missing = true
	case connect.CodeUnknown, connect.CodeInternal, connect.CodePermissionDenied:
		// A Connect server's own errors carry a JSON body; these codes
		// without one come from the HTTP status of something else.
		missing = !connect.IsWireError(err)
	}
	if missing {
		c.noConnect.Store(true)
	}
	return missing
}

// Trusted returns the trusted checkpoint, or nil if there is none yet.
func (c *Client) Trusted() (*proofs.Checkpoint, error) {
	cur, err := c.state.Load()
	if err != nil || cur == nil {
		return nil, err
	}
	cp, err := c.openTrusted(cur)
	if err != nil {
		return nil, &proofs.Error{Reason: ReasonStateInvalid, Err: fmt.Errorf("the trusted state does not verify under the log key: %w", err)}
	}
	return cp, nil
}

func (c *Client) trustedSize() (uint64, error) {
	cp, err := c.Trusted()
	if err != nil || cp == nil {
		return 0, err
	}
	return cp.Size, nil
}

// verifyEntry checks a ProvenEntry: checkpoint signature, leaf format,
// inclusion, id; then advances the trusted state. Under a witness policy,
// an entry whose checkpoint lacks the quorum is proven against the
// server's latest witnessed checkpoint instead, if that covers it.
func (c *Client) verifyEntry(ctx context.Context, pe *warrantv1.ProvenEntry, consistency [][]byte, floor uint64) (*Entry, error) {
	if pe == nil {
		return nil, proofs.Errorf(ReasonMismatch, "the answer carries no entry")
	}
	cp, witnessed, err := c.openAnswer(pe.GetCheckpoint())
	if err != nil {
		return nil, err
	}
	e, err := verifyProven(pe, cp)
	if err != nil {
		return nil, err
	}
	if !witnessed {
		// A busy log under asynchronous witnessing: prove the entry
		// against its latest witnessed checkpoint instead, if that
		// covers it.
		return c.witnessedReceipt(ctx, e, floor, 0)
	}
	if err := c.advance(ctx, cp, consistency, floor); err != nil {
		return nil, err
	}
	return e, nil
}

// verifyProven checks a ProvenEntry against an already verified checkpoint
// (which must be the one the entry names).
func verifyProven(pe *warrantv1.ProvenEntry, cp *proofs.Checkpoint) (*Entry, error) {
	if !bytes.Equal(pe.GetCheckpoint(), cp.Note) {
		return nil, proofs.Errorf(ReasonMismatch, "entry %d is proven against another checkpoint", pe.GetIndex())
	}
	if err := proofs.VerifyInclusion(pe.GetIndex(), cp.Size, proofs.LeafHash(pe.GetLeaf()), pe.GetInclusionProof(), cp.Root); err != nil {
		return nil, err
	}
	leaf, err := proofs.ParseLeaf(pe.GetLeaf())
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", pe.GetIndex(), err)
	}
	if leaf.ID() != pe.GetId() {
		return nil, proofs.Errorf(ReasonMismatch, "entry %d: the log says id %q, the leaf says %q", pe.GetIndex(), pe.GetId(), leaf.ID())
	}
	return &Entry{Index: pe.GetIndex(), ID: leaf.ID(), Leaf: leaf, Checkpoint: cp, InclusionProof: pe.GetInclusionProof()}, nil
}

// BatchResult is the verified answer to one envelope of AppendBatch.
type BatchResult struct {
	// Entry is set when the envelope is in the log (accepted, denied, or
	// appended before: Entry.Duplicate).
	Entry *Entry
	// Denied is set when Entry records a denial.
	Denied bool
	// Err is set when nothing was appended; its reason code is the server's.
	Err error
}

// AppendBatch submits up to 256 envelopes in one request (for gateways) and
// verifies every answer against the one returned checkpoint, which must be
// consistent with the trusted state. A refusal of one envelope is reported
// in its BatchResult; the error return is for the request as a whole.
//
// Under a witness policy, an answer whose checkpoint lacks the quorum
// (asynchronous witnessing) is verified under the log key, and the entries
// are then proven against a witnessed checkpoint covering them all, as
// Append does (WithWitnessWait): every returned Entry's checkpoint then
// satisfies the policy. When none comes within the wait, the results are
// returned verified under the log key only, with an error of reason
// proofs.ReasonWitnessUnavailable: the entries are in the log all the same.
func (c *Client) AppendBatch(ctx context.Context, envelopes [][]byte) ([]BatchResult, error) {
	sent := make([]*proofs.Envelope, len(envelopes))
	for i, e := range envelopes {
		env, err := proofs.ParseDSSE(e)
		if err != nil {
			return nil, fmt.Errorf("envelope %d: %w", i, err)
		}
		sent[i] = env
	}
	floor, err := c.trustedSize()
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{Envelopes: envelopes, TrustedSize: floor}))
	if err != nil {
		return nil, rpcError(err)
	}
	m := resp.Msg
	if len(m.GetResults()) != len(envelopes) {
		return nil, proofs.Errorf(ReasonMismatch, "sent %d envelopes, got %d answers", len(envelopes), len(m.GetResults()))
	}
	// Under a witness policy the checkpoint may lack the quorum
	// (asynchronous witnessing): the entries are checked against it under
	// the log key, then proven against a witnessed one (witnessed.go).
	cp, witnessed, err := c.openAnswer(m.GetCheckpoint())
	if err != nil {
		return nil, err
	}
	out := make([]BatchResult, len(envelopes))
	for i, r := range m.GetResults() {
		if r.GetEntry() == nil {
			if r.GetCode() == "" {
				return nil, proofs.Errorf(ReasonMismatch, "answer %d has neither an entry nor an error", i)
			}
			out[i].Err = &proofs.Error{Reason: r.GetReason(), Err: fmt.Errorf("%s: %s", r.GetCode(), r.GetMessage())}
			continue
		}
		e, err := verifyProven(r.GetEntry(), cp)
		if err != nil {
			return nil, fmt.Errorf("answer %d: %w", i, err)
		}
		if !holds(e.Leaf.Env, sent[i], r.GetDuplicate()) {
			return nil, proofs.Errorf(ReasonMismatch, "answer %d is entry %d, which does not hold envelope %d", i, e.Index, i)
		}
		denied := e.Leaf.Decision != nil && e.Leaf.Decision.Outcome == proofs.OutcomeDenied
		if denied != r.GetDenied() {
			return nil, proofs.Errorf(ReasonMismatch, "answer %d misreports entry %d's decision", i, e.Index)
		}
		e.Duplicate = r.GetDuplicate()
		out[i] = BatchResult{Entry: e, Denied: denied}
	}
	if !witnessed {
		if err := c.witnessedBatch(ctx, out, floor); err != nil {
			if waitFailed(err) {
				return out, unwitnessedBatch(out, c.witnessWait, err)
			}
			return nil, err
		}
		return out, nil
	}
	if err := c.advance(ctx, cp, m.GetConsistencyProof(), floor); err != nil {
		return nil, err
	}
	return out, nil
}

// advance checks cp against the trusted state and moves the state forward.
// floor is the trusted size read before the request: the server's answer
// must not be older than that (rollback). Within the state's lock the
// state may have moved on (another process); then cp only has to be
// consistent with it. proof is a consistency proof from floor to cp.Size
// supplied with the answer; others are fetched as needed.
func (c *Client) advance(ctx context.Context, cp *proofs.Checkpoint, proof [][]byte, floor uint64) error {
	if c.witnesses != nil {
		// Whatever brought cp, it is trusted only with its quorum.
		if _, err := c.openCheckpoint(cp.Note); err != nil {
			return err
		}
	}
	if cp.Size < floor {
		return &proofs.Error{Reason: ReasonRollback, Err: fmt.Errorf("%w: got size %d, trusted size %d", ErrRollback, cp.Size, floor)}
	}
	return c.state.Update(func(cur []byte) ([]byte, error) {
		if cur == nil {
			return cp.Note, nil // trust on first use
		}
		old, err := c.openTrusted(cur)
		if err != nil {
			return nil, &proofs.Error{Reason: ReasonStateInvalid, Err: fmt.Errorf("the trusted state does not verify under the log key: %w", err)}
		}
		switch {
		case cp.Size == old.Size:
			if !bytes.Equal(cp.Root, old.Root) {
				return nil, forkError(old, cp, errors.New("same size, different roots"))
			}
			return nil, nil
		case cp.Size > old.Size:
			p := proof
			if old.Size != floor || p == nil {
				if p, err = c.consistencyProof(ctx, old.Size, cp); err != nil {
					return nil, err
				}
			}
			if err := proofs.VerifyConsistency(old.Size, cp.Size, p, old.Root, cp.Root); err != nil {
				return nil, forkError(old, cp, err)
			}
			return cp.Note, nil
		default:
			// Another user of the state has seen a newer checkpoint; this
			// one must be a prefix of it.
			p, err := c.consistencyProof(ctx, cp.Size, old)
			if err != nil {
				return nil, err
			}
			if err := proofs.VerifyConsistency(cp.Size, old.Size, p, cp.Root, old.Root); err != nil {
				return nil, forkError(cp, old, err)
			}
			return nil, nil
		}
	})
}

func forkError(older, newer *proofs.Checkpoint, err error) error {
	return &proofs.Error{Reason: ReasonFork, Err: fmt.Errorf("%w: trusted %d/%x, got %d/%x: %v", ErrFork, older.Size, older.Root, newer.Size, newer.Root, err)}
}

// consistencyProof fetches a consistency proof from size from to the
// (verified) checkpoint to, over Connect or, from a mirror, computed from
// the hash tiles. The caller verifies it.
func (c *Client) consistencyProof(ctx context.Context, from uint64, cp *proofs.Checkpoint) ([][]byte, error) {
	to := cp.Size
	if from == 0 || from == to {
		return nil, nil
	}
	if c.noConnect.Load() {
		return c.tiles.consistency(ctx, from, cp)
	}
	resp, err := c.rpc.GetConsistencyProof(ctx, connect.NewRequest(&warrantv1.GetConsistencyProofRequest{FromSize: from, ToSize: to}))
	if err != nil {
		if c.connectMissing(err) {
			return c.tiles.consistency(ctx, from, cp)
		}
		return nil, rpcError(err)
	}
	if resp.Msg.GetFromSize() != from || resp.Msg.GetToSize() != to {
		return nil, proofs.Errorf(ReasonMismatch, "asked for a consistency proof %d->%d, got %d->%d", from, to, resp.Msg.GetFromSize(), resp.Msg.GetToSize())
	}
	return resp.Msg.GetHashes(), nil
}
