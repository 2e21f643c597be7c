package loadgen

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// ModeWitness appends as ModeAppend does (one verified append per
// request, at Rate or flat out) while one watcher follows the log's
// witnessed checkpoints (WatchCheckpoints with witnessed set), each
// verified under Config.WitnessPolicy. An entry's witness latency runs
// from its append's answer to the arrival of the first witnessed
// checkpoint that covers it: how long a client with a witness policy
// waits, after an asynchronous append, for a receipt it can trust.
const ModeWitness = "witness"

// witnessGrace is how long a witness run waits, after the appends end, for
// the entries not yet covered by a witnessed checkpoint.
const witnessGrace = 10 * time.Second

// witnessTracker matches append answers with witnessed checkpoints.
type witnessTracker struct {
	mu sync.Mutex
	// covered is the largest witnessed size seen.
	covered uint64
	pending answeredHeap
	lat     []time.Duration
	// idle is signalled whenever pending becomes empty.
	idle chan struct{}
}

type answered struct {
	index uint64
	at    time.Time
}

// answeredHeap is a min-heap by index.
type answeredHeap []answered

func (h answeredHeap) Len() int           { return len(h) }
func (h answeredHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h answeredHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *answeredHeap) Push(x any)        { *h = append(*h, x.(answered)) }
func (h *answeredHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newWitnessTracker() *witnessTracker {
	return &witnessTracker{idle: make(chan struct{}, 1)}
}

// answer records the append answer of entry index at time at.
func (t *witnessTracker) answer(index uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if index < t.covered {
		t.lat = append(t.lat, 0) // the answer came after its witnessed checkpoint (sync mode)
		return
	}
	heap.Push(&t.pending, answered{index, at})
}

// witnessed records a witnessed checkpoint of size, received at time at.
func (t *witnessTracker) witnessed(size uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.covered = max(t.covered, size)
	for len(t.pending) > 0 && t.pending[0].index < size {
		a := heap.Pop(&t.pending).(answered)
		t.lat = append(t.lat, at.Sub(a.at))
	}
	if len(t.pending) == 0 {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// wait waits until every answered entry is witnessed, or for at most d.
func (t *witnessTracker) wait(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-t.idle:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// result fills the witness fields of res.
func (t *witnessTracker) result(res *Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	lat := slices.Clone(t.lat)
	slices.Sort(lat)
	res.Witnessed, res.Unwitnessed = len(lat), len(t.pending)
	res.WitnessP50, res.WitnessP90, res.WitnessP99, res.WitnessMax = percentileMS(lat, 0.50), percentileMS(lat, 0.90), percentileMS(lat, 0.99), percentileMS(lat, 1)
}

// watchWitnessed follows the witnessed checkpoints until ctx ends,
// verifying each under the policy, and reports them to t. It reconnects
// when the stream breaks; errors counts the checkpoints that did not
// verify and the broken streams.
func watchWitnessed(ctx context.Context, cfg *Config, t *witnessTracker, errs func(error)) {
	rpc := warrantv1connect.NewLedgerServiceClient(cfg.HTTPClient, cfg.Server, connect.WithReadMaxBytes(16<<20))
	var from uint64
	for ctx.Err() == nil {
		// Until the log has a witnessed checkpoint, the stream is refused
		// (witness_unavailable): that is no failure of the run.
		fail := func(err error) {
			if ctx.Err() == nil && from > 0 {
				errs(&kindError{kind: "witness_watch", err: err})
			}
			time.Sleep(100 * time.Millisecond)
		}
		stream, err := rpc.WatchCheckpoints(ctx, connect.NewRequest(&warrantv1.WatchCheckpointsRequest{FromSize: from, Witnessed: true}))
		if err != nil {
			fail(err)
			continue
		}
		for stream.Receive() {
			at := time.Now()
			cp, err := proofs.OpenWitnessedCheckpoint(stream.Msg().GetCheckpoint(), cfg.LogKey, cfg.WitnessPolicy)
			if err != nil {
				errs(err)
				continue
			}
			from = cp.Size
			t.witnessed(cp.Size, at)
		}
		if err := stream.Err(); err != nil {
			fail(err)
		}
		stream.Close()
	}
}

// witnessSetup checks a witness run's configuration.
func witnessSetup(cfg *Config) error {
	if cfg.WitnessPolicy == nil {
		return errors.New("the witness mode needs a witness policy (--witness-policy) to verify the witnessed checkpoints")
	}
	return nil
}

// percentileMS is the q-quantile of sorted durations, in milliseconds.
func percentileMS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// witnessSummary is the witness part of Result.String.
func (r *Result) witnessSummary() string {
	if r.Mode != ModeWitness {
		return ""
	}
	return fmt.Sprintf("append answer to witnessed checkpoint, ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f (%d entries; %d not witnessed within %v of the end)\n",
		r.WitnessP50, r.WitnessP90, r.WitnessP99, r.WitnessMax, r.Witnessed, r.Unwitnessed, witnessGrace)
}
