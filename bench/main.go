// Command bench runs warrant and Tessera side by side, on this machine and in
// one invocation, with the same load shape: concurrent clients over loopback
// HTTP, one ~600-byte entry per request, the same concurrency and duration.
// Both count an append at the same point: when the entry is covered by a
// signed checkpoint the client has verified. See README.md.
//
//	cd bench && go run . --duration 20s --concurrency 64
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/loadgen"
	"github.com/warrantlog/warrant/proofs"
)

const tesseraOrigin = "bench.example/tessera"

// tesseraConfig is how a Tessera run is configured: its batching and its
// checkpoint interval.
type tesseraConfig struct {
	name               string
	batchSize          uint
	batchAge           time.Duration
	checkpointInterval time.Duration
}

var (
	// tesseraDefaults are Tessera's documented defaults for its POSIX log
	// (cmd/conformance/posix): batches of up to 256 entries or 1 s, a
	// checkpoint every 1 s, antispam off.
	tesseraDefaults = tesseraConfig{"tessera", 256, time.Second, time.Second}
	// tesseraTuned is Tessera tuned for latency as its users would tune it:
	// batches of up to 1,024 entries or 20 ms, and a checkpoint every
	// 100 ms, the shortest interval Tessera accepts.
	tesseraTuned = tesseraConfig{"tessera-tuned", 1024, 20 * time.Millisecond, 100 * time.Millisecond}
)

type options struct {
	duration         time.Duration
	concurrency      int
	entryBytes       int
	outJSON          string
	poll             time.Duration
	batch            int
	presign          int
	tesseraHalf      bool
	tesseraInclusion bool
	saturation       []int
	saturationMax    int
	keepTmp          bool
}

// Row is one run in the table (and in --out-json).
type Row struct {
	System      string         `json:"system"`
	Mode        string         `json:"mode"`
	Concurrency int            `json:"concurrency"`
	Rate        float64        `json:"target_rate,omitempty"`
	Seconds     float64        `json:"seconds"`
	Ops         int            `json:"appends"`
	OpsPerSec   float64        `json:"appends_per_sec"`
	P50         float64        `json:"latency_p50_ms"`
	P90         float64        `json:"latency_p90_ms"`
	P99         float64        `json:"latency_p99_ms"`
	Max         float64        `json:"latency_max_ms"`
	Errors      map[string]int `json:"errors"`
	BatchMean   float64        `json:"checkpoint_growth_mean,omitempty"`
	Exhausted   bool           `json:"presigned_exhausted,omitempty"`
	Note        string         `json:"note,omitempty"`
}

// Report is the --out-json document.
type Report struct {
	Machine      map[string]string `json:"machine"`
	Duration     string            `json:"duration_per_run"`
	Concurrency  int               `json:"concurrency"`
	EntryBytes   int               `json:"entry_bytes_flag"`
	EntrySize    int               `json:"entry_bytes_actual"`
	Runs         []Row             `json:"runs"`
	Ratio        float64           `json:"ratio_appends_per_sec_warrant_over_tessera"`
	RatioBasis   string            `json:"ratio_basis"`
	WarrantHalfP int64             `json:"warrant_p99_time_to_checkpoint_half_load_ms"`
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long each run drives load")
	flag.IntVar(&o.concurrency, "concurrency", 64, "concurrent clients (the same for both systems)")
	flag.IntVar(&o.entryBytes, "entry-bytes", 600, "approximate size of each entry")
	flag.StringVar(&o.outJSON, "out-json", "", "also write the results as JSON to this file")
	flag.DurationVar(&o.poll, "tessera-poll", 50*time.Millisecond, "how often the Tessera client fetches and verifies the checkpoint")
	flag.IntVar(&o.batch, "batch", 64, "envelopes per AppendBatch request in the warrant append-batch row")
	flag.IntVar(&o.presign, "presign", 0, "envelopes warrant's flat-out runs sign before the clock starts (default: loadgen's, 200000; the append-batch row: 20000 per second of --duration)")
	flag.BoolVar(&o.tesseraHalf, "tessera-half", true, "also run the tuned Tessera at half its peak rate")
	flag.BoolVar(&o.tesseraInclusion, "tessera-inclusion", false, "Tessera client also fetches tiles and verifies each entry's inclusion proof (as warrant's client does)")
	sweep := flag.String("saturation", "64,256,1024", "client counts at which both systems run flat out; the headline ratio compares their peaks")
	flag.IntVar(&o.saturationMax, "saturation-max", 8192, "while a system's rate still rises by more than 10% at its largest count, run it again at twice the clients, up to this many")
	flag.BoolVar(&o.keepTmp, "keep", false, "keep the temporary log directories")
	flag.Parse()
	var err error
	if o.saturation, err = parseCounts(*sweep); err != nil {
		fmt.Fprintf(os.Stderr, "--saturation: %v\n", err)
		os.Exit(2)
	}
	if flag.NArg() != 0 || o.saturationMax <= 0 || o.duration <= 0 || o.concurrency <= 0 || o.entryBytes <= 0 || o.batch <= 0 || o.poll <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	// Tessera logs through klog; its progress messages would end up in the
	// middle of the table. Failures still show, as failed requests.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// parseCounts parses a comma-separated list of positive client counts,
// returned in ascending order without repeats (the sweep assumes both).
func parseCounts(s string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive client count", f)
		}
		counts = append(counts, n)
	}
	slices.Sort(counts)
	return slices.Compact(counts), nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	started := time.Now()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var rows []Row
	total := 2*len(o.saturation) + 3
	if o.tesseraHalf {
		total++
	}
	n := 0
	step := func(what string) {
		n++
		if n > total { // the sweep was extended
			total = n
		}
		progress("[%s] run %d/%d: %s, %s", time.Since(started).Round(time.Second), n, total, what, o.duration)
	}
	done := func(r Row) {
		progress("[%s]   %.0f appends/s, p99 %.1f ms", time.Since(started).Round(time.Second), r.OpsPerSec, r.P99)
	}
	bodies, err := tesseraBodies(o)
	if err != nil {
		return err
	}

	// (a) Both systems flat out, one entry per request, at each client
	// count of the sweep: warrant, and Tessera tuned for latency. The
	// headline compares their peaks, each at the count where more clients
	// no longer raise its rate.
	flatW := func(c int) (Row, error) {
		oc := o
		oc.concurrency = c
		step(fmt.Sprintf("warrant append flat out, %d clients", c))
		r, err := runWarrant(ctx, oc, logger, loadgen.ModeAppend, 0)
		if err != nil {
			return r, fmt.Errorf("warrant append at %d clients: %w", c, err)
		}
		done(r)
		return r, nil
	}
	flatT := func(c int) (Row, error) {
		oc := o
		oc.concurrency = c
		step(fmt.Sprintf("tessera tuned add flat out, %d clients", c))
		r, err := runTessera(ctx, oc, tesseraTuned, bodies, 0)
		if err != nil {
			return r, fmt.Errorf("tessera tuned at %d clients: %w", c, err)
		}
		done(r)
		return r, nil
	}
	var sweepW, sweepT []Row
	for _, c := range o.saturation {
		w, err := flatW(c)
		if err != nil {
			return err
		}
		rows, sweepW = append(rows, w), append(sweepW, w)
		t, err := flatT(c)
		if err != nil {
			return err
		}
		rows, sweepT = append(rows, t), append(sweepT, t)
	}
	if sweepW, err = saturate(sweepW, o.saturationMax, flatW); err != nil {
		return err
	}
	if sweepT, err = saturate(sweepT, o.saturationMax, flatT); err != nil {
		return err
	}
	rows = append(rows, sweepW[len(o.saturation):]...)
	rows = append(rows, sweepT[len(o.saturation):]...)

	// (b) Tessera with its documented defaults, for reference: its rate is
	// its one-second batch age, not its capacity.
	step(fmt.Sprintf("tessera (defaults) add flat out, %d clients", o.concurrency))
	td, err := runTessera(ctx, o, tesseraDefaults, bodies, 0)
	if err != nil {
		return fmt.Errorf("tessera: %w", err)
	}
	td.Note = "Tessera's defaults: its rate is clients per one-second batch age, not capacity"
	rows = append(rows, td)
	done(td)

	// (c) warrant's batched RPC: an extra row, never the headline.
	step(fmt.Sprintf("warrant append-batch of %d (extra row), %d clients", o.batch, o.concurrency))
	wb, err := runWarrant(ctx, o, logger, loadgen.ModeAppendBatch, 0)
	if err != nil {
		return fmt.Errorf("warrant append-batch: %w", err)
	}
	wb.Note = "extra row: batched RPC, not comparable"
	rows = append(rows, wb)
	done(wb)

	peakW, peakT := peak(sweepW), peak(sweepT)
	// (d) warrant at half its peak: time to checkpoint.
	half := math.Max(1, 0.5*peakW.OpsPerSec)
	step(fmt.Sprintf("warrant append at half its peak (%.0f/s), %d clients", half, o.concurrency))
	wh, err := runWarrant(ctx, o, logger, loadgen.ModeAppend, half)
	if err != nil {
		return fmt.Errorf("warrant half load: %w", err)
	}
	rows = append(rows, wh)
	done(wh)

	// (e) Tessera tuned at half its peak, with its peak's clients: fewer,
	// each waiting about 150 ms for its checkpoint, could not offer it.
	if o.tesseraHalf {
		th := math.Max(1, 0.5*peakT.OpsPerSec)
		oc := o
		oc.concurrency = max(o.concurrency, peakT.Concurrency)
		step(fmt.Sprintf("tessera tuned add at half its peak (%.0f/s), %d clients", th, oc.concurrency))
		tr, err := runTessera(ctx, oc, tesseraTuned, bodies, th)
		if err != nil {
			return fmt.Errorf("tessera half load: %w", err)
		}
		rows = append(rows, tr)
		done(tr)
	}
	progress("all runs done in %s", time.Since(started).Round(time.Second))

	ratio := 0.0
	if peakT.OpsPerSec > 0 {
		ratio = peakW.OpsPerSec / peakT.OpsPerSec
	}
	p99 := int64(math.Round(wh.P99))
	rep := Report{Machine: machine(), Duration: o.duration.String(), Concurrency: o.concurrency, EntryBytes: o.entryBytes, EntrySize: meanLen(bodies),
		Runs: rows, Ratio: math.Round(ratio*100) / 100, WarrantHalfP: p99,
		RatioBasis: fmt.Sprintf("warrant append at %d clients over tessera-tuned add at %d clients, each its peak over the sweep %v", peakW.Concurrency, peakT.Concurrency, counts(sweepW, sweepT))}
	if o.outJSON != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.outJSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	printTable(os.Stdout, rep)
	for _, sw := range [][]Row{sweepW, sweepT} {
		if note := saturationNote(sw); note != "" {
			fmt.Println("note: " + note)
		}
	}
	fmt.Printf("ratio basis: %s\n", rep.RatioBasis)
	fmt.Printf("ratio appends/s warrant/tessera: %.2f\n", ratio)
	fmt.Printf("warrant p99 time-to-checkpoint at half load: %d ms\n", p99)
	return nil
}

// peak is the row of a sweep with the highest rate.
func peak(sweep []Row) Row {
	var best Row
	for _, r := range sweep {
		if r.OpsPerSec > best.OpsPerSec {
			best = r
		}
	}
	return best
}

// saturate extends a sweep whose rate still rose by more than 10% at its
// largest count (saturationNote): it runs flat at twice the clients, and
// again, until the rate stops rising or the next count would pass limit. A
// system still rising is not saturated, and its peak is not yet known.
func saturate(sweep []Row, limit int, flat func(clients int) (Row, error)) ([]Row, error) {
	for len(sweep) > 0 && saturationNote(sweep) != "" {
		c := 2 * sweep[len(sweep)-1].Concurrency
		if c > limit {
			break
		}
		r, err := flat(c)
		if err != nil {
			return sweep, err
		}
		sweep = append(sweep, r)
	}
	return sweep, nil
}

// counts is the client counts the sweeps ran, in order.
func counts(sweeps ...[]Row) []int {
	var out []int
	for _, sw := range sweeps {
		for _, r := range sw {
			out = append(out, r.Concurrency)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// saturationNote says when a sweep's rate still rose by more than 10% at
// its largest client count: the system may not be saturated, and its peak
// may be higher than measured.
func saturationNote(sweep []Row) string {
	if len(sweep) < 2 {
		return ""
	}
	last, prev := sweep[len(sweep)-1], sweep[len(sweep)-2]
	if last.OpsPerSec > 1.1*prev.OpsPerSec {
		return fmt.Sprintf("%s still rose from %.0f to %.0f appends/s between %d and %d clients: it may not be saturated (raise --saturation-max)",
			last.System, prev.OpsPerSec, last.OpsPerSec, prev.Concurrency, last.Concurrency)
	}
	return ""
}

func machine() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		"cpus":       strconv.Itoa(runtime.NumCPU()),
		"gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0)),
		"os_arch":    runtime.GOOS + "/" + runtime.GOARCH,
		"go":         runtime.Version(),
		"host":       host,
		"tmpdir":     os.TempDir(),
	}
}

func printTable(w io.Writer, rep Report) {
	m := rep.Machine
	fmt.Fprintf(w, "machine: %s CPUs (GOMAXPROCS %s), %s, %s; loopback HTTP; logs in %s\n", m["cpus"], m["gomaxprocs"], m["os_arch"], m["go"], m["tmpdir"])
	fmt.Fprintf(w, "each run: %s, %d clients, one %d-byte entry per request (--entry-bytes %d), counted once covered by a verified signed checkpoint\n\n", rep.Duration, rep.Concurrency, rep.EntrySize, rep.EntryBytes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tmode\tclients\ttarget/s\tappends/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\t")
	for _, r := range rep.Runs {
		target := "flat out"
		if r.Rate > 0 {
			target = fmt.Sprintf("%.0f", r.Rate)
		}
		errs := "0"
		if len(r.Errors) > 0 {
			var parts []string
			for _, k := range slices.Sorted(mapKeys(r.Errors)) {
				parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
			}
			errs = strings.Join(parts, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", r.System, r.Mode, r.Concurrency, target, r.OpsPerSec, r.P50, r.P90, r.P99, r.Max, errs)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rep.Runs {
		if r.Note != "" {
			fmt.Fprintf(w, "note: %s %s: %s\n", r.System, r.Mode, r.Note)
		}
		if r.Rate > 0 && r.OpsPerSec < 0.9*r.Rate {
			fmt.Fprintf(w, "note: %s %s at %d clients reached %.0f of its target %.0f appends/s (its clients each wait for their answer, so they cannot offer more than clients / latency)\n", r.System, r.Mode, r.Concurrency, r.OpsPerSec, r.Rate)
		}
		if r.Exhausted {
			fmt.Fprintf(w, "note: %s %s ran out of presigned envelopes before the end; raise --presign\n", r.System, r.Mode)
		}
	}
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ---- warrant ----

// runWarrant starts a fresh warrant ledger in a temporary directory, serves
// it on a loopback listener exactly as `warrant serve` does, and drives it
// with loadgen.
func runWarrant(ctx context.Context, o options, logger *slog.Logger, mode string, rate float64) (Row, error) {
	dir, err := os.MkdirTemp("", "bench-warrant-")
	if err != nil {
		return Row{}, err
	}
	if !o.keepTmp {
		defer os.RemoveAll(dir)
	}
	_, regKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Row{}, err
	}
	registrar, err := client.NewSigner(regKey)
	if err != nil {
		return Row{}, err
	}
	// The load generator signs every envelope as one issuer; warrant's
	// per-agent rate limit (500/s by default) would cap the run at that, so
	// it is off, as Tessera has none. Everything else is warrant's default.
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, RegistrarKeys: []*proofs.PublicKey{registrar.Public()}, AgentRate: -1, AgentByteRate: -1, Logger: logger})
	if err != nil {
		return Row{}, err
	}
	defer l.Close()
	verifier, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		return Row{}, err
	}
	url, shutdown, err := serve(ledger.NewHandler(l), logger)
	if err != nil {
		return Row{}, err
	}
	defer shutdown()

	cfg := loadgen.Config{Server: url, LogKey: verifier, Registrar: registrar, Mode: mode, Concurrency: o.concurrency,
		Duration: o.duration, Rate: rate, BatchSize: o.batch, EntryBytes: o.entryBytes}
	if rate == 0 {
		cfg.Presign = o.presign
		if cfg.Presign == 0 && mode == loadgen.ModeAppendBatch {
			// The batched RPC outruns loadgen's default pool.
			cfg.Presign = int(20000 * o.duration.Seconds())
		}
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return Row{}, err
	}
	return Row{System: "warrant", Mode: res.Mode, Concurrency: res.Concurrency, Rate: res.Rate, Seconds: res.Seconds,
		Ops: res.Ops, OpsPerSec: res.OpsPerSec, P50: res.P50, P90: res.P90, P99: res.P99, Max: res.Max,
		Errors: res.Errors, BatchMean: res.BatchMean, Exhausted: res.Exhausted}, nil
}

// serve serves h on a fresh loopback listener with HTTP/1.1 and unencrypted
// HTTP/2, the way `warrant serve` does; both systems get the same front.
func serve(h http.Handler, logger *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}

// ---- Tessera ----

// tesseraBodies returns the entries the Tessera clients send: warrant
// envelopes presigned by loadgen, the same bytes (and sizes) warrant gets.
// The pool is reused round-robin if a run needs more; Tessera, without
// antispam, logs a repeated entry as a new one.
func tesseraBodies(o options) ([][]byte, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := client.NewSigner(k)
	if err != nil {
		return nil, err
	}
	// The same identifiers' shape (and so the same envelope size) as
	// loadgen's for warrant.
	b := make([]byte, 4)
	rand.Read(b)
	run := fmt.Sprintf("%x", b)
	return loadgen.Presign(s, "spiffe://bench.example/human/issuer-"+run, "spiffe://bench.example/agent/worker-"+run, 50_000, o.entryBytes, run)
}

func meanLen(bodies [][]byte) int {
	if len(bodies) == 0 {
		return 0
	}
	n := 0
	for _, b := range bodies {
		n += len(b)
	}
	return n / len(bodies)
}

// tesseraLog is Tessera's POSIX log in a temporary directory behind a
// minimal HTTP front, as in Tessera's cmd/conformance/posix: POST /add
// answers the assigned index, GET serves the log's files.
type tesseraLog struct {
	url      string
	verifier note.Verifier
	close    func()
}

func startTessera(ctx context.Context, o options, tc tesseraConfig, logger *slog.Logger) (*tesseraLog, error) {
	dir, err := os.MkdirTemp("", "bench-tessera-")
	if err != nil {
		return nil, err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, tesseraOrigin)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithCancel(ctx)
	driver, err := posix.New(tctx, posix.Config{Path: dir})
	if err != nil {
		cancel()
		return nil, err
	}
	// No WithAntispam: neither the persistent antispam nor the in-memory
	// dedup cache.
	appender, shutdownAppender, _, err := tessera.NewAppender(tctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(tc.checkpointInterval).
		WithBatching(tc.batchSize, tc.batchAge))
	if err != nil {
		cancel()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		idx, err := appender.Add(r.Context(), tessera.NewEntry(b))()
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, err.Error())
			return
		}
		fmt.Fprintf(w, "%d", idx.Index)
	})
	files := http.FileServer(http.Dir(dir))
	mux.Handle("GET /checkpoint", noCache(files))
	mux.Handle("GET /tile/", files)
	mux.Handle("GET /entries/", files)
	url, shutdownHTTP, err := serve(mux, logger)
	if err != nil {
		cancel()
		return nil, err
	}
	return &tesseraLog{url: url, verifier: verifier, close: func() {
		shutdownHTTP()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		shutdownAppender(sctx)
		cancel()
		time.Sleep(100 * time.Millisecond) // let background writers see the cancellation
		if !o.keepTmp {
			os.RemoveAll(dir)
		}
	}}, nil
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// checkpointWatcher is the Tessera client's view of the log, shared by its
// workers: one goroutine fetches the checkpoint over HTTP every poll
// interval, verifies its signature and its consistency with the previous
// one (Tessera's client.LogStateTracker), and wakes the workers waiting for
// their entries to be covered.
type checkpointWatcher struct {
	tracker *tclient.LogStateTracker
	mu      sync.Mutex
	size    uint64
	root    []byte
	changed chan struct{}
	errs    atomic.Int64
}

func (w *checkpointWatcher) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, _, _, err := w.tracker.Update(ctx); err != nil {
			if ctx.Err() == nil {
				w.errs.Add(1)
			}
			continue
		}
		cp := w.tracker.Latest()
		w.mu.Lock()
		if cp.Size > w.size {
			w.size, w.root = cp.Size, cp.Hash
			close(w.changed)
			w.changed = make(chan struct{})
		}
		w.mu.Unlock()
	}
}

// wait blocks until a verified checkpoint covers index, and returns it.
func (w *checkpointWatcher) wait(ctx context.Context, index uint64) (uint64, []byte, error) {
	for {
		w.mu.Lock()
		size, root, ch := w.size, w.root, w.changed
		w.mu.Unlock()
		if size > index {
			return size, root, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// runTessera starts a fresh Tessera log and drives it like loadgen drives
// warrant: the same concurrency, duration, rate limiting, counting rule and
// percentiles.
func runTessera(ctx context.Context, o options, tc tesseraConfig, bodies [][]byte, rate float64) (Row, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tl, err := startTessera(ctx, o, tc, logger)
	if err != nil {
		return Row{}, err
	}
	defer tl.close()

	// The same transport loadgen uses by default.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = o.concurrency * 2
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	base, _ := url.Parse(tl.url + "/")
	fetcher, err := tclient.NewHTTPFetcher(base, hc)
	if err != nil {
		return Row{}, err
	}
	tracker, err := tclient.NewLogStateTracker(ctx, fetcher.ReadTile, nil, tl.verifier, tesseraOrigin, tclient.UnilateralConsensus(fetcher.ReadCheckpoint))
	if err != nil {
		return Row{}, fmt.Errorf("reading the initial checkpoint: %w", err)
	}
	cp := tracker.Latest()
	watch := &checkpointWatcher{tracker: tracker, size: cp.Size, root: cp.Hash, changed: make(chan struct{})}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watch.run(watchCtx, o.poll)

	add := func(ctx context.Context, body []byte) (uint64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, tl.url+"/add", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, httpError(resp.StatusCode)
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	// With --tessera-inclusion, a worker also proves its entry's inclusion
	// in the checkpoint that covers it, from the log's tiles, as warrant's
	// client does with the proof in its answer.
	prove := func(ctx context.Context, body []byte, index, size uint64, root []byte) error {
		pb, err := tclient.NewProofBuilder(ctx, size, fetcher.ReadTile)
		if err != nil {
			return err
		}
		p, err := pb.InclusionProof(ctx, index)
		if err != nil {
			return err
		}
		return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, rfc6962.DefaultHasher.HashLeaf(body), p, root)
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      = map[string]int{}
		ops       atomic.Int64
		next      atomic.Int64
	)
	fail := func(reason string) {
		mu.Lock()
		errs[reason]++
		mu.Unlock()
	}
	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	var pace *loadgen.Pacer
	if rate > 0 {
		pace = loadgen.NewPacer(start, rate)
	}
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for runCtx.Err() == nil {
				if pace != nil && !pace.Wait(runCtx) {
					return
				}
				body := bodies[int(next.Add(1)-1)%len(bodies)]
				t0 := time.Now()
				index, err := add(runCtx, body)
				if runCtx.Err() != nil {
					return // cut off by the end of the run: not counted
				}
				if err != nil {
					var he httpError
					if errors.As(err, &he) {
						fail(he.Error())
					} else {
						fail("error")
					}
					continue
				}
				size, root, err := watch.wait(runCtx, index)
				if err != nil {
					return // cut off by the end of the run: not counted
				}
				if o.tesseraInclusion {
					err := prove(runCtx, body, index, size, root)
					if runCtx.Err() != nil {
						return
					}
					if err != nil {
						fail("inclusion_invalid")
						continue
					}
				}
				d := time.Since(t0)
				ops.Add(1)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := watch.errs.Load(); n > 0 {
		errs["checkpoint_fetch_or_verify"] += int(n)
	}
	mode := "add"
	if o.tesseraInclusion {
		mode = "add+inclusion"
	}
	r := Row{System: tc.name, Mode: mode, Concurrency: o.concurrency, Rate: rate, Seconds: elapsed.Seconds(),
		Ops: int(ops.Load()), Errors: errs}
	r.OpsPerSec = float64(r.Ops) / elapsed.Seconds()
	r.P50, r.P90, r.P99, r.Max = percentiles(latencies)
	return r, nil
}

type httpError int

func (e httpError) Error() string { return fmt.Sprintf("http_%d", int(e)) }

// percentiles computes p50, p90, p99 and max in milliseconds exactly as
// loadgen does.
func percentiles(lat []time.Duration) (p50, p90, p99, mx float64) {
	slices.Sort(lat)
	ms := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := min(int(q*float64(len(lat))), len(lat)-1)
		return float64(lat[i].Microseconds()) / 1000
	}
	return ms(0.50), ms(0.90), ms(0.99), ms(1)
}
