package ledger

// The append path's entry points: Append for callers of this package, and
// appendFrom and appendBatch for the RPC service (service.go). Each is
// measured by the metrics' decorators around it (Metrics.measureAppend and
// Metrics.measureBatch, metrics.go); the path itself (the stateless stage
// and the sequencer, sequencer.go; batches, batch.go) measures nothing.

import "context"

// Append is the stateless stage followed by the sequencer (see append),
// measured.
func (l *Log) Append(ctx context.Context, envelope []byte) (*Appended, error) {
	return l.opts.Metrics.measureAppend(func() (*Appended, error) { return l.append(ctx, envelope) })
}

// appendFrom is Append for a request from the client at addr (host:port):
// a peer whose requests kept failing authentication is refused before its
// signatures are checked, and a refusal as not authentic spends its
// failure budget (authguard.go).
func (l *Log) appendFrom(ctx context.Context, addr string, envelope []byte) (*Appended, error) {
	return l.opts.Metrics.measureAppend(func() (*Appended, error) { return l.appendGuarded(ctx, budgetKey(addr), envelope) })
}

func (l *Log) appendGuarded(ctx context.Context, peer string, envelope []byte) (*Appended, error) {
	if err := l.guard.check(peer); err != nil {
		return nil, err
	}
	if err := l.flood.check(peer); err != nil {
		return nil, err
	}
	r, err := l.prepare(envelope)
	if err != nil {
		if authFailure(err) {
			l.guard.fail(peer, 1)
		}
		l.refusedOverLimits(ctx, peer, [][]byte{envelope}, []error{err})
		return nil, err
	}
	a, err := l.appendPrepared(ctx, r)
	if err != nil {
		l.refusedOverLimits(ctx, peer, [][]byte{envelope}, []error{err})
	}
	return a, err
}

// appendBatch appends the envelopes of one AppendBatch from the client at
// addr (see appendBatchGuarded, batch.go), measured: each envelope counts as
// one append.
func (l *Log) appendBatch(ctx context.Context, addr string, envs [][]byte) ([]*Appended, []error) {
	return l.opts.Metrics.measureBatch(func() ([]*Appended, []error) { return l.appendBatchGuarded(ctx, addr, envs) })
}
