package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrantlog/warrant/proofs"
)

// countingObjects is an ObjectStore that counts the requests that reach
// the store it wraps, by kind and outcome, as the metrics label them.
type countingObjects struct {
	s  ObjectStore
	mu sync.Mutex
	n  map[string]int // "kind/outcome"
}

func (c *countingObjects) count(kind string, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, ErrObjectNotFound):
		outcome = "missing"
	case errors.Is(err, ErrObjectExists), errors.Is(err, ErrObjectChanged):
		outcome = "refused"
	case err != nil:
		outcome = "errored"
	}
	c.mu.Lock()
	c.n[kind+"/"+outcome]++
	c.mu.Unlock()
}

func (c *countingObjects) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.s.Get(ctx, key)
	c.count("get", err)
	return b, err
}

func (c *countingObjects) Put(ctx context.Context, key string, data []byte) error {
	err := c.s.Put(ctx, key, data)
	c.count("put", err)
	return err
}

func (c *countingObjects) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	b, etag, err := c.s.GetWithETag(ctx, key)
	c.count("get", err)
	return b, etag, err
}

func (c *countingObjects) Create(ctx context.Context, key string, data []byte) error {
	err := c.s.Create(ctx, key, data)
	c.count("put", err)
	return err
}

func (c *countingObjects) Replace(ctx context.Context, key string, data []byte, etag string) error {
	err := c.s.Replace(ctx, key, data, etag)
	c.count("put", err)
	return err
}

func (c *countingObjects) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// countingCoord is a Coordination whose terms count their swaps.
type countingCoord struct {
	Coordination
	swaps *atomic.Int64
}

func (c countingCoord) Campaign(ctx context.Context) (Term, error) {
	t, err := c.Coordination.Campaign(ctx)
	if err != nil {
		return nil, err
	}
	return countingTerm{Term: t, swaps: c.swaps}, nil
}

type countingTerm struct {
	Term
	swaps *atomic.Int64
}

func (t countingTerm) Swap(ctx context.Context, old, new []byte) error {
	t.swaps.Add(1)
	return t.Term.Swap(ctx, old, new)
}

// TestObjectStoreMetrics (unit test, fakes): a leader's object store
// requests and checkpoint swaps are counted on /metrics by kind and
// outcome, exactly as many as reached the store, failed puts included; a
// get of a missing key is missing, not errored.
func TestObjectStoreMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCluster(t)
	store := &countingObjects{s: tc.store, n: map[string]int{}}
	var swapped atomic.Int64
	self := Member{NodeID: "a", URL: "http://a.test"}
	a := openTestLog(t, t.TempDir(), tc.registrar, func(o *Options) {
		o.AdminKeys = []*proofs.PublicKey{tc.admin.pub()}
		o.ObjectStore, o.Coordination, o.Metrics = store, countingCoord{nodeCoord{c: tc.coord, self: self}, &swapped}, m
		o.NodeID, o.NodeURL = self.NodeID, self.URL
	})
	t.Cleanup(func() { a.Close() })
	tc.waitLeading(t, a)
	ctx := context.Background()
	for i := range 3 {
		if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, fmt.Sprintf("spiffe://example.org/agent/m%d", i), newTestKey(t), proofs.TierDraft, false)); err != nil {
			t.Fatal(err)
		}
	}
	// One failed publication: every put of a bundle fails.
	tc.store.setFault(func(key string) (bool, error) {
		if strings.HasPrefix(key, "tile/entries/") {
			return false, errors.New("injected put failure")
		}
		return true, nil
	})
	if _, err := a.Append(ctx, bindingEnvelope(t, tc.registrar, "spiffe://example.org/agent/mfail", newTestKey(t), proofs.TierDraft, false)); proofs.Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("append with failing puts: %v, want %s", err, ReasonStoreUnavailable)
	}
	tc.store.setFault(nil)
	size := a.Checkpoint().Size
	waitFor(t, "the pending entry to be published", func() bool { return tc.size(t, a) == size+1 })
	if _, err := a.cluster.store.Get(ctx, "tile/entries/999"); !errors.Is(err, ErrObjectNotFound) {
		t.Fatalf("get of a missing key: %v", err)
	}
	a.Close() // no request after the scrape below

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	text := scrape(t, srv.URL)
	got := store.counts()
	if got["put/ok"] < 3 || got["put/errored"] < 1 || got["get/missing"] < 1 {
		t.Fatalf("the store saw %v: want successful puts, a failed put and a missing get", got)
	}
	for _, kind := range []string{"get", "put"} {
		total := 0
		for _, outcome := range []string{"ok", "missing", "refused", "errored"} {
			want := got[kind+"/"+outcome]
			total += want
			series := fmt.Sprintf(`warrant_object_store_requests_total{kind=%q,outcome=%q}`, kind, outcome)
			if v := metricValue(t, text, series); want > 0 && v != float64(want) || want == 0 && v > 0 {
				t.Errorf("%s = %v, want %d", series, v, want)
			}
		}
		series := fmt.Sprintf(`warrant_object_store_request_seconds_count{kind=%q}`, kind)
		if v := metricValue(t, text, series); v != float64(total) {
			t.Errorf("%s = %v, want %d", series, v, total)
		}
	}
	// Every swap the leader asked for; the fake etcd refused none.
	swaps := metricValue(t, text, `warrant_checkpoint_swaps_total{outcome="ok"}`)
	if want := float64(swapped.Load()); swaps != want || swaps < 4 {
		t.Errorf(`warrant_checkpoint_swaps_total{outcome="ok"} = %v, want %v (at least 4)`, swaps, want)
	}
	if v := metricValue(t, text, `warrant_checkpoint_swap_seconds_count`); v != swaps {
		t.Errorf("warrant_checkpoint_swap_seconds_count = %v, want %v", v, swaps)
	}
}
