package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

// Operability of `warrant serve`: the config file, structured logs,
// Prometheus metrics, OpenTelemetry tracing, and the operations endpoints
// (GET /metrics, GET /backup).

// opsFlags are serve's operability flags.
type opsFlags struct {
	config    string
	logFormat string
	opsListen string
	otel      string
}

func (f *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "read flag defaults from FILE (\"name = value\" lines; flags and WARRANT_* variables override it)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (slog, on stderr)")
	fs.StringVar(&f.opsListen, "ops-listen", "", "serve GET /metrics and GET /backup on this separate plain-HTTP address (e.g. 127.0.0.1:8751) instead of the main listener")
	fs.StringVar(&f.otel, "otel", "", "export OpenTelemetry traces of RPCs: stdout, or otlp (OTLP/HTTP, configured by the OTEL_EXPORTER_OTLP_* variables); off by default")
}

// newLogger returns serve's structured logger.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format is text or json, not %q", format)
}

// ops is what serve runs besides the ledger: a metrics registry, an
// optional tracer, and an optional operations listener.
type ops struct {
	flags   *opsFlags
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *ledger.Metrics
	tracer  *sdktrace.TracerProvider // nil: tracing off
	ln      net.Listener             // the --ops-listen listener, once bound
	srv     *http.Server             // the --ops-listen server, once started
}

// listen binds --ops-listen, if given, before serve opens its data.
func (o *ops) listen() error {
	if o.flags.opsListen == "" {
		return nil
	}
	ln, err := bind(o.flags.opsListen, "--ops-listen")
	if err != nil {
		return err
	}
	o.ln = ln
	return nil
}

// newOps builds the metrics registry (Go runtime, process and ledger
// metrics on a registry of serve's own) and the tracer.
func newOps(ctx context.Context, env *cmdEnv, f *opsFlags, logger *slog.Logger) (*ops, error) {
	o := &ops{flags: f, log: logger, reg: prometheus.NewRegistry()}
	o.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	var err error
	if o.metrics, err = ledger.NewMetrics(o.reg); err != nil {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	switch f.otel {
	case "", "off":
		return o, nil
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(env.stdout))
	case "otlp":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, usagef("--otel is stdout or otlp, not %q", f.otel)
	}
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonOtelFailed, Err: err}
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "warrant")),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonOtelFailed, Err: err}
	}
	// The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG
	// (default: every trace).
	o.tracer = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	// Export failures (an unreachable collector) are logged, not fatal.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("tracing", "err", err) }))
	return o, nil
}

// connectOptions are the LedgerService handler options: the otelconnect
// interceptor when tracing is on. Incoming trace context (W3C traceparent)
// is recorded as a link, not a parent: the server does not let clients
// choose its traces.
func (o *ops) connectOptions() ([]connect.HandlerOption, error) {
	if o.tracer == nil {
		return nil, nil
	}
	ic, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(o.tracer),
		otelconnect.WithPropagator(propagation.TraceContext{}),
		otelconnect.WithoutMetrics(), // metrics are Prometheus's
	)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonOtelFailed, Err: err}
	}
	return []connect.HandlerOption{connect.WithInterceptors(ic)}, nil
}

// routes adds the operations endpoints to mux. On the main listener
// (public), a backup takes an admin-signed request; on the operations
// listener, meant for a private address, it does not.
func (o *ops) routes(mux *http.ServeMux, l *ledger.Log, public bool) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
		Registry:          o.reg, // promhttp's own metrics too
		EnableOpenMetrics: true,
	}))
	mux.Handle("GET /backup", ledger.BackupHandler(l, ledger.BackupOptions{RequireAdmin: public}))
}

// handler is the main listener's handler: the ledger, traced if asked,
// plus the operations endpoints unless they have a listener of their own.
func (o *ops) handler(l *ledger.Log) (http.Handler, error) {
	copts, err := o.connectOptions()
	if err != nil {
		return nil, err
	}
	h := ledger.NewHandler(l, copts...)
	if o.flags.opsListen != "" {
		return h, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	o.routes(mux, l, true)
	return mux, nil
}

// start starts the operations listener, if any, and logs what is where.
func (o *ops) start(l *ledger.Log, mainURL string) error {
	where := mainURL
	if o.ln != nil {
		ln := o.ln
		mux := http.NewServeMux()
		o.routes(mux, l, false)
		o.srv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
		}
		go func() {
			if err := o.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
				o.log.Warn("operations listener", "err", err)
			}
		}()
		where = "http://" + ln.Addr().String()
	}
	limit := debug.SetMemoryLimit(-1)
	attrs := []any{"metrics", where + "/metrics", "backup", where + "/backup", "tracing", o.flags.otel != "" && o.flags.otel != "off",
		"gomaxprocs", runtime.GOMAXPROCS(0)}
	if limit != (1<<63 - 1) {
		attrs = append(attrs, "gomemlimit_bytes", limit)
	} else {
		attrs = append(attrs, "gomemlimit", "unset")
	}
	o.log.Info("operations", attrs...)
	return nil
}

// close stops the operations listener and flushes the traces.
func (o *ops) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if o.srv != nil {
		o.srv.Shutdown(ctx)
	} else if o.ln != nil {
		o.ln.Close()
	}
	if o.tracer != nil {
		if err := o.tracer.Shutdown(ctx); err != nil {
			o.log.Warn("flushing traces", "err", err)
		}
	}
}
