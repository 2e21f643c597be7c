// Package loadgen drives load against a warrant ledger and measures it:
// verified appends (one per request, or batched) at a fixed rate or flat
// out, reads (inclusion and consistency proofs, entries, tiles), and token
// exchanges (DPoP-bound access tokens at /oauth2/token). It backs `warrant
// bench` and the side-by-side comparison in bench/.
//
// Signing is the agents' cost, not the server's: envelopes are signed before
// the clock starts (a token exchange's DPoP proof cannot be: it is fresh by
// design, and its signing is inside the measured latency). Latency runs
// from sending a request to holding a verified answer: for an append, the
// entry proven included in a signed checkpoint the client has checked.
package loadgen

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// Modes.
const (
	ModeAppend      = "append"
	ModeAppendBatch = "append-batch"
	ModeInclusion   = "inclusion"
	ModeConsistency = "consistency"
	ModeEntries     = "entries"
	ModeTiles       = "tiles"
)

// Config describes a run.
type Config struct {
	// Server is the ledger's base URL, or the URLs of a cluster's nodes
	// separated by commas (client.SplitServers). Append and token runs
	// send through one client that fails over between them; read runs
	// spread their clients over them, client i reading from server i
	// modulo their number (a run against a cluster's followers measures
	// its read replicas together). The fairness and witness modes take
	// one URL.
	Server string
	// Metrics are Prometheus endpoints (a node's /metrics) read just
	// before and just after the measured run; Result.Nodes says what each
	// counted meanwhile (DiscoverMetrics finds a cluster's).
	Metrics []string
	// LogKey verifies its checkpoints.
	LogKey note.Verifier
	// Registrar signs the key bindings of the generated agents (append
	// modes only); it must be a registrar key of the server.
	Registrar *client.Signer
	// Mode is one of the Mode constants (default ModeAppend).
	Mode string
	// Concurrency is the number of concurrent clients (default 16).
	Concurrency int
	// Duration bounds the run (default 10 s).
	Duration time.Duration
	// MaxOps, if positive, ends the run once this many requests have
	// completed, successfully or not. Tests use it with a generous
	// Duration, so that what they check does not depend on how fast a
	// busy machine is.
	MaxOps int
	// Rate is the target operations per second across all clients; 0 runs
	// flat out.
	Rate float64
	// BatchSize is the envelopes per AppendBatch request (default 64).
	BatchSize int
	// Presign is the number of envelopes signed before the run (default:
	// enough for the rate and duration, or 200,000 flat out).
	Presign int
	// EntryBytes is the approximate size of each delegation envelope
	// (default 600).
	EntryBytes int
	// CPUProfile, if set, receives a CPU profile of the load generator
	// during the measured run (not the preparation).
	CPUProfile io.Writer
	// HTTPClient is the transport (default: one tuned for many connections).
	HTTPClient *http.Client
	// HTTP2 makes the default transport speak HTTP/2 without TLS (h2c),
	// multiplexing the clients over one connection.
	HTTP2 bool
	// Conns spreads the proof reads (ModeInclusion, ModeConsistency) of
	// HTTP2 runs over this many connections, each client using one (0 or
	// 1: one connection for all, as one process would). Independent agents
	// each have a connection of their own; one shared connection measures
	// what a single multiplexed connection carries.
	Conns int
	// WitnessPolicy verifies the witnessed checkpoints of ModeWitness.
	WitnessPolicy *proofs.WitnessPolicy
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = ModeAppend
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.EntryBytes <= 0 {
		c.EntryBytes = 600
	}
	if c.Presign <= 0 {
		if c.Rate > 0 {
			c.Presign = int(c.Rate*c.Duration.Seconds()*1.1) + c.Concurrency*c.BatchSize
		} else {
			c.Presign = 200_000
		}
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = c.Concurrency * 2
		if c.HTTP2 {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			t.Protocols = &p
		}
		c.HTTPClient = &http.Client{Transport: t, Timeout: 60 * time.Second}
	}
}

// Result is what a run measured.
type Result struct {
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"target_rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	// Ops counts successful operations (for appends: entries, not requests).
	Ops       int     `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Latency percentiles in milliseconds, from request to verified answer.
	P50 float64 `json:"latency_p50_ms"`
	P90 float64 `json:"latency_p90_ms"`
	P99 float64 `json:"latency_p99_ms"`
	Max float64 `json:"latency_max_ms"`
	// Errors counts failed operations by reason code.
	Errors map[string]int `json:"errors"`
	// Batches describes the server's group commits seen by an append run:
	// the growth between consecutive checkpoints.
	BatchMean float64 `json:"batch_mean,omitempty"`
	BatchP50  int     `json:"batch_p50,omitempty"`
	BatchMax  int     `json:"batch_max,omitempty"`
	// Exhausted is set when the presigned envelopes ran out early.
	Exhausted bool `json:"presigned_exhausted,omitempty"`
	// Nodes is what each of Config.Metrics counted during the run: CPU
	// time, and on a cluster's leader the entries, batches, object store
	// requests and checkpoint swaps.
	Nodes []NodeLoad `json:"nodes,omitempty"`
	// ModeWitness: the time from an append's answer to the first
	// witnessed checkpoint covering its entry, in milliseconds, over
	// Witnessed entries; Unwitnessed were not covered within 10 s of the
	// end of the run.
	WitnessP50  float64 `json:"witness_p50_ms,omitempty"`
	WitnessP90  float64 `json:"witness_p90_ms,omitempty"`
	WitnessP99  float64 `json:"witness_p99_ms,omitempty"`
	WitnessMax  float64 `json:"witness_max_ms,omitempty"`
	Witnessed   int     `json:"witnessed,omitempty"`
	Unwitnessed int     `json:"unwitnessed,omitempty"`
}

// String is a human-readable summary.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %s, %d clients", r.Mode, r.Concurrency)
	if r.Rate > 0 {
		fmt.Fprintf(&b, ", target %.0f/s", r.Rate)
	}
	fmt.Fprintf(&b, ", %.1f s\n%d ops, %.0f ops/s\nlatency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", r.Seconds, r.Ops, r.OpsPerSec, r.P50, r.P90, r.P99, r.Max)
	b.WriteString(r.witnessSummary())
	if r.BatchMax > 0 {
		fmt.Fprintf(&b, "server batches: mean %.1f, p50 %d, max %d entries\n", r.BatchMean, r.BatchP50, r.BatchMax)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "errors:")
		for _, k := range sortedKeys(r.Errors) {
			fmt.Fprintf(&b, " %s=%d", k, r.Errors[k])
		}
		b.WriteString("\n")
	}
	if r.Exhausted {
		b.WriteString("note: the presigned envelopes ran out before the duration; raise --presign\n")
	}
	b.WriteString(nodesSummary(r.Nodes, r.Ops, r.Seconds))
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// recorder collects latencies and errors from the workers.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	errors    map[string]int
	sizes     map[uint64]bool
	ops       atomic.Int64
}

func (r *recorder) ok(d time.Duration, n int, cpSize uint64) {
	r.ops.Add(int64(n))
	r.mu.Lock()
	r.latencies = append(r.latencies, d)
	if cpSize > 0 {
		r.sizes[cpSize] = true
	}
	r.mu.Unlock()
}

func (r *recorder) fail(err error) {
	reason := proofs.Reason(err)
	var ke *kindError
	if errors.As(err, &ke) {
		reason = ke.kind
	}
	if reason == "" {
		reason = proofs.ReasonError
		if errors.Is(err, context.DeadlineExceeded) {
			reason = proofs.ReasonDeadlineExceeded
		}
	}
	r.mu.Lock()
	r.errors[reason]++
	r.mu.Unlock()
}

// Run performs the run described by cfg.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	var op func(ctx context.Context, worker int) (n int, cpSize uint64, err error)
	var err error
	var exhausted atomic.Bool
	var witness *witnessTracker
	switch cfg.Mode {
	case ModeAppend, ModeAppendBatch:
		op, err = appendOp(ctx, &cfg, &exhausted, nil)
	case ModeWitness:
		if err = witnessSetup(&cfg); err == nil {
			witness = newWitnessTracker()
			op, err = appendOp(ctx, &cfg, &exhausted, witness.answer)
		}
	case ModeInclusion, ModeConsistency, ModeEntries, ModeTiles:
		op, err = readOp(ctx, &cfg)
	case ModeToken:
		op, err = tokenOp(ctx, &cfg)
	default:
		return nil, fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	if err != nil {
		return nil, err
	}
	rec := &recorder{errors: map[string]int{}, sizes: map[uint64]bool{}}
	var watchDone sync.WaitGroup
	if witness != nil {
		wctx, stop := context.WithCancel(ctx)
		defer watchDone.Wait()
		defer stop()
		watchDone.Add(1)
		go func() {
			defer watchDone.Done()
			watchWitnessed(wctx, &cfg, witness, rec.fail)
		}()
	}
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return nil, fmt.Errorf("starting the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	before, beforeErrs := scrapeAll(ctx, cfg.HTTPClient, cfg.Metrics)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	var pace *Pacer
	if cfg.Rate > 0 {
		per := cfg.Rate
		if cfg.Mode == ModeAppendBatch {
			per /= float64(cfg.BatchSize)
		}
		pace = NewPacer(start, per)
	}
	var wg sync.WaitGroup
	var completed atomic.Int64
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil && !exhausted.Load() {
				if cfg.MaxOps > 0 && completed.Add(1) > int64(cfg.MaxOps) {
					return
				}
				if pace != nil && !pace.Wait(runCtx) {
					return
				}
				t0 := time.Now()
				n, size, err := op(runCtx, w)
				if runCtx.Err() != nil || cutOff(err) && time.Since(start) >= cfg.Duration-time.Second {
					return // cut off by the end of the run: not counted
				}
				if errors.Is(err, errExhausted) {
					return
				}
				if err != nil {
					rec.fail(err)
					continue
				}
				rec.ok(time.Since(t0), n, size)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, afterErrs := scrapeAll(ctx, cfg.HTTPClient, cfg.Metrics)
	if witness != nil {
		witness.wait(ctx, witnessGrace)
	}
	res := &Result{Mode: cfg.Mode, Concurrency: cfg.Concurrency, Rate: cfg.Rate, Seconds: elapsed.Seconds(),
		Ops: int(rec.ops.Load()), Errors: rec.errors, Exhausted: exhausted.Load()}
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	for i, u := range cfg.Metrics {
		if err := cmp.Or(beforeErrs[i], afterErrs[i]); err != nil {
			res.Nodes = append(res.Nodes, NodeLoad{Metrics: u, Error: err.Error()})
			continue
		}
		res.Nodes = append(res.Nodes, nodeLoad(u, before[i], after[i]))
	}
	slices.Sort(rec.latencies)
	ms := func(q float64) float64 {
		if len(rec.latencies) == 0 {
			return 0
		}
		i := min(int(q*float64(len(rec.latencies))), len(rec.latencies)-1)
		return float64(rec.latencies[i].Microseconds()) / 1000
	}
	res.P50, res.P90, res.P99, res.Max = ms(0.50), ms(0.90), ms(0.99), ms(1)
	if witness != nil {
		witness.result(res)
	}
	if len(rec.sizes) > 1 {
		sizes := sortedSizes(rec.sizes)
		var deltas []int
		for i := 1; i < len(sizes); i++ {
			deltas = append(deltas, int(sizes[i]-sizes[i-1]))
		}
		slices.Sort(deltas)
		sum := 0
		for _, d := range deltas {
			sum += d
		}
		res.BatchMean = float64(sum) / float64(len(deltas))
		res.BatchP50 = deltas[len(deltas)/2]
		res.BatchMax = deltas[len(deltas)-1]
	}
	return res, nil
}

func sortedSizes(m map[uint64]bool) []uint64 {
	var s []uint64
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// cutOff reports whether err is the run's own deadline: the client's
// context, or the server enforcing the deadline the client sent with the
// request (Connect propagates it), which can answer a moment before the
// client's context expires.
func cutOff(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) == connect.CodeDeadlineExceeded
}

// errExhausted ends a worker whose presigned envelopes ran out: the run
// reports it (Result.Exhausted); it is not a failed operation.
var errExhausted = errors.New("presigned envelopes exhausted")

// appendOp registers human issuers (one per client, up to 64, as
// independent agents would be) and an agent, presigns envelopes, and
// returns the append operation. answered, if not nil, is told of each
// single append's entry index and the time its verified answer arrived.
func appendOp(ctx context.Context, cfg *Config, exhausted *atomic.Bool, answered func(index uint64, at time.Time)) (func(context.Context, int) (int, uint64, error), error) {
	if cfg.Registrar == nil {
		return nil, errors.New("append modes need a registrar key to register their agents")
	}
	setup := client.New(cfg.Server, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient))
	run := randomSuffix()
	delegateID := "spiffe://bench.example/agent/worker-" + run
	register := func(id string, human bool) (*client.Signer, error) {
		return registerAgent(ctx, setup, cfg.Registrar, id, human)
	}
	if _, err := register(delegateID, false); err != nil {
		return nil, err
	}
	issuers := min(cfg.Concurrency, 64)
	per := (cfg.Presign + issuers - 1) / issuers
	parts := make([][][]byte, issuers)
	for k := range parts {
		id := fmt.Sprintf("spiffe://bench.example/human/issuer-%s-%d", run, k)
		s, err := register(id, true)
		if err != nil {
			return nil, err
		}
		if parts[k], err = Presign(s, id, delegateID, per, cfg.EntryBytes, fmt.Sprintf("%s%d", run, k)); err != nil {
			return nil, err
		}
	}
	envs := make([][]byte, 0, per*issuers)
	for i := 0; i < per; i++ { // interleave the issuers
		for k := range parts {
			envs = append(envs, parts[k][i])
		}
	}
	var next atomic.Int64
	clients := make([]*client.Client, cfg.Concurrency)
	// Every answer is verified in full by its worker, but a checkpoint note
	// is signature-checked once per process, as bench/'s Tessera clients
	// share one checkpoint watcher: the generator then spends the two cores
	// on the same work per entry for both systems.
	verified := client.NewCheckpointCache(256)
	for i := range clients {
		// One client, with its own trusted state, per worker: workers do not
		// contend on one state, as independent agents would not.
		clients[i] = client.New(cfg.Server, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient), client.WithCheckpointCache(verified))
	}
	if cfg.Mode != ModeAppendBatch {
		return func(ctx context.Context, w int) (int, uint64, error) {
			i := next.Add(1) - 1
			if int(i) >= len(envs) {
				exhausted.Store(true)
				return 0, 0, errExhausted
			}
			e, err := clients[w].Append(ctx, envs[i])
			if err != nil {
				return 0, 0, err
			}
			if answered != nil {
				answered(e.Index, time.Now())
			}
			return 1, e.Checkpoint.Size, nil
		}, nil
	}
	return func(ctx context.Context, w int) (int, uint64, error) {
		i := int(next.Add(int64(cfg.BatchSize)) - int64(cfg.BatchSize))
		if i+cfg.BatchSize > len(envs) {
			exhausted.Store(true)
			return 0, 0, errExhausted
		}
		res, err := clients[w].AppendBatch(ctx, envs[i:i+cfg.BatchSize])
		if err != nil {
			return 0, 0, err
		}
		n := 0
		var size uint64
		for _, r := range res {
			if r.Err == nil {
				n++
				size = r.Entry.Checkpoint.Size
			}
		}
		if n < len(res) {
			for _, r := range res {
				if r.Err != nil {
					return n, size, r.Err
				}
			}
		}
		return n, size, nil
	}, nil
}

// registerAgent binds a new Ed25519 key to id, execute tier, signed by
// registrar, and returns the key.
func registerAgent(ctx context.Context, c *client.Client, registrar *client.Signer, id string, human bool) (*client.Signer, error) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := client.NewSigner(key)
	if err != nil {
		return nil, err
	}
	payload, err := proofs.MarshalPayload(&proofs.KeyBinding{Agent: id, PublicKey: s.Public().DER, Tier: proofs.TierExecute, Human: human,
		IssuedAt: proofs.FormatTime(time.Now()), Nonce: "bench-" + randomSuffix()})
	if err != nil {
		return nil, err
	}
	env, err := registrar.SignEnvelope(proofs.PayloadTypeAgent, payload)
	if err != nil {
		return nil, err
	}
	if _, err := c.Append(ctx, env); err != nil {
		return nil, fmt.Errorf("registering %s: %w", id, err)
	}
	return s, nil
}

// Presign signs n distinct root grants from issuerID to delegateID, each
// about entryBytes long as an envelope, spreading the work over all cores.
func Presign(issuer *client.Signer, issuerID, delegateID string, n, entryBytes int, run string) ([][]byte, error) {
	envs := make([][]byte, n)
	now := time.Now()
	pad := ""
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	// Size the padding once from a sample envelope.
	sample := func(i int, purpose string) ([]byte, error) {
		d := &proofs.Delegation{
			ID: fmt.Sprintf("dlg_%s_%08d", run, i), Issuer: issuerID, Delegate: delegateID, RootSubject: issuerID,
			Task: "/bench/load", Scopes: []string{"bench:write"},
			NotBefore: proofs.FormatTime(now), ExpiresAt: proofs.FormatTime(now.Add(7 * time.Hour)),
			Nonce: fmt.Sprintf("n%s%08d", run, i), Purpose: purpose,
		}
		payload, err := proofs.MarshalPayload(d)
		if err != nil {
			return nil, err
		}
		return issuer.SignEnvelope(proofs.PayloadTypeDelegation, payload)
	}
	first, err := sample(0, "")
	if err != nil {
		return nil, err
	}
	if extra := entryBytes - len(first); extra > 0 {
		pad = strings.Repeat("x", extra*3/4) // base64 grows the payload by 4/3
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				env, err := sample(i, pad)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				envs[i] = env
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, *e
	}
	return envs, nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}
