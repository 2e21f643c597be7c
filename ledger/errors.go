package ledger

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// Reason codes of the server, under the names this package has always
// given them. The codes, their meanings and RPC statuses are catalogued in
// package proofs (proofs/reasons.go).
const (
	ReasonIssuerNotRegistered = proofs.ReasonIssuerNotRegistered
	ReasonRegistrarUnknown    = proofs.ReasonRegistrarUnknown
	ReasonAdminUnknown        = proofs.ReasonAdminUnknown
	ReasonKeyInUse            = proofs.ReasonKeyInUse
	ReasonNotFound            = proofs.ReasonNotFound
	ReasonOutOfRange          = proofs.ReasonOutOfRange
	ReasonQueueFull           = proofs.ReasonQueueFull
	ReasonShuttingDown        = proofs.ReasonShuttingDown
	ReasonStoreUnavailable    = proofs.ReasonStoreUnavailable
	ReasonNotLeader           = proofs.ReasonNotLeader
	ReasonNoLeader            = proofs.ReasonNoLeader
	ReasonDiskFull            = proofs.ReasonDiskFull
	ReasonDataLoss            = proofs.ReasonDataLoss
	ReasonCheckpointPending   = proofs.ReasonCheckpointPending
	ReasonWitnessUnavailable  = proofs.ReasonWitnessUnavailable
	ReasonRequestTooLarge     = proofs.ReasonRequestTooLarge
	// ReasonClockBehind: the server's clock is further behind the log's
	// time than Options.MaxLogTimeAhead allows (it was set back); appends
	// resume when it is within the bound again.
	ReasonClockBehind = proofs.ReasonClockBehind
)

// ErrStoreMismatch is returned by Open when the stored tree does not match
// the stored tree head or the last signed checkpoint. The log refuses to
// serve rather than sign anything inconsistent with what it signed before.
var ErrStoreMismatch = errors.New("store does not match the last signed checkpoint")

// storeError classifies a Badger write failure.
func storeError(err error) *proofs.Error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &proofs.Error{Reason: ReasonDiskFull, Err: err}
	case errors.Is(err, badger.ErrTxnTooBig):
		return &proofs.Error{Reason: ReasonRequestTooLarge, Err: err}
	default:
		return &proofs.Error{Reason: ReasonStoreUnavailable, Err: err}
	}
}

// checkFreeSpace refuses a commit when the data directory's file system
// has less than Options.MinFreeBytes available (see there for why).
func (l *Log) checkFreeSpace() error {
	if l.opts.MinFreeBytes < 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(l.opts.Dir, &st); err != nil {
		return nil // cannot tell: let the write itself report
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < l.opts.MinFreeBytes {
		return &proofs.Error{Reason: ReasonDiskFull, Err: fmt.Errorf("%d bytes free in %s, below the %d-byte reserve: free space or grow the volume", free, l.opts.Dir, l.opts.MinFreeBytes)}
	}
	return nil
}
