package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"syscall"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// Retries.
//
// Every RPC the client makes is idempotent: reads obviously, and appends
// because the log deduplicates signed requests (resubmitting the same signed
// payload returns the original entry, accepted or denied, and writes
// nothing). So
// the client retries, with exponential back-off and jitter, the failures
// that say "not now" rather than "no":
//
//   - ResourceExhausted with reason rate_limited or queue_full (the log
//     shed load; nothing was written). Other ResourceExhausted errors, such
//     as a request over the transport's size limit, are final.
//   - Unavailable: the transport failed (connection refused or reset), or
//     the log is shutting down, its store is unavailable, or the entry is
//     committed but its checkpoint is not signed yet (the retry returns the
//     receipt).
//
// Except witness_unavailable in answer to an append (Append, AppendBatch,
// ExchangeToken): a server in sync witness mode sends it only after
// waiting its whole witness timeout for the quorum, so a retry would make
// the caller wait that long again, attempts times over, for witnesses that
// were just found down. The entry is committed; the error says so, and
// the caller decides when to ask again (Entry, Delegation, or the same
// envelope resubmitted).
//
// Streams (WatchCheckpoints) are not retried here; the follower has its own
// reconnection logic.

// Retry defaults: 5 attempts in all, the first retry after about 100 ms,
// doubling up to 2 s.
//
// A client of several servers (New with a list) tries every server in each
// attempt, and makes DefaultClusterRetryAttempts by default: with the
// back-off capped at MaxRetryBackoff they wait 7.5 to 15 s in all, longer than a
// cluster takes to elect a new leader (its lease time, 5 s by default,
// plus 2 s).
const (
	DefaultClusterRetryAttempts = 12
	DefaultRetryAttempts        = 5
	DefaultRetryBackoff         = 100 * time.Millisecond
	MaxRetryBackoff             = 2 * time.Second
)

type retryPolicy struct {
	attempts int
	base     time.Duration
}

// WithRetry sets how often an RPC is tried in all (attempts; 1 or less: no
// retries) and the back-off before the first retry (base; each further one
// doubles it, up to MaxRetryBackoff, with jitter). Retrying is on by
// default (DefaultRetryAttempts, DefaultRetryBackoff; for a client of
// several servers DefaultClusterRetryAttempts). With several servers an
// attempt tries each of them once, without back-off between them
// (servers.go).
func WithRetry(attempts int, base time.Duration) Option {
	return func(cfg *config) {
		cfg.retry = &retryPolicy{attempts: attempts, base: base}
	}
}

// retryInterceptor retries retryable unary calls (p.attempts in all); the
// context's deadline and cancellation end the waiting.
func retryInterceptor(p retryPolicy) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			for attempt := 1; ; attempt++ {
				resp, err := next(ctx, req)
				err = transportError(ctx, err)
				if err == nil || attempt >= p.attempts || !retryable(req.Spec().Procedure, err) || ctx.Err() != nil {
					return resp, err
				}
				t := time.NewTimer(backoff(p.base, attempt))
				select {
				case <-ctx.Done():
					t.Stop()
					return nil, err
				case <-t.C:
				}
			}
		}
	}
}

// transportError reports a connection the server broke (reset, or closed
// while the request was being written) as Unavailable, like any other
// transport failure; connect-go reports it as Canceled, which would read as
// if the caller had given up.
func transportError(ctx context.Context, err error) error {
	var ce *connect.Error
	if err == nil || ctx.Err() != nil || !errors.As(err, &ce) || ce.Code() != connect.CodeCanceled {
		return err
	}
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return connect.NewError(connect.CodeUnavailable, ce.Unwrap())
	}
	return err
}

// backoff is the wait before retry number n (1, 2, ...): base·2ⁿ⁻¹ capped
// at MaxRetryBackoff, of which the upper half is random ("equal jitter"), so
// clients shed together do not come back together.
func backoff(base time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, max(MaxRetryBackoff, base))
	half := d / 2
	return half + rand.N(d-half+1)
}

// appends are the procedures that append an entry.
var appends = []string{
	warrantv1connect.LedgerServiceAppendProcedure,
	warrantv1connect.LedgerServiceAppendBatchProcedure,
	warrantv1connect.LedgerServiceExchangeTokenProcedure,
}

// retryable reports whether err, the answer to a call of procedure, says
// "try again later".
func retryable(procedure string, err error) bool {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Code() {
	case connect.CodeUnavailable:
		if errorReason(ce) == proofs.ReasonWitnessUnavailable && slices.Contains(appends, procedure) {
			return false // the server already waited its witness timeout
		}
		return !tlsFailure(err)
	case connect.CodeResourceExhausted:
		switch errorReason(ce) {
		case proofs.ReasonRateLimited, proofs.ReasonQueueFull:
			return true
		}
	}
	return false
}

// errorReason is the reason code of a Connect error's ErrorDetail, if any.
func errorReason(ce *connect.Error) string {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ed, ok := v.(*warrantv1.ErrorDetail); ok {
				return ed.GetReason()
			}
		}
	}
	return ""
}

// tlsFailure reports whether err is a TLS failure that a retry would only
// repeat: the server's certificate does not verify, the server refused
// ours (a TLS alert), or the server does not speak TLS.
func tlsFailure(err error) bool {
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	var oe *net.OpError
	switch {
	case errors.As(err, &cve), errors.As(err, &rhe), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie):
		return true
	case errors.As(err, &oe) && oe.Op == "remote error": // crypto/tls: an alert from the peer
		return true
	}
	return false
}
