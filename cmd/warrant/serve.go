package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

func runServe(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "serve", "[--data DIR] [--listen ADDR] [--origin O] [--registrar-key PUB]... [--admin-key PUB]...")
	data := fs.String("data", envOr(env, "WARRANT_DATA", defaultData), "data directory (env WARRANT_DATA)")
	listen := fs.String("listen", envOr(env, "WARRANT_LISTEN", defaultListen), "listen address (env WARRANT_LISTEN)")
	origin := fs.String("origin", "", "checkpoint origin; fixed when the log is created (default localhost/warrant/<random>)")
	var registrars, admins stringList
	fs.Var(&registrars, "registrar-key", "PEM public key allowed to sign key bindings (repeatable)")
	fs.Var(&admins, "admin-key", "PEM public key allowed to sign policies and administrative revocations (repeatable)")
	batchEntries := fs.Int("batch-max-entries", 1024, "most entries in one group commit")
	batchBytes := fs.Int("batch-max-bytes", 2<<20, "most envelope bytes in one group commit")
	batchAgentBytes := fs.Int("batch-max-agent-bytes", ledger.DefaultMaxBatchAgentBytes, "most envelope bytes of one agent in one group commit (its first request always fits)")
	batchWait := fs.Duration("batch-max-wait", 0, "longest wait for more requests once a batch has one (0: none)")
	treeCacheMB := fs.Int("tree-cache-mb", ledger.DefaultTreeCacheBytes>>20, "memory for tile subtrees that proofs read (about 12 KiB per 256 entries; 0: none)")
	def := proofs.DefaultRuleLimits()
	lifeExec := fs.Duration("lifetime-execute", time.Duration(def.LifetimeExecuteSeconds)*time.Second, "longest delegation to an execute-tier delegate")
	lifeDraft := fs.Duration("lifetime-draft", time.Duration(def.LifetimeDraftSeconds)*time.Second, "longest delegation to a draft-tier delegate")
	lifeRoot := fs.Duration("lifetime-root", time.Duration(def.LifetimeRootSeconds)*time.Second, "longest root grant")
	maxDepth := fs.Int("max-depth", def.MaxDepth, "longest delegation chain, 1 to 256 (a root grant has depth 1)")
	maxAhead := fs.Duration("max-log-time-ahead", ledger.DefaultMaxLogTimeAhead, "how far log time (which never decreases) may run ahead of the server clock before appends are refused clock_behind")
	tokens := fs.Bool("tokens", false, "issue DPoP-bound access tokens at POST /oauth2/token, signed with DIR/token.key (created on first use; not the log key)")
	tokenLife := fs.Duration("token-lifetime", ledger.DefaultTokenLifetime, "access token lifetime, at most 15m (never past the delegation's expiry)")
	tokenIssuer := fs.String("token-issuer", "", "the tokens' iss, the DPoP htu base and the OAuth metadata's issuer URL; required with --tokens unless the listener is loopback (default there: http(s)://<listen address>)")
	dpopNonce := fs.Bool("dpop-nonce", true, "with --tokens, demand a server-provided nonce (RFC 9449 section 8) in DPoP proofs; warrant's clients retry once with it")
	var uiOrigins stringList
	fs.Var(&uiOrigins, "ui-cors-origin", "origin (https://host[:port]) of a copy of the web explorer hosted elsewhere, whose browsers may read the API and tiles (repeatable; the explorer itself is at /ui/)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	pprofListen := fs.String("pprof-listen", "", "serve Go profiling (net/http/pprof) on this separate address, e.g. 127.0.0.1:6060 (off by default)")
	witnessPolicy := fs.String("witness-policy", "", "tlog-policy file naming the witnesses every checkpoint is sent to, and their quorum (off by default)")
	witnessMode := fs.String("witness-mode", "async", "with --witness-policy: async (answer with the log-signed checkpoint) or sync (answer once a checkpoint covering the entry is witnessed)")
	witnessTimeout := fs.Duration("witness-timeout", ledger.DefaultWitnessTimeout, "with --witness-mode sync: longest wait for the witness quorum before answering witness_unavailable")
	witnessRate := fs.Float64("witness-rate", ledger.DefaultWitnessRate, "each witness's request budget, add-checkpoint requests per second (newer checkpoints replace waiting ones)")
	var sec serveSecurity // TLS, mutual TLS, rate limits (tls.go)
	sec.register(fs)
	var of opsFlags // config file, log format, metrics, tracing, backups (ops.go)
	of.register(fs)
	var conns serveConns // timeouts, connection and stream caps (conns.go)
	conns.register(fs)
	var dist distributedFlags // object store, etcd, node (distributed.go)
	dist.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("serve takes no arguments, got %q", pos)
	}
	if err := applyConfigFile(fs, of.config, env, serveFlagEnv); err != nil {
		return err
	}
	tlsConfig, err := sec.tlsConfig()
	if err != nil {
		return err
	}
	for _, d := range []*time.Duration{lifeExec, lifeDraft, lifeRoot} {
		if *d < time.Second || *d%time.Second != 0 {
			return usagef("lifetimes are whole seconds, at least 1s")
		}
	}
	if *tokenLife < time.Second || *tokenLife > proofs.MaxTokenLifetime || *tokenLife%time.Second != 0 {
		return usagef("--token-lifetime must be whole seconds between 1s and %v, got %v", proofs.MaxTokenLifetime, *tokenLife)
	}
	if *treeCacheMB < 0 {
		return usagef("--tree-cache-mb must not be negative")
	}
	if *maxAhead <= 0 {
		return usagef("--max-log-time-ahead must be positive (e.g. 1m)")
	}
	if *maxDepth < 1 || *maxDepth > proofs.MaxChainDepth {
		return usagef("--max-depth must be between 1 and %d", proofs.MaxChainDepth)
	}
	mode, err := ledger.ParseWitnessMode(*witnessMode)
	if err != nil {
		return usagef("--witness-mode: %v", err)
	}
	if *witnessTimeout <= 0 {
		return usagef("--witness-timeout must be positive (e.g. 5s)")
	}
	if !(*witnessRate > 0) {
		return usagef("--witness-rate must be a positive number of requests per second")
	}
	// The policy is read here and checked by Open, against the log's key.
	var policy []byte
	if *witnessPolicy != "" {
		var err error
		if policy, err = os.ReadFile(*witnessPolicy); err != nil {
			return usagef("--witness-policy: %v", err)
		}
	} else if flagSet(fs, "witness-mode") || flagSet(fs, "witness-timeout") || flagSet(fs, "witness-rate") {
		return usagef("--witness-mode, --witness-timeout and --witness-rate need --witness-policy")
	}
	distributed, err := dist.check(fs, sec.scheme(), *listen)
	if err != nil {
		return err
	}
	if distributed && policy != nil {
		return usagef("--witness-policy is not supported in distributed mode yet")
	}
	for _, o := range uiOrigins {
		if err := ledger.CheckOrigin(o); err != nil {
			return usagef("--ui-cors-origin %q %v", o, err)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	logger, err := newLogger(env.stderr, of.logFormat, level)
	if err != nil {
		return err
	}
	regKeys, err := loadPublicKeys(registrars)
	if err != nil {
		return err
	}
	adminKeys, err := loadPublicKeys(admins)
	if err != nil {
		return err
	}
	opts := ledger.Options{
		Dir:                *data,
		Origin:             *origin,
		RegistrarKeys:      regKeys,
		AdminKeys:          adminKeys,
		MaxBatchEntries:    *batchEntries,
		MaxBatchBytes:      *batchBytes,
		MaxBatchAgentBytes: *batchAgentBytes,
		MaxBatchWait:       *batchWait,
		TreeCacheBytes:     treeCacheBytes(*treeCacheMB),
		Rules: proofs.RuleLimits{
			LifetimeExecuteSeconds: int64(*lifeExec / time.Second),
			LifetimeDraftSeconds:   int64(*lifeDraft / time.Second),
			LifetimeRootSeconds:    int64(*lifeRoot / time.Second),
			MaxDepth:               *maxDepth,
		},
		MaxLogTimeAhead: *maxAhead,
		Logger:          logger,
		TokenLifetime:   *tokenLife,
		TokenIssuer:     strings.TrimSuffix(*tokenIssuer, "/"),
		DPoPNonce:       *dpopNonce,
		WitnessPolicy:   policy,
		WitnessMode:     mode,
		WitnessTimeout:  *witnessTimeout,
		WitnessRate:     *witnessRate,
		UICORSOrigins:   uiOrigins,
	}
	if err := sec.options(&opts); err != nil {
		return err
	}
	if err := conns.options(&opts); err != nil {
		return err
	}
	if *tokens {
		if err := checkTokenIssuer(opts.TokenIssuer, *listen); err != nil {
			return err
		}
	}
	// Bind before touching the data directory: a second serve on a taken
	// port fails at once, on stderr, and creates no log.
	ln, err := bind(*listen, "--listen or WARRANT_LISTEN")
	if err != nil {
		return err
	}
	defer ln.Close()
	if *tokens && opts.TokenIssuer == "" {
		// Loopback: the address as given (clients write it so), with the
		// port bound when it was 0.
		host, _, _ := net.SplitHostPort(*listen)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		opts.TokenIssuer = sec.scheme() + "://" + net.JoinHostPort(host, port)
	}
	o, err := newOps(ctx, env, &of, logger)
	if err != nil {
		return err
	}
	defer o.close()
	if err := o.listen(); err != nil {
		return err
	}
	opts.Metrics = o.metrics
	if *tokens {
		if err := os.MkdirAll(*data, 0o700); err != nil {
			return proofs.Errorf(proofs.ReasonOpenFailed, "creating data directory: %v", err)
		}
		if opts.TokenKey, err = ledger.LoadOrCreateTokenKey(*data); err != nil {
			return proofs.Errorf(proofs.ReasonOpenFailed, "%v", err)
		}
		if opts.PreviousTokenKeys, err = ledger.LoadPreviousTokenKeys(*data); err != nil {
			return proofs.Errorf(proofs.ReasonOpenFailed, "%v", err)
		}
	}
	if distributed {
		if err := checkClusterLogKey(*data); err != nil {
			return err
		}
		dist.defaultAdvertise(sec.scheme(), *listen, ln.Addr())
		store, coord, closer, err := openDistributed(ctx, &dist, logger)
		if err != nil {
			return err
		}
		defer closer.Close() // after the log's Close below
		opts.ObjectStore, opts.Coordination = store, coord
		opts.NodeID, opts.NodeURL = dist.nodeID, dist.advertise
		opts.Reconfigure = dist.reconfigure
	}
	if env.getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimitBase + int64(*treeCacheMB)<<20)
	}
	l, err := ledger.Open(ctx, opts)
	if errors.Is(err, ledger.ErrStoreMismatch) {
		return &proofs.Error{Reason: proofs.ReasonStoreMismatch, Err: fmt.Errorf("%v. Refusing to serve. Do not delete the checkpoint: restore %s from a backup taken before the damage, or move it aside and investigate", err, *data)}
	}
	if errors.Is(err, ledger.ErrClusterMismatch) {
		// The cluster's state is at fault (the error says which part), not
		// this node's data directory.
		return &proofs.Error{Reason: proofs.ReasonOpenFailed, Err: fmt.Errorf("distributed mode (--object-store %s, --etcd %s): %w", dist.objectStore, dist.etcd, err)}
	}
	if proofs.Reason(err) == proofs.ReasonWitnessPolicyInvalid {
		return fmt.Errorf("--witness-policy %s: %w", *witnessPolicy, err)
	}
	if err != nil {
		return &proofs.Error{Reason: proofs.ReasonOpenFailed, Err: err}
	}
	defer l.Close()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC over plain http://
	protocols.SetHTTP2(true)            // and over https:// (ALPN)
	// The ledger, traced with --otel, with /metrics and /backup unless --ops-listen.
	h, err := o.handler(l)
	if err != nil {
		return err
	}
	if distributed {
		// A follower passes the writes on to the leader (ledger/forward.go).
		h = ledger.Forward(h, ledger.ForwardConfig{Leader: l.ClusterLeader, Logger: logger})
	}
	srv := &http.Server{
		Handler:        sec.handler(h),
		TLSConfig:      tlsConfig,
		Protocols:      &protocols,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln = conns.bound(srv, ln)
	vkeyPath, _ := filepath.Abs(filepath.Join(*data, ledger.LogVerifierKeyFile))
	logger.Info("serving", "origin", l.Origin(), "url", sec.scheme()+"://"+ln.Addr().String(), "mtls", sec.clientCA != "", "verifier_key", vkeyPath, "size", l.Checkpoint().Size,
		"explorer", sec.scheme()+"://"+ln.Addr().String()+"/ui/")
	if policy != nil {
		logger.Info("witnessing", "witnesses", len(l.Witnesses().Witnesses), "mode", mode.String(), "timeout", *witnessTimeout, "rate", *witnessRate)
	}
	if err := o.start(l, sec.scheme()+"://"+ln.Addr().String()); err != nil {
		return err
	}
	if *pprofListen != "" {
		dbg := http.NewServeMux()
		dbg.HandleFunc("/debug/pprof/", pprof.Index)
		dbg.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dbg.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dbg.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		go func() {
			logger.Info("profiling", "url", "http://"+*pprofListen+"/debug/pprof/")
			if err := http.ListenAndServe(*pprofListen, dbg); err != nil {
				logger.Warn("profiling listener", "err", err)
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- sec.serve(srv, ln) }()
	select {
	case err := <-errc:
		return &proofs.Error{Reason: proofs.ReasonServeFailed, Err: err}
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	return nil
}

// bind binds addr; a taken address says what to do (flags names the
// flag and variable that choose the address).
// checkTokenIssuer checks --token-issuer, which a server issuing tokens
// must be given unless it listens on loopback only: the issuer is the
// tokens' iss and the base of the DPoP htu the endpoints demand, and
// taking it from each request's Host header would let the caller choose
// both.
func checkTokenIssuer(issuer, listen string) error {
	if issuer == "" {
		host, _, err := net.SplitHostPort(listen)
		if ip, perr := netip.ParseAddr(host); err == nil && (host == "localhost" || perr == nil && ip.IsLoopback()) {
			return nil
		}
		return usagef("--tokens on a listener that is not loopback-only (%s) needs --token-issuer URL, the https URL clients reach this server at: it becomes the tokens' iss and the DPoP htu base, which must not come from a request's Host header", listen)
	}
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return usagef("--token-issuer %q must be an absolute http(s) URL without user, query or fragment", issuer)
	}
	return nil
}

func bind(addr, flags string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, proofs.Errorf(proofs.ReasonListenFailed, "%s: address in use (is another warrant serve running? stop it, or choose another address with %s)", addr, flags)
	}
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonListenFailed, Err: err}
	}
	return ln, nil
}

// defaultMemoryLimitBase is the soft memory limit serve sets when
// GOMEMLIMIT is not set, beyond the tile cache (--tree-cache-mb). Go's collector otherwise
// lets the heap reach twice its live size (about 230 MiB of it Badger's
// memtable and caches), and a server reading a large log also holds the
// pages of the tables it touched: without a limit, random proofs from a
// 10M-entry log peaked at 1.19 GB resident, with it at 941 MB. The cost,
// measured on two cores: nothing on reads, 6% of flat-out appends, 11% of
// AppendBatch. GOMEMLIMIT (a size, or "off") overrides it.
const defaultMemoryLimitBase = 336 << 20

// treeCacheBytes maps --tree-cache-mb to ledger.Options.TreeCacheBytes,
// where 0 means the default and a negative size none.
func treeCacheBytes(mb int) int {
	if mb == 0 {
		return -1
	}
	return mb << 20
}

func loadPublicKeys(paths []string) ([]*proofs.PublicKey, error) {
	var keys []*proofs.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, &proofs.Error{Reason: proofs.ReasonKeyUnreadable, Err: err}
		}
		k, err := proofs.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
