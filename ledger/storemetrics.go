package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics of a distributed log's remote requests: the object store's
// reads and writes and the coordination service's checkpoint swaps. They are
// what a leader's capacity is made of (docs/operating.md, "Capacity of a
// cluster"): each batch costs a few Puts and one swap, so the request rate
// an object store bills and limits is read off these counters.

// Outcomes of an object store request or a swap.
const (
	outcomeOK       = "ok"
	outcomeNotFound = "missing" // a Get of a key that holds no object
	outcomeError    = "errored"
	outcomeRefused  = "refused" // a Create or Replace whose condition did not hold
)

// clusterMetrics are the collectors of storemetrics.go, part of Metrics.
type clusterMetrics struct {
	storeRequests *prometheus.CounterVec
	storeLatency  *prometheus.HistogramVec
	swaps         *prometheus.CounterVec
	swapLatency   prometheus.Histogram
}

func newClusterMetrics() clusterMetrics {
	return clusterMetrics{
		storeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warrant", Name: "object_store_requests_total",
			Help: "Object store requests of a distributed log, by kind (get, put: every PutObject, conditional or not) and outcome (ok, missing, refused, errored).",
		}, []string{"kind", "outcome"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "warrant", Name: "object_store_request_seconds",
			Help:    "Duration of object store requests, by kind (get, put), in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms .. 8 s
		}, []string{"kind"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warrant", Name: "checkpoint_swaps_total",
			Help: "Compare-and-swaps of the cluster's checkpoint by the leader, by outcome (ok, error).",
		}, []string{"outcome"}),
		swapLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "warrant", Name: "checkpoint_swap_seconds",
			Help:    "Duration of the leader's checkpoint compare-and-swaps, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms .. 8 s
		}),
	}
}

func (c clusterMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.storeRequests, c.storeLatency, c.swaps, c.swapLatency}
}

// meterStore returns s counting its requests; s itself when m is nil (or
// s is).
func (m *Metrics) meterStore(s ObjectStore) ObjectStore {
	if m == nil || s == nil {
		return s
	}
	return meteredStore{s: s, m: m}
}

// meteredStore is an ObjectStore that counts and times the requests of
// the store it wraps; it changes nothing they do. Every write is one
// PutObject, conditional or not, and is counted as a "put", as the
// object store bills and limits it.
type meteredStore struct {
	s ObjectStore
	m *Metrics
}

func (s meteredStore) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	b, err := s.s.Get(ctx, key)
	s.m.storeRequest("get", readOutcome(err), time.Since(start))
	return b, err
}

func (s meteredStore) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	start := time.Now()
	b, etag, err := s.s.GetWithETag(ctx, key)
	s.m.storeRequest("get", readOutcome(err), time.Since(start))
	return b, etag, err
}

func (s meteredStore) Put(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := s.s.Put(ctx, key, data)
	s.m.storeRequest("put", writeOutcome(err), time.Since(start))
	return err
}

func (s meteredStore) Create(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := s.s.Create(ctx, key, data)
	s.m.storeRequest("put", writeOutcome(err), time.Since(start))
	return err
}

func (s meteredStore) Replace(ctx context.Context, key string, data []byte, etag string) error {
	start := time.Now()
	err := s.s.Replace(ctx, key, data, etag)
	s.m.storeRequest("put", writeOutcome(err), time.Since(start))
	return err
}

func readOutcome(err error) string {
	switch {
	case errors.Is(err, ErrObjectNotFound):
		return outcomeNotFound
	case err != nil:
		return outcomeError
	}
	return outcomeOK
}

// writeOutcome counts a conditional write refused for its condition apart
// from a failure: it is the store working, and after a change of leader
// the expected answer.
func writeOutcome(err error) string {
	switch {
	case errors.Is(err, ErrObjectExists), errors.Is(err, ErrObjectChanged):
		return outcomeRefused
	case err != nil:
		return outcomeError
	}
	return outcomeOK
}

func (m *Metrics) storeRequest(kind, outcome string, d time.Duration) {
	m.cluster.storeRequests.WithLabelValues(kind, outcome).Inc()
	m.cluster.storeLatency.WithLabelValues(kind).Observe(d.Seconds())
}

// observeSwap records one checkpoint swap: err is Term.Swap's (an error
// whose outcome was later found to be a success still counts as one).
func (m *Metrics) observeSwap(d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := outcomeOK
	if err != nil {
		outcome = outcomeError
	}
	m.cluster.swaps.WithLabelValues(outcome).Inc()
	m.cluster.swapLatency.Observe(d.Seconds())
}
