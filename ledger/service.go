package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// MaxRequestBytes bounds an RPC request message: one envelope at its
// maximum size, base64-encoded in the Connect JSON codec, with room to spare.
// Larger requests are refused by the transport with ResourceExhausted.
const MaxRequestBytes = 64 << 10

// MaxBatchEnvelopes bounds one AppendBatch, and MaxBatchRequestBytes its
// request message.
const (
	MaxBatchEnvelopes    = 256
	MaxBatchRequestBytes = MaxBatchEnvelopes*MaxRequestBytes + 64<<10
)

// NewHandler serves the log on one handler: the Connect, gRPC and gRPC-Web
// LedgerService, gRPC health and reflection, and the C2SP tlog-tiles read
// API (GET /checkpoint, /tile/...), and the web explorer at /ui/ (with CORS
// for Options.UICORSOrigins: explorer.go). opts are added to the LedgerService
// handlers (e.g. connect.WithInterceptors for tracing).
func NewHandler(l *Log, opts ...connect.HandlerOption) http.Handler {
	mux := http.NewServeMux()
	svc := &service{log: l}
	// Small answers (receipts, proofs) are not worth compressing: gzip would
	// cost more CPU than the bytes it saves on the wire.
	compress := connect.WithCompressMinBytes(16 << 10)
	extra := connect.WithHandlerOptions(opts...)
	// Compressed requests inflate no further than their limit (decompress.go).
	inflated := l.opts.Metrics.addInflated
	path, h := warrantv1connect.NewLedgerServiceHandler(svc, connect.WithReadMaxBytes(MaxRequestBytes),
		withBoundedGzip(MaxRequestBytes, inflated), compress, extra)
	mux.Handle(path, h)
	// A peer whose budget is spent is refused before its append is read
	// (floodguard.go).
	mux.Handle(warrantv1connect.LedgerServiceAppendProcedure, l.refuseEarly(h))
	// AppendBatch alone may carry up to MaxBatchEnvelopes envelopes.
	_, hb := warrantv1connect.NewLedgerServiceHandler(svc, connect.WithReadMaxBytes(MaxBatchRequestBytes),
		withBoundedGzip(MaxBatchRequestBytes, inflated), compress, extra)
	mux.Handle(warrantv1connect.LedgerServiceAppendBatchProcedure, l.refuseEarly(hb))
	// ExchangeToken's DPoP htu is its URL under the issuer.
	mux.Handle(warrantv1connect.LedgerServiceExchangeTokenProcedure, l.withIssuer(h))
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(warrantv1connect.LedgerServiceName)))
	reflector := grpcreflect.NewStaticReflector(warrantv1connect.LedgerServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	registerTiles(mux, l)
	registerOAuth(mux, l)
	registerExplorer(mux)
	registerCluster(mux, l) // distributed mode only (distributed.go)
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(l.Checkpoint().Note)
	})
	// The witnesses' state (witness.go), for `warrant checkpoint
	// --witnesses`; 404 without a witness policy.
	mux.HandleFunc("GET /witnesses", func(w http.ResponseWriter, r *http.Request) {
		st := l.Witnesses()
		if st == nil {
			http.Error(w, "this log has no witness policy", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(st)
	})
	if len(l.opts.UICORSOrigins) > 0 {
		return withCORS(l.opts.UICORSOrigins, mux)
	}
	return mux
}

// service implements warrantv1connect.LedgerServiceHandler over a Log.
type service struct {
	log *Log
}

func (s *service) Append(ctx context.Context, req *connect.Request[warrantv1.AppendRequest]) (*connect.Response[warrantv1.AppendResponse], error) {
	a, err := s.log.appendFrom(ctx, req.Peer().Addr, req.Msg.GetEnvelope())
	if err != nil {
		return nil, connectError(err)
	}
	resp := &warrantv1.AppendResponse{Duplicate: a.Duplicate}
	if resp.Entry, err = s.appendedEntry(ctx, a, a.Checkpoint); err != nil {
		return nil, connectError(err)
	}
	if resp.ConsistencyProof, err = s.consistency(ctx, req.Msg.GetTrustedSize(), a.Checkpoint, a.nodes); err != nil {
		return nil, connectError(err)
	}
	if a.Decision != nil && a.Decision.Outcome == proofs.OutcomeDenied {
		cerr := connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("delegation denied (entry %d): %s", a.Index, strings.Join(a.Decision.Reasons, ", ")))
		addDetail(cerr, &warrantv1.ErrorDetail{Reason: a.Decision.Reasons[0]})
		addDetail(cerr, resp)
		return nil, cerr
	}
	return connect.NewResponse(resp), nil
}

func (s *service) AppendBatch(ctx context.Context, req *connect.Request[warrantv1.AppendBatchRequest]) (*connect.Response[warrantv1.AppendBatchResponse], error) {
	envs := req.Msg.GetEnvelopes()
	if len(envs) == 0 || len(envs) > MaxBatchEnvelopes {
		return nil, connectError(proofs.Errorf(proofs.ReasonListTooLong, "a batch holds 1 to %d envelopes, not %d", MaxBatchEnvelopes, len(envs)))
	}
	// The stateless stage runs concurrently, spreading signature checks over
	// the cores; the sequencer then takes the batch in (most likely) one
	// group commit (batch.go).
	appended, errs := s.log.appendBatch(ctx, req.Peer().Addr, envs)
	cp := s.log.Checkpoint() // covers every entry appended above
	if s.log.opts.WitnessMode == WitnessSync {
		// Each entry appended was answered with a witnessed checkpoint
		// covering it; the latest witnessed one covers them all.
		if w := s.log.Cosigned(); w != nil {
			cp = w
		}
	}
	resp := &warrantv1.AppendBatchResponse{Results: make([]*warrantv1.AppendResult, len(envs)), Checkpoint: cp.Note}
	for i, a := range appended {
		r := &warrantv1.AppendResult{}
		resp.Results[i] = r
		if errs[i] != nil {
			var ce *connect.Error
			errors.As(connectError(errs[i]), &ce)
			r.Code, r.Reason, r.Message = ce.Code().String(), proofs.Reason(errs[i]), ce.Message()
			continue
		}
		pe, err := s.appendedEntry(ctx, a, cp)
		if err != nil {
			return nil, connectError(err)
		}
		r.Entry, r.Duplicate = pe, a.Duplicate
		r.Denied = a.Decision != nil && a.Decision.Outcome == proofs.OutcomeDenied
	}
	var nodes *batchNodes // of the batch that cp ends, if one of these did
	for _, a := range appended {
		if a != nil && a.nodes.proves(cp) {
			nodes = a.nodes
			break
		}
	}
	var err error
	if resp.ConsistencyProof, err = s.consistency(ctx, req.Msg.GetTrustedSize(), cp, nodes); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

// ExchangeToken is POST /oauth2/token as an RPC (oauth.go): the same
// checks and the same exchange, the proof from the DPoP header (or the
// request's dpop field) for the RPC's URL, errors as Connect codes whose
// message starts with the OAuth error.
func (s *service) ExchangeToken(ctx context.Context, req *connect.Request[warrantv1.ExchangeTokenRequest]) (*connect.Response[warrantv1.ExchangeTokenResponse], error) {
	l := s.log
	if l.tokens == nil {
		return nil, connectError(proofs.Errorf(proofs.ReasonTokenRequestInvalid, "invalid_request: this log issues no access tokens (serve --tokens)"))
	}
	m := req.Msg
	p := &tokenParams{grantType: GrantTypeTokenExchange, subjectToken: m.GetSubjectToken(), subjectTokenType: m.GetSubjectTokenType()}
	if m.GetResource() != "" {
		p.resources = []string{m.GetResource()}
	}
	if m.Scope != nil {
		p.scope = m.Scope
	}
	dpops := req.Header().Values("DPoP")
	if m.GetDpop() != "" {
		dpops = append(dpops, m.GetDpop()) // both: more than one, refused
	}
	// Like the endpoint's (RFC 6749 section 5.1), the answer is not cached.
	hdr := http.Header{"Cache-Control": {"no-store"}, "Pragma": {"no-cache"}}
	tr, oerr := checkTokenParams(p)
	var g *tokenGrant
	if oerr == nil {
		issuer := issuerFrom(ctx)
		g, oerr = l.exchange(ctx, hdr, dpops, req.Peer().Addr, issuer, issuer+warrantv1connect.LedgerServiceExchangeTokenProcedure, tr)
	}
	if oerr != nil {
		var cerr *connect.Error
		err := proofs.Errorf(oerr.reason, "%s: %s", oerr.code, oerr.desc)
		if oerr.entry != nil { // a recorded denial, answered as Append answers one
			cerr = connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s: %s", oerr.code, oerr.desc))
			addDetail(cerr, &warrantv1.ErrorDetail{Reason: oerr.reason})
			addDetail(cerr, &warrantv1.ExchangeTokenResponse{Entry: oerr.entry.proto()})
		} else {
			errors.As(connectError(err), &cerr)
		}
		for k, v := range hdr {
			cerr.Meta()[k] = v
		}
		return nil, cerr
	}
	resp := connect.NewResponse(&warrantv1.ExchangeTokenResponse{
		AccessToken: g.res.Token, IssuedTokenType: TokenTypeAccessToken, TokenType: "DPoP",
		ExpiresIn: g.expiresIn(), Scope: strings.Join(g.res.Record.Scopes, " "), Entry: g.entry.proto(),
	})
	for k, v := range hdr {
		resp.Header()[k] = v
	}
	return resp, nil
}

func (s *service) GetEntry(ctx context.Context, req *connect.Request[warrantv1.GetEntryRequest]) (*connect.Response[warrantv1.GetEntryResponse], error) {
	if err := s.log.awaitTrusted(ctx, req.Msg.GetTrustedSize()); err != nil {
		return nil, connectError(err)
	}
	var idx uint64
	var err error
	switch k := req.Msg.GetKey().(type) {
	case *warrantv1.GetEntryRequest_Index:
		idx = k.Index
	case *warrantv1.GetEntryRequest_DelegationId:
		if idx, err = s.lookup(ctx, func() (uint64, error) { return s.log.IndexOfDelegation(ctx, k.DelegationId) }); err != nil {
			return nil, connectError(err)
		}
	case *warrantv1.GetEntryRequest_ConfigBefore:
		// The config in force at an entry past this node's tree may be
		// one it has not ingested yet.
		if k.ConfigBefore > s.log.Checkpoint().Size {
			if err := s.log.awaitCovered(ctx, k.ConfigBefore); err != nil {
				return nil, connectError(err)
			}
		}
		if idx, err = s.log.IndexOfConfigBefore(ctx, k.ConfigBefore); err != nil {
			return nil, connectError(err)
		}
	default:
		return nil, connectError(proofs.Errorf(proofs.ReasonFieldMissing, "name the entry by index, delegation_id or config_before"))
	}
	// The checkpoint is read after the lookup: an index found is covered by
	// the latest checkpoint, never by an older one read before it.
	cp := s.log.Checkpoint()
	if idx >= cp.Size {
		// A node behind the log does not say "no entry" (replica.go).
		if err := s.log.awaitCovered(ctx, sizeFor(idx)); err != nil {
			return nil, connectError(err)
		}
		cp = s.log.Checkpoint()
	}
	if idx >= cp.Size {
		return nil, connectError(proofs.Errorf(ReasonNotFound, "no entry %d (log size %d)", idx, cp.Size))
	}
	leaf, err := s.log.Entry(ctx, idx)
	if err != nil {
		return nil, connectError(err)
	}
	p, err := proofs.ParseLeaf(leaf)
	if err != nil {
		return nil, connectError(&proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("stored entry %d: %w", idx, err)})
	}
	resp := &warrantv1.GetEntryResponse{}
	if resp.Entry, err = s.provenEntry(ctx, idx, leaf, p.ID(), cp); err != nil {
		return nil, connectError(err)
	}
	if p.Delegation != nil && p.Decision.Outcome == proofs.OutcomeAccepted {
		st, err := s.log.Status(ctx, p.Delegation.ID)
		if err != nil {
			return nil, connectError(readError(err))
		}
		resp.Status = &warrantv1.DelegationStatus{State: st.State, RevokedVia: st.RevokedVia}
	}
	if resp.ConsistencyProof, err = s.consistency(ctx, req.Msg.GetTrustedSize(), cp, nil); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *service) GetEntries(ctx context.Context, req *connect.Request[warrantv1.GetEntriesRequest]) (*connect.Response[warrantv1.GetEntriesResponse], error) {
	if err := s.log.awaitTrusted(ctx, req.Msg.GetTrustedSize()); err != nil {
		return nil, connectError(err)
	}
	cp := s.log.Checkpoint()
	start, count := req.Msg.GetStart(), uint64(req.Msg.GetCount())
	if count == 0 {
		return nil, connectError(proofs.Errorf(proofs.ReasonFieldMissing, "count must be at least 1"))
	}
	if count > MaxEntriesPerRead {
		return nil, connectError(proofs.Errorf(proofs.ReasonListTooLong, "count %d is over the limit of %d", count, MaxEntriesPerRead))
	}
	if start >= cp.Size {
		if err := s.log.awaitCovered(ctx, sizeFor(start)); err != nil {
			return nil, connectError(err)
		}
		cp = s.log.Checkpoint()
	}
	if start >= cp.Size {
		return nil, connectError(proofs.Errorf(ReasonOutOfRange, "start %d is not below the log size %d", start, cp.Size))
	}
	count = min(count, cp.Size-start)
	leaves, err := s.log.Entries(ctx, start, int(count))
	if err != nil {
		return nil, connectError(err)
	}
	left, right, err := s.log.RangeProof(ctx, start, start+uint64(len(leaves)), cp.Size)
	if err != nil {
		return nil, connectError(err)
	}
	resp := &warrantv1.GetEntriesResponse{Start: start, Leaves: leaves, Checkpoint: cp.Note, LeftHashes: left, RightHashes: right}
	if resp.ConsistencyProof, err = s.consistency(ctx, req.Msg.GetTrustedSize(), cp, nil); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *service) GetCheckpoint(ctx context.Context, req *connect.Request[warrantv1.GetCheckpointRequest]) (*connect.Response[warrantv1.GetCheckpointResponse], error) {
	if err := s.log.awaitTrusted(ctx, req.Msg.GetTrustedSize()); err != nil {
		return nil, connectError(err)
	}
	cp := s.log.servedCheckpoint(req.Msg.GetWitnessed())
	if cp == nil {
		return nil, connectError(proofs.Errorf(ReasonWitnessUnavailable, "no checkpoint of this log has reached the witness quorum yet; retry shortly"))
	}
	resp := &warrantv1.GetCheckpointResponse{Checkpoint: cp.Note}
	var err error
	if resp.ConsistencyProof, err = s.consistency(ctx, req.Msg.GetTrustedSize(), cp, nil); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *service) GetInclusionProof(ctx context.Context, req *connect.Request[warrantv1.GetInclusionProofRequest]) (*connect.Response[warrantv1.GetInclusionProofResponse], error) {
	var idx uint64
	var err error
	switch k := req.Msg.GetKey().(type) {
	case *warrantv1.GetInclusionProofRequest_Index:
		idx = k.Index
	case *warrantv1.GetInclusionProofRequest_LeafHash:
		if idx, err = s.lookup(ctx, func() (uint64, error) { return s.log.IndexOfLeafHash(ctx, k.LeafHash) }); err != nil {
			return nil, connectError(err)
		}
	default:
		return nil, connectError(proofs.Errorf(proofs.ReasonFieldMissing, "name the entry by index or leaf_hash"))
	}
	// The checkpoint is read after the lookup, so that it covers the entry,
	// and before the proof, so that a tree size of 0 means exactly its size.
	cp := s.log.Checkpoint()
	if need := max(req.Msg.GetTreeSize(), sizeFor(idx)); need > cp.Size {
		if err := s.log.awaitCovered(ctx, need); err != nil {
			return nil, connectError(err)
		}
		cp = s.log.Checkpoint()
	}
	size := req.Msg.GetTreeSize()
	if size == 0 {
		size = cp.Size
	}
	if size > cp.Size {
		return nil, connectError(proofs.Errorf(ReasonOutOfRange, "tree size %d is beyond the latest checkpoint size %d", size, cp.Size))
	}
	hashes, size, err := s.log.InclusionProof(ctx, idx, size)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&warrantv1.GetInclusionProofResponse{Index: idx, TreeSize: size, Hashes: hashes, Checkpoint: cp.Note}), nil
}

func (s *service) GetConsistencyProof(ctx context.Context, req *connect.Request[warrantv1.GetConsistencyProofRequest]) (*connect.Response[warrantv1.GetConsistencyProofResponse], error) {
	cp := s.log.Checkpoint()
	if need := max(req.Msg.GetFromSize(), req.Msg.GetToSize()); need > cp.Size {
		if err := s.log.awaitCovered(ctx, need); err != nil {
			return nil, connectError(err)
		}
		cp = s.log.Checkpoint()
	}
	to := req.Msg.GetToSize()
	if to == 0 {
		to = cp.Size
	}
	if to > cp.Size {
		return nil, connectError(proofs.Errorf(ReasonOutOfRange, "tree size %d is beyond the latest checkpoint size %d", to, cp.Size))
	}
	hashes, to, err := s.log.ConsistencyProof(ctx, req.Msg.GetFromSize(), to)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&warrantv1.GetConsistencyProofResponse{FromSize: req.Msg.GetFromSize(), ToSize: to, Hashes: hashes, Checkpoint: cp.Note}), nil
}

func (s *service) GetChainBundle(ctx context.Context, req *connect.Request[warrantv1.GetChainBundleRequest]) (*connect.Response[warrantv1.GetChainBundleResponse], error) {
	b, err := s.log.ChainBundle(ctx, req.Msg.GetDelegationId())
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&warrantv1.GetChainBundleResponse{Bundle: b}), nil
}

func (s *service) ListChildren(ctx context.Context, req *connect.Request[warrantv1.ListChildrenRequest]) (*connect.Response[warrantv1.ListChildrenResponse], error) {
	if err := s.awaitStart(ctx, req.Msg.GetStartIndex()); err != nil {
		return nil, connectError(err)
	}
	entries, next, err := s.page(ctx, req.Msg.GetPageSize(), func(cp *proofs.Checkpoint, n int) ([]uint64, uint64, error) {
		return s.log.Children(ctx, req.Msg.GetDelegationId(), req.Msg.GetStartIndex(), n, cp.Size)
	})
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&warrantv1.ListChildrenResponse{Entries: entries, NextStartIndex: next}), nil
}

// MaxBatchParents and MaxBatchEntries bound one ListChildrenBatch answer:
// its delegations, and the entries after which it answers no further
// delegation (each proof costs the server a few reads, and the answer
// stays small enough for a browser to parse at once).
const (
	MaxBatchParents = 100
	MaxBatchEntries = 200
)

func (s *service) ListChildrenBatch(ctx context.Context, req *connect.Request[warrantv1.ListChildrenBatchRequest]) (*connect.Response[warrantv1.ListChildrenBatchResponse], error) {
	ids := req.Msg.GetDelegationIds()
	if len(ids) == 0 {
		return nil, connectError(proofs.Errorf(proofs.ReasonFieldMissing, "name at least one delegation"))
	}
	if len(ids) > MaxBatchParents {
		return nil, connectError(proofs.Errorf(proofs.ReasonListTooLong, "%d delegations is over the limit of %d", len(ids), MaxBatchParents))
	}
	cp := s.log.Checkpoint()
	resp := &warrantv1.ListChildrenBatchResponse{}
	total := 0
	for _, id := range ids {
		if total >= MaxBatchEntries {
			break
		}
		idxs, next, err := s.log.Children(ctx, id, 0, min(MaxListPage, MaxBatchEntries-total), cp.Size)
		if err != nil {
			return nil, connectError(err)
		}
		entries, err := s.prove(ctx, idxs, cp)
		if err != nil {
			return nil, connectError(err)
		}
		total += len(entries)
		resp.Pages = append(resp.Pages, &warrantv1.ChildrenPage{DelegationId: id, Entries: entries, NextStartIndex: next})
	}
	return connect.NewResponse(resp), nil
}

func (s *service) ListAgentEntries(ctx context.Context, req *connect.Request[warrantv1.ListAgentEntriesRequest]) (*connect.Response[warrantv1.ListAgentEntriesResponse], error) {
	if err := s.awaitStart(ctx, req.Msg.GetStartIndex()); err != nil {
		return nil, connectError(err)
	}
	entries, next, err := s.page(ctx, req.Msg.GetPageSize(), func(cp *proofs.Checkpoint, n int) ([]uint64, uint64, error) {
		return s.log.AgentEntries(ctx, req.Msg.GetAgent(), req.Msg.GetStartIndex(), n, cp.Size)
	})
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&warrantv1.ListAgentEntriesResponse{Entries: entries, NextStartIndex: next}), nil
}

// lookup runs find, a lookup by key (a delegation id, a leaf hash), and,
// if it finds nothing on a node behind the cluster's checkpoint, runs it
// again once the node has caught up (awaitCluster): the entry may be one
// the node has not ingested yet.
func (s *service) lookup(ctx context.Context, find func() (uint64, error)) (uint64, error) {
	idx, err := find()
	if proofs.Reason(err) != ReasonNotFound {
		return idx, err
	}
	if werr := s.log.awaitCluster(ctx); werr != nil {
		return 0, werr
	}
	return find()
}

// awaitStart is awaitCovered for a page that starts at entry start (a
// later page of a listing, its start_index from an earlier page another
// node answered): a node behind that entry would answer an empty page, as
// if the listing had ended.
func (s *service) awaitStart(ctx context.Context, start uint64) error {
	if start == 0 || start < s.log.Checkpoint().Size {
		return nil
	}
	return s.log.awaitCovered(ctx, sizeFor(start))
}

// page lists up to pageSize indices with list and proves each entry
// against the latest checkpoint.
func (s *service) page(ctx context.Context, pageSize uint32, list func(*proofs.Checkpoint, int) ([]uint64, uint64, error)) ([]*warrantv1.ProvenEntry, uint64, error) {
	if pageSize == 0 || pageSize > MaxListPage {
		return nil, 0, proofs.Errorf(proofs.ReasonListTooLong, "page_size must be 1 to %d", MaxListPage)
	}
	cp := s.log.Checkpoint()
	idxs, next, err := list(cp, int(pageSize))
	if err != nil {
		return nil, 0, err
	}
	out, err := s.prove(ctx, idxs, cp)
	return out, next, err
}

// prove reads the entries at idxs and proves each against cp.
func (s *service) prove(ctx context.Context, idxs []uint64, cp *proofs.Checkpoint) ([]*warrantv1.ProvenEntry, error) {
	leaves, hashes, err := s.log.ProvenLeaves(ctx, idxs, cp.Size)
	if err != nil {
		return nil, err
	}
	out := make([]*warrantv1.ProvenEntry, len(idxs))
	for i, idx := range idxs {
		p, err := proofs.ParseLeaf(leaves[i])
		if err != nil {
			return nil, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("stored entry %d: %w", idx, err)}
		}
		out[i] = &warrantv1.ProvenEntry{Index: idx, Leaf: leaves[i], Id: p.ID(), Checkpoint: cp.Note, InclusionProof: hashes[i]}
	}
	return out, nil
}

func (s *service) provenEntry(ctx context.Context, idx uint64, leaf []byte, id string, cp *proofs.Checkpoint) (*warrantv1.ProvenEntry, error) {
	hashes, _, err := s.log.InclusionProof(ctx, idx, cp.Size)
	if err != nil {
		return nil, err
	}
	return &warrantv1.ProvenEntry{Index: idx, Leaf: leaf, Id: id, Checkpoint: cp.Note, InclusionProof: hashes}, nil
}

// appendedEntry is provenEntry for an appended entry, proved from its
// batch's nodes when they prove it in cp (appendedProof).
func (s *service) appendedEntry(ctx context.Context, a *Appended, cp *proofs.Checkpoint) (*warrantv1.ProvenEntry, error) {
	hashes, err := s.log.appendedProof(ctx, a, cp)
	if err != nil {
		return nil, err
	}
	return &warrantv1.ProvenEntry{Index: a.Index, Leaf: a.Leaf, Id: a.ID, Checkpoint: cp.Note, InclusionProof: hashes}, nil
}

// sizeFor is the tree size that holds entry idx (saturating: no tree
// holds the last uint64 index, and none reaches its size either).
func sizeFor(idx uint64) uint64 { return max(idx+1, idx) }

// consistency proves the client's trusted size against cp; it returns
// nothing when the client trusts nothing, or trusts a size this answer does
// not reach (another process sharing its state advanced it). nodes, if not
// nil, are those of the batch of an append being answered: they prove it
// without reading the store when they can (batchproofs.go).
func (s *service) consistency(ctx context.Context, trusted uint64, cp *proofs.Checkpoint, nodes *batchNodes) ([][]byte, error) {
	if trusted == 0 || trusted >= cp.Size {
		return nil, nil
	}
	if p, ok := nodes.consistency(trusted, cp); ok {
		return p, nil
	}
	hashes, _, err := s.log.ConsistencyProof(ctx, trusted, cp.Size)
	return hashes, err
}

// connectError turns an error from the log into a Connect error with an
// ErrorDetail carrying its reason code.
func connectError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	if errors.Is(err, context.Canceled) {
		return connect.NewError(connect.CodeCanceled, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	// The status is the reason code's in the catalogue (proofs/reasons.go);
	// Connect's codes are gRPC's numbers, which the catalogue holds.
	reason := proofs.Reason(err)
	if reason == "" {
		reason = proofs.ReasonInternal
	}
	code := connect.Code(proofs.RPCStatus(reason))
	msg := err.Error()
	var pe *proofs.Error
	if errors.As(err, &pe) && pe.Err != nil {
		msg = pe.Err.Error()
	}
	cerr := connect.NewError(code, errors.New(msg))
	addDetail(cerr, &warrantv1.ErrorDetail{Reason: reason})
	if nl := (*NotLeaderError)(nil); errors.As(err, &nl) && nl.Leader.URL != "" {
		cerr.Meta().Set(LeaderHeader, nl.Leader.URL) // where clients send it next (forward.go)
	}
	return cerr
}

func addDetail(cerr *connect.Error, m proto.Message) {
	if d, err := connect.NewErrorDetail(m); err == nil {
		cerr.AddDetail(d)
	}
}
