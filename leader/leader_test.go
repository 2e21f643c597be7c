package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/warrantlog/warrant/internal/etcdtest"
)

// wait bounds every wait in these tests: far longer than anything should
// take, so that a busy machine does not fail them. No test asserts a speed.
const wait = 90 * time.Second

// testTTL is the lease TTL most tests use: short, so that expiries happen
// within a test's patience, yet long enough (renewals every second, the
// term's deadline three seconds after the last) that a test binary starved
// of CPU on a busy machine does not lose its terms by accident.
const testTTL = 4 * time.Second

func dial(t *testing.T, endpoint, id string, edit ...func(*Config)) *Coordinator {
	t.Helper()
	cfg := Config{
		Endpoints: []string{endpoint},
		NodeID:    id,
		URL:       "http://" + id + ".test:8080",
		LeaseTTL:  testTTL,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testWriter sends logs to t.Log (until the test ends).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// rawClient is a plain etcd client, for a test to act behind the
// coordinators' backs (revoke a lease, delete a key, read history).
func rawClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func campaign(t *testing.T, c *Coordinator) *Term {
	t.Helper()
	term, err := c.Campaign(ctxWait(t))
	if err != nil {
		t.Fatalf("%s: campaign: %v", c.cfg.NodeID, err)
	}
	return term
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("%s: not closed after %v", what, wait)
	}
}

func TestOneLeaderAmongThree(t *testing.T) {
	etcd := etcdtest.Start(t)
	var cs []*Coordinator
	for _, id := range []string{"a", "b", "c"} {
		cs = append(cs, dial(t, etcd.Endpoint(), id))
	}
	ctx, cancel := context.WithCancel(ctxWait(t))
	defer cancel()
	type won struct {
		c    *Coordinator
		term *Term
	}
	wins := make(chan won, 3)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			term, err := c.Campaign(ctx)
			if err == nil {
				wins <- won{c, term}
			}
		})
	}
	var first won
	select {
	case first = <-wins:
	case <-time.After(wait):
		t.Fatal("nobody was elected")
	}

	// Everybody agrees on who leads, and the leader is a member.
	want := Member{NodeID: first.c.cfg.NodeID, URL: first.c.cfg.URL}
	for _, c := range cs {
		got, err := c.Leader(ctx)
		if err != nil || got != want {
			t.Errorf("%s: Leader = %v, %v; want %v", c.cfg.NodeID, got, err, want)
		}
		ms, err := c.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 3 || !slices.Contains(ms, want) {
			t.Errorf("%s: Members = %v; want the three nodes, leader %v among them", c.cfg.NodeID, ms, want)
		}
	}
	// Nobody else is elected while the term lasts: the leader's Swap works
	// and no other Campaign has returned.
	if err := first.term.Swap(ctx, nil, []byte("one")); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-wins:
		t.Fatalf("%s elected while %s leads", w.c.cfg.NodeID, first.c.cfg.NodeID)
	default:
	}

	// Resigning hands the lead to one of the others, who can swap on.
	if err := first.term.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if !closed(first.term.Done()) {
		t.Error("Done open after Resign")
	}
	var second won
	select {
	case second = <-wins:
	case <-time.After(wait):
		t.Fatal("nobody was elected after the leader resigned")
	}
	if second.c == first.c {
		t.Fatal("the resigned node won again without campaigning")
	}
	if err := first.term.Swap(ctx, []byte("one"), []byte("x")); !errors.Is(err, ErrDeposed) {
		t.Errorf("resigned term's Swap: %v, want ErrDeposed", err)
	}
	if err := second.term.Swap(ctx, []byte("one"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := first.c.Leader(ctx)
	if err != nil || got.NodeID != second.c.cfg.NodeID {
		t.Errorf("Leader after handover = %v, %v; want %s", got, err, second.c.cfg.NodeID)
	}

	// A closed node leaves the members at once (its lease is revoked).
	if err := first.c.Close(); err != nil {
		t.Fatal(err)
	}
	ms, err := second.c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(ms, func(m Member) bool { return m.NodeID == first.c.cfg.NodeID }) || len(ms) != 2 {
		t.Errorf("Members after %s closed = %v", first.c.cfg.NodeID, ms)
	}
	cancel()
	wg.Wait()
}

func TestSwapConflict(t *testing.T) {
	etcd := etcdtest.Start(t)
	c := dial(t, etcd.Endpoint(), "a")
	ctx := ctxWait(t)
	if cp, err := c.Checkpoint(ctx); cp != nil || err != nil {
		t.Fatalf("Checkpoint before any swap = %q, %v", cp, err)
	}
	term := campaign(t, c)
	if err := term.Swap(ctx, []byte("zero"), []byte("one")); !errors.Is(err, ErrConflict) {
		t.Errorf("Swap from a checkpoint that is not there: %v, want ErrConflict", err)
	}
	if err := term.Swap(ctx, nil, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := term.Swap(ctx, nil, []byte("two")); !errors.Is(err, ErrConflict) {
		t.Errorf("Swap from none when there is one: %v, want ErrConflict", err)
	}
	if err := term.Swap(ctx, []byte("zero"), []byte("two")); !errors.Is(err, ErrConflict) {
		t.Errorf("Swap from the wrong old: %v, want ErrConflict", err)
	}
	if err := term.Swap(ctx, []byte("one"), nil); err == nil {
		t.Error("Swap to an empty checkpoint succeeded")
	}
	if err := term.Swap(ctx, []byte("one"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	if cp, err := c.Checkpoint(ctx); string(cp) != "two" || err != nil {
		t.Errorf("Checkpoint = %q, %v; want two", cp, err)
	}
	if closed(term.Done()) {
		t.Error("a conflict ended the term")
	}
}

// fencing runs one deposition: A leads and swaps, depose(A's election key
// and lease) takes its term away behind its back, B is elected; then A and
// B both swap from the same checkpoint: A's fails with ErrDeposed, B's
// succeeds, and the checkpoint key was written exactly once per successful
// swap.
func fencing(t *testing.T, depose func(ctx context.Context, cli *clientv3.Client, key string, lease clientv3.LeaseID)) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	b := dial(t, etcd.Endpoint(), "b")
	raw := rawClient(t, etcd.Endpoint())
	ctx := ctxWait(t)

	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}
	bwon := make(chan *Term, 1)
	go func() {
		tb, err := b.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		bwon <- tb
	}()

	depose(ctx, raw, ta.key, ta.lease)
	tb := <-bwon
	if tb == nil {
		t.FailNow()
	}

	// A's process keeps running and tries to swap, whatever its Done says;
	// so does B, from the same checkpoint, concurrently.
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { errA = ta.Swap(ctx, []byte("cp1"), []byte("cp2 by a")) })
	wg.Go(func() { errB = tb.Swap(ctx, []byte("cp1"), []byte("cp2 by b")) })
	wg.Wait()
	if !errors.Is(errA, ErrDeposed) {
		t.Errorf("deposed A's Swap: %v, want ErrDeposed", errA)
	}
	if errB != nil {
		t.Errorf("B's Swap: %v", errB)
	}
	waitClosed(t, ta.Done(), "deposed A's Done")
	if closed(tb.Done()) {
		t.Error("B's Done closed")
	}

	// The history: cp1 by A, cp2 by B, nothing else.
	resp, err := raw.Get(ctx, DefaultPrefix+"checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "cp2 by b" || resp.Kvs[0].Version != 2 {
		t.Fatalf("checkpoint key = %v; want cp2 by b, version 2 (two writes)", resp.Kvs)
	}
	if got, err := a.Leader(ctx); err != nil || got.NodeID != "b" {
		t.Errorf("Leader = %v, %v; want b", got, err)
	}
}

func TestFencingLeaseRevoked(t *testing.T) {
	fencing(t, func(ctx context.Context, cli *clientv3.Client, _ string, lease clientv3.LeaseID) {
		if _, err := cli.Revoke(ctx, lease); err != nil {
			t.Fatal(err)
		}
	})
}

// A deleted election key deposes even while the lease lives (and is still
// renewed by the deposed node).
func TestFencingKeyDeleted(t *testing.T) {
	fencing(t, func(ctx context.Context, cli *clientv3.Client, key string, lease clientv3.LeaseID) {
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEtcdStopped(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	b := dial(t, etcd.Endpoint(), "b")
	ctx := ctxWait(t)
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}

	etcd.Stop()

	// The leader's term ends by its own clock: nothing renews its lease.
	waitClosed(t, ta.Done(), "Done with etcd stopped")
	if err := ta.Swap(ctx, []byte("cp1"), []byte("cp2")); !errors.Is(err, ErrDeposed) {
		t.Errorf("Swap of a term ended with etcd stopped: %v, want ErrDeposed", err)
	}
	// Nobody is elected, nothing is read.
	short, cancel := context.WithTimeout(ctx, 3*testTTL)
	_, err := b.Campaign(short)
	cancel()
	if err == nil {
		t.Fatal("Campaign succeeded with etcd stopped")
	}
	short, cancel = context.WithTimeout(ctx, testTTL)
	if _, err := b.Leader(short); err == nil {
		t.Error("Leader answered with etcd stopped")
	}
	if _, err := b.Checkpoint(short); err == nil {
		t.Error("Checkpoint answered with etcd stopped")
	}
	cancel()

	// A Swap in flight while etcd is away returns (ErrUnknown at the
	// latest when the term ends), never hangs or panics: campaign while etcd
	// is up, stop it, swap.
	etcd.Restart()
	tb := campaign(t, b)
	etcd.Stop()
	if err := tb.Swap(ctx, []byte("cp1"), []byte("cp2")); !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrDeposed) {
		t.Errorf("Swap with etcd stopped: %v, want ErrUnknown or ErrDeposed", err)
	}
	waitClosed(t, tb.Done(), "Done with etcd stopped")

	// etcd returns: everything works again.
	etcd.Restart()
	tc := campaign(t, a)
	if err := tc.Swap(ctx, []byte("cp1"), []byte("cp2")); err != nil {
		t.Fatal(err)
	}
	if cp, err := b.Checkpoint(ctx); string(cp) != "cp2" || err != nil {
		t.Errorf("Checkpoint = %q, %v; want cp2", cp, err)
	}
	if got, err := b.Leader(ctx); err != nil || got.NodeID != "a" {
		t.Errorf("Leader = %v, %v; want a", got, err)
	}
	// Both nodes are members again (their leases may have run out while
	// etcd was down; they register again).
	deadline := time.Now().Add(wait)
	for {
		ms, err := b.Members(ctx)
		if err == nil && len(ms) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Members = %v, %v; want a and b", ms, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A leader cut off from etcd by a partition (packets dropped, no error)
// stops before its lease can run out: its Done closes before another node's
// Campaign returns. No time is measured; only the order is asserted.
func TestPartitionDoneBeforeOthersElected(t *testing.T) {
	etcd := etcdtest.Start(t)
	p := etcdtest.NewProxy(t, etcd.Addr())
	// A longer lease than the other tests' gives the order a margin of one
	// and a half seconds on a busy machine.
	ttl := 6 * time.Second
	a := dial(t, p.Endpoint(), "a", func(c *Config) { c.LeaseTTL = ttl })
	b := dial(t, etcd.Endpoint(), "b", func(c *Config) { c.LeaseTTL = ttl })
	ctx := ctxWait(t)
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}

	// When A's Done closes, note whether B had been elected already.
	var bElected atomic.Bool
	doneFirst := make(chan bool, 1)
	go func() {
		<-ta.Done()
		doneFirst <- !bElected.Load()
	}()

	p.Cut()
	// A swap in flight when the partition starts gets no answer: it
	// returns when the term ends, saying its outcome is unknown.
	inflight := make(chan error, 1)
	go func() { inflight <- ta.Swap(ctx, []byte("cp1"), []byte("cp2 by a, cut off")) }()
	tb, err := b.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bElected.Store(true)
	if !closed(ta.Done()) {
		t.Fatal("B was elected while A's Done was still open")
	}
	if !<-doneFirst {
		t.Fatal("A's Done closed after B was elected")
	}
	select {
	case err := <-inflight:
		// ErrUnknown if it was sent before Done closed (both, then),
		// ErrDeposed alone if the goroutine only got to it after.
		if !errors.Is(err, ErrDeposed) {
			t.Errorf("swap in flight at the cut: %v, want ErrDeposed (and ErrUnknown if it was sent)", err)
		}
		t.Logf("swap in flight at the cut: %v", err)
	case <-time.After(wait):
		t.Fatal("swap in flight at the cut did not return")
	}
	if err := ta.Swap(ctx, []byte("cp1"), []byte("cp2 by a")); !errors.Is(err, ErrDeposed) {
		t.Errorf("cut-off A's Swap: %v, want ErrDeposed", err)
	}
	if err := tb.Swap(ctx, []byte("cp1"), []byte("cp2 by b")); err != nil {
		t.Fatal(err)
	}

	// The partition heals: A is a member again and follows B's checkpoint.
	p.Heal()
	if cp, err := a.Checkpoint(ctx); string(cp) != "cp2 by b" || err != nil {
		t.Errorf("A's Checkpoint after healing = %q, %v", cp, err)
	}
	if got, err := a.Leader(ctx); err != nil || got.NodeID != "b" {
		t.Errorf("A's Leader after healing = %v, %v; want b", got, err)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Done closes when the injected clock says the lease may soon run out,
// however little real time has passed: the deadline is the local clock's,
// counted from the last renewal sent, not a timer's.
func TestDoneByInjectedClock(t *testing.T) {
	etcd := etcdtest.Start(t)
	p := etcdtest.NewProxy(t, etcd.Addr())
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ttl := testTTL // real time does not matter: the deadline is the fake clock's
	a := dial(t, p.Endpoint(), "a", func(c *Config) { c.Now = clock.Now })
	ta := campaign(t, a)

	// With renewals succeeding, the clock moving on does not end the term:
	// each renewal moves the deadline. Advance by less than the deadline,
	// many times over, waiting for a renewal in between.
	step := (ttl - Margin(ttl)) / 2
	for range 3 {
		clock.Advance(step)
		renewedAfter := clock.Now()
		deadline := time.Now().Add(wait)
		for {
			ta.mu.Lock()
			v := ta.validUntil
			ta.mu.Unlock()
			if !v.Before(renewedAfter.Add(ttl - Margin(ttl))) {
				break
			}
			if closed(ta.Done()) || time.Now().After(deadline) {
				t.Fatalf("term ended or not renewed with etcd reachable: %v", ta.err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if closed(ta.Done()) {
		t.Fatal("Done closed while renewals succeed")
	}

	// Cut off, the term ends once the clock passes the last renewal's
	// send time plus TTL minus the margin.
	p.Cut()
	clock.Advance(ttl - Margin(ttl))
	waitClosed(t, ta.Done(), "Done after the injected clock passed the deadline")
	if !strings.Contains(ta.err().Error(), "not renewed in time") {
		t.Errorf("term ended by %v, want the deadline", ta.err())
	}
	p.Heal() // for Close to revoke the leases
}

func TestWatchCheckpointInOrder(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	f := dial(t, etcd.Endpoint(), "f")
	ctx := ctxWait(t)
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp0")); err != nil {
		t.Fatal(err)
	}
	if err := ta.Swap(ctx, []byte("cp0"), []byte("cp1")); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	ch := f.WatchCheckpoint(wctx)
	// The latest first.
	if got := string(<-ch); got != "cp1" {
		t.Fatalf("first note = %q, want cp1", got)
	}
	const n = 30
	var swapper sync.WaitGroup
	defer swapper.Wait()
	swapper.Go(func() {
		for i := 2; i <= n; i++ {
			if err := ta.Swap(ctx, fmt.Appendf(nil, "cp%d", i-1), fmt.Appendf(nil, "cp%d", i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := 2; i <= n; i++ {
		select {
		case got := <-ch:
			if want := fmt.Sprintf("cp%d", i); string(got) != want {
				t.Fatalf("note %d = %q, want %q", i, got, want)
			}
		case <-time.After(wait):
			t.Fatalf("note %d not delivered", i)
		}
	}
	wcancel()
	for range ch {
	}
}

// The watch survives etcd restarting: notes swapped after it are delivered,
// and no note comes twice or out of order.
func TestWatchCheckpointAcrossRestart(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := dial(t, etcd.Endpoint(), "a")
	f := dial(t, etcd.Endpoint(), "f")
	ctx := ctxWait(t)
	ta := campaign(t, a)
	if err := ta.Swap(ctx, nil, []byte("cp1")); err != nil {
		t.Fatal(err)
	}
	ch := f.WatchCheckpoint(ctx)
	if got := string(<-ch); got != "cp1" {
		t.Fatalf("first note = %q", got)
	}
	// The term would not survive the restart for sure (a 2 s lease may
	// end by the local deadline, or not); hand it back first.
	if err := ta.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	etcd.Restart()
	tb := campaign(t, a)
	if err := tb.Swap(ctx, []byte("cp1"), []byte("cp2")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		if string(got) != "cp2" {
			t.Fatalf("note after restart = %q, want cp2", got)
		}
	case <-time.After(wait):
		t.Fatal("no note after etcd restarted")
	}
}

func TestConfigValidation(t *testing.T) {
	good := Config{Endpoints: []string{"http://127.0.0.1:2379"}, NodeID: "node-1", URL: "https://n1.example:8443/"}
	if _, err := good.validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no endpoints":      {func(c *Config) { c.Endpoints = nil }, "no etcd endpoints"},
		"empty endpoint":    {func(c *Config) { c.Endpoints = []string{""} }, "want host:port"},
		"endpoint no port":  {func(c *Config) { c.Endpoints = []string{"http://127.0.0.1"} }, "want host:port"},
		"endpoint https":    {func(c *Config) { c.Endpoints = []string{"https://127.0.0.1:2379"} }, "TLS"},
		"endpoint path":     {func(c *Config) { c.Endpoints = []string{"http://127.0.0.1:2379/v3"} }, "nothing more"},
		"node id empty":     {func(c *Config) { c.NodeID = "" }, "node id"},
		"node id slash":     {func(c *Config) { c.NodeID = "a/b" }, "node id"},
		"node id dot first": {func(c *Config) { c.NodeID = ".a" }, "node id"},
		"node id long":      {func(c *Config) { c.NodeID = strings.Repeat("a", 64) }, "node id"},
		"url empty":         {func(c *Config) { c.URL = "" }, "node URL"},
		"url relative":      {func(c *Config) { c.URL = "/n1" }, "node URL"},
		"url no host":       {func(c *Config) { c.URL = "http:///x" }, "node URL"},
		"url ftp":           {func(c *Config) { c.URL = "ftp://n1:21" }, "node URL"},
		"url opaque":        {func(c *Config) { c.URL = "http:n1" }, "node URL"},
		"url userinfo":      {func(c *Config) { c.URL = "http://u:p@n1" }, "node URL"},
		"url query":         {func(c *Config) { c.URL = "http://n1/?x=1" }, "node URL"},
		"ttl short":         {func(c *Config) { c.LeaseTTL = time.Second }, "lease TTL"},
		"ttl fraction":      {func(c *Config) { c.LeaseTTL = 2500 * time.Millisecond }, "lease TTL"},
		"ttl long":          {func(c *Config) { c.LeaseTTL = 10 * time.Minute }, "lease TTL"},
		"ttl negative":      {func(c *Config) { c.LeaseTTL = -time.Second }, "lease TTL"},
		"prefix no slash":   {func(c *Config) { c.Prefix = "warrant" }, "prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			c.Endpoints = slices.Clone(good.Endpoints)
			tc.edit(&c)
			_, err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v, want an error saying %q", err, tc.want)
			}
			// Dial refuses it before connecting anywhere.
			if _, err := Dial(context.Background(), c); err == nil {
				t.Error("Dial accepted it")
			}
		})
	}
	c, err := good.validate()
	if err != nil || c.Prefix != DefaultPrefix || c.LeaseTTL != DefaultLeaseTTL || c.Now == nil || c.Logger == nil {
		t.Errorf("defaults not filled in: %+v, %v", c, err)
	}
}
