package proofs

import (
	"errors"
	"fmt"
)

// Error is a verification or parsing failure with a stable reason code.
// Reason codes are snake_case and never change meaning; scripts match on them.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given reason and a formatted message.
func Errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Reason returns the reason code of the first *Error in err's chain, or ""
// when there is none.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Reason codes returned by this package.
const (
	ReasonEnvelopeMalformed   = "envelope_malformed"
	ReasonEnvelopeTooLarge    = "envelope_too_large"
	ReasonBase64NonCanonical  = "base64_non_canonical"
	ReasonTooManySignatures   = "too_many_signatures"
	ReasonPayloadTypeUnknown  = "payload_type_unknown"
	ReasonPayloadTypeMismatch = "payload_type_mismatch"
	ReasonPayloadMalformed    = "payload_malformed"
	ReasonPayloadNonCanonical = "payload_non_canonical"
	ReasonSignatureInvalid    = "signature_invalid"
	ReasonSignatureMissing    = "signature_missing"
	// ReasonSignatureKeyUnknown: a signature names no key this log holds
	// for the payload and verifies under none of the candidate keys (see
	// Envelope.MatchKeys): the request is not authentic.
	ReasonSignatureKeyUnknown = "signature_key_unknown"
	// ReasonAuthBackoff: the peer's recent requests kept failing
	// authentication, so this one is refused before its signatures are
	// checked; retry later (ResourceExhausted).
	ReasonAuthBackoff         = "auth_backoff"
	ReasonSignatureHighS      = "signature_high_s"
	ReasonKeyInvalid          = "key_invalid"
	ReasonLeafMalformed       = "leaf_malformed"
	ReasonLeafNonCanonical    = "leaf_non_canonical"
	ReasonLeafTooLarge        = "leaf_too_large"
	ReasonCheckpointInvalid   = "checkpoint_invalid"
	ReasonCheckpointSignature = "checkpoint_signature_invalid"
	ReasonCheckpointOrigin    = "checkpoint_origin_mismatch"
	ReasonInclusionInvalid    = "inclusion_proof_invalid"
	ReasonConsistencyInvalid  = "consistency_proof_invalid"
	ReasonRangeInvalid        = "range_proof_invalid"
	ReasonTLogProofMalformed  = "tlog_proof_malformed"
	ReasonTLogProofNoLeaf     = "tlog_proof_missing_leaf"
	ReasonTimeMalformed       = "time_malformed"
	ReasonIdentityMalformed   = "identity_malformed"
	ReasonListTooLong         = "list_too_long"
	ReasonFieldTooLong        = "field_too_long"
	ReasonFieldMissing        = "field_missing"
	// ReasonCaseNonCanonical: a scope, data class, destination or task
	// with an upper-case letter; each has one spelling, lower case.
	ReasonCaseNonCanonical = "case_non_canonical"
	// ReasonLabelMalformed: a scope, data class or destination with a
	// character outside a-z 0-9 - _ . : / ~.
	ReasonLabelMalformed = "label_malformed"
	// ReasonIDReserved: a delegation id (or parent) in the "sha256:"
	// namespace of entry ids that the log derives from envelope hashes.
	ReasonIDReserved = "id_reserved"
	// ReasonRevokerMismatch: an admin-signed revocation that names an
	// issuer, which would show the admin's act as that agent's.
	ReasonRevokerMismatch = "revoker_mismatch"
	// ReasonRuleLimitsInvalid: rule limits a log may not run with (a depth
	// limit above MaxChainDepth).
	ReasonRuleLimitsInvalid = "rule_limits_invalid"
	// ReasonOptionsInvalid: a server option a log may not open with (a
	// negative bound that cannot be off, a nil key, no data directory);
	// the error names the option.
	ReasonOptionsInvalid = "options_invalid"
	// ReasonChainTooLong: a chain longer than MaxChainDepth, which no valid
	// configuration lets be built; the rules refuse to decide on it.
	ReasonChainTooLong = "chain_too_long"
)

// Reason codes of administrative requests (adminrequest.go).
const (
	// ReasonAdminAuth: an administrative request's Authorization is
	// missing, malformed, stale, replayed or not signed by an admin key.
	ReasonAdminAuth = "admin_auth_invalid"
)
