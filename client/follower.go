package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"connectrpc.com/connect"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/proofs"
)

// Reason codes of follower alerts, besides ReasonFork, ReasonRollback and
// the checkpoint reasons of package proofs.
const (
	ReasonEntriesMismatch = proofs.ReasonEntriesDoNotMatchRoot
	ReasonStalled         = proofs.ReasonLogStalled
)

// AlertError is a verification failure that a SIEM must alert on: the log
// forked or rolled back, its entries do not hash to its signed root, a
// checkpoint or timestamp does not verify, or it stalled. The follower's
// state is left as it was.
type AlertError struct {
	Reason string
	Err    error
	// Evidence is the offending checkpoint or data, if any.
	Evidence []byte
}

func (e *AlertError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *AlertError) Unwrap() error { return e.Err }

func alert(reason string, evidence []byte, format string, args ...any) *AlertError {
	return &AlertError{Reason: reason, Err: fmt.Errorf(format, args...), Evidence: evidence}
}

// asAlert turns a verification error from package proofs into an alert.
func asAlert(err error, evidence []byte) *AlertError {
	r := proofs.Reason(err)
	if r == "" {
		r = ReasonMismatch
	}
	return &AlertError{Reason: r, Err: err, Evidence: evidence}
}

// FollowerState is what a Follower keeps between rounds, in one file
// written atomically: the last verified checkpoint, the index of the next
// entry to emit, and the compact range of the entries before it, from
// which the follower recomputes the tree itself; and the witness
// conflicts it has alerted on.
type FollowerState struct {
	Origin     string   `json:"origin"`
	Checkpoint string   `json:"checkpoint,omitempty"`
	Next       uint64   `json:"next"`
	Range      [][]byte `json:"range"`
	// Witnesses are the witness conflicts alerted on (CheckWitnesses), by
	// witness name, while the server still reports them.
	Witnesses map[string]AlertedConflict `json:"witness_alerts,omitempty"`
}

// Followed is one verified entry handed to the follower's Emit.
type Followed struct {
	Index          uint64
	Leaf           *proofs.ParsedLeaf
	CheckpointSize uint64
	// Depth is a delegation's chain depth (root grant 1), 0 if unknown.
	Depth int
}

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	// StatePath is the state file (required). A missing file starts from
	// entry 0, trusting the first checkpoint it sees.
	StatePath string
	// Emit delivers a chunk of entries, in log order. It must return nil
	// only when they are durably handed over; the state advances only then.
	Emit func(ctx context.Context, entries []Followed) error
	// Chunk is the most entries verified and emitted at once (default and
	// limit 1000). Chunks end at multiples of 256 (entry bundle boundaries)
	// where they can.
	Chunk int
	// TimestampKey verifies the feed's timestamps: the log's verifier key
	// read as a cosignature/v1 key (proofs.TimestampVerifier). Watch needs it.
	TimestampKey note.Verifier
}

// Follower reads a log entry by entry for a SIEM: every entry exactly once,
// in log order, each verified against a signed checkpoint with no trust in
// the server, resumable after a crash from its state file. A crash between
// Emit and the state write re-emits at most one chunk; event ids (origin +
// index) identify those duplicates.
type Follower struct {
	c      *Client
	opts   FollowerOptions
	file   FileState // the state file, locked for the Follower's life
	st     FollowerState
	lock   *os.File
	depths map[string]int
}

// NewFollower opens the state file and locks it: two followers never share
// one state.
func (c *Client) NewFollower(opts FollowerOptions) (*Follower, error) {
	if opts.StatePath == "" || opts.Emit == nil {
		return nil, errors.New("follower: a state path and an Emit function are required")
	}
	if opts.Chunk <= 0 || opts.Chunk > 1000 {
		opts.Chunk = 1000
	}
	file := FileState{Path: opts.StatePath}
	lock, err := file.lock(false)
	if errors.Is(err, errLocked) {
		return nil, proofs.Errorf(proofs.ReasonStateLocked, "another follower holds %s", opts.StatePath)
	}
	if err != nil {
		return nil, err
	}
	f := &Follower{c: c, opts: opts, file: file, lock: lock, depths: map[string]int{}}
	if err := f.load(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close releases the state lock.
func (f *Follower) Close() error { return f.lock.Close() }

// State returns a copy of the current state.
func (f *Follower) State() FollowerState { return f.st }

func (f *Follower) load() error {
	b, err := f.file.read()
	if err != nil {
		return fmt.Errorf("reading follower state: %w", err)
	}
	if b == nil {
		f.st = FollowerState{Origin: f.c.logKey.Name()}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var st FollowerState
	invalid := func(format string, args ...any) error {
		return &proofs.Error{Reason: ReasonStateInvalid, Err: fmt.Errorf("%s: "+format, append([]any{f.opts.StatePath}, args...)...)}
	}
	if err := dec.Decode(&st); err != nil {
		return invalid("%v", err)
	}
	if st.Origin != f.c.logKey.Name() {
		return invalid("state for log %q, not %q", st.Origin, f.c.logKey.Name())
	}
	rng, err := proofs.NewRange(0, st.Next, slices.Clone(st.Range))
	if err != nil {
		return invalid("compact range: %v", err)
	}
	if st.Checkpoint != "" {
		cp, err := proofs.OpenCheckpoint([]byte(st.Checkpoint), f.c.logKey)
		if err != nil {
			return invalid("checkpoint: %v", err)
		}
		if st.Next > cp.Size {
			return invalid("next entry %d is beyond the checkpoint size %d", st.Next, cp.Size)
		}
		if st.Next == cp.Size {
			if root, _ := rng.GetRootHash(nil); st.Next > 0 && !bytes.Equal(root, cp.Root) {
				return invalid("the compact range does not match the checkpoint")
			}
		}
	} else if st.Next != 0 {
		return invalid("entries without a checkpoint")
	}
	f.st = st
	return nil
}

// save writes the state (FileState.replace: atomically, under the lock
// the Follower holds).
func (f *Follower) save(st FollowerState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := f.file.replace(append(b, '\n')); err != nil {
		return fmt.Errorf("writing follower state: %w", err)
	}
	f.st = st
	return nil
}

// Round fetches the latest checkpoint, verifies its signature and its
// consistency with the stored one, then fetches the new entries chunk by
// chunk, verifies that they hash (from the stored compact range) to the
// signed root, emits them, and only then advances the state. It returns
// the number of entries emitted. Verification failures are *AlertError and
// leave the state as it was.
func (f *Follower) Round(ctx context.Context) (int, error) {
	var old *proofs.Checkpoint
	if f.st.Checkpoint != "" {
		var err error
		if old, err = proofs.OpenCheckpoint([]byte(f.st.Checkpoint), f.c.logKey); err != nil {
			return 0, err
		}
	}
	var floor uint64
	if old != nil {
		floor = old.Size
	}
	signed, proof, err := f.c.latest(ctx, floor)
	if err != nil {
		return 0, err
	}
	cp, err := f.c.openCheckpoint(signed) // with the witness policy, if any
	if err != nil {
		return 0, asAlert(err, signed)
	}
	if old != nil && cp.Size > old.Size && proof == nil {
		// A mirror: the proof comes from its hash tiles, checked against
		// cp's root as they are read.
		if proof, err = f.c.consistencyProof(ctx, old.Size, cp); err != nil {
			return 0, f.tilesAlert(err, cp)
		}
	}
	if err := checkAdvance(old, cp, proof); err != nil {
		return 0, err
	}
	emitted := 0
	for f.st.Next < cp.Size {
		n, err := f.chunk(ctx, cp)
		emitted += n
		if err != nil {
			return emitted, err
		}
	}
	if f.st.Checkpoint != string(cp.Note) && f.st.Next == cp.Size && (old == nil || cp.Size > old.Size) {
		st := f.st
		st.Checkpoint = string(cp.Note)
		if err := f.save(st); err != nil {
			return emitted, err
		}
	}
	return emitted, nil
}

// tilesAlert turns a mirror's tiles that do not match its signed
// checkpoint into an alert; transport errors, and every error of a live
// server's Connect API, stay what they are.
func (f *Follower) tilesAlert(err error, cp *proofs.Checkpoint) error {
	if f.c.noConnect.Load() && proofs.Reason(err) == ReasonMismatch {
		return asAlert(err, cp.Note)
	}
	return err
}

// checkAdvance checks a new checkpoint against the stored one.
func checkAdvance(old, cp *proofs.Checkpoint, proof [][]byte) error {
	if old == nil {
		return nil // first use
	}
	switch {
	case cp.Size < old.Size:
		return alert(ReasonRollback, cp.Note, "%v: the log's checkpoint has size %d, the last verified one %d", ErrRollback, cp.Size, old.Size)
	case cp.Size == old.Size && !bytes.Equal(cp.Root, old.Root):
		return alert(ReasonFork, cp.Note, "%v: two roots for size %d", ErrFork, cp.Size)
	case cp.Size > old.Size:
		if err := proofs.VerifyConsistency(old.Size, cp.Size, proof, old.Root, cp.Root); err != nil {
			return alert(ReasonFork, cp.Note, "%v: %v", ErrFork, err)
		}
	}
	return nil
}

// chunk verifies and emits the next chunk of entries below cp.Size.
func (f *Follower) chunk(ctx context.Context, cp *proofs.Checkpoint) (int, error) {
	start := f.st.Next
	end := min(start+uint64(f.opts.Chunk), cp.Size)
	if cut := end - end%tileWidth; end < cp.Size && cut > start {
		// End chunks at bundle boundaries: read from tiles, a chunk then
		// fetches each entry bundle once.
		end = cut
	}
	leaves, err := f.leaves(ctx, start, end, cp)
	if err != nil {
		return 0, f.tilesAlert(err, cp)
	}
	// Recompute the tree from our own compact range: no trust in the server.
	rng, err := proofs.NewRange(0, start, slices.Clone(f.st.Range)) // Append reuses the slice
	if err != nil {
		return 0, err
	}
	for _, l := range leaves {
		if err := rng.Append(proofs.LeafHash(l), nil); err != nil {
			return 0, err
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return 0, err
	}
	if end == cp.Size {
		if !bytes.Equal(root, cp.Root) {
			return 0, alert(ReasonEntriesMismatch, cp.Note, "entries [%d, %d) do not hash to the signed root of size %d", start, end, cp.Size)
		}
	} else {
		proof, err := f.c.consistencyProof(ctx, end, cp)
		if err != nil {
			return 0, f.tilesAlert(err, cp)
		}
		if err := proofs.VerifyConsistency(end, cp.Size, proof, root, cp.Root); err != nil {
			return 0, alert(ReasonEntriesMismatch, cp.Note, "entries [%d, %d) are not a prefix of the signed tree of size %d: %v", start, end, cp.Size, err)
		}
	}
	out := make([]Followed, len(leaves))
	for i, raw := range leaves {
		l, err := proofs.ParseLeaf(raw)
		if err != nil {
			return 0, asAlert(fmt.Errorf("entry %d is in the signed tree but malformed: %w", start+uint64(i), err), raw)
		}
		out[i] = Followed{Index: start + uint64(i), Leaf: l, CheckpointSize: cp.Size, Depth: f.depth(ctx, l)}
	}
	if err := f.opts.Emit(ctx, out); err != nil {
		return 0, fmt.Errorf("emitting entries [%d, %d): %w", start, end, err)
	}
	st := f.st
	st.Checkpoint, st.Next, st.Range = string(cp.Note), end, rng.Hashes()
	if err := f.save(st); err != nil {
		return 0, err
	}
	return len(out), nil
}

// leaves fetches the entries [start, end) of the tree of cp, unverified:
// over Connect, or from the entry bundles of a mirror.
func (f *Follower) leaves(ctx context.Context, start, end uint64, cp *proofs.Checkpoint) ([][]byte, error) {
	if !f.c.noConnect.Load() {
		var leaves [][]byte
		next := start
		for next < end {
			resp, err := f.c.rpc.GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: next, Count: uint32(end - next)}))
			if err != nil {
				if next == start && f.c.connectMissing(err) {
					break
				}
				return nil, rpcError(err)
			}
			got := resp.Msg.GetLeaves()
			if resp.Msg.GetStart() != next || len(got) == 0 || uint64(len(got)) > end-next {
				return nil, proofs.Errorf(ReasonMismatch, "asked for entries from %d, got %d from %d", next, len(got), resp.Msg.GetStart())
			}
			leaves = append(leaves, got...)
			next += uint64(len(got))
		}
		if next == end {
			return leaves, nil
		}
	}
	leaves := make([][]byte, 0, end-start)
	err := f.c.tiles.entries(ctx, start, end, cp.Size, func(l []byte) error {
		leaves = append(leaves, bytes.Clone(l))
		return nil
	})
	return leaves, err
}

// depth computes a delegation's chain depth: from entries already seen, or
// by fetching (and verifying) its ancestors.
func (f *Follower) depth(ctx context.Context, l *proofs.ParsedLeaf) int {
	d := l.Delegation
	if d == nil {
		return 0
	}
	depth := 1
	if d.Parent != "" {
		depth = f.parentDepth(ctx, d.Parent, 0)
		if depth > 0 {
			depth++
		}
	}
	if l.Decision.Outcome == proofs.OutcomeAccepted && depth > 0 {
		if len(f.depths) > 1<<17 {
			clear(f.depths) // bounded: a cache, rebuilt on demand
		}
		f.depths[d.ID] = depth
	}
	return depth
}

func (f *Follower) parentDepth(ctx context.Context, id string, hops int) int {
	if d, ok := f.depths[id]; ok {
		return d
	}
	if hops > 64 || f.c.noConnect.Load() {
		return 0 // unknown: a mirror has no index by delegation id
	}
	e, err := f.c.Delegation(ctx, id)
	if err != nil {
		return 0
	}
	depth := 1
	if p := e.Leaf.Delegation.Parent; p != "" {
		if depth = f.parentDepth(ctx, p, hops+1); depth > 0 {
			depth++
		}
	}
	if depth > 0 {
		f.depths[id] = depth
	}
	return depth
}

// ErrNoFeed is returned by Watch when the server does not serve the
// checkpoint feed at all: a static tlog-tiles mirror, which can be polled
// (Round) but carries no signed timestamps, so it cannot show that the log
// is live.
var ErrNoFeed = errors.New("the server has no checkpoint feed (a static tlog-tiles mirror?)")

// Tick is one verified message of the checkpoint feed.
type Tick struct {
	Checkpoint *proofs.Checkpoint
	// At is the log's signed timestamp of the message.
	At time.Time
}

// Watch follows the server's checkpoint feed, verifying every message: the
// checkpoint's signature, its consistency with the previous one, and the
// timestamp cosigned by the log key over the same checkpoint. It calls fn
// for each, and returns when ctx ends, the stream breaks, or a message
// fails verification (an *AlertError).
func (f *Follower) Watch(ctx context.Context, fn func(Tick) error) error {
	tsKey := f.opts.TimestampKey
	if tsKey == nil {
		return errors.New("follower: Watch needs FollowerOptions.TimestampKey")
	}
	var prev *proofs.Checkpoint
	var err error
	if f.st.Checkpoint != "" {
		if prev, err = proofs.OpenCheckpoint([]byte(f.st.Checkpoint), f.c.logKey); err != nil {
			return err
		}
	}
	var from uint64
	if prev != nil {
		from = prev.Size
	}
	stream, err := f.c.rpc.WatchCheckpoints(ctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{FromSize: from, Witnessed: f.c.witnesses != nil}))
	if err != nil {
		return rpcError(err)
	}
	defer stream.Close()
	for stream.Receive() {
		m := stream.Msg()
		cp, err := f.c.openCheckpoint(m.GetCheckpoint()) // with the witness policy, if any
		if err != nil {
			return asAlert(err, m.GetCheckpoint())
		}
		if prev != nil && m.GetFromSize() != prev.Size {
			return alert(ReasonMismatch, m.GetCheckpoint(), "feed message proves from size %d, the previous checkpoint had %d", m.GetFromSize(), prev.Size)
		}
		if err := checkAdvance(prev, cp, m.GetConsistencyProof()); err != nil {
			return err
		}
		n, err := note.Open(m.GetTimestamp(), note.VerifierList(tsKey))
		if err != nil || n.Text != string(proofs.CheckpointBody(cp.Origin, cp.Size, cp.Root)) || len(n.Sigs) != 1 {
			return alert(proofs.ReasonCheckpointSignature, m.GetTimestamp(), "the feed's timestamp does not verify over its checkpoint: %v", err)
		}
		at, err := fnote.CoSigV1Timestamp(n.Sigs[0])
		if err != nil {
			return alert(proofs.ReasonCheckpointSignature, m.GetTimestamp(), "timestamp: %v", err)
		}
		prev = cp
		if err := fn(Tick{Checkpoint: cp, At: at}); err != nil {
			return err
		}
	}
	if err := stream.Err(); err != nil && ctx.Err() == nil {
		if f.c.connectMissing(err) {
			return &proofs.Error{Reason: ReasonTransport, Err: fmt.Errorf("%w: %v", ErrNoFeed, err)}
		}
		return rpcError(err)
	}
	return nil
}
