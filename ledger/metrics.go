package ledger

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrantlog/warrant/proofs"
)

// Metrics are the ledger's Prometheus collectors. Create them once with
// NewMetrics on a registry of the caller's choosing (never the global
// default one) and pass them in Options.Metrics; a Log reopened with the
// same Metrics keeps counting. A nil *Metrics records nothing.
//
//	warrant_appends_total{kind,outcome}   entries sequenced: outcome accepted, denied or duplicate
//	                                      (a resubmission answered from the log, nothing written)
//	warrant_denials_total{reason}         denied entries, once per reason code a denial records
//	warrant_refusals_total{reason}        appends refused without writing (malformed, not
//	                                      authentic, queue full, shutting down, store errors, ...)
//	warrant_batch_size                    entries written per group commit (one transaction)
//	warrant_append_latency_seconds        Append, from request to answer (refusals included)
//	warrant_commit_latency_seconds        the synced Badger commit of one group commit
//	warrant_tree_size                     entries covered by the latest signed checkpoint
//	warrant_badger_lsm_bytes, warrant_badger_vlog_bytes
//	                                      Badger's LSM and value-log sizes on disk (db.Size,
//	                                      refreshed by Badger about once a minute)
//	warrant_queue_depth                   requests waiting for the sequencer
//	warrant_request_inflated_bytes_total  bytes decompressed from compressed requests (bounded
//	                                      per message: see decompress.go)
//	warrant_watch_timestamps_total        timestamps signed for WatchCheckpoints streams (one per
//	                                      checkpoint and refresh tick, shared by every stream)
//	warrant_watch_streams                 WatchCheckpoints streams open
//	warrant_log_time_ahead_seconds        how far the last log time is ahead of the clock (0 when
//	                                      not): above Options.MaxLogTimeAhead appends are refused
//	                                      (clock_behind); alert on it
//	warrant_witness_cosigned_size{witness}
//	                                      the largest tree size each witness cosigned (witness.go)
//	warrant_witness_request_seconds{witness}
//	                                      add-checkpoint round trips, answered (any status)
//	warrant_witness_failures_total{witness,kind}
//	                                      failed add-checkpoint requests by kind: unreachable,
//	                                      conflict, inconsistent, forbidden, unknown_log,
//	                                      bad_request, bad_cosignature, server_error
//	warrant_witnessed_tree_size           entries covered by the latest checkpoint whose
//	                                      cosignatures satisfy the witness policy's quorum
//	warrant_object_store_requests_total{kind,outcome}
//	                                      a distributed log's object store requests: kind get or
//	                                      put, outcome ok, not_found (a get) or error
//	                                      (storemetrics.go)
//	warrant_object_store_request_seconds{kind}
//	                                      their durations
//	warrant_checkpoint_swaps_total{outcome}
//	                                      the leader's compare-and-swaps of the cluster's
//	                                      checkpoint (one per published batch): ok or error
//	warrant_checkpoint_swap_seconds       their durations
type Metrics struct {
	appends       *prometheus.CounterVec
	denials       *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	batchSize     prometheus.Histogram
	appendLatency prometheus.Histogram
	commitLatency prometheus.Histogram
	inflated      prometheus.Counter
	timestamps    prometheus.Counter

	witnessSizes    *prometheus.GaugeVec
	witnessLatency  *prometheus.HistogramVec
	witnessFailures *prometheus.CounterVec

	cluster clusterMetrics // storemetrics.go

	log atomic.Pointer[Log] // the open Log the gauges read
}

// NewMetrics creates the ledger's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warrant", Name: "appends_total",
			Help: "Entries sequenced, by kind and outcome (accepted, denied, duplicate).",
		}, []string{"kind", "outcome"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warrant", Name: "denials_total",
			Help: "Denied entries, once per reason code recorded in the denial.",
		}, []string{"reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warrant", Name: "refusals_total",
			Help: "Append requests refused without writing, by reason code.",
		}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "warrant", Name: "batch_size",
			Help:    "Entries written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "warrant", Name: "append_latency_seconds",
			Help:    "Append latency from request to answer, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "warrant", Name: "commit_latency_seconds",
			Help:    "Duration of a group commit's synced Badger transaction, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15), // 0.1 ms .. 1.6 s
		}),
		inflated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "warrant", Name: "request_inflated_bytes_total",
			Help: "Bytes decompressed from compressed request messages.",
		}),
		timestamps: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "warrant", Name: "watch_timestamps_total",
			Help: "Timestamps signed for WatchCheckpoints streams (shared by every stream).",
		}),
		witnessSizes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "warrant", Name: "witness_cosigned_size",
			Help: "The largest tree size each witness cosigned.",
		}, []string{"witness"}),
		witnessLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "warrant", Name: "witness_request_seconds",
			Help:    "Round trip of add-checkpoint requests to each witness, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. 8 s
		}, []string{"witness"}),
		witnessFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warrant", Name: "witness_failures_total",
			Help: "Failed add-checkpoint requests, by witness and kind.",
		}, []string{"witness", "kind"}),
		cluster: newClusterMetrics(),
	}
	gauge := func(name, help string, f func(*Log) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warrant", Name: name, Help: help}, func() float64 {
			if l := m.log.Load(); l != nil {
				return f(l)
			}
			return 0
		})
	}
	cs := []prometheus.Collector{
		m.appends, m.denials, m.refusals, m.batchSize, m.appendLatency, m.commitLatency,
		m.inflated, m.timestamps, m.witnessSizes, m.witnessLatency, m.witnessFailures,
		gauge("witnessed_tree_size", "Entries covered by the latest checkpoint satisfying the witness quorum.", func(l *Log) float64 {
			if cp := l.Cosigned(); cp != nil {
				return float64(cp.Size)
			}
			return 0
		}),
		gauge("tree_size", "Entries covered by the latest signed checkpoint.", func(l *Log) float64 {
			return float64(l.Checkpoint().Size)
		}),
		gauge("badger_lsm_bytes", "Size of Badger's LSM tree on disk (refreshed by Badger about once a minute).", func(l *Log) float64 {
			lsm, _ := l.db.Size()
			return float64(lsm)
		}),
		gauge("badger_vlog_bytes", "Size of Badger's value log on disk (refreshed by Badger about once a minute).", func(l *Log) float64 {
			_, vlog := l.db.Size()
			return float64(vlog)
		}),
		gauge("queue_depth", "Append requests waiting for the sequencer.", func(l *Log) float64 {
			return float64(l.intake.len())
		}),
		gauge("watch_streams", "WatchCheckpoints streams open.", func(l *Log) float64 {
			return float64(l.watch.open())
		}),
		gauge("log_time_ahead_seconds", "How far the last log time is ahead of the server clock (0 when it is not).", func(l *Log) float64 {
			return max(0, time.Duration(l.logTime.Load()-l.opts.Now().UnixNano()).Seconds())
		}),
	}
	for _, c := range append(cs, m.cluster.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// attach points the gauges at l.
func (m *Metrics) attach(l *Log) {
	if m != nil {
		m.log.Store(l)
	}
}

// measureAppend is the metrics' decorator around one append entry point
// (append.go): it runs appendFn and records its latency and, when it was
// refused, the reason. A nil *Metrics just runs appendFn.
func (m *Metrics) measureAppend(appendFn func() (*Appended, error)) (*Appended, error) {
	start := time.Now()
	a, err := appendFn()
	m.observeAppend(start, err)
	return a, err
}

// measureBatch decorates an AppendBatch the same way: each of its
// envelopes counts as one append with the whole batch's latency.
func (m *Metrics) measureBatch(batchFn func() ([]*Appended, []error)) ([]*Appended, []error) {
	start := time.Now()
	appended, errs := batchFn()
	for _, err := range errs {
		m.observeAppend(start, err)
	}
	return appended, errs
}

// observeAppend records one append: its latency and, when it was refused,
// the reason.
func (m *Metrics) observeAppend(start time.Time, err error) {
	if m == nil {
		return
	}
	m.appendLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		m.refusals.WithLabelValues(refusalReason(err)).Inc()
	}
}

func refusalReason(err error) string {
	if r := proofs.Reason(err); r != "" {
		return r
	}
	switch {
	case errors.Is(err, context.Canceled):
		return proofs.ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return proofs.ReasonDeadlineExceeded
	}
	return proofs.ReasonInternal
}

// addInflated counts n bytes decompressed from a request.
func (m *Metrics) addInflated(n int) {
	if m != nil {
		m.inflated.Add(float64(n))
	}
}

// signedTimestamp counts one timestamp signed for WatchCheckpoints.
func (m *Metrics) signedTimestamp() {
	if m != nil {
		m.timestamps.Inc()
	}
}

// observeCommit records the duration of one synced batch commit.
func (m *Metrics) observeCommit(d time.Duration) {
	if m != nil {
		m.commitLatency.Observe(d.Seconds())
	}
}

// sequenced records what a sequenced prefix of a batch did: applyErr is
// the commit's error (nothing was written), results the per-request
// answers before they are sent.
func (m *Metrics) sequenced(batch []*request, results []result, applyErr error) {
	if m == nil || applyErr != nil {
		return
	}
	written := 0
	for i, r := range batch {
		res := &results[i]
		if res.err != nil {
			continue
		}
		kind := requestKind(r)
		if res.Duplicate {
			m.appends.WithLabelValues(kind, "duplicate").Inc()
			continue
		}
		written++
		outcome := proofs.OutcomeAccepted
		if res.Decision != nil {
			outcome = res.Decision.Outcome
		}
		m.appends.WithLabelValues(kind, outcome).Inc()
		if res.Decision != nil && res.Decision.Outcome == proofs.OutcomeDenied {
			for _, reason := range res.Decision.Reasons {
				m.denials.WithLabelValues(reason).Inc()
			}
		}
	}
	if written > 0 {
		m.batchSize.Observe(float64(written))
	}
}

// requestKind is the kind of leaf a request becomes.
func requestKind(r *request) string {
	if r.ev.Kind == "" {
		return "unknown"
	}
	return r.ev.Kind
}

// witnessSize records the largest size a witness cosigned.
func (m *Metrics) witnessSize(name string, size uint64) {
	if m != nil {
		m.witnessSizes.WithLabelValues(name).Set(float64(size))
	}
}

// witnessRequest records one add-checkpoint round trip.
func (m *Metrics) witnessRequest(name string, d time.Duration) {
	if m != nil {
		m.witnessLatency.WithLabelValues(name).Observe(d.Seconds())
	}
}

// witnessFailure counts one failed add-checkpoint request.
func (m *Metrics) witnessFailure(name, kind string) {
	if m != nil {
		m.witnessFailures.WithLabelValues(name, kind).Inc()
	}
}
