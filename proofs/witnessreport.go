package proofs

import "time"

// WitnessReport is what a witnessed log answers at GET /witnesses: its own
// account of its witnesses' state. Nothing in it is signed; a client
// checks cosignatures on checkpoints, and reads this only to show an
// operator what the server says (warrant checkpoint --witnesses) and to
// raise the server-reported witness_conflict alert.
type WitnessReport struct {
	Origin string `json:"origin"`
	// Mode is the server's witness mode, async or sync.
	Mode string `json:"mode"`
	// Size is the latest checkpoint's size, CosignedSize that of the latest
	// one satisfying the server's quorum (0 if none yet).
	Size         uint64          `json:"size"`
	CosignedSize uint64          `json:"cosigned_size"`
	Witnesses    []WitnessStatus `json:"witnesses"`
}

// WitnessStatus is one witness's state as the log sees it.
type WitnessStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// CosignedSize is the largest tree size the witness cosigned for the
	// log (kept across restarts), 0 if none; LastCosigned when it last did,
	// in the server's current process.
	CosignedSize uint64    `json:"cosigned_size"`
	LastCosigned time.Time `json:"last_cosigned,omitzero"`
	// LastError is the last failure since the last cosignature ("" if
	// none), LastErrorKind its kind (those of the server's
	// warrant_witness_failures_total), LastErrorAt when.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorKind string    `json:"last_error_kind,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
}

// The LastErrorKind values that report another history of the log's
// origin.
const (
	// WitnessConflictKind: the witness answered 409 with a size larger than
	// any checkpoint the log signed.
	WitnessConflictKind = "conflict"
	// WitnessInconsistentKind: the witness answered 422, refusing the
	// log's consistency proof from the size it holds.
	WitnessInconsistentKind = "inconsistent"
)

// Conflicting reports whether the witness's last error says it holds
// another history of the log's origin.
func (w *WitnessStatus) Conflicting() bool {
	return w.LastErrorKind == WitnessConflictKind || w.LastErrorKind == WitnessInconsistentKind
}
