package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// Which log a server serves.
//
// A positive answer carries a checkpoint, which the client verifies under
// the log key; a negative one (not_found for an entry, a delegation or an
// agent, out_of_range, a tile's 404) carries nothing, and from a server of
// another log (a wrong URL, a wrong WARRANT_SERVERS entry) it would read
// as the log's own word. So the client takes no answer, positive or
// negative, from a server whose GET /checkpoint has not verified under the
// log key in this Client's life:
//
//   - with several servers (servers.go), before the first request to each,
//     so that a server of another log is a failed server and the request
//     goes on to the next;
//   - with one, when its first negative answer comes (a positive one is
//     verified by what it carries), so that a client of one server that
//     only ever gets positive answers pays nothing. An empty page of a
//     listing is negative too, though its status is not (identified).
//
// Either way once per server and Client: the result is kept.

// checkIdentity sets up the check for the client's servers: srv's, or the
// one at base.
func (c *Client) checkIdentity(srv *servers, base string) {
	if srv != nil {
		inner := c.httpClient.(*failover).hc
		srv.identity = func(ctx context.Context, base string) error { return c.serves(ctx, inner, base) }
		return
	}
	g := &identityGate{hc: c.httpClient, base: base}
	g.check = func(ctx context.Context) error { return c.serves(ctx, g.hc, base) }
	c.httpClient = g
	c.rpc = warrantv1connect.NewLedgerServiceClient(g, base, c.copts...)
	c.tiles = c.tilesAt(base)
}

// identified returns nil once the server that answered has shown that it
// serves the log, checking it now if need be: for an answer that is
// negative in what it carries though not in its status (an empty page of
// a listing: no entries, so no checkpoint). With several servers each was
// checked before its first answer.
func (c *Client) identified(ctx context.Context) error {
	g, ok := c.httpClient.(*identityGate)
	if !ok || g.ok.Load() {
		return nil
	}
	if err := g.check(ctx); err != nil {
		if proofs.Reason(err) == proofs.ReasonCheckpointSignature {
			return fmt.Errorf("%s: %w", g.base, err)
		}
		return &proofs.Error{Reason: ReasonTransport, Err: fmt.Errorf("%s answered, but its checkpoint could not be read to check which log it serves: %w", g.base, err)}
	}
	g.ok.Store(true)
	return nil
}

// serves checks that the server at base serves the log: that its GET
// /checkpoint verifies under the log key. The witness policy is not
// applied: this is about which log the server runs, and every checkpoint
// the client trusts is checked against the policy anyway.
func (c *Client) serves(ctx context.Context, hc connect.HTTPClient, base string) error {
	signed, err := tilesSource{hc: hc, base: base}.get(ctx, "checkpoint", maxCheckpointBytes)
	if err != nil {
		return err
	}
	if _, err := c.openTrusted(signed); err != nil {
		// The reason is this error's; say the cause's text without its own
		// (the same code, most of the time) so the line reads once.
		detail := err
		var pe *proofs.Error
		if errors.As(err, &pe) && pe.Err != nil {
			detail = pe.Err
		}
		return &proofs.Error{Reason: proofs.ReasonCheckpointSignature, Err: fmt.Errorf("serves another log: its checkpoint does not verify under the log key %s+%08x: %v", c.logKey.Name(), c.logKey.KeyHash(), detail)}
	}
	return nil
}

// identityGate is the HTTP client of a Client with one server: it passes
// every request on, and a negative answer only once the server's
// checkpoint has verified.
type identityGate struct {
	hc    connect.HTTPClient
	base  string
	check func(context.Context) error
	ok    atomic.Bool
}

func (g *identityGate) Do(req *http.Request) (*http.Response, error) {
	resp, err := g.hc.Do(req)
	if err != nil || g.ok.Load() || !negative(resp, req.URL.Path) {
		return resp, err
	}
	if cerr := g.check(req.Context()); cerr != nil {
		resp.Body.Close()
		if proofs.Reason(cerr) == proofs.ReasonCheckpointSignature {
			return nil, foreignError(fmt.Errorf("%s: %w", g.base, cerr))
		}
		// Which log answered cannot be told: no answer, as if the
		// server had not been reached.
		return nil, fmt.Errorf("%s answered, but its checkpoint could not be read to check which log it serves: %w", g.base, cerr)
	}
	g.ok.Store(true)
	return resp, nil
}

// negative reports whether resp, the answer to a request for path, is an
// error answer: an HTTP status other than 200 (Connect's unary errors, the
// tiles' and OAuth's) or a gRPC error status.
func negative(resp *http.Response, path string) bool {
	if resp.StatusCode != http.StatusOK {
		return true
	}
	if strings.HasSuffix(path, warrantv1connect.LedgerServiceWatchCheckpointsProcedure) {
		return false
	}
	st := grpcStatus(resp, path)
	return st != "" && st != "0"
}

// foreignError is the error of a request whose server serves another log
// (err, of reason proofs.ReasonCheckpointSignature, says which): a Connect
// error, which connect-go passes through from an HTTP client, carrying the
// reason code as a server's error would, so that it is not retried.
func foreignError(err error) error {
	cerr := connect.NewError(connect.CodeFailedPrecondition, &proofs.Error{Reason: proofs.ReasonCheckpointSignature, Err: err})
	if d, derr := connect.NewErrorDetail(&warrantv1.ErrorDetail{Reason: proofs.ReasonCheckpointSignature}); derr == nil {
		cerr.AddDetail(d)
	}
	return cerr
}
