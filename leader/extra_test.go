package leader

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/warrantlog/warrant/internal/etcdtest"
)

// eventually polls cond until it holds, failing the test after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func memberIDs(ms []Member) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.NodeID)
	}
	return ids
}

func TestNoLeader(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	if _, err := a.Leader(ctxWait(t)); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader with nobody campaigning: %v, want ErrNoLeader", err)
	}
	ta := campaign(t, a)
	if err := ta.Resign(ctxWait(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Leader(ctxWait(t)); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader after the only leader resigned: %v, want ErrNoLeader", err)
	}
	if err := ta.Resign(ctxWait(t)); err != nil {
		t.Errorf("second Resign: %v", err)
	}
}

// Concurrent swaps from one checkpoint: exactly one wins, whichever term
// makes them, so one checkpoint follows each.
func TestConcurrentSwapsOneWins(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	ctx := ctxWait(t)
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp0")); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		old := fmt.Appendf(nil, "cp%d", round)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = ta.Swap(ctx, old, fmt.Appendf(nil, "cp%d", round+1)) })
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d swaps from one checkpoint succeeded", round, wins)
		}
	}
	raw := rawClient(t, etcd.Endpoint())
	resp, err := raw.Get(ctx, DefaultPrefix+"checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	if kv := resp.Kvs[0]; string(kv.Value) != "cp5" || kv.Version != 6 {
		t.Errorf("checkpoint %q version %d, want cp5 version 6", kv.Value, kv.Version)
	}
}

// A cancelled Campaign leaves no candidate behind: its key is removed, so
// it neither shows as Leader nor holds up the next election.
func TestCancelledCampaignLeavesNoCandidate(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	b := dial(t, etcd.Endpoint(), "b")
	c := dial(t, etcd.Endpoint(), "c")
	raw := rawClient(t, etcd.Endpoint())
	ctx := ctxWait(t)
	ta := campaign(t, a)

	candidates := func() int {
		resp, err := raw.Get(ctx, DefaultPrefix+"election/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return int(resp.Count)
	}
	bctx, bcancel := context.WithCancel(ctx)
	berr := make(chan error, 1)
	go func() { _, err := b.Campaign(bctx); berr <- err }()
	eventually(t, "b's candidate key", func() bool { return candidates() == 2 })
	bcancel()
	if err := <-berr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Campaign: %v, want context.Canceled", err)
	}
	eventually(t, "b's candidate key removed", func() bool { return candidates() == 1 })

	if err := ta.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	tc := campaign(t, c)
	if got, err := b.Leader(ctx); err != nil || got.NodeID != "c" {
		t.Fatalf("Leader = %v, %v; want c", got, err)
	}
	if err := tc.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}
}

// Closing the Coordinator ends its term (Done closes, Swap refuses), hands
// the lead on (its lease is revoked, so the key goes with it), leaves the
// members, closes its checkpoint watches and refuses new campaigns.
func TestCloseEndsEverything(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	b := dial(t, etcd.Endpoint(), "b")
	ctx := ctxWait(t)
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}
	ch := a.WatchCheckpoint(ctx)
	if got := string(<-ch); got != "cp1" {
		t.Fatalf("watch: %q", got)
	}
	bwon := make(chan *Term, 1)
	go func() {
		tb, err := b.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		bwon <- tb
	}()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !closed(ta.Done()) {
		t.Error("Done open after Close")
	}
	if err := ta.Swap(ctx, []byte("cp1"), []byte("x")); !errors.Is(err, ErrDeposed) {
		t.Errorf("Swap after Close: %v, want ErrDeposed", err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("watch delivered after Close")
		}
	case <-time.After(wait):
		t.Error("watch channel not closed by Close")
	}
	if _, err := a.Campaign(ctx); err == nil {
		t.Error("Campaign after Close succeeded")
	}
	tb := <-bwon
	if tb == nil {
		t.FailNow()
	}
	if err := tb.Swap(ctx, []byte("cp1"), []byte("cp2")); err != nil {
		t.Fatal(err)
	}
	if ms, err := b.Members(ctx); err != nil || !slices.Equal(memberIDs(ms), []string{"b"}) {
		t.Errorf("Members after a closed = %v, %v; want b alone", ms, err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A node cut off from etcd drops out of the members when its lease runs
// out, and registers again when the partition heals.
func TestMembershipAcrossPartition(t *testing.T) {
	etcd := etcdtest.Start(t)
	p := etcdtest.NewProxy(t, etcd.Addr())
	a := dial(t, p.Endpoint(), "a")
	b := dial(t, etcd.Endpoint(), "b")
	ctx := ctxWait(t)
	ids := func() []string {
		ms, err := b.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return memberIDs(ms)
	}
	if got := ids(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Members = %v", got)
	}
	p.Cut()
	eventually(t, "a gone from the members while cut off", func() bool { return slices.Equal(ids(), []string{"b"}) })
	p.Heal()
	eventually(t, "a back among the members after healing", func() bool { return slices.Equal(ids(), []string{"a", "b"}) })
	// And it can lead again.
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}
}

// A second process under a live node's id is refused (ErrNodeIDInUse)
// after waiting for the live one's lease, and leaves the live registration
// alone.
func TestDuplicateNodeIDRefused(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	cfg := a.cfg
	cfg.URL = "http://a2.test:8080"
	ctx := ctxWait(t)
	c, err := Dial(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial under the id of a live node succeeded")
	}
	if !errors.Is(err, ErrNodeIDInUse) || !strings.Contains(err.Error(), a.cfg.URL) {
		t.Fatalf("Dial under the id of a live node: %v; want ErrNodeIDInUse naming %s", err, a.cfg.URL)
	}
	ms, err := a.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ms, []Member{{NodeID: "a", URL: a.cfg.URL}}) {
		t.Errorf("Members = %v; want only the live a", ms)
	}
	// Once the live node closes, the id is free at once.
	a.Close()
	dial(t, etcd.Endpoint(), "a", func(c *Config) { c.URL = "http://a2.test:8080" })
}

// A node restarted under the same id (a new Coordinator, while the old
// one's lease is still live but no longer renewed: the old process died)
// waits for the old lease to run out and then registers.
func TestRestartedNodeKeepsItsRegistration(t *testing.T) {
	etcd := etcdtest.Start(t)
	p := etcdtest.NewProxy(t, etcd.Addr())
	dial(t, p.Endpoint(), "a") // "crashes": cut off below, never closed
	b := dial(t, etcd.Endpoint(), "b")
	ctx := ctxWait(t)
	raw := rawClient(t, etcd.Endpoint())
	resp, err := raw.Get(ctx, DefaultPrefix+"members/a")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	oldLease := clientv3.LeaseID(resp.Kvs[0].Lease)
	p.Cut()

	dial(t, etcd.Endpoint(), "a", func(c *Config) { c.URL = "http://a2.test:8080" })
	eventually(t, "the old member lease running out", func() bool {
		ttl, err := raw.TimeToLive(ctx, oldLease)
		return err == nil && ttl.TTL == -1
	})
	ms, err := b.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ms, []Member{{NodeID: "a", URL: "http://a2.test:8080"}, {NodeID: "b", URL: b.cfg.URL}}) {
		t.Errorf("Members = %v; want a at its new URL, and b", ms)
	}
}

// A second Campaign by a node that leads queues behind its own term.
func TestSecondCampaignQueuesBehindOwnTerm(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	ctx := ctxWait(t)
	t1 := campaign(t, a)
	if err := t1.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}
	second := make(chan *Term, 1)
	go func() {
		t2, err := a.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		second <- t2
	}()
	// While t1 lasts, swaps by t1 keep working and the second Campaign
	// has not returned.
	for i := 1; i < 5; i++ {
		if err := t1.Swap(ctx, fmt.Appendf(nil, "cp%d", i), fmt.Appendf(nil, "cp%d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-second:
		t.Fatal("second Campaign returned while the first term lasts")
	default:
	}
	if err := t1.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	t2 := <-second
	if t2 == nil {
		t.FailNow()
	}
	if err := t1.Swap(ctx, []byte("cp5"), []byte("x")); !errors.Is(err, ErrDeposed) {
		t.Errorf("first term's Swap after Resign: %v", err)
	}
	if err := t2.Swap(ctx, []byte("cp5"), []byte("cp6")); err != nil {
		t.Fatal(err)
	}
}

// Close leaves no goroutine behind: not the renewals, watchdogs, watches,
// registration loop, nor a campaign cut short.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	etcd := etcdtest.Start(t)
	raw := rawClient(t, etcd.Endpoint())
	ctx := ctxWait(t)
	if _, err := raw.Get(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()

	cfg := Config{Endpoints: []string{etcd.Endpoint()}, URL: "http://n.test", LeaseTTL: testTTL}
	a, err := Dial(ctx, withID(cfg, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Dial(ctx, withID(cfg, "b"))
	if err != nil {
		t.Fatal(err)
	}
	ta, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ta
	a.WatchCheckpoint(ctx)
	bctx, bcancel := context.WithCancel(ctx)
	bdone := make(chan struct{})
	go func() { defer close(bdone); b.Campaign(bctx) }() // waits behind a
	time.Sleep(200 * time.Millisecond)
	bcancel()
	<-bdone
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "goroutines back to their number before Dial", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func withID(cfg Config, id string) Config {
	cfg.NodeID = id
	return cfg
}
