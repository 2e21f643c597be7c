package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/loadgen"
	"github.com/warrantlog/warrant/proofs"
)

func runBench(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "bench", "[--mode append|append-batch|inclusion|consistency|entries|tiles|fairness|token|witness] [--duration D] [--concurrency N] [--rate R] [--h2c [--conns N]] [--metrics auto|none|URL,...] --registrar-key KEY [--witness-policy FILE]")
	var cf clientFlags
	cf.register(fs, env)
	mode := fs.String("mode", loadgen.ModeAppend, "append, append-batch, inclusion, consistency, entries, tiles, fairness (an unrelated agent's latency while one agent floods), token (each client an agent exchanging its delegation for access tokens at /oauth2/token, fresh DPoP proof each time; the server needs --tokens), or witness (appends, and the time from each append's answer to a witnessed checkpoint covering it, read from the witnessed checkpoint feed and verified under --witness-policy; the server needs --witness-policy)")
	duration := fs.Duration("duration", 10_000_000_000, "how long to drive load")
	concurrency := fs.Int("concurrency", 16, "concurrent clients")
	rate := fs.Float64("rate", 0, "target operations per second (0: flat out)")
	batch := fs.Int("batch", 64, "envelopes per AppendBatch request (append-batch)")
	presign := fs.Int("presign", 0, "envelopes to sign before the run (default: enough for rate x duration, or 200000)")
	entryBytes := fs.Int("entry-bytes", 600, "approximate envelope size")
	registrarKey := fs.String("registrar-key", env.getenv("WARRANT_REGISTRAR_KEY"), "a registrar private key of the server (PEM), with which the append, append-batch, fairness, token and witness modes register their agents (env WARRANT_REGISTRAR_KEY, as scripts/cluster.sh up prints it)")
	h2 := fs.Bool("h2c", false, "use HTTP/2 without TLS (one multiplexed connection) instead of HTTP/1.1")
	conns := fs.Int("conns", 1, "with --h2c, spread the clients of an inclusion or consistency run over this many connections (independent agents have one each)")
	metrics := fs.String("metrics", "auto", "Prometheus endpoints to read before and after the run, to report each node's CPU time and a cluster leader's object store puts and gets and checkpoint swaps: auto (each --server's /metrics, and the cluster leader's from GET /cluster), none, or URLs separated by commas")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load generator during the run to this file (read it with go tool pprof)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("bench takes no arguments")
	}
	if len(client.SplitServers(cf.server)) > 1 && (*mode == loadgen.ModeFairness || *mode == loadgen.ModeWitness) {
		return usagef("the %s mode takes one --server URL, not a list", *mode)
	}
	var metricsURLs []string
	if *metrics != "auto" && *metrics != "none" {
		for _, u := range client.SplitServers(*metrics) {
			if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return usagef("--metrics %q: want auto, none, or http(s):// URLs separated by commas", *metrics)
			}
			metricsURLs = append(metricsURLs, u)
		}
		if len(metricsURLs) == 0 {
			return usagef("--metrics %q: want auto, none, or http(s):// URLs separated by commas", *metrics)
		}
	}
	v, err := loadLogKey(cf.logKey)
	if err != nil {
		return err
	}
	cfg := loadgen.Config{Server: cf.server, LogKey: v, Mode: *mode, Concurrency: *concurrency, Duration: *duration,
		Rate: *rate, BatchSize: *batch, Presign: *presign, EntryBytes: *entryBytes, HTTP2: *h2, Conns: *conns}
	if *mode == loadgen.ModeWitness {
		if cfg.WitnessPolicy, _, err = cf.witnesses(); err != nil {
			return err
		}
		if cfg.WitnessPolicy == nil {
			return usagef("the witness mode needs --witness-policy (the witnesses whose cosignatures the server collects)")
		}
	}
	if *registrarKey != "" {
		var s *client.Signer
		if s, err = loadSigner(*registrarKey); err != nil {
			return err
		}
		cfg.Registrar = s
	} else if *mode == loadgen.ModeAppend || *mode == loadgen.ModeAppendBatch || *mode == loadgen.ModeFairness || *mode == loadgen.ModeToken || *mode == loadgen.ModeWitness {
		return usagef("the %s mode needs --registrar-key (or env WARRANT_REGISTRAR_KEY) to register its agents", *mode)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return &proofs.Error{Reason: proofs.ReasonProfileUnwritable, Err: err}
		}
		defer f.Close()
		cfg.CPUProfile = f
	}
	if *metrics == "auto" {
		cfg.Metrics = loadgen.DiscoverMetrics(ctx, &http.Client{Timeout: 10 * time.Second}, cf.server)
	} else {
		cfg.Metrics = metricsURLs
	}
	if !cf.json {
		fmt.Fprintf(env.stderr, "preparing %s run against %s...\n", cfg.Mode, cf.server)
	}
	var res fmt.Stringer
	if *mode == loadgen.ModeFairness {
		res, err = loadgen.RunFairness(ctx, cfg)
	} else {
		res, err = loadgen.Run(ctx, cfg)
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(env.stdout, res)
	}
	fmt.Fprint(env.stdout, res)
	return nil
}
