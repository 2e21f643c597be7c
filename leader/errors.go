package leader

import "errors"

// The errors Swap, Leader and Campaign wrap; test them with errors.Is.
var (
	// ErrNoLeader is wrapped by Leader when no node holds a term.
	ErrNoLeader = errors.New("leader: no leader")

	// ErrNodeIDInUse is wrapped by Dial when another node is registered
	// under the same node id and keeps its lease alive: two processes
	// under one id would each take the other's forwarded writes and
	// answer for it. A node restarted after a crash is not refused: Dial
	// waits for the dead process's lease to run out first.
	ErrNodeIDInUse = errors.New("leader: node id in use by a live node")

	// ErrDeposed is wrapped by Swap when the term is over: its lease was
	// lost, revoked or not renewed in time, its election key was deleted, or
	// it resigned. Nothing was written. The node must stop acting as leader
	// and campaign again.
	ErrDeposed = errors.New("leader: term is over")

	// ErrConflict is wrapped by Swap when the term still leads but the
	// checkpoint in etcd is not the old one the caller named. Nothing was
	// written; the caller re-reads the checkpoint (Coordinator.Checkpoint).
	ErrConflict = errors.New("leader: checkpoint is not the expected one")

	// ErrUnknown is wrapped by Swap when etcd did not answer (a timeout, a
	// lost connection): the swap may or may not have been applied. The
	// caller re-reads the checkpoint before deciding anything.
	ErrUnknown = errors.New("leader: outcome of the swap unknown")
)
