package ledger

import (
	"errors"
	"syscall"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// Reason codes the ledger adds to those of package proofs.
const (
	ReasonIssuerNotRegistered = proofs.ReasonIssuerNotRegistered
	ReasonRegistrarUnknown    = "registrar_unknown"
	ReasonAdminUnknown        = "admin_unknown"
	ReasonKeyInUse            = "key_in_use"
	ReasonNotFound            = "not_found"
	ReasonOutOfRange          = "out_of_range"
	ReasonQueueFull           = "queue_full"
	ReasonShuttingDown        = "shutting_down"
	ReasonStoreUnavailable    = "store_unavailable"
	ReasonDiskFull            = "disk_full"
	ReasonDataLoss            = "data_loss"
	ReasonCheckpointPending   = "checkpoint_pending"
	ReasonRequestTooLarge     = "request_too_large"
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
