// Command mcp-tickets is an MCP server whose tools are protected by
// warrant access tokens, as the MCP authorization specification asks of a
// protected resource: its RFC 9728 metadata at
// /.well-known/oauth-protected-resource names warrant as the
// authorization server, a call without a valid token is answered 401 with
// a WWW-Authenticate DPoP challenge naming that metadata, and tokens must
// be for its own URI (aud). tickets.read needs the scope tickets:read,
// tickets.write tickets:write; a call with a token that lacks the tool's
// scope is answered 403 insufficient_scope. A body the MCP SDK could read
// otherwise than this check does is answered 400 (see calledTool), and
// the tools check scope and introspection again themselves.
//
// Usage:
//
//	mcp-tickets --issuer URL [--listen ADDR] [--resource URI] [--introspect-key KEY]
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warrantlog/warrant/resource"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

// defaultListen is the address the READMEs use.
const defaultListen = "127.0.0.1:8790"

func run(args []string) error {
	fs := flag.NewFlagSet("mcp-tickets", flag.ContinueOnError)
	listen := fs.String("listen", defaultListen, "address to listen on")
	issuer := fs.String("issuer", "", "warrant's issuer URL (the server started with serve --tokens)")
	uri := fs.String("resource", "", "this server's resource URI, as delegations name it (default http://LISTEN/mcp)")
	introspectKey := fs.String("introspect-key", "", "a registered agent's private key (PEM): tickets.write then asks warrant's introspection endpoint whether the token is still active")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if *issuer == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "error: usage: mcp-tickets --issuer URL [--listen ADDR] [--resource URI] [--introspect-key KEY]")
		os.Exit(2)
	}
	if *uri == "" {
		*uri = "http://" + *listen + "/mcp"
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := resource.Config{Resource: *uri, Issuer: *issuer, Logger: log}
	if *introspectKey != "" {
		key, err := loadKey(*introspectKey)
		if err != nil {
			return err
		}
		cfg.Introspector = &resource.Introspector{Key: key}
	}
	meta, err := resource.MetadataURL(*uri)
	if err != nil {
		return err
	}
	cfg.ResourceMetadata = meta
	v, err := resource.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var active func(context.Context, *resource.Claims) error
	if *introspectKey != "" {
		active = v.CheckActive
	}
	srv := &http.Server{Handler: newHandler(v, newTickets(active), active != nil), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Info("mcp-tickets serving", "resource", *uri, "metadata", meta, "issuer", *issuer)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHandler mounts the MCP endpoint behind the token check and the
// protected resource metadata, at the RFC 9728 path for the resource URI
// and at the root well-known path.
func newHandler(v *resource.Verifier, t *tickets, introspect bool) http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: "mcp-tickets", Version: "v0.1.0"}, nil)
	t.register(server)
	// Stateless: every request is checked on its own, with the claims of
	// its own token in the tools' context, and no session outlives a
	// token.
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	mux := http.NewServeMux()
	u, _ := resource.MetadataURL(v.Resource())
	path := must(urlPath(v.Resource()))
	mux.Handle(path, authorize(v, mcpHandler, introspect))
	md := v.Metadata("tickets", "tickets:read", "tickets:write")
	mux.Handle("GET "+resource.MetadataPath, md)
	if p := must(urlPath(u)); p != resource.MetadataPath {
		mux.Handle("GET "+p, md)
	}
	return mux
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// loadKey reads a PKCS #8 PEM private key, as `warrant keygen` writes it.
func loadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}
