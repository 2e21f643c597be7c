package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// Several servers of one log.
//
// A log run as a cluster (docs/distributed.md) is reached at several URLs,
// one a node. New takes them as one comma-separated list
// ("https://a:8750,https://b:8750") and the client fails over between
// them, for every RPC and every HTTP read it makes: a request goes to the
// server that answered last, and on to the next one when that one cannot
// be reached or answers with a retryable refusal (Unavailable, or HTTP
// 502, 503, 504), first to the leader a refusal names (the Warrant-Leader
// header, honoured only for a URL in the list: the client talks to the
// servers it was given and no others). When every server has been tried
// the last answer stands, and the retry policy (retry.go) decides whether
// to go round again after its back-off. Resubmitting a write to another
// node is safe, as retrying one is: the log deduplicates signed requests.
//
// Nothing about which server answered is trusted. The nodes are one log
// under one key, and the client keeps one trusted state for it, whatever
// URL an answer came from: every checkpoint from any node must verify under
// the log key and be consistent with the trusted one, so two nodes that
// disagree on history (a split brain) are caught as a fork.
//
// Nor is an answer taken from a server before it has shown that it serves
// the log: the first request to each server is preceded by its GET
// /checkpoint, which must verify under the log key (once a Client: the
// result is kept). A positive answer carries a checkpoint the client
// verifies anyway, but a negative one (not_found for an entry, an agent, a
// delegation) carries nothing, and from a node of another log, listed by
// mistake, it would read as the log's own word. A server whose checkpoint
// does not verify is a failed server: the request goes on to the next, and
// when no server answers and one of them serves another log, the error's
// reason is proofs.ReasonCheckpointSignature, naming each server's fault.
//
// Not failed over: an append answered witness_unavailable (the server
// already waited its witness timeout, see retry.go), a request whose body
// cannot be sent twice, and a refusal inside a stream once it has begun
// (the follower reconnects on its own, and a reconnection fails over).

// LeaderHeader is the header of a refusal that names the log's leader
// (ledger.LeaderHeader; the client does not import the server).
const LeaderHeader = "Warrant-Leader"

// SplitServers splits a comma-separated list of server base URLs, dropping
// blanks and trailing slashes. A single URL is a list of one.
func SplitServers(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSuffix(strings.TrimSpace(s), "/"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// servers are the base URLs of one log's nodes.
type servers struct {
	urls []*url.URL
	// last is the index of the server that answered last, where the next
	// request goes first.
	last atomic.Int32
	// identity fetches the checkpoint the server at base serves and checks
	// that it verifies under the log key: a *proofs.Error of reason
	// proofs.ReasonCheckpointSignature if it does not (another log), any
	// other error if it could not be fetched. nil: nothing to check
	// against (a client without a log key).
	identity func(ctx context.Context, base string) error
	// verified[i] is set once server i's checkpoint verified.
	verified []atomic.Bool
}

// check returns nil once server i has shown that it serves the log (see
// identity), fetching its checkpoint the first time only.
func (s *servers) check(ctx context.Context, i int) error {
	if s.identity == nil || s.verified[i].Load() {
		return nil
	}
	if err := s.identity(ctx, s.base(i)); err != nil {
		return err
	}
	s.verified[i].Store(true)
	return nil
}

// newServers parses list; nil if it names fewer than two usable URLs (no
// failover: the client sends everything to the one base URL).
func newServers(list []string) *servers {
	if len(list) < 2 {
		return nil
	}
	s := &servers{}
	for _, raw := range list {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			// Kept in place so that indexes match the list: a request
			// to it fails, and the client goes on to the next.
			u = &url.URL{Scheme: "invalid", Host: raw}
		}
		s.urls = append(s.urls, u)
	}
	s.verified = make([]atomic.Bool, len(s.urls))
	return s
}

// rest returns the part of u under the first server's base URL (the base
// every request of the client is built on), and false for a URL under
// none (EntryBundles given another base).
func (s *servers) rest(u *url.URL) (string, bool) {
	b := s.urls[0]
	if u.Scheme != b.Scheme || u.Host != b.Host || !strings.HasPrefix(u.Path, b.Path) {
		return "", false
	}
	return strings.TrimPrefix(u.Path, b.Path), true
}

// index returns the position of base URL raw in the list, or -1.
func (s *servers) index(raw string) int {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(raw), "/"))
	if err != nil {
		return -1
	}
	return slices.IndexFunc(s.urls, func(v *url.URL) bool {
		return v.Scheme == u.Scheme && strings.EqualFold(v.Host, u.Host) && strings.TrimSuffix(v.Path, "/") == u.Path
	})
}

// order is the order to try the servers in: the last to answer first.
func (s *servers) order() []int {
	first := int(s.last.Load())
	out := make([]int, len(s.urls))
	for i := range out {
		out[i] = (first + i) % len(s.urls)
	}
	return out
}

// base returns server i's base URL as a string.
func (s *servers) base(i int) string { return s.urls[i].String() }

// failover is the HTTP client of a Client with several servers: it sends
// each request built on the first server's base URL to the servers in turn
// (see the comment at the top of this file).
type failover struct {
	hc connect.HTTPClient
	s  *servers
}

// pinKey is the context key of a request that must go to one server only
// (pinned): the token endpoint's, whose DPoP proof names the URL.
type pinKey struct{}

// pinned marks ctx's requests as built for one server already.
func pinned(ctx context.Context) context.Context { return context.WithValue(ctx, pinKey{}, true) }

func (f *failover) Do(req *http.Request) (*http.Response, error) {
	rest, ok := f.s.rest(req.URL)
	if !ok || req.Context().Value(pinKey{}) != nil {
		return f.hc.Do(req)
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		// A body that cannot be sent twice goes to one server.
		i := f.s.order()[0]
		if err := f.s.check(req.Context(), i); err != nil {
			return nil, f.s.failed(req.Context(), []error{fmt.Errorf("%s: %w", f.s.base(i), err)})
		}
		out, _ := f.request(req, i, rest, false)
		return f.hc.Do(out)
	}
	first := true
	return f.s.try(req.Context(), rest, func(i int) (*http.Response, error) {
		out, err := f.request(req, i, rest, !first)
		first = false
		if err != nil {
			return nil, err
		}
		return f.hc.Do(out)
	})
}

// try calls attempt with the servers in turn (the last to answer first,
// then the leader a refusal names, then the others) until one answers with
// anything but a refusal another server may not give (refusal; path is the
// request's path under the base URL). It returns that answer, else the
// last refusal, else the errors of all. The server that answered is the
// first to try next time.
func (s *servers) try(ctx context.Context, path string, attempt func(i int) (*http.Response, error)) (*http.Response, error) {
	queue := s.order()
	tried := make([]bool, len(s.urls))
	var errs []error
	var held *http.Response // the last refusal
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		if tried[i] {
			continue
		}
		tried[i] = true
		if err := s.check(ctx, i); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", s.base(i), err))
			continue
		}
		resp, err := attempt(i)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", s.base(i), err))
			continue
		}
		if held != nil {
			held.Body.Close()
			held = nil
		}
		leader, refused := refusal(resp, path)
		if !refused {
			s.last.Store(int32(i))
			return resp, nil
		}
		held = resp
		if j := s.index(leader); j >= 0 && !tried[j] {
			queue = append([]int{j}, queue...)
		}
	}
	if held != nil {
		return held, nil
	}
	return nil, s.failed(ctx, errs)
}

// failed is the error of a request no server answered, errs being each
// server's. If one of them serves another log, that is what the caller
// must fix, not a moment's outage: the error is then a Connect error
// (which connect-go passes through) of reason
// proofs.ReasonCheckpointSignature, not retried; otherwise the servers
// were unreachable (Unavailable, retried).
func (s *servers) failed(ctx context.Context, errs []error) error {
	ue := &unreachableError{errs}
	if ctx.Err() != nil || !slices.ContainsFunc(errs, func(err error) bool { return proofs.Reason(err) == proofs.ReasonCheckpointSignature }) {
		return ue
	}
	return foreignError(fmt.Errorf("no server serves the log the client trusts (check the server list and the log key): %s", strings.TrimPrefix(ue.Error(), "no server answered: ")))
}

// request is req for server i (rest: its path under the base URL), with a
// fresh body if it is not the first attempt.
func (f *failover) request(req *http.Request, i int, rest string, again bool) (*http.Request, error) {
	out := req.Clone(req.Context())
	u := *f.s.urls[i]
	u.Path = strings.TrimSuffix(u.Path, "/") + rest
	u.RawPath = ""
	u.RawQuery = req.URL.RawQuery
	out.URL = &u
	out.Host = u.Host
	if again && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.Body = body
	}
	return out, nil
}

// unreachableError is the error of a request no server answered: each
// server's, which errors.Is and errors.As see.
type unreachableError struct{ errs []error }

func (e *unreachableError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "no server answered: " + strings.Join(msgs, "; ")
}

func (e *unreachableError) Unwrap() []error { return e.errs }

// writePaths are the requests that append an entry, whose
// witness_unavailable is not failed over (see retry.go).
var writePaths = []string{
	warrantv1connect.LedgerServiceAppendProcedure,
	warrantv1connect.LedgerServiceAppendBatchProcedure,
	warrantv1connect.LedgerServiceExchangeTokenProcedure,
	"/oauth2/token",
}

// maxRefusalBytes bounds the body of a refusal read to find its reason.
const maxRefusalBytes = 64 << 10

// refusal reports whether resp, the answer to a request for path, is a
// refusal another server may not give (Unavailable, or a gateway's 502,
// 503 or 504), and the leader it names, if any. It reads the body of a
// Connect or OAuth error (bounded) for the reason code, and leaves resp
// whole.
func refusal(resp *http.Response, path string) (leader string, refused bool) {
	leader = resp.Header.Get(LeaderHeader)
	switch {
	case resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
	case grpcStatus(resp, path) == "14": // gRPC's Unavailable
	default:
		return leader, false
	}
	if !slices.Contains(writePaths, path) {
		return leader, true
	}
	return leader, refusalReason(resp) != proofs.ReasonWitnessUnavailable
}

// grpcStatus is the status of a gRPC error answer to a unary call: in the
// headers of a trailers-only answer, or in the trailers of an answer
// without a message (read to its end, which for an error is at once).
// "" for anything else. gRPC-Web's trailers, in the body, and streams are
// not looked into: their first message
// may be long in coming.
func grpcStatus(resp *http.Response, path string) string {
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "application/grpc") {
		return ""
	}
	if st := resp.Header.Get("Grpc-Status"); st != "" {
		return st
	}
	if strings.HasPrefix(ct, "application/grpc-web") || path == warrantv1connect.LedgerServiceWatchCheckpointsProcedure {
		return ""
	}
	var b [1]byte
	n, err := io.ReadFull(resp.Body, b[:])
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b[:n]), resp.Body), resp.Body}
	if n == 0 && err == io.EOF {
		return resp.Trailer.Get("Grpc-Status")
	}
	return ""
}

// refusalReason is the reason code of an error answer: a Connect error's
// (its ErrorDetail, in the JSON body), a gRPC error's (in
// Grpc-Status-Details-Bin) or an OAuth error's (its description starts
// with it). "" if none.
func refusalReason(resp *http.Response) string {
	bin := resp.Header.Get("Grpc-Status-Details-Bin")
	if bin == "" && resp.Trailer != nil {
		bin = resp.Trailer.Get("Grpc-Status-Details-Bin")
	}
	if bin != "" {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(bin, "="))
		if err != nil {
			return ""
		}
		return grpcStatusReason(b)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBytes))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	if err != nil {
		return ""
	}
	var e struct {
		Details []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"details"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	for _, d := range e.Details {
		if d.Type != string((&warrantv1.ErrorDetail{}).ProtoReflect().Descriptor().FullName()) {
			continue
		}
		v, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(d.Value, "="))
		var ed warrantv1.ErrorDetail
		if err == nil && proto.Unmarshal(v, &ed) == nil {
			return ed.GetReason()
		}
	}
	reason, _, _ := strings.Cut(e.Description, ":")
	return reason
}

// grpcStatusReason reads the ErrorDetail out of a google.rpc.Status
// (field 3, details: google.protobuf.Any, type_url 1 and value 2).
func grpcStatusReason(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num != 3 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		anyMsg, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		var typeURL string
		var value []byte
		for len(anyMsg) > 0 {
			num, typ, n := protowire.ConsumeTag(anyMsg)
			if n < 0 {
				return ""
			}
			anyMsg = anyMsg[n:]
			if typ != protowire.BytesType {
				if n = protowire.ConsumeFieldValue(num, typ, anyMsg); n < 0 {
					return ""
				}
				anyMsg = anyMsg[n:]
				continue
			}
			v, n := protowire.ConsumeBytes(anyMsg)
			if n < 0 {
				return ""
			}
			anyMsg = anyMsg[n:]
			switch num {
			case 1:
				typeURL = string(v)
			case 2:
				value = v
			}
		}
		var ed warrantv1.ErrorDetail
		if strings.HasSuffix(typeURL, "/warrant.v1.ErrorDetail") && proto.Unmarshal(value, &ed) == nil {
			return ed.GetReason()
		}
	}
	return ""
}
