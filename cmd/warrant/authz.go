package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/warrantlog/warrant/authz"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
	"github.com/warrantlog/warrant/resource"
)

const defaultAuthzListen = "127.0.0.1:8752"

// runAuthz is `warrant authz`: an Envoy external-authorization server
// (gRPC) that enforces the log's access tokens.
func runAuthz(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "authz", "--route [METHOD ]PREFIX=SCOPE[,SCOPE]... | --routes FILE  (--audience URI | --audience-from host|route) [--listen ADDR] [--server URL] [--issuer URL --jwks URL|FILE]")
	listen := fs.String("listen", envOr(env, "WARRANT_AUTHZ_LISTEN", defaultAuthzListen), "gRPC listen address for Envoy's ext_authz filter (env WARRANT_AUTHZ_LISTEN)")
	server := fs.String("server", envOr(env, "WARRANT_SERVER", defaultServer), "the log that issues the tokens: its RFC 8414 metadata gives the issuer and the JWKS (env WARRANT_SERVER)")
	issuer := fs.String("issuer", "", "the tokens' required iss (default: the issuer in the server's metadata)")
	jwks := fs.String("jwks", "", "the token keys: a JWKS URL, re-fetched on an unknown kid, or a JWKS file (default: the server's jwks_uri)")
	tlsCA := fs.String("tls-ca", env.getenv("WARRANT_TLS_CA"), "PEM CA certificates to trust for an https:// server or JWKS (default: the system's; env WARRANT_TLS_CA)")
	audience := fs.String("audience", "", "the resource URI every token must be for (its aud)")
	audienceFrom := fs.String("audience-from", "", "without --audience, derive the aud from each request: host (scheme://host) or route (scheme://host/PREFIX of the matched route); only behind Envoy virtual hosts that list their domains")
	scheme := fs.String("scheme", "", "the scheme clients call (http or https), when Envoy sees another behind a TLS-terminating proxy (default: Envoy's)")
	var routeFlags stringList
	fs.Var(&routeFlags, "route", "[METHOD ]PREFIX=SCOPE[,SCOPE]: the scopes a token needs under PREFIX (repeatable; longest prefix wins; PREFIX= needs a valid token only)")
	routesFile := fs.String("routes", "", "read routes from FILE, one a line like --route (# comments)")
	leeway := fs.Duration("leeway", 0, "clock skew allowed on a token's exp, nbf and iat")
	logLevel := fs.String("log-level", "info", "log level: debug (every decision), info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json (slog, on stderr)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("authz takes no arguments")
	}
	var routes []authz.Route
	for _, s := range routeFlags {
		r, err := authz.ParseRoute(s)
		if err != nil {
			return usagef("--route: %v", err)
		}
		routes = append(routes, r)
	}
	if *routesFile != "" {
		f, err := os.Open(*routesFile)
		if err != nil {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
		rs, err := authz.ParseRoutes(f)
		f.Close()
		if err != nil {
			return usagef("--routes %s: %v", *routesFile, err)
		}
		routes = append(routes, rs...)
	}
	if len(routes) == 0 {
		return usagef("authz needs at least one --route (or --routes FILE): a request no route covers is denied")
	}
	if (*audience == "") == (*audienceFrom == "") {
		return usagef("authz needs one of --audience URI and --audience-from host|route")
	}
	if *audienceFrom != "" && *audienceFrom != authz.AudienceFromHost && *audienceFrom != authz.AudienceFromRoute {
		return usagef("--audience-from is host or route, not %q", *audienceFrom)
	}
	if *scheme != "" && *scheme != "http" && *scheme != "https" {
		return usagef("--scheme is http or https, not %q", *scheme)
	}
	if *leeway < 0 || *leeway > 5*time.Minute {
		return usagef("--leeway must be between 0 and 5m")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	logger, err := newLogger(env.stderr, *logFormat, level)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if *tlsCA != "" {
		cfg, err := client.TLSConfig(*tlsCA, "", "")
		if err != nil {
			return err
		}
		hc.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	if *issuer == "" || *jwks == "" {
		meta, err := fetchAuthServerMetadata(ctx, hc, *server)
		if err != nil {
			return err
		}
		if *issuer == "" {
			*issuer = meta.Issuer
		}
		if *jwks == "" {
			*jwks = meta.JWKSURI
		}
	}
	// --leeway 0 is none; resource's zero Skew would be its default.
	skew := *leeway
	if skew == 0 {
		skew = -1
	}
	vcfg := resource.Config{Issuer: *issuer, HTTPClient: hc, Skew: skew, Logger: logger}
	if strings.HasPrefix(*jwks, "https://") || strings.HasPrefix(*jwks, "http://") {
		vcfg.JWKSURL = *jwks
	} else {
		b, err := os.ReadFile(*jwks)
		if err != nil {
			return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
		}
		vcfg.JWKS = b
	}
	v, err := resource.New(vcfg)
	if err != nil {
		return usagef("--issuer %s, --jwks %s: %v", *issuer, *jwks, err)
	}
	srv, err := authz.New(authz.Config{
		Verifier: v,
		Routes:   routes, Audience: *audience, AudienceFrom: *audienceFrom, Scheme: *scheme, Logger: logger,
	})
	if err != nil {
		return usagef("%v", err)
	}
	ln, err := bind(*listen, "--listen or WARRANT_AUTHZ_LISTEN")
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	rs := make([]string, len(routes))
	for i, r := range routes {
		rs[i] = r.String()
	}
	logger.Info("authz serving", "listen", ln.Addr().String(), "issuer", *issuer, "jwks", *jwks,
		"audience", *audience, "audience_from", *audienceFrom, "routes", strings.Join(rs, " "))
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	select {
	case err := <-errc:
		return &proofs.Error{Reason: proofs.ReasonServeFailed, Err: err}
	case <-ctx.Done():
	}
	logger.Info("authz shutting down")
	hs.Shutdown()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		g.Stop()
	}
	return nil
}

// authServerMetadata is the part of RFC 8414 metadata authz reads.
type authServerMetadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func fetchAuthServerMetadata(ctx context.Context, hc *http.Client, server string) (*authServerMetadata, error) {
	u := strings.TrimSuffix(server, "/") + "/.well-known/oauth-authorization-server"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, usagef("--server %q: %v", server, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "fetching the issuer's metadata: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "%s answered %s (does the server issue tokens? serve --tokens)", u, resp.Status)
	}
	var m authServerMetadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil || m.Issuer == "" || m.JWKSURI == "" {
		return nil, proofs.Errorf(proofs.ReasonResponseMismatch, "%s is not RFC 8414 metadata with an issuer and a jwks_uri", u)
	}
	return &m, nil
}
