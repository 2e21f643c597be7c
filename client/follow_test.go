package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// count returns how many entries r has recorded.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitFor polls cond until it holds, failing the test after a minute or
// when follow has returned.
func waitFor(t *testing.T, what string, done <-chan error, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("Follow returned (%v) before %s", err, what)
		case <-deadline:
			t.Fatalf("no %s within a minute", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestFollowAsTheLogGrows follows a live log: what was there at the start,
// then what is appended while it follows, each entry once; cancelling ends
// it without error.
func TestFollowAsTheLogGrows(t *testing.T) {
	e := openLogRefresh(t, 200*time.Millisecond)
	url := e.serve(t)
	populate(t, e, url, 2)
	r := &recorder{}
	f := followerFor(t, url, e, filepath.Join(t.TempDir(), "s"), r, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var warnings []error
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- f.Follow(ctx, client.FollowOptions{Warn: func(err error) { mu.Lock(); warnings = append(warnings, err); mu.Unlock() }})
	}()
	waitFor(t, "the first round", done, func() bool { return r.count() == 6 }) // configuration, policy, 2 bindings, 2 grants
	populate(t, e, url, 1)
	waitFor(t, "the appended entries", done, func() bool { return r.count() == 9 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow after cancel: %v", err)
	}
	for i, idx := range r.got {
		if idx != uint64(i) {
			t.Fatalf("emitted %v, want every entry once in order", r.got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 0 {
		t.Fatalf("warnings from a live log: %v", warnings)
	}
}

// TestFollowStalled gives Follow a clock an hour ahead of the log's
// signed timestamps: the first tick of the feed is a stall alert carrying
// the checkpoint, and the state is where the first round left it.
func TestFollowStalled(t *testing.T) {
	e := openLogRefresh(t, 200*time.Millisecond)
	url := e.serve(t)
	populate(t, e, url, 1)
	r := &recorder{}
	f := followerFor(t, url, e, filepath.Join(t.TempDir(), "s"), r, 100)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	err := f.Follow(ctx, client.FollowOptions{Now: ahead})
	var a *client.AlertError
	if !errors.As(err, &a) || a.Reason != client.ReasonStalled {
		t.Fatalf("Follow with a clock an hour ahead: %v, want a %s alert", err, client.ReasonStalled)
	}
	if _, err := proofs.OpenCheckpoint(a.Evidence, e.verifier); err != nil {
		t.Fatalf("the alert's evidence is not the log's checkpoint: %v", err)
	}
	if n := f.State().Next; n != 5 || r.count() != 5 {
		t.Fatalf("state at %d with %d emitted, want 5 and 5", n, r.count())
	}
}

// TestFollowWithoutFeed follows a server that answers no Connect call (a
// static tlog-tiles mirror as far as the client can tell): Follow warns
// once that there is no feed, polls the tiles, picks up appended entries,
// and raises no stall alert however far its clock runs ahead, since
// nothing signed could show the log live.
func TestFollowWithoutFeed(t *testing.T) {
	e := openLog(t, envOptions{})
	live := e.serve(t)
	h := ledger.NewHandler(e.log)
	mirror := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/"+warrantv1connect.LedgerServiceName+"/") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})).URL
	populate(t, e, live, 1)
	r := &recorder{}
	f := followerFor(t, mirror, e, filepath.Join(t.TempDir(), "s"), r, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	warned := make(chan error, 16)
	done := make(chan error, 1)
	// Once the follower knows the server has no feed, an hour passes on
	// its clock: without signed timestamps it must not call that a stall.
	var skew atomic.Int64
	go func() {
		done <- f.Follow(ctx, client.FollowOptions{
			Poll:       20 * time.Millisecond,
			StallAfter: time.Minute,
			Now:        func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
			Warn: func(err error) {
				if errors.Is(err, client.ErrNoFeed) {
					skew.Store(int64(time.Hour))
				}
				warned <- err
			},
		})
	}()
	waitFor(t, "the first round", done, func() bool { return r.count() == 5 })
	populate(t, e, live, 1)
	waitFor(t, "the appended entries", done, func() bool { return r.count() == 8 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow after cancel: %v", err)
	}
	close(warned)
	var got []error
	for err := range warned {
		got = append(got, err)
	}
	if len(got) != 1 || !errors.Is(got[0], client.ErrNoFeed) {
		t.Fatalf("warnings %v, want one wrapping ErrNoFeed", got)
	}
}

// ExampleFollower_Follow follows a log for a SIEM: every entry once, in
// order, verified against the log's signed checkpoints, resumable from the
// state file. Here it stops once it has seen the third entry; a SIEM
// follows until it is stopped or the log fails verification (an
// *AlertError to raise).
func ExampleFollower_Follow() {
	x := exampleLog()
	defer x.stop()
	tsKey, err := proofs.TimestampVerifier(x.vkey) // checks the feed's signed timestamps
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emit := func(ctx context.Context, entries []client.Followed) error {
		for _, e := range entries {
			fmt.Println(e.Index, e.Leaf.Kind) // a SIEM renders and ships them (package siem)
			if e.Index == 2 {
				cancel()
			}
		}
		return nil // handed over: the state file advances
	}
	f, err := client.New(x.url, x.logKey).NewFollower(client.FollowerOptions{
		StatePath:    filepath.Join(x.dir, "siem.state"),
		Emit:         emit,
		TimestampKey: tsKey,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := f.Follow(ctx, client.FollowOptions{StallAfter: time.Minute}); err != nil {
		log.Fatal(err) // an *AlertError: a fork, a rollback, a stall...
	}
	fmt.Println("stopped at", f.State().Next)
	// Output:
	// 0 log_config
	// 1 policy
	// 2 key_binding
	// stopped at 3
}
