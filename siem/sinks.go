package siem

// Sinks, one per file: stdout (sink_stdout.go), append-only files
// (sink_file.go), syslog over TCP or TLS with RFC 5425 octet counting
// (sink_syslog.go) and Splunk's HTTP Event Collector (sink_hec.go), plus a
// retrying wrapper (sink_retry.go) and Open, which turns the CLI's --out
// value into a Sink (sink_open.go). This file holds what they share: the
// permanent and retry-after errors and the line framing.
//
// Every sink follows the Sink contract: Write returns nil only once the
// whole batch is handed over, and after an error the caller retries the
// whole batch (duplicates are possible, losses are not). No sink ever
// logs or echoes record contents, and the HEC token never appears in an
// error.

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// ErrPermanent marks a delivery error that retrying the same batch cannot
// fix (a rejected token, a malformed request, a record a sink cannot
// carry, a closed sink). Test with errors.Is(err, ErrPermanent). Any other
// error from a sink is worth retrying.
var ErrPermanent = errors.New("permanent delivery failure")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds and
// WithRetry does not retry it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() + " (permanent)" }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// retryAfterError carries a receiver's Retry-After hint to WithRetry.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

var errSinkClosed = Permanent(errors.New("siem: sink is closed"))

// sinkCheckLines refuses records that would break line framing: the
// Format contract makes every record one line, so a line break inside one
// is a bug upstream, and writing it would turn one event into two broken
// lines.
func sinkCheckLines(records [][]byte) error {
	for i, r := range records {
		if bytes.IndexByte(r, '\n') >= 0 {
			return Permanent(fmt.Errorf("siem: record %d of the batch contains a line break", i))
		}
	}
	return nil
}

// sinkLines is the batch as newline-terminated lines, in one buffer.
func sinkLines(prefix []byte, records [][]byte) []byte {
	n := len(prefix)
	for _, r := range records {
		n += len(r) + 1
	}
	buf := make([]byte, 0, n)
	buf = append(buf, prefix...)
	for _, r := range records {
		buf = append(buf, r...)
		buf = append(buf, '\n')
	}
	return buf
}
