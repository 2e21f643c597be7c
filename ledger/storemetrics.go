package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics of a distributed log's remote requests: the object store's
// Gets and Puts and the coordination service's checkpoint swaps. They are
// what a leader's capacity is made of (docs/operating.md, "Capacity of a
// cluster"): each batch costs a few Puts and one swap, so the request rate
// an object store bills and limits is read off these counters.

// Outcomes of an object store request or a swap.
const (
	outcomeOK       = "ok"
	outcomeNotFound = "missing" // a Get of a key that holds no object
	outcomeError    = "errored"
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
			Help: "Object store requests of a distributed log, by kind (get, put) and outcome (ok, not_found, error).",
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
// the store it wraps; it changes nothing they do.
type meteredStore struct {
	s ObjectStore
	m *Metrics
}

func (s meteredStore) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	b, err := s.s.Get(ctx, key)
	outcome := outcomeOK
	switch {
	case errors.Is(err, ErrObjectNotFound):
		outcome = outcomeNotFound
	case err != nil:
		outcome = outcomeError
	}
	s.m.storeRequest("get", outcome, time.Since(start))
	return b, err
}

func (s meteredStore) Put(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := s.s.Put(ctx, key, data)
	outcome := outcomeOK
	if err != nil {
		outcome = outcomeError
	}
	s.m.storeRequest("put", outcome, time.Since(start))
	return err
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
