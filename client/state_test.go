package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// Several client instances, each used by several goroutines, share one state
// file while they append and read concurrently.
func TestFileStateSharedByConcurrentClients(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	stateDir := filepath.Join(t.TempDir(), "config", "warrant")
	statePath := filepath.Join(stateDir, "trusted.checkpoint")
	state := client.FileState{Path: statePath}
	setup := client.New(url, e.verifier, client.WithState(state))
	k := register(t, e, setup)
	start := e.log.Checkpoint().Size

	const (
		clients    = 4
		writers    = 2 // goroutines appending per client
		perWriter  = 5 // appends per writer: clients*writers*perWriter in all
		readers    = 1 // goroutines reading per client while the others append
		totalAdded = clients * writers * perWriter
	)
	var (
		mu      sync.Mutex
		maxSeen uint64
		indices []uint64
	)
	saw := func(cp *proofs.Checkpoint) {
		mu.Lock()
		defer mu.Unlock()
		maxSeen = max(maxSeen, cp.Size)
	}
	var writersWG, readersWG sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, clients*(writers+readers))
	for ci := range clients {
		c := client.New(url, e.verifier, client.WithState(client.FileState{Path: statePath}))
		for wi := range writers {
			writersWG.Go(func() {
				for i := range perWriter {
					id := fmt.Sprintf("c%d-w%d-%d", ci, wi, i)
					got, err := c.Append(ctx, sign(t, k.alice, e.rootGrant(t, id, k.alice, k.bob)))
					if err != nil {
						errs <- fmt.Errorf("client %d append %s: %w", ci, id, err)
						return
					}
					if got.ID != id || got.Duplicate {
						errs <- fmt.Errorf("client %d append %s: got %s (duplicate %v)", ci, id, got.ID, got.Duplicate)
						return
					}
					saw(got.Checkpoint)
					mu.Lock()
					indices = append(indices, got.Index)
					mu.Unlock()
				}
			})
		}
		for range readers {
			readersWG.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					cp, err := c.Checkpoint(ctx)
					if err != nil {
						errs <- fmt.Errorf("client %d Checkpoint: %w", ci, err)
						return
					}
					saw(cp)
					e, err := c.Entry(ctx, cp.Size-1)
					if err != nil {
						errs <- fmt.Errorf("client %d Entry: %w", ci, err)
						return
					}
					saw(e.Checkpoint)
				}
			})
		}
	}
	writersWG.Wait()
	close(done)
	readersWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	if got := e.log.Checkpoint().Size; got != start+totalAdded {
		t.Fatalf("log size %d, want %d", got, start+totalAdded)
	}
	slices.Sort(indices)
	if len(slices.Compact(indices)) != totalAdded {
		t.Fatalf("%d distinct indices for %d appends", len(indices), totalAdded)
	}
	raw, err := state.Load()
	if err != nil {
		t.Fatal(err)
	}
	final, err := proofs.OpenCheckpoint(raw, e.verifier)
	if err != nil {
		t.Fatalf("the final state is not a valid checkpoint: %v", err)
	}
	if final.Size < maxSeen {
		t.Fatalf("the final state (size %d) is behind a checkpoint a client saw (size %d)", final.Size, maxSeen)
	}
	if latest := e.log.Checkpoint(); final.Size != latest.Size || !bytes.Equal(final.Root, latest.Root) {
		t.Fatalf("final state %v, log's latest %v", final, latest)
	}

	// Only the state and its lock file remain: no temporary files.
	ents, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	if want := []string{"trusted.checkpoint", "trusted.checkpoint.lock"}; !slices.Equal(names, want) {
		t.Fatalf("state directory holds %v, want %v", names, want)
	}
	fi, err := os.Stat(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); !fi.Mode().IsRegular() || perm&0o600 != 0o600 || perm&0o022 != 0 {
		t.Fatalf("state file mode %v: want a regular file, owner read-write, writable by no one else", fi.Mode())
	}
	if di, err := os.Stat(stateDir); err != nil || di.Mode().Perm()&0o022 != 0 {
		t.Fatalf("state directory mode: %v, %v", di.Mode(), err)
	}
}

// An answer older than what another user of the state stored meanwhile, but
// consistent with it, is fine: no error, and the state does not go back.
func TestFileStateStaleButConsistent(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	statePath := filepath.Join(t.TempDir(), "state")
	d, durl := newDouble(t, url)
	slow := client.New(durl, e.verifier, client.WithState(client.FileState{Path: statePath}))
	other := client.New(url, e.verifier, client.WithState(client.FileState{Path: statePath}))
	k := register(t, e, other)
	if _, err := slow.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	appendOther := func(ctx context.Context) error {
		n++
		_, err := other.Append(ctx, sign(t, k.alice, e.rootGrant(t, fmt.Sprintf("other-%d", n), k.alice, k.bob)))
		return err
	}

	for _, tc := range []struct {
		name string
		// before and after are how many entries the other client appends
		// before and after the slow answer is taken.
		before, after int
	}{
		{"answer at the slow client's floor", 0, 1},
		{"answer between the floor and the stored state", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			floor, err := slow.Trusted()
			if err != nil {
				t.Fatal(err)
			}
			var stale *warrantv1.GetCheckpointResponse
			d.reset(url)
			d.set(func(d *double) {
				d.checkpointFn = func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
					for range tc.before {
						if err := appendOther(ctx); err != nil {
							return nil, err
						}
					}
					r, err := b.GetCheckpoint(ctx, connect.NewRequest(req))
					if err != nil {
						return nil, err
					}
					stale = r.Msg
					for range tc.after {
						if err := appendOther(ctx); err != nil {
							return nil, err
						}
					}
					return r.Msg, nil
				}
			})
			got, err := slow.Checkpoint(ctx)
			if err != nil {
				t.Fatalf("a stale but consistent checkpoint: %v", err)
			}
			if !bytes.Equal(got.Note, stale.Checkpoint) || got.Size != floor.Size+uint64(tc.before) {
				t.Fatalf("got %v, want the stale answer of size %d", got, floor.Size+uint64(tc.before))
			}
			now, err := slow.Trusted()
			if err != nil {
				t.Fatal(err)
			}
			want := e.log.Checkpoint()
			if now.Size != want.Size || !bytes.Equal(now.Note, want.Note) || now.Size <= got.Size {
				t.Fatalf("the state went from the other client's %v back to %v", want, now)
			}
		})
	}
}

// A stale answer that is NOT consistent with what another user stored is a
// fork, and the state stays as the other user left it.
func TestFileStateStaleAndInconsistent(t *testing.T) {
	ctx := context.Background()
	p := newForkPair(t, 1, 2)
	statePath := filepath.Join(t.TempDir(), "state")
	d, durl := newDouble(t, p.aURL)
	slow := client.New(durl, p.a.verifier, client.WithState(client.FileState{Path: statePath}))
	other := client.New(p.aURL, p.a.verifier, client.WithState(client.FileState{Path: statePath}))
	if _, err := slow.Checkpoint(ctx); err != nil { // trusts A at prefix+1
		t.Fatal(err)
	}
	var state []byte
	d.set(func(d *double) {
		d.checkpointFn = func(ctx context.Context, _ warrantv1connect.LedgerServiceClient, req *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
			// Meanwhile the other client moves the state to A at prefix+3.
			for i := range 2 {
				if _, err := other.Append(ctx, sign(t, p.k.alice, p.a.rootGrant(t, fmt.Sprintf("more-%d", i), p.k.alice, p.k.bob))); err != nil {
					return nil, err
				}
			}
			state = readFile(t, statePath)
			// The answer comes from B (prefix+2): larger than the slow
			// client's floor, smaller than the stored state, and a fork.
			return getCheckpoint(ctx, rpcClient(p.bURL), req.GetTrustedSize())
		}
	})
	_, err := slow.Checkpoint(ctx)
	wantInconsistent(t, err, client.ErrFork, statePath, state)
	tr, err := slow.Trusted()
	if err != nil || tr.Size != p.prefix+3 {
		t.Fatalf("Trusted: %v, %v; want A at size %d", tr, err, p.prefix+3)
	}
}

// A trusted state that does not verify under the log key is refused with
// trusted_state_invalid, before any request, and is left as it is.
func TestFileStateInvalid(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	other := openLog(t, envOptions{})
	k := register(t, e, client.New(url, e.verifier))
	genuine := e.log.Checkpoint().Note
	size := e.log.Checkpoint().Size
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"garbage", []byte("this is not a checkpoint\n")},
		{"empty", []byte{}},
		{"truncated", genuine[:len(genuine)/2]},
		{"bit flipped", flip(genuine, len(genuine)/3)},
		{"another log's checkpoint", other.log.Checkpoint().Note},
	} {
		t.Run(tc.name, func(t *testing.T) {
			statePath := filepath.Join(t.TempDir(), "state")
			if err := os.WriteFile(statePath, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			c := client.New(url, e.verifier, client.WithState(client.FileState{Path: statePath}))
			// (An empty file is not "no state": it must not mean trust on
			// first use.)
			_, err := c.Trusted()
			wantReason(t, err, client.ReasonStateInvalid)
			for _, call := range allCalls(sign(t, k.alice, e.rootGrant(t, "x-"+nonce(t)[:8], k.alice, k.bob)), "none") {
				wantReason(t, call.fn(ctx, c), client.ReasonStateInvalid)
			}
			if got := readFile(t, statePath); !bytes.Equal(got, tc.content) {
				t.Fatalf("the invalid state was overwritten with %q", got)
			}
		})
	}
	if got := e.log.Checkpoint().Size; got != size {
		t.Fatalf("appends with an invalid state reached the log (size %d -> %d)", size, got)
	}
}

func TestFileStateUpdateSemantics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "state")
	s := client.FileState{Path: path}
	if got, err := s.Load(); got != nil || err != nil {
		t.Fatalf("Load of a missing state: %q, %v", got, err)
	}
	// fn returning nil writes nothing.
	if err := s.Update(func(cur []byte) ([]byte, error) {
		if cur != nil {
			t.Errorf("fn saw %q, want nil", cur)
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a no-op update created the state file: %v", err)
	}
	if err := s.Update(func([]byte) ([]byte, error) { return []byte("one"), nil }); err != nil {
		t.Fatal(err)
	}
	// An error from fn is returned and leaves the state.
	boom := errors.New("boom")
	if err := s.Update(func(cur []byte) ([]byte, error) {
		if string(cur) != "one" {
			t.Errorf("fn saw %q, want %q", cur, "one")
		}
		return []byte("two"), boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update: %v, want %v", err, boom)
	}
	if got, _ := s.Load(); string(got) != "one" {
		t.Fatalf("state %q after a failed update, want %q", got, "one")
	}
	// Concurrent read-modify-write cycles never lose an update.
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := s.Update(func(cur []byte) ([]byte, error) { return append(slices.Clone(cur), '+'), nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _ := s.Load(); string(got) != "one"+string(bytes.Repeat([]byte("+"), n)) {
		t.Fatalf("lost updates: %q", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 2 {
		t.Fatalf("state directory holds %d files, want the state and its lock", len(ents))
	}
}

func TestMemoryState(t *testing.T) {
	var s client.MemoryState
	if got, err := s.Load(); got != nil || err != nil {
		t.Fatalf("Load of an empty state: %q, %v", got, err)
	}
	if err := s.Update(func([]byte) ([]byte, error) { return []byte("one"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Update(func([]byte) ([]byte, error) { return []byte("two"), boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got, _ := s.Load(); string(got) != "one" {
		t.Fatalf("state %q, want %q", got, "one")
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			s.Update(func(cur []byte) ([]byte, error) { return append(slices.Clone(cur), '+'), nil })
		})
	}
	wg.Wait()
	if got, _ := s.Load(); len(got) != 3+50 {
		t.Fatalf("lost updates: %d bytes", len(got))
	}
}

// When an answer is older than the stored state, the client fetches a
// consistency proof between them; a lie there is caught too.
func TestStaleAnswerWithBadConsistencyProof(t *testing.T) {
	ctx := context.Background()
	e := openLog(t, envOptions{})
	url := e.serve(t)
	d, durl := newDouble(t, url)
	statePath := filepath.Join(t.TempDir(), "state")
	slow := client.New(durl, e.verifier, client.WithState(client.FileState{Path: statePath}))
	other := client.New(url, e.verifier, client.WithState(client.FileState{Path: statePath}))
	k := register(t, e, other)
	for i := range 2 {
		mustAppend(t, other, sign(t, k.alice, e.rootGrant(t, fmt.Sprintf("pad-%d", i), k.alice, k.bob)))
	}
	n := 0
	for _, tc := range []struct {
		name   string
		lie    func(r *warrantv1.GetConsistencyProofResponse)
		reason string
		is     error
	}{
		{"hash flipped", func(r *warrantv1.GetConsistencyProofResponse) { r.Hashes[0] = flip(r.Hashes[0], 0) }, client.ReasonFork, client.ErrFork},
		{"hash dropped", func(r *warrantv1.GetConsistencyProofResponse) { r.Hashes = r.Hashes[1:] }, client.ReasonFork, client.ErrFork},
		{"other sizes", func(r *warrantv1.GetConsistencyProofResponse) { r.FromSize-- }, client.ReasonMismatch, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := slow.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			var state []byte
			d.reset(url)
			d.set(func(d *double) {
				d.checkpointFn = func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetCheckpointRequest) (*warrantv1.GetCheckpointResponse, error) {
					r, err := b.GetCheckpoint(ctx, connect.NewRequest(req))
					if err != nil {
						return nil, err
					}
					n++
					if _, err := other.Append(ctx, sign(t, k.alice, e.rootGrant(t, fmt.Sprintf("meanwhile-%d", n), k.alice, k.bob))); err != nil {
						return nil, err
					}
					state = readFile(t, statePath)
					return r.Msg, nil
				}
				d.consistFn = func(ctx context.Context, b warrantv1connect.LedgerServiceClient, req *warrantv1.GetConsistencyProofRequest) (*warrantv1.GetConsistencyProofResponse, error) {
					r, err := b.GetConsistencyProof(ctx, connect.NewRequest(req))
					if err != nil {
						return nil, err
					}
					tc.lie(r.Msg)
					return r.Msg, nil
				}
			})
			_, err := slow.Checkpoint(ctx)
			wantReason(t, err, tc.reason)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			if got := readFile(t, statePath); !bytes.Equal(got, state) {
				t.Fatal("the trusted state changed")
			}
			d.reset(url)
		})
	}
}
