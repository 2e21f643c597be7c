package ledger

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// Slowing down peers that keep sending appends over their limits.
//
// An agent over its rate limits is refused before its signatures are
// checked (Log.shed), but only after its request was read and parsed, and
// parsing costs in proportion to the bytes sent: one agent posting batches
// of large envelopes as fast as it can would keep the cores busy parsing
// what is then refused, and every other agent would wait for a core. So
// each peer (a client address, as for the authentication budget in
// authguard.go) also has a budget, in envelope bytes, of appends refused
// rate_limited or queue_full. While it is spent, the peer's Append and
// AppendBatch requests are refused before their bodies are read
// (refuseEarly): the server answers from the headers and closes the
// connection instead of reading on. An AppendBatch reserves its size from
// the budget before it is read, and gets it back unless something in it
// was refused over the limits, so a flood of concurrent batches is cut off
// at the budget rather than all read at once. An honest client that backs
// off after a refusal spends a few envelopes' worth; only a client that
// ignores the refusals runs out.
//
// Peers behind one address share the budget, as they share the
// authentication budget: Options.FloodByteRate < 0 turns it off.

// Default flood budget (see Options): 8 MiB, refilling at 512 KiB a second.
const (
	DefaultFloodByteRate  = 512 << 10
	DefaultFloodByteBurst = 8 << 20
)

func newFloodGuard(opts Options) *authGuard {
	return newPeerGuard(opts.FloodByteRate, DefaultFloodByteRate, opts.FloodByteBurst, DefaultFloodByteBurst, opts.MaxTrackedPeers,
		func(burst int, r float64, retry time.Duration) error {
			return proofs.Errorf(ReasonRateLimited, "too many appends from this address were over their rate limits (budget %d bytes, refilling at %g per second): refused unread; back off and retry in %v", burst, r, retry)
		})
}

// floodTicket carries, through a request's context, the flood budget it
// reserved before it was read and what of it was refused over the limits.
type floodTicket struct {
	reserved bool
	refused  atomic.Int64 // envelope bytes refused over the limits
}

type floodTicketKey struct{}

// refusalHold is about how long an append refused before it is read waits
// for its answer: a random time between half of it and one and a half
// times it (holdFor). The jitter matters: with one fixed hold, a flooder's
// concurrent requests are refused together and come back together, and
// each time their bodies (megabytes each, sent as fast as the sockets take
// them) arrive in one burst that takes both cores for milliseconds, which
// every other client then waits for. Spread out, they cost the same bytes
// without the bursts.
const refusalHold = time.Second

func holdFor() time.Duration {
	return refusalHold/2 + rand.N(refusalHold)
}

// refusedOverLimits charges the envelopes among envs that errs refuses
// rate_limited or queue_full to peer's flood budget, or to the budget the
// request reserved before it was read.
func (l *Log) refusedOverLimits(ctx context.Context, peer string, envs [][]byte, errs []error) {
	n := 0
	for i, err := range errs {
		if r := proofs.Reason(err); r == ReasonRateLimited || r == ReasonQueueFull {
			n += len(envs[i])
		}
	}
	if n == 0 {
		return
	}
	if t, ok := ctx.Value(floodTicketKey{}).(*floodTicket); ok && t.reserved {
		t.refused.Add(int64(n))
		return
	}
	l.flood.fail(peer, n)
}

// refuseEarly admits an append procedure's request, or refuses it without
// reading its body, in the request's own protocol (Connect, gRPC or
// gRPC-Web), when its peer's authentication or flood budget is spent;
// net/http then closes the connection rather than drain the body. An
// AppendBatch reserves its size (or a MiB if unknown) from the flood budget.
func (l *Log) refuseEarly(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := budgetKey(r.RemoteAddr)
		refuse := func(err error) {
			// Hold the answer a while, reading nothing: a client that
			// ignores refusals then spends its connections waiting rather
			// than sending (connections are capped per address).
			t := time.NewTimer(holdFor())
			select {
			case <-t.C:
			case <-r.Context().Done():
			}
			t.Stop()
			w.Header().Set("Connection", "close")
			ew.Write(w, r, connectError(err))
		}
		if !ew.IsSupported(r) {
			next.ServeHTTP(w, r)
			return
		}
		if err := l.guard.check(peer); err != nil {
			refuse(err)
			return
		}
		if r.URL.Path != warrantv1connect.LedgerServiceAppendBatchProcedure {
			if err := l.flood.check(peer); err != nil {
				refuse(err)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		size := int(r.ContentLength)
		if size <= 0 {
			size = 1 << 20
		}
		cancel, err := l.flood.reserve(peer, size)
		if err != nil {
			refuse(err)
			return
		}
		t := &floodTicket{reserved: true}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), floodTicketKey{}, t)))
		if t.refused.Load() == 0 {
			cancel()
		}
	})
}
