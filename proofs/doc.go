// Package proofs holds everything needed to verify warrant's log without
// trusting the server: the canonical envelope and leaf formats, DSSE signature
// checks, checkpoint verification, Merkle inclusion, consistency and range
// proofs, and C2SP tlog-proof files.
//
// The server (package ledger) calls the same code at append time that an
// auditor runs offline, so there is one definition of every rule. The package
// must stay importable without Badger, a network stack or a server: it depends
// only on the format and crypto libraries named in DESIGN.md.
//
// Every error this package returns for untrusted input is an *Error carrying a
// stable reason code, so callers (the CLI, the RPC layer) can report precisely
// why something was refused.
package proofs
