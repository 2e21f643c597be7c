package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// Forwarding writes from a follower to the leader.
//
// In a cluster one node leads and sequences; every node serves reads from
// its own store. A write that reaches a follower is passed on to the
// leader by Forward, a reverse proxy in front of the node's handler, so a
// client may send anything to any node. The leader answers it as it
// answers any write: the receipt is signed by the log key and proven
// against the log's checkpoint, and the client verifies it whoever relayed
// it, so the follower is trusted with nothing but delivery.
//
// What a forwarded request loses is its transport: the leader sees the
// follower as the peer. So
//
//   - the per-address budgets of the leader (the authentication failure
//     budget, the flood budget, the requests in flight per address) count
//     all the clients of a follower as one address, the follower's: a
//     client that exhausts them there refuses the others sending through
//     the same follower. The follower's own per-address bounds (its
//     connection limits) still see each client. The per-agent budgets
//     (rate_limited, queue_full) are per signed identity and unaffected.
//     No header carries the client's address: the leader would have to
//     trust whoever sent it.
//   - a client certificate (mutual TLS) proves nothing to the leader,
//     which would check the follower's identity instead of the agent's:
//     a request that came with a client certificate is not forwarded but
//     refused with not_leader, naming the leader, for the client to send it
//     there on its own connection.
//
// A forwarded request carries ForwardedHeader. A node that does not lead
// and gets a request with it refuses it (not_leader) instead of forwarding
// it again: two nodes that each believe the other leads (a moment during
// an election) bounce a write once, not forever.

// The headers of forwarding.
const (
	// LeaderHeader names the leader's base URL in a not_leader refusal.
	// Clients (package client) send the write there next, if the URL is
	// among the servers they were given.
	LeaderHeader = "Warrant-Leader"
	// ForwardedHeader marks a request a follower forwarded. Its value is
	// not trusted for anything: a client that sets it only gets its write
	// refused by a follower instead of forwarded.
	ForwardedHeader = "Warrant-Forwarded"
)

// forwardedPaths are the requests that change the log's state, with the
// bound on the body a follower relays: the writes of
// api/warrant/v1/ledger.proto (Append, AppendBatch, ExchangeToken; every
// other RPC is a read) and the OAuth token endpoint, which records an
// issuance. Introspection (POST /oauth2/introspect) reads, and is answered
// by each node.
var forwardedPaths = map[string]int64{
	warrantv1connect.LedgerServiceAppendProcedure:        relayBound(MaxRequestBytes),
	warrantv1connect.LedgerServiceAppendBatchProcedure:   relayBound(MaxBatchRequestBytes),
	warrantv1connect.LedgerServiceExchangeTokenProcedure: relayBound(MaxRequestBytes),
	TokenEndpointPath: relayBound(maxTokenRequestBodyBytes),
}

// relayBound is the body a follower relays for a request whose content is
// bounded by n: n, plus room for compression that does not compress and
// for framing. The leader applies the exact bound.
func relayBound(n int64) int64 { return n + n/64 + 4096 }

// IsForwardedWrite reports whether a request for path is one Forward
// sends to the leader.
func IsForwardedWrite(path string) bool {
	_, ok := forwardedPaths[path]
	return ok
}

// ForwardConfig configures Forward.
type ForwardConfig struct {
	// Leader says who leads now: the leader's base URL (as clients reach
	// it, e.g. "https://node-b:8750") and whether that is this node. ""
	// and false: no node leads. It is called once per write and must be
	// cheap (a cached answer, not a round trip to the coordination
	// service).
	Leader func() (url string, self bool)
	// Transport carries forwarded requests (default
	// http.DefaultTransport). Between nodes over https, one that trusts
	// the nodes' CA.
	Transport http.RoundTripper
	// Logger receives a line per failed forward (default slog.Default()).
	Logger *slog.Logger
}

// Forward returns next behind a forwarder: the writes (forwardedPaths) are
// answered by next when this node leads, forwarded to the leader when
// another node does, and refused with a retryable Unavailable otherwise
// (no_leader; not_leader, naming the leader, where forwarding is not
// possible). Everything else goes to next.
func Forward(next http.Handler, cfg ForwardConfig) http.Handler {
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &forwarder{next: next, cfg: cfg}
}

type forwarder struct {
	next http.Handler
	cfg  ForwardConfig
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit, ok := forwardedPaths[r.URL.Path]
	if !ok {
		f.next.ServeHTTP(w, r)
		return
	}
	leader, self := f.cfg.Leader()
	switch {
	case self:
		f.next.ServeHTTP(w, r)
		return
	case leader == "":
		refuseWrite(w, r, "", proofs.ReasonNoLeader, "no node of the cluster leads now; retry in a moment")
		return
	case r.Header.Get(ForwardedHeader) != "":
		// The node that forwarded it believed this one leads, and this one
		// believes another does: no leader is agreed on (a leader change
		// in progress, or the coordination service out of reach, when a
		// node's idea of the leader is stale). Naming one would send the
		// client round the same loop.
		refuseWrite(w, r, "", proofs.ReasonNoLeader, "this node does not lead, and the node that forwarded the request believed it did: the nodes do not agree on a leader now (a leader change, or the coordination service out of reach); it is not forwarded again; retry in a moment")
		return
	case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
		refuseWrite(w, r, leader, proofs.ReasonNotLeader, "this node does not lead, and a request with a client certificate is not forwarded (the leader would see this node's identity, not the client's): send it to the leader, %s", leader)
		return
	}
	target, err := url.Parse(leader)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		f.cfg.Logger.Error("forward: the leader's URL is unusable", "leader", leader, "err", err)
		refuseWrite(w, r, "", proofs.ReasonNoLeader, "the leader's URL %q is unusable", leader)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The leader answers as if reached at the URL the client
			// used (an issuer derived from the Host, the DPoP htu).
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(ForwardedHeader, "1")
		},
		Transport: f.cfg.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				refuseWrite(w, r, "", proofs.ReasonRequestTooLarge, "the request is over the %d bytes a follower relays", mbe.Limit)
				return
			}
			f.cfg.Logger.Warn("forward: the leader did not answer", "leader", leader, "path", r.URL.Path, "err", err)
			// The write may or may not have reached the leader: a client
			// resubmitting the same envelope gets its entry either way.
			refuseWrite(w, r, leader, proofs.ReasonNotLeader, "this node does not lead and the leader, %s, did not answer the forwarded request: %v", leader, err)
		},
		ErrorLog: slog.NewLogLogger(f.cfg.Logger.Handler(), slog.LevelWarn),
	}
	proxy.ServeHTTP(w, r)
}

// refuseWrite answers a write that was not forwarded, in the request's
// protocol: a Connect or gRPC error with its ErrorDetail for an RPC, an
// OAuth error for the token endpoint; leader, if known, in LeaderHeader.
// The status is the reason's in the catalogue (Unavailable, but
// ResourceExhausted for request_too_large, which the transport answers).
func refuseWrite(w http.ResponseWriter, r *http.Request, leader, reason, format string, args ...any) {
	if leader != "" {
		w.Header().Set(LeaderHeader, leader)
	}
	msg := fmt.Sprintf(format, args...)
	code := connect.Code(proofs.RPCStatus(reason))
	if reason == proofs.ReasonRequestTooLarge {
		code = connect.CodeResourceExhausted
	}
	if r.URL.Path == TokenEndpointPath {
		if code == connect.CodeResourceExhausted {
			writeOAuthError(w, refuse(http.StatusRequestEntityTooLarge, "invalid_request", reason, "%s: %s", reason, msg))
			return
		}
		writeOAuthError(w, refuse(http.StatusServiceUnavailable, "temporarily_unavailable", reason, "%s: %s", reason, msg))
		return
	}
	w.Header().Set("Retry-After", "1")
	cerr := connect.NewError(code, errors.New(msg))
	addDetail(cerr, &warrantv1.ErrorDetail{Reason: reason})
	if err := connect.NewErrorWriter().Write(w, r, cerr); err != nil {
		http.Error(w, reason+": "+msg, http.StatusServiceUnavailable)
	}
}
