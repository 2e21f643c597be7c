package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
)

// recorder is an Emit that records every entry it is given and can fail.
type recorder struct {
	mu      sync.Mutex
	got     []uint64
	failAt  int // fail the call that would take the total past failAt (0: never)
	partial bool
}

func (r *recorder) emit(ctx context.Context, es []client.Followed) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAt > 0 && len(r.got)+len(es) > r.failAt {
		if r.partial { // a sink that delivered part of the batch before failing
			for _, e := range es[:r.failAt-len(r.got)] {
				r.got = append(r.got, e.Index)
			}
		}
		r.failAt = 0
		return errors.New("sink down")
	}
	for _, e := range es {
		r.got = append(r.got, e.Index)
	}
	return nil
}

func followerFor(t *testing.T, url string, e *testEnv, statePath string, r *recorder, chunk int) *client.Follower {
	t.Helper()
	ts, err := proofs.TimestampVerifier(e.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.New(url, e.verifier).NewFollower(client.FollowerOptions{StatePath: statePath, Emit: r.emit, Chunk: chunk, TimestampKey: ts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// populate appends n root grants to e.
func populate(t *testing.T, e *testEnv, url string, n int) {
	t.Helper()
	c := client.New(url, e.verifier)
	alice, bob := newAgent(t, fmt.Sprintf("alice%d", time.Now().UnixNano()), false), newAgent(t, fmt.Sprintf("bob%d", time.Now().UnixNano()), false)
	mustAppend(t, c, e.bindingEnvelope(t, alice, true))
	mustAppend(t, c, e.bindingEnvelope(t, bob, false))
	for i := range n {
		mustAppend(t, c, sign(t, alice, e.rootGrant(t, fmt.Sprintf("d-%d-%d", time.Now().UnixNano(), i), alice, bob)))
	}
}

func TestFollowerEveryEntryOnceAcrossRestarts(t *testing.T) {
	e := openLog(t, envOptions{})
	url := e.serve(t)
	populate(t, e, url, 25)
	state := filepath.Join(t.TempDir(), "siem.state")
	r := &recorder{}
	f := followerFor(t, url, e, state, r, 10)
	n, err := f.Round(context.Background())
	if err != nil || uint64(n) != e.log.Checkpoint().Size {
		t.Fatalf("first round: %d, %v", n, err)
	}
	f.Close()
	populate(t, e, url, 7)
	f = followerFor(t, url, e, state, r, 10)
	if _, err := f.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	size := e.log.Checkpoint().Size
	if uint64(len(r.got)) != size {
		t.Fatalf("%d events for %d entries", len(r.got), size)
	}
	for i, idx := range r.got {
		if idx != uint64(i) {
			t.Fatalf("event %d is entry %d: not exactly once in log order", i, idx)
		}
	}
	if n, err := f.Round(context.Background()); err != nil || n != 0 {
		t.Fatalf("idle round: %d, %v", n, err)
	}
	// Two followers never share one state.
	if _, err := client.New(url, e.verifier).NewFollower(client.FollowerOptions{StatePath: state, Emit: r.emit}); err == nil {
		t.Fatal("a second follower opened a locked state")
	}
}

// TestFollowerSinkFailsMidBatch: the state advances only past what the sink
// acknowledged; after the failure the next round re-emits the failed chunk
// (possibly duplicating what the sink took before failing), losing nothing.
func TestFollowerSinkFailsMidBatch(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) {
			e := openLog(t, envOptions{})
			url := e.serve(t)
			populate(t, e, url, 30)
			state := filepath.Join(t.TempDir(), "siem.state")
			r := &recorder{failAt: 17, partial: partial}
			f := followerFor(t, url, e, state, r, 10)
			if _, err := f.Round(context.Background()); err == nil {
				t.Fatal("the round succeeded although the sink failed")
			}
			if next := f.State().Next; next != 10 {
				t.Fatalf("state advanced to %d, want 10 (the last acknowledged chunk)", next)
			}
			if _, err := f.Round(context.Background()); err != nil {
				t.Fatal(err)
			}
			seen := map[uint64]int{}
			for _, idx := range r.got {
				seen[idx]++
			}
			size := e.log.Checkpoint().Size
			for i := uint64(0); i < size; i++ {
				if seen[i] == 0 {
					t.Fatalf("entry %d lost", i)
				}
				if seen[i] > 1 && (i < 10 || i >= 20) {
					t.Fatalf("entry %d duplicated outside the failed chunk", i)
				}
			}
		})
	}
}

// TestFollowerAlertsAndKeepsState: a fork (same key, other history), a
// rollback, and entries that do not hash to the signed root each raise an
// alert with its reason, and the state file keeps its bytes.
func TestFollowerAlertsAndKeepsState(t *testing.T) {
	p := newForkPair(t, 3, 5)
	d, url := newDouble(t, p.aURL)
	state := filepath.Join(t.TempDir(), "siem.state")
	r := &recorder{}
	f := followerFor(t, url, p.a, state, r, 1000)
	if _, err := f.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(state)
	check := func(name, reason string) {
		t.Helper()
		_, err := f.Round(context.Background())
		var a *client.AlertError
		if !errors.As(err, &a) || a.Reason != reason {
			t.Fatalf("%s: %v, want an alert %s", name, err, reason)
		}
		if after, _ := os.ReadFile(state); !bytes.Equal(before, after) {
			t.Fatalf("%s: the state file changed", name)
		}
	}
	// The operator switches to the other history, signed by the same key.
	d.reset(p.bURL)
	check("fork", client.ReasonFork)
	// A rollback: an old checkpoint of A.
	d.reset(p.aURL)
	old, err := rpcClient(p.aURL).GetCheckpoint(context.Background(), connectReq(&warrantv1.GetCheckpointRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, client.New(p.aURL, p.a.verifier), sign(t, p.k.alice, p.a.rootGrant(t, "a-more", p.k.alice, p.k.bob)))
	if _, err := f.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ = os.ReadFile(state)
	d.set(func(d *double) {
		d.checkpointFn = func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
			return old.Msg, nil
		}
	})
	check("rollback", client.ReasonRollback)
	// Entries that do not hash to the root: a new entry, served altered.
	d.reset(p.aURL)
	mustAppend(t, client.New(p.aURL, p.a.verifier), sign(t, p.k.alice, p.a.rootGrant(t, "a-last", p.k.alice, p.k.bob)))
	d.set(func(d *double) {
		d.getEntriesFn = func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetEntriesRequest) (*warrantv1.GetEntriesResponse, error) {
			resp, err := b.GetEntries(ctx, connectReq(req))
			if err != nil {
				return nil, err
			}
			m := resp.Msg
			last := bytes.Clone(m.Leaves[len(m.Leaves)-1])
			last[len(last)/2] ^= 1
			m.Leaves[len(m.Leaves)-1] = last
			return m, nil
		}
	})
	check("entries", client.ReasonEntriesMismatch)
	if n := len(r.got); uint64(n) != p.a.log.Checkpoint().Size-1 {
		t.Fatalf("%d entries emitted; the altered one must not be", n)
	}
}

// TestFollowerWatch: the feed delivers verified checkpoints with fresh
// signed timestamps, also when the log is idle.
func TestFollowerWatch(t *testing.T) {
	e := openLogRefresh(t, 200*time.Millisecond)
	url := e.serve(t)
	populate(t, e, url, 2)
	r := &recorder{}
	f := followerFor(t, url, e, filepath.Join(t.TempDir(), "s"), r, 100)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ticks []client.Tick
	err := f.Watch(ctx, func(tk client.Tick) error {
		ticks = append(ticks, tk)
		if len(ticks) == 2 {
			populate(t, e, url, 1) // a new checkpoint arrives on the feed
		}
		if len(ticks) == 6 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	grew := false
	for i, tk := range ticks {
		if time.Since(tk.At) > time.Minute || tk.At.After(time.Now().Add(time.Second)) {
			t.Fatalf("tick %d timestamp %v is not fresh", i, tk.At)
		}
		if i > 0 && tk.Checkpoint.Size > ticks[i-1].Checkpoint.Size {
			grew = true
		}
	}
	if !grew {
		t.Fatal("the feed never delivered a newer checkpoint")
	}
}

func connectReq[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

func openLogRefresh(t *testing.T, refresh time.Duration) *testEnv {
	return openLog(t, envOptions{refresh: refresh})
}

// TestFollowerStateFile checks the follower's state file handling (shared
// with FileState): one follower per state, the lock released by Close, and
// the state replaced whole (mode 0600, no temporary file left behind).
func TestFollowerStateFile(t *testing.T) {
	e := openLog(t, envOptions{})
	url := e.serve(t)
	populate(t, e, url, 1)
	dir := filepath.Join(t.TempDir(), "new", "dir") // created on first use
	state := filepath.Join(dir, "siem.state")
	r := &recorder{}
	f, err := client.New(url, e.verifier).NewFollower(client.FollowerOptions{StatePath: state, Emit: r.emit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(url, e.verifier).NewFollower(client.FollowerOptions{StatePath: state, Emit: r.emit}); proofs.Reason(err) != "state_locked" {
		t.Fatalf("a second follower on the same state: %v, want state_locked", err)
	}
	if _, err := f.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(state)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v, %v; want mode 0600", fi, err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.Name() != "siem.state" && de.Name() != "siem.state.lock" {
			t.Fatalf("the state directory holds %s", de.Name())
		}
	}
	f.Close()
	g, err := client.New(url, e.verifier).NewFollower(client.FollowerOptions{StatePath: state, Emit: r.emit})
	if err != nil {
		t.Fatalf("a follower after Close: %v", err)
	}
	defer g.Close()
	if g.State().Next != 5 {
		t.Fatalf("resumed at %d, want 5", g.State().Next)
	}
}
