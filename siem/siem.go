// Package siem turns verified log entries into SIEM events and delivers
// them: the OCSF, CEF and RFC 5424 syslog renderings that siem/MAPPING.md
// specifies, and sinks for stdout, files, syslog over TCP/TLS and Splunk HEC.
//
// The follower that reads the log, verifies every step and keeps the
// resumable state is in package client (Follower); this package only
// renders and delivers what it hands over, and never decides what is true.
package siem

import (
	"context"
	"strconv"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// Event is one log entry as a SIEM sees it. Every entry of every kind
// becomes exactly one event, in log order.
type Event struct {
	// Origin is the log's checkpoint origin.
	Origin string
	// Index is the entry's index.
	Index uint64
	// CheckpointSize is the size of the verified checkpoint that covers it.
	CheckpointSize uint64
	// Leaf is the verified, parsed entry.
	Leaf *proofs.ParsedLeaf
	// Depth is a delegation's position in its chain (a root grant is 1),
	// or 0 when it is not a delegation or its parent is unknown.
	Depth int
}

// ID is the event's stable id, origin and index: the same entry always has
// the same id, so a SIEM can drop the duplicates a crash may cause.
func (e *Event) ID() string { return e.Origin + "/" + strconv.FormatUint(e.Index, 10) }

// Alert is a high-severity finding of the follower: the log forked or
// rolled back, entries did not hash to the signed root, a checkpoint
// signature did not verify, or the log stalled (critical: the follower
// proved it); or, reason witness_conflict, the server reports a witness
// holding another history of the log's origin (high: the follower cannot
// check the server's report, and what it verified itself still holds).
type Alert struct {
	Time   time.Time
	Origin string
	// Reason is a stable reason code (fork_detected, rollback_detected,
	// range_proof_invalid, checkpoint_signature_invalid, log_stalled, ...).
	Reason  string
	Message string
	// Evidence is the offending checkpoint or data, if any (for a witness
	// conflict, the witness's entry of the server's report, as JSON).
	Evidence []byte
	// Witness names the witness of a witness_conflict alert, WitnessURL
	// its URL, WitnessErrorKind and WitnessError its last error (kind
	// conflict or inconsistent, and text) as the server reported them.
	Witness, WitnessURL, WitnessErrorKind, WitnessError string
}

// Format renders events and alerts as records: one line, no trailing
// newline. Renderings are deterministic (golden files pin them).
type Format interface {
	Event(e *Event) ([]byte, error)
	Alert(a *Alert) ([]byte, error)
}

// Sink delivers records. Write returns nil only once every record is
// handed over durably (a file synced, a HEC acknowledgement, a syslog
// write completed); after an error some records may have been delivered,
// and the caller retries the whole batch: duplicates are identifiable by
// event id, losses are impossible.
type Sink interface {
	Write(ctx context.Context, records [][]byte) error
	Close() error
}

// Product, Vendor and ProductVersion name this software in events.
const (
	Product        = "warrant"
	Vendor         = "warrantlog"
	ProductVersion = "0.1.0"
)
