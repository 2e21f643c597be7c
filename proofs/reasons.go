package proofs

// The catalogue of reason codes. Every reason code that warrant answers,
// records or prints is listed once, in reasons below, with what it means
// and how it reaches its reader: the server's RPC status for a refusal, a
// denial recorded in the log, a failure found by a client or auditor, or
// one raised outside the RPC API (the CLI, start-up, backups). The server
// derives its RPC statuses from this table (ledger/service.go), and
// docs/rules.md and the README are checked against it by tests
// (cmd/warrant/docs_test.go), so a code is added here and nowhere else.
//
// Every code's constant is declared here too, grouped by what raises it.
// Code outside this package names a code by its constant, never by a
// string literal.

// Reason codes of envelopes, payloads, keys, leaves, checkpoints, proofs
// and rule limits.
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

// Reason codes of the chain rules (docs/rules.md). They are
// recorded in denial entries and printed by the CLI; they never change
// meaning. Policy denials add the @reason codes of the policy in force
// (the default policy's are cross_domain, tier_escalation and
// approval_required).
const (
	ReasonRootGrantNotHuman   = "root_grant_not_human"
	ReasonRootSubjectMismatch = "root_subject_mismatch"
	ReasonParentNotFound      = "parent_not_found"
	ReasonNotParentDelegate   = "not_parent_delegate"
	ReasonParentRevoked       = "parent_revoked"
	ReasonParentExpired       = "parent_expired"
	ReasonParentNotYetValid   = "parent_not_yet_valid"
	ReasonTaskNotWithinParent = "task_not_within_parent"
	ReasonScopeWidened        = "scope_widened"
	ReasonDataClassWidened    = "data_class_widened"
	ReasonDestinationWidened  = "destination_widened"
	ReasonOutlivesParent      = "outlives_parent"
	ReasonLifetimeExceedsTier = "lifetime_exceeds_tier"
	ReasonAlreadyExpired      = "already_expired"
	ReasonNotYetValid         = "not_yet_valid"
	ReasonDepthExceeded       = "depth_exceeded"
	ReasonSelfDelegation      = "self_delegation"
	ReasonCycle               = "cycle"
	ReasonTierEscalation      = "tier_escalation"
	ReasonDelegateUnknown     = "delegate_unknown"
	ReasonCrossDomain         = "cross_domain"
	ReasonApprovalRequired    = "approval_required"
	ReasonApprovalInvalid     = "approval_invalid"
	ReasonNonceReused         = "nonce_reused"
	ReasonIDReused            = "id_reused"
	ReasonDelegationNotFound  = "delegation_not_found"
	ReasonRevokeNotAuthorized = "revoke_not_authorized"
	ReasonIssuerNotRegistered = "issuer_not_registered"
)

// Reason codes of replay discrepancies.
const (
	ReasonReplayOrder         = "replay_out_of_order"
	ReasonReplayConfig        = "replay_config_missing"
	ReasonReplayLogTime       = "replay_log_time_decreased"
	ReasonReplayUnauthentic   = "replay_unauthentic_entry"
	ReasonReplayDecision      = "replay_decision_mismatch"
	ReasonReplayPolicyMissing = "replay_policy_missing"
)

// Reason codes of chain-bundle verification.
const (
	ReasonBundleMalformed   = "bundle_malformed"
	ReasonBundleIncomplete  = "bundle_incomplete"
	ReasonBundleChainBroken = "bundle_chain_broken"
	ReasonBundleDecision    = "bundle_decision_mismatch"
	ReasonBundleWitness     = "bundle_witness_policy_unsatisfied"
)

// Reason codes of witness policies (witness.go).
const (
	// ReasonWitnessPolicyInvalid: a C2SP tlog-policy file that does not
	// parse, breaks one of its rules (a duplicate key, a group member
	// listed twice, no quorum), or does not fit the log it is used for.
	ReasonWitnessPolicyInvalid = "witness_policy_invalid"
	// ReasonWitnessQuorum: a checkpoint whose valid cosignatures by the
	// policy's witnesses do not satisfy its quorum; nothing trusts it.
	ReasonWitnessQuorum = "witness_quorum_not_met"
)

// Reason codes of policy handling.
const (
	ReasonPolicyInvalid = "policy_invalid"
	ReasonPolicyForbid  = "policy_forbid"
	// ReasonPolicyError denies a request on which some policy failed to
	// evaluate (a misspelt attribute, a type error): a broken rule must not
	// silently stop forbidding.
	ReasonPolicyError = "policy_error"
)

// ReasonKeyInUse denies a key binding whose key is bound to another agent:
// one key names one identity, or signatures would be ambiguous.
const ReasonKeyInUse = "key_in_use"

// Reason codes of a whole-log audit.
const (
	ReasonAuditTreeMismatch = "audit_tree_mismatch"
	ReasonAuditInconsistent = "audit_inconsistent_with_trusted"
	ReasonExportMalformed   = "export_malformed"
)

// Reason codes of the server (package ledger) that are not decisions.
const (
	ReasonRegistrarUnknown     = "registrar_unknown"
	ReasonAdminUnknown         = "admin_unknown"
	ReasonPeerIdentityMismatch = "peer_identity_mismatch"
	// ReasonTokenRequestInvalid: a token exchange (the ExchangeToken RPC)
	// that is not a well-formed RFC 8693 request of this log (grant or
	// token type, resource, scope, subject token); nothing is recorded.
	ReasonTokenRequestInvalid = "token_request_invalid"
	// ReasonDPoPProofInvalid: a DPoP proof (RFC 9449) missing, malformed,
	// stale, replayed, or not for this request (htm, htu).
	ReasonDPoPProofInvalid = "dpop_proof_invalid"
	// ReasonDPoPNonceRequired: the DPoP proof lacks the server's current
	// nonce; retry with the one the answer carries (DPoP-Nonce).
	ReasonDPoPNonceRequired = "dpop_nonce_required"
	ReasonRateLimited       = "rate_limited"
	ReasonQueueFull         = "queue_full"
	ReasonTooManyStreams    = "too_many_streams"
	// ReasonTooManyRequests: over the requests in flight from one address
	// or in all, refused before the request body is read; or a token
	// exchange or introspection while the DPoP replay cache is full.
	ReasonTooManyRequests   = "too_many_requests"
	ReasonDiskFull          = "disk_full"
	ReasonShuttingDown      = "shutting_down"
	ReasonStoreUnavailable  = "store_unavailable"
	ReasonCheckpointPending = "checkpoint_pending"
	// ReasonWitnessUnavailable: in sync witness mode, no checkpoint
	// covering the entry reached the witness quorum in time; the entry is
	// committed and resubmitting the same envelope returns it. A client
	// with a witness policy reports it too (client.UnwitnessedError) when
	// no witnessed checkpoint covering its entry came within its wait.
	ReasonWitnessUnavailable = "witness_unavailable"
	// ReasonClockBehind: the server's clock is further behind the log's
	// time than the log allows (it was set back); appends resume when it
	// is within the bound again.
	ReasonClockBehind = "clock_behind"
	// ReasonNotLeader: a node of a cluster that does not lead did not
	// forward a write (a request already forwarded once, a client with a
	// certificate of its own, or a leader that did not answer the
	// forward); the answer's Warrant-Leader header names the leader's URL,
	// where the client sends it next (ledger/forward.go). A node's
	// sequencer answers it too to a write that reached it while it does
	// not lead, and to a batch of a leader whose term ended before the
	// batch was acknowledged (ledger/distributed.go, ledger/publish.go).
	ReasonNotLeader = "not_leader"
	// ReasonNoLeader: a node of a cluster got a write while no node leads
	// (an election is under way, or the coordination service is out of
	// reach); retry after a moment (ledger/forward.go).
	ReasonNoLeader = "no_leader"
	// ReasonReplicaBehind: a node of a cluster got a read whose trusted
	// size, or the size or index it names (a proof, an entry, a tile), is
	// past the checkpoint it serves while the cluster's covers it, or a
	// lookup by key that found nothing while the cluster's checkpoint is
	// past the node's, and did not catch up within a moment; the client
	// asks another node or retries (ledger/replica.go).
	ReasonReplicaBehind   = "replica_behind"
	ReasonDataLoss        = "data_loss"
	ReasonRequestTooLarge = "request_too_large"
	ReasonNotFound        = "not_found"
	ReasonOutOfRange      = "out_of_range"
	// ReasonInternal is the server's answer to an error that carries no
	// reason code.
	ReasonInternal = "internal"
)

// Reason codes of backups, restores and administrative requests.
const (
	ReasonBackupInProgress  = "backup_in_progress"
	ReasonBackupFailed      = "backup_failed"
	ReasonBackupMalformed   = "backup_malformed"
	ReasonBackupMismatch    = "backup_mismatch"
	ReasonBackupKeyMismatch = "backup_key_mismatch"
	ReasonRestoreTarget     = "restore_target_not_empty"
	ReasonSigningFailed     = "signing_failed"
)

// Reason codes of the client (package client): what a server said does
// not verify, or the server could not be reached.
const (
	ReasonForkDetected        = "fork_detected"
	ReasonRollbackDetected    = "rollback_detected"
	ReasonTrustedStateInvalid = "trusted_state_invalid"
	ReasonResponseMismatch    = "response_mismatch"
	// ReasonResponseTooLarge: a response (a Connect message or a tlog-tiles
	// resource) is larger than the client reads, after decompression.
	ReasonResponseTooLarge = "response_too_large"
	ReasonUnavailable      = "unavailable"
	ReasonTLSConfigInvalid = "tls_config_invalid"
	// ReasonEntriesDoNotMatchRoot: the entries a follower fetched do not
	// hash to the signed root.
	ReasonEntriesDoNotMatchRoot = "entries_do_not_match_root"
	// ReasonLogStalled: no fresh signed timestamp within the follower's
	// stall bound.
	ReasonLogStalled = "log_stalled"
	// ReasonWitnessConflict: the server reports (GET /witnesses, not
	// verified) a witness holding a checkpoint of the log's origin that
	// conflicts with the log's: a split view, or a log that lost state.
	// The SIEM follower raises it as an alert and goes on.
	ReasonWitnessConflict = "witness_conflict"
	ReasonStateLocked     = "state_locked"
	ReasonAuditError      = "audit_error"
	// ReasonTokenRefused: the token endpoint refused an exchange without
	// recording it (a malformed request or DPoP proof); the text carries
	// the OAuth error.
	ReasonTokenRefused = "token_refused"
	// ReasonTokenNotInForce: `warrant token inspect` verified the token,
	// but it has expired or its chain is no longer in force.
	ReasonTokenNotInForce = "token_not_in_force"
)

// Reason codes of the command line (cmd/warrant) and the load generator.
const (
	ReasonUsage             = "usage"
	ReasonIOError           = "io_error"
	ReasonFileExists        = "file_exists"
	ReasonKeyUnreadable     = "key_unreadable"
	ReasonLogKeyUnreadable  = "log_key_unreadable"
	ReasonConfigUnreadable  = "config_unreadable"
	ReasonListenFailed      = "listen_failed"
	ReasonOpenFailed        = "open_failed"
	ReasonStoreMismatch     = "store_mismatch"
	ReasonServeFailed       = "serve_failed"
	ReasonOtelFailed        = "otel_failed"
	ReasonProfileUnwritable = "profile_unwritable"
	ReasonSinkUnavailable   = "sink_unavailable"
	ReasonCanceled          = "canceled"
	ReasonDeadlineExceeded  = "deadline_exceeded"
	ReasonFailed            = "failed"
	ReasonError             = "error"
)

// ReasonKind says how a reason code reaches whoever reads it.
type ReasonKind uint8

const (
	// Refusal: the server refuses the request (an append, a read, a
	// stream) with the code's RPC status and writes nothing.
	Refusal ReasonKind = iota + 1
	// RecordedDenial: an authentic append that breaks a rule or the
	// policy; the log records it as a denial and answers PermissionDenied.
	RecordedDenial
	// ClientFailure: found by the SDK, the CLI or an auditor: what a
	// server or a file says does not verify, or the server cannot be
	// reached.
	ClientFailure
	// LocalFailure: raised outside the RPC API: by the CLI (flags, files,
	// keys), by a server starting, by backups and restores and the
	// administrative HTTP endpoints.
	LocalFailure
)

// String is the kind as docs/rules.md's tables write it; a refusal is
// written as its RPC status instead.
func (k ReasonKind) String() string {
	switch k {
	case Refusal:
		return "refused"
	case RecordedDenial:
		return "recorded denial"
	case ClientFailure:
		return "client-side"
	case LocalFailure:
		return "local"
	}
	return "unknown"
}

// RPCCode is a gRPC status code by its number (google.rpc.Code), which is
// also Connect's number for it: the server converts with connect.Code(c).
// Package proofs does not import the RPC stack.
type RPCCode uint32

// The RPC statuses reason codes map to.
const (
	RPCInvalidArgument   RPCCode = 3
	RPCNotFound          RPCCode = 5
	RPCPermissionDenied  RPCCode = 7
	RPCResourceExhausted RPCCode = 8
	RPCOutOfRange        RPCCode = 11
	RPCInternal          RPCCode = 13
	RPCUnavailable       RPCCode = 14
	RPCDataLoss          RPCCode = 15
	RPCUnauthenticated   RPCCode = 16
)

// String is the status's gRPC name, as the documentation writes it.
func (c RPCCode) String() string {
	switch c {
	case RPCInvalidArgument:
		return "InvalidArgument"
	case RPCNotFound:
		return "NotFound"
	case RPCPermissionDenied:
		return "PermissionDenied"
	case RPCResourceExhausted:
		return "ResourceExhausted"
	case RPCOutOfRange:
		return "OutOfRange"
	case RPCInternal:
		return "Internal"
	case RPCUnavailable:
		return "Unavailable"
	case RPCDataLoss:
		return "DataLoss"
	case RPCUnauthenticated:
		return "Unauthenticated"
	}
	return "Unknown"
}

// ReasonInfo is one entry of the catalogue.
type ReasonInfo struct {
	Code string
	Kind ReasonKind
	// RPC is the status the server answers with: a Refusal's own status,
	// PermissionDenied for a RecordedDenial, and zero for the codes no
	// server answer carries (RPCStatus gives InvalidArgument for them).
	RPC     RPCCode
	Meaning string
}

// Status is how the documentation writes the code's status: the RPC
// status of a refusal, otherwise its kind.
func (r ReasonInfo) Status() string {
	if r.Kind == Refusal {
		return r.RPC.String()
	}
	return r.Kind.String()
}

// RPCStatus is the RPC status the server answers an error carrying reason
// code with: the catalogued status of a refusal, and InvalidArgument for
// any other code (one no server raises, or one the catalogue does not
// know, such as a policy's own @reason). A recorded denial is answered
// PermissionDenied by the append path itself, with the entry.
func RPCStatus(code string) RPCCode {
	if r, ok := LookupReason(code); ok && r.Kind == Refusal {
		return r.RPC
	}
	return RPCInvalidArgument
}

// LookupReason returns the catalogue entry of code.
func LookupReason(code string) (ReasonInfo, bool) {
	i, ok := reasonIndex[code]
	if !ok {
		return ReasonInfo{}, false
	}
	return reasons[i], true
}

// Reasons returns the whole catalogue, in the order of docs/rules.md.
func Reasons() []ReasonInfo {
	return append([]ReasonInfo(nil), reasons...)
}

// reasonIndex maps a code to its position in reasons; it is built once
// and never written after.
var reasonIndex = func() map[string]int {
	m := make(map[string]int, len(reasons))
	for i, r := range reasons {
		m[r.Code] = i
	}
	return m
}()

func refused(code string, rpc RPCCode, meaning string) ReasonInfo {
	return ReasonInfo{Code: code, Kind: Refusal, RPC: rpc, Meaning: meaning}
}

func denied(code, meaning string) ReasonInfo {
	return ReasonInfo{Code: code, Kind: RecordedDenial, RPC: RPCPermissionDenied, Meaning: meaning}
}

func clientSide(code, meaning string) ReasonInfo {
	return ReasonInfo{Code: code, Kind: ClientFailure, Meaning: meaning}
}

func local(code, meaning string) ReasonInfo {
	return ReasonInfo{Code: code, Kind: LocalFailure, Meaning: meaning}
}

// reasons is the catalogue. Never change a code's meaning or status:
// scripts match on them.
var reasons = []ReasonInfo{
	// Refusals of an append: nothing is written.
	refused(ReasonEnvelopeMalformed, RPCInvalidArgument, "not a DSSE envelope this log accepts (JSON shape, field bounds, characters)"),
	refused(ReasonEnvelopeTooLarge, RPCInvalidArgument, "an envelope over its size bound"),
	refused(ReasonBase64NonCanonical, RPCInvalidArgument, "a base64 field that is not standard or URL-safe base64, or has line breaks or stray bits"),
	refused(ReasonTooManySignatures, RPCInvalidArgument, "more signatures than an envelope may carry, or more than one where exactly one is required"),
	refused(ReasonPayloadTypeUnknown, RPCInvalidArgument, "a payload type this log does not know"),
	refused(ReasonPayloadMalformed, RPCInvalidArgument, "a payload that does not decode or breaks its schema"),
	refused(ReasonPayloadNonCanonical, RPCInvalidArgument, "a payload that is not its own canonical JSON"),
	refused(ReasonTimeMalformed, RPCInvalidArgument, "a time that is not RFC 3339 UTC in whole seconds"),
	refused(ReasonIdentityMalformed, RPCInvalidArgument, "a SPIFFE ID that does not parse"),
	refused(ReasonFieldMissing, RPCInvalidArgument, "a required field is empty (also a read that names no entry)"),
	refused(ReasonFieldTooLong, RPCInvalidArgument, "a string over its bound"),
	refused(ReasonListTooLong, RPCInvalidArgument, "a list, batch, page or range over its bound"),
	refused(ReasonKeyInvalid, RPCInvalidArgument, "a public key that does not parse, is of another algorithm, or is not canonically encoded"),
	refused(ReasonPolicyInvalid, RPCInvalidArgument, "a policy that does not parse, breaks the @id/@reason conventions, or is over its bound"),
	refused(ReasonLeafTooLarge, RPCInvalidArgument, "the leaf would exceed the tlog-tiles entry limit"),
	refused(ReasonRequestTooLarge, RPCInvalidArgument, "one entry does not fit a store transaction (a compressed request inflating beyond its bound is refused ResourceExhausted by the transport)"),
	refused(ReasonSignatureInvalid, RPCUnauthenticated, "a required signature does not verify"),
	refused(ReasonSignatureMissing, RPCUnauthenticated, "no signature by the key the rules require"),
	refused(ReasonSignatureKeyUnknown, RPCUnauthenticated, "a signature verifies under no key the log holds: the request is not authentic"),
	refused(ReasonAuthBackoff, RPCResourceExhausted, "the client's address spent its budget of requests failing authentication; retry later"),
	refused(ReasonCaseNonCanonical, RPCInvalidArgument, "a scope, data class, destination or task with an upper-case letter"),
	refused(ReasonLabelMalformed, RPCInvalidArgument, "a scope, data class or destination with a character outside a-z 0-9 - _ . : / ~"),
	refused(ReasonIDReserved, RPCInvalidArgument, "a delegation id, parent or revocation target in the sha256: namespace of entry ids"),
	refused(ReasonRevokerMismatch, RPCInvalidArgument, "an admin-signed revocation that names an issuer"),
	refused(ReasonChainTooLong, RPCInvalidArgument, "a chain walk would pass the longest chain any log allows"),
	refused(ReasonClockBehind, RPCUnavailable, "log time is further ahead of the server clock than allowed; nothing is written until the clock catches up"),
	refused(ReasonTooManyStreams, RPCResourceExhausted, "a WatchCheckpoints stream over the per-peer or total bound"),
	refused(ReasonTooManyRequests, RPCResourceExhausted, "over the requests in flight from the client's address or in all, or (token exchange, introspection) the server's DPoP replay window is full; retry with back-off"),
	refused(ReasonSignatureHighS, RPCInvalidArgument, "an ECDSA signature with a high S value"),
	refused(ReasonIssuerNotRegistered, RPCUnauthenticated, "the issuer has no key binding in force"),
	refused(ReasonRegistrarUnknown, RPCUnauthenticated, "a key binding not signed by a registrar key of this log"),
	refused(ReasonAdminUnknown, RPCUnauthenticated, "a policy, or a revocation without issuer, not signed by an admin key of this log"),
	refused(ReasonPeerIdentityMismatch, RPCUnauthenticated, "mutual TLS: the issuer is not the client certificate's SPIFFE ID"),
	refused(ReasonTokenRequestInvalid, RPCInvalidArgument, "ExchangeToken: not a well-formed token exchange (grant or token type, resource, scope, subject token); the message starts with the OAuth error"),
	refused(ReasonDPoPProofInvalid, RPCUnauthenticated, "ExchangeToken: the DPoP proof is missing, malformed, stale, replayed or not for this request (OAuth invalid_dpop_proof)"),
	refused(ReasonDPoPNonceRequired, RPCUnauthenticated, "ExchangeToken: the DPoP proof lacks the server's current nonce; retry with the DPoP-Nonce the error carries (OAuth use_dpop_nonce)"),
	refused(ReasonRateLimited, RPCResourceExhausted, "over the agent's or the global append budget; retry with back-off"),
	refused(ReasonQueueFull, RPCResourceExhausted, "the sequencer queue, or the agent's share of it, is full; retry with back-off"),
	refused(ReasonDiskFull, RPCResourceExhausted, "the data directory's file system is below the free-space reserve, or full"),
	refused(ReasonShuttingDown, RPCUnavailable, "the server is stopping"),
	refused(ReasonStoreUnavailable, RPCUnavailable, "the store failed a read or write (in distributed mode also: the object store or etcd failed, and the batch is not acknowledged; resubmit the same envelope)"),
	refused(ReasonCheckpointPending, RPCUnavailable, "the entry is committed but no checkpoint covers it yet; resubmit for the receipt"),
	refused(ReasonNotLeader, RPCUnavailable, "a cluster node that does not lead did not forward this write (already forwarded once, a client certificate of its own, or the leader did not answer), or a leader lost its term before acknowledging it; the Warrant-Leader header names the leader, where clients send it next"),
	refused(ReasonNoLeader, RPCUnavailable, "a cluster node got a write while no node leads (an election under way, or the coordination service out of reach); retry after a moment"),
	refused(ReasonReplicaBehind, RPCUnavailable, "a cluster node got a read whose trusted size, or the size or index it names (a proof, an entry, a page, the checkpoint feed, a tile: then HTTP 503), is past the checkpoint it serves while the cluster's checkpoint covers it, or a lookup by key (a delegation id, a leaf hash) that found nothing while the cluster's checkpoint is past the node's (the node is still catching up); ask another node or retry"),
	refused(ReasonWitnessUnavailable, RPCUnavailable, "the entry is committed but no checkpoint covering it reached the witness quorum in time (sync witness mode; or, at a client with a witness policy, within its wait for an asynchronously witnessing server); resubmit the same envelope, or fetch the entry later, for the receipt (a command that signs a new request would append a second entry)"),
	refused(ReasonDataLoss, RPCDataLoss, "the store lacks or contradicts something it must hold"),
	refused(ReasonInternal, RPCInternal, "the server failed with an error that has no reason code"),

	// Reads.
	refused(ReasonNotFound, RPCNotFound, "no entry with that index, delegation id or leaf hash under the latest checkpoint"),
	refused(ReasonOutOfRange, RPCOutOfRange, "a start, tree size or range beyond the latest checkpoint"),

	// Decisions recorded in the log.
	denied(ReasonRootGrantNotHuman, "a root grant whose issuer is not registered as a human"),
	denied(ReasonRootSubjectMismatch, "a root subject that is not the root grant's issuer, or not the parent's"),
	denied(ReasonParentNotFound, "the parent is not an accepted delegation earlier in the log"),
	denied(ReasonNotParentDelegate, "the issuer is not the parent's delegate"),
	denied(ReasonParentRevoked, "the parent or an ancestor was revoked"),
	denied(ReasonParentExpired, "the parent or an ancestor has expired at log time"),
	denied(ReasonParentNotYetValid, "log time is before the parent's not_before"),
	denied(ReasonTaskNotWithinParent, "the task is neither the parent's task nor under it"),
	denied(ReasonScopeWidened, "a scope is not among the parent's"),
	denied(ReasonDataClassWidened, "a data class is not among the parent's"),
	denied(ReasonDestinationWidened, "a destination is not among the parent's"),
	denied(ReasonOutlivesParent, "it expires after its parent"),
	denied(ReasonLifetimeExceedsTier, "its lifetime is longer than its tier allows"),
	denied(ReasonAlreadyExpired, "it has expired at log time"),
	denied(ReasonNotYetValid, "its not_before is too far after log time"),
	denied(ReasonDepthExceeded, "its depth exceeds the log's depth limit"),
	denied(ReasonSelfDelegation, "its delegate is its issuer"),
	denied(ReasonCycle, "its delegate issued one of its ancestors"),
	denied(ReasonDelegateUnknown, "its delegate has no key binding in force"),
	denied(ReasonApprovalInvalid, "a co-signature that is not a valid signature by a registered agent (logs written before such requests were refused)"),
	denied(ReasonIDReused, "an accepted delegation already has its id"),
	denied(ReasonNonceReused, "an accepted delegation of the same issuer already has its nonce"),
	denied(ReasonCrossDomain, "the default policy: issuer and delegate are in different trust domains"),
	denied(ReasonTierEscalation, "the default policy: a draft-tier issuer delegates to an execute-tier delegate"),
	denied(ReasonApprovalRequired, "the default policy: a high-impact delegation without human approval"),
	denied(ReasonPolicyForbid, "the policy forbids it without a @reason, or no permit matches"),
	denied(ReasonPolicyError, "a policy failed to evaluate on the request (fail closed)"),
	denied(ReasonDelegationNotFound, "a revocation names no accepted delegation"),
	denied(ReasonRevokeNotAuthorized, "a revocation by an agent that issued neither the delegation nor an ancestor"),
	denied(ReasonKeyInUse, "a key binding whose key is bound, in force, to another agent"),
	denied(ReasonTokenNotDelegate, "a token exchange by an agent that is not the delegation's delegate"),
	denied(ReasonDelegationRevoked, "a token exchange of a delegation that, or an ancestor of which, was revoked"),
	denied(ReasonDelegationExpired, "a token exchange of a delegation that, or an ancestor of which, has expired at log time"),
	denied(ReasonDelegationNotYetValid, "a token exchange before the delegation's not_before"),
	denied(ReasonBindingNotInForce, "a token exchange of a delegation whose delegate or an issuer up the chain has no key binding in force"),
	denied(ReasonAudienceNotAllowed, "a token exchange for a resource that is not one of the delegation's destinations"),
	denied(ReasonTokenRecordInvalid, "a token record that contradicts the log (delegation index, lifetime, issue time, signing key); found by auditors"),

	// Failures found by a client, the CLI or an auditor.
	clientSide(ReasonCheckpointInvalid, "a checkpoint that does not parse as a C2SP checkpoint or is over its bound"),
	clientSide(ReasonCheckpointSignature, "a checkpoint not signed by the log key the client was given, or carrying a cosignature by a witness of the client's policy that does not verify (the message names the witness); with several servers, none answered and one serves another log (the message names each server's fault)"),
	clientSide(ReasonCheckpointOrigin, "a checkpoint of another log (origin)"),
	clientSide(ReasonInclusionInvalid, "an entry not proven in the checkpoint"),
	clientSide(ReasonConsistencyInvalid, "a consistency proof that does not verify"),
	clientSide(ReasonRangeInvalid, "a range of entries that does not hash to the checkpoint"),
	clientSide(ReasonLeafMalformed, "a leaf that does not parse"),
	clientSide(ReasonLeafNonCanonical, "a leaf that is not its own canonical encoding"),
	clientSide(ReasonPayloadTypeMismatch, "an envelope whose payload type does not match its leaf's kind, or a request of the wrong type"),
	clientSide(ReasonForkDetected, "the log showed a checkpoint inconsistent with the trusted one"),
	clientSide(ReasonRollbackDetected, "the log's latest checkpoint is older than the trusted one"),
	clientSide(ReasonTrustedStateInvalid, "the trusted-state file is unreadable or not a checkpoint of this log"),
	clientSide(ReasonResponseTooLarge, "an answer over its bound, compressed or inflated"),
	clientSide(ReasonResponseMismatch, "an answer that does not match the request"),
	clientSide(ReasonUnavailable, "the server could not be reached"),
	clientSide(ReasonTLSConfigInvalid, "a TLS certificate, key or CA file that does not load"),
	clientSide(ReasonTLogProofMalformed, "a tlog-proof file that is not canonical or over its bound"),
	clientSide(ReasonTLogProofNoLeaf, "a tlog-proof file that carries no leaf"),
	clientSide(ReasonBundleMalformed, "a chain bundle that is not canonical, over its bound, or out of order"),
	clientSide(ReasonBundleIncomplete, "a chain bundle that lacks an entry the chain needs"),
	clientSide(ReasonBundleChainBroken, "a chain bundle whose chain does not lead from a root grant, or an entry not signed by its trust anchor"),
	clientSide(ReasonBundleDecision, "a bundle link's recorded decision differs from what the rules give"),
	clientSide(ReasonBundleWitness, "the checkpoint's cosignatures do not satisfy the witness policy"),
	clientSide(ReasonWitnessPolicyInvalid, "a witness policy (C2SP tlog-policy) that does not parse, breaks its rules, or does not list the log"),
	clientSide(ReasonWitnessQuorum, "a checkpoint whose valid cosignatures do not satisfy the witness policy's quorum; the trusted state is left untouched"),
	clientSide(ReasonEntriesDoNotMatchRoot, "the entries a follower fetched do not hash to the signed root"),
	clientSide(ReasonLogStalled, "no fresh signed timestamp within the follower's stall bound"),
	clientSide(ReasonWitnessConflict, "the server reports a witness holding a checkpoint of the log's origin that conflicts with the log's (409 naming a size the log never signed, or 422); an alert, not a failure"),

	// Whole-log audit and replay discrepancies.
	clientSide(ReasonAuditTreeMismatch, "the entries do not hash to the signed checkpoint"),
	clientSide(ReasonAuditInconsistent, "the first entries do not hash to the trusted checkpoint, or it is larger"),
	clientSide(ReasonExportMalformed, "an export file that is truncated, has trailing data or a bad header"),
	clientSide(ReasonReplayOrder, "entries replayed out of order"),
	clientSide(ReasonReplayConfig, "the log does not begin with its configuration"),
	clientSide(ReasonReplayLogTime, "a log time earlier than the previous entry's"),
	clientSide(ReasonReplayUnauthentic, "an entry the log should have refused as not authentic"),
	clientSide(ReasonReplayDecision, "a recorded decision differs from what the rules and recorded policy give"),
	clientSide(ReasonReplayPolicyMissing, "a delegation before any policy entry"),
	clientSide(ReasonAuditError, "a discrepancy without a more precise code"),
	clientSide(ReasonTokenRefused, "the token endpoint refused an exchange without recording it (a malformed request or DPoP proof); the text carries the OAuth error"),
	clientSide(ReasonTokenNotInForce, "token inspect: the token verifies but has expired or its chain is no longer in force (printed first, then exit 1)"),

	// Backups, restores and administrative requests.
	local(ReasonAdminAuth, "an administrative HTTP request's Authorization is missing, malformed, stale, replayed or not an admin key's (HTTP 401)"),
	local(ReasonBackupInProgress, "another backup is running (HTTP 503)"),
	local(ReasonBackupFailed, "the backup request failed"),
	local(ReasonBackupMalformed, "a backup stream that does not parse, or whose trailer does not match"),
	local(ReasonBackupMismatch, "a backup whose contents do not match its checkpoint"),
	local(ReasonBackupKeyMismatch, "the log key given did not sign the backup's checkpoint, or is not a log key"),
	local(ReasonRestoreTarget, "the restore target exists and is not empty"),
	local(ReasonSigningFailed, "the admin key could not sign the request"),

	// The command line, start-up and the SIEM follower.
	local(ReasonRuleLimitsInvalid, "rule limits a log may not run with (serve, ledger.Open)"),
	local(ReasonOptionsInvalid, "a server option a log may not open with (ledger.Open); the error names the option"),
	local(ReasonStateLocked, "another follower holds the state file"),
	local(ReasonSinkUnavailable, "the SIEM sink cannot be opened"),
	local(ReasonLogKeyUnreadable, "the log's verifier key could not be read"),
	local(ReasonUsage, "a mistake on the command line (exit 2)"),
	local(ReasonIOError, "a file could not be read or written"),
	local(ReasonFileExists, "keygen refuses to overwrite a key"),
	local(ReasonKeyUnreadable, "a key file could not be read"),
	local(ReasonConfigUnreadable, "the --config file could not be read"),
	local(ReasonListenFailed, "serve could not bind its listen address"),
	local(ReasonOpenFailed, "serve could not open its data directory"),
	local(ReasonStoreMismatch, "serve refuses a store whose tree does not match its tree head or last checkpoint"),
	local(ReasonServeFailed, "the listener failed while serving"),
	local(ReasonOtelFailed, "the tracing exporter could not be set up"),
	local(ReasonProfileUnwritable, "bench could not write a profile"),
	local(ReasonDeadlineExceeded, "a request timed out (bench, and the metric label of a refusal whose caller gave up)"),
	local(ReasonCanceled, "the command was interrupted (and the metric label of a refusal whose caller went away)"),
	local(ReasonFailed, "an error without a reason code"),
	local(ReasonError, "bench: a failure without a reason code, in the error counts"),
}
