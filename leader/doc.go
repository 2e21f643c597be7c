// Package leader elects one sequencer at a time among the nodes of a
// distributed warrant log and holds the log's latest checkpoint, both in
// etcd.
//
// # Keys
//
// Under Config.Prefix (default "/warrant/"):
//
//	members/NODEID     {"node_id":…,"url":…} of a live node, under that node's member lease
//	election/LEASE     {"node_id":…,"url":…} of a candidate, under its term's lease (hex lease id)
//	checkpoint         the latest checkpoint note, swapped in by the leader
//
// The election is etcd's (the client's concurrency.Election): every
// candidate puts its own key under the election prefix, and the key with the
// lowest create revision leads. A candidate's Campaign returns once every
// earlier key is gone, so while a term's key exists no other node leads.
//
// # Consistency contract
//
// This is what the package guarantees to the ledger, and what it assumes of
// etcd (a linearizable store with leases, as documented by etcd):
//
//   - Checkpoint reads are linearizable: Checkpoint returns the value of the
//     last successful Swap, or something newer, never an older one.
//   - Swap is compare-and-swap with fencing: one etcd transaction writes the
//     new checkpoint only if the checkpoint key holds old (or does not exist,
//     for old nil) AND the term's election key still exists with the
//     term's create revision and lease. A deposed leader's Swap therefore
//     fails, however long its process keeps running and whatever its clock
//     says: once its key is gone (lease revoked or expired, key deleted),
//     etcd refuses the transaction. Two Swaps from the same old value cannot
//     both succeed, so at most one checkpoint follows each checkpoint.
//   - A Swap that returned nil is durable in etcd (committed by a quorum).
//     A Swap that returned an error wrapping ErrDeposed or ErrConflict wrote
//     nothing. One wrapping ErrUnknown may or may not have been applied: the
//     caller re-reads the checkpoint and compares it with what it swapped.
//   - Done closes when the term is over: its lease was revoked or ran out,
//     its election key was deleted, it resigned, the Coordinator closed, or
//     the lease was not renewed for LeaseTTL minus Margin(LeaseTTL) by the
//     local clock (Config.Now), counted from the moment the last successful
//     renewal was sent. etcd can expire a lease only LeaseTTL after it
//     received the last renewal, which is after it was sent, so a leader
//     cut off from etcd sees Done close at least Margin(LeaseTTL) before
//     another node can be elected, provided its clock does not run slower
//     than etcd's by more than the margin over one TTL. Done is advice to
//     stop early; fencing does not depend on it.
//   - Members and Leader are read from etcd at the time of the call and may
//     be stale by the time they are used: a node that died stays listed
//     until its lease runs out (up to LeaseTTL), and Leader can name a
//     candidate a moment before its Campaign has returned. Use them for
//     routing, never for safety.
//   - WatchCheckpoint delivers the current checkpoint, then every later one
//     in the order they were swapped in. If the watch is interrupted (etcd
//     restarted, history compacted) it starts again from the current
//     checkpoint, so intermediate notes may be skipped but never reordered;
//     every note delivered is newer than the one before.
//
// What the package does not promise: that a leader whose Done is open still
// leads (only a successful Swap proves that, at the moment it commits), or
// that objects a leader wrote elsewhere (the object store) before it was
// deposed are absent; the ledger puts only objects whose bytes are fixed by
// their key, so a deposed leader's late writes are harmless.
package leader
