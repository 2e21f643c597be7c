// Package authz is an Envoy external-authorization server
// (envoy.service.auth.v3.Authorization over gRPC) for warrant's access
// tokens: Envoy asks it about each request, and it allows the request
// only with a DPoP-bound access token of the log (RFC 9068, RFC 9449) for
// this resource, presented with a fresh DPoP proof for this method and
// URL by the key the token is bound to, and carrying the scopes the
// route requires. So an API behind Envoy enforces warrant's delegations
// without code of its own; `warrant authz` runs it.
//
// The token checks are package resource's (Verifier.Check), the same that
// a resource server's middleware runs; this package turns Envoy's
// CheckRequest into the request they check (the URL rebuilt from the
// scheme, host and path Envoy saw, the audience fixed or derived from the
// route) and their verdict into Envoy's answer: a denial with the HTTP status, the RFC 6750/9449
// WWW-Authenticate challenge and an OAuth error body, or an allowance
// that adds the verified client and subject as request headers for the
// upstream.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/warrantlog/warrant/resource"
)

// How the audience a token must carry is derived from a request, when no
// fixed audience is configured.
const (
	// AudienceFromHost: the request's origin, "https://api.example".
	AudienceFromHost = "host"
	// AudienceFromRoute: the origin and the matched route's prefix,
	// "https://api.example/tickets".
	AudienceFromRoute = "route"
)

// Headers the server sets on an allowed request for the upstream,
// replacing any the client sent.
const (
	HeaderClientID   = "x-warrant-client-id"
	HeaderSubject    = "x-warrant-subject"
	HeaderScope      = "x-warrant-scope"
	HeaderDelegation = "x-warrant-delegation"
)

// Config is what a Server enforces.
type Config struct {
	// Verifier checks the tokens and proofs; its Config.Resource is
	// unused, each request naming its audience.
	Verifier *resource.Verifier
	// Routes say which scopes each path needs. A request no route covers
	// is denied (403): list "/=" to accept any valid token elsewhere.
	Routes []Route
	// Audience is the resource every token must be for (its aud); empty:
	// AudienceFrom derives it from each request.
	Audience string
	// AudienceFrom is AudienceFromHost or AudienceFromRoute.
	AudienceFrom string
	// Scheme, when set, is the scheme of the URL the clients call, when
	// Envoy sees another (behind a proxy that terminates TLS); empty: the
	// scheme Envoy reports.
	Scheme string
	Logger *slog.Logger
}

// Server answers Envoy's Check calls.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	cfg Config
}

// New checks cfg and returns its server.
func New(cfg Config) (*Server, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("authz: no verifier")
	}
	if len(cfg.Routes) == 0 {
		return nil, errors.New("authz: no routes: every request would be denied")
	}
	if cfg.Audience == "" && cfg.AudienceFrom != AudienceFromHost && cfg.AudienceFrom != AudienceFromRoute {
		return nil, fmt.Errorf("authz: an audience, or how to derive one (%s or %s), is required", AudienceFromHost, AudienceFromRoute)
	}
	if cfg.Scheme != "" && cfg.Scheme != "http" && cfg.Scheme != "https" {
		return nil, fmt.Errorf("authz: scheme %q is not http or https", cfg.Scheme)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg}, nil
}

// Check implements authv3.AuthorizationServer: every verdict is an answer
// (a denial is not an RPC error), so Envoy relays the status and challenge
// to the client.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return denied(&resource.Error{Status: http.StatusBadRequest, Code: resource.ErrInvalidRequest, Description: "not an HTTP request"}), nil
	}
	rawPath, _, _ := strings.Cut(h.GetPath(), "?")
	rawPath, _, _ = strings.Cut(rawPath, "#")
	p, err := url.PathUnescape(rawPath)
	if err != nil || !strings.HasPrefix(p, "/") || !normalized(p) {
		// A route is matched on the path as the upstream will read it;
		// one with dot segments or doubled slashes could match a route
		// the upstream does not serve it under.
		return denied(&resource.Error{Status: http.StatusBadRequest, Code: resource.ErrInvalidRequest,
			Description: "the request path is not normalized (let Envoy normalize_path and merge_slashes)"}), nil
	}
	method := h.GetMethod()
	route := match(s.cfg.Routes, method, p)
	if route == nil {
		return denied(&resource.Error{Status: http.StatusForbidden, Code: "access_denied", Description: "no route of this server covers " + method + " " + p}), nil
	}
	scheme := s.cfg.Scheme
	if scheme == "" {
		scheme = strings.ToLower(h.GetScheme())
	}
	if scheme == "" {
		scheme = "https"
	}
	origin := scheme + "://" + strings.ToLower(h.GetHost())
	audience := s.cfg.Audience
	switch {
	case audience != "":
	case s.cfg.AudienceFrom == AudienceFromRoute && route.Prefix != "/":
		audience = origin + route.Prefix
	default:
		audience = origin
	}
	target, _, _ := strings.Cut(h.GetPath(), "#")
	vr := resource.Request{
		Method:        method,
		URL:           origin + target,
		Authorization: headerValues(h, "authorization"),
		DPoP:          headerValues(h, "dpop"),
		Audience:      audience,
	}
	claims, err := s.cfg.Verifier.Check(ctx, vr, resource.Rule{Scopes: route.Scopes})
	if err != nil {
		var f *resource.Error
		if !errors.As(err, &f) {
			s.cfg.Logger.Warn("authz: cannot decide", "method", method, "url", vr.URL, "err", err)
			f = &resource.Error{Status: http.StatusServiceUnavailable, Code: resource.ErrUnavailable, Description: "the request could not be checked"}
		} else {
			s.cfg.Logger.Debug("authz: denied", "method", method, "url", vr.URL, "status", f.Status, "oauth_error", f.Code, "description", f.Description)
		}
		return denied(f), nil
	}
	s.cfg.Logger.Debug("authz: allowed", "method", method, "url", vr.URL, "client_id", claims.ClientID, "jti", claims.JTI)
	return allowed(claims), nil
}
