// Package proofs holds everything needed to verify warrant's log without
// trusting the server: the canonical envelope and leaf formats, DSSE signature
// checks, checkpoint verification, Merkle inclusion, consistency and range
// proofs, and C2SP tlog-proof files.
//
// The server (package ledger) calls the same code at append time that an
// auditor runs offline, so there is one definition of every rule. The package
// must stay importable without Badger, a network stack or a server: it depends
// only on the format and crypto libraries that ARCHITECTURE.md names.
//
// Envelopes arrive as the DSSE protocol lets any implementation write them
// (ParseDSSE: either base64 alphabet, padded or not, key ids optional or
// foreign). Envelope.MatchKeys authenticates one, matching every signature
// to the key that made it, and gives it its one canonical form (standard
// base64, canonical key ids, sorted signatures, low-S ECDSA); leaves hold
// only that form (ParseEnvelopeCanonical). The log deduplicates on what the
// issuer signed (PayloadHash), never on the envelope bytes, so signatures
// added by anyone else cannot make a signed request a new entry.
//
// Every error this package returns for untrusted input is an *Error carrying a
// stable reason code, so callers (the CLI, the RPC layer) can report precisely
// why something was refused.
package proofs
