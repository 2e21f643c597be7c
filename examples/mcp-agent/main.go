// Command mcp-agent is an agent that calls a tool of an MCP server
// protected by warrant tokens: it reads the server's RFC 9728 metadata to
// find its resource URI and check that warrant is its authorization
// server, exchanges its delegation for a DPoP-bound access token for that
// resource (the Go SDK's client.TokenTransport, which refreshes the token
// and makes a fresh DPoP proof for every request), and calls the tool with
// the MCP Go SDK's client over streamable HTTP.
//
// Usage:
//
//	mcp-agent --key KEY --delegation ID --mcp URL [--server URL] [--log-key KEY|@FILE] [--state FILE] [--scope S]... TOOL [JSON-ARGUMENTS]
//
// It prints the tool's result on stdout as one line of JSON. A refusal is
// one line on stderr, error: <code>: <text>, and exit status 1: the
// resource server's OAuth error (insufficient_scope, invalid_token), or
// the reason code of a token exchange the log denied; 2 is a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
	"github.com/warrantlog/warrant/resource"
)

// usageError is a command line that does not parse (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err := run(ctx, os.Args[1:], os.Stdout)
	cancel()
	if err == nil {
		return
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "error: usage: %s\n", ue.msg)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "error: %s\n", oneLine(err.Error()))
	os.Exit(1)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// defaultServer is the warrant command line's default server.
const defaultServer = "http://127.0.0.1:8750"

// options are the command line's.
type options struct {
	server, logKey, state, keyPath, delegation, mcpURL string
	scopes                                             []string
	tool                                               string
	arguments                                          map[string]any
}

// parseArgs reads the command line, with the environment's defaults as
// the warrant command line takes them: WARRANT_SERVER (else
// defaultServer), WARRANT_LOG_KEY.
func parseArgs(args []string, getenv func(string) string) (*options, error) {
	fs := flag.NewFlagSet("mcp-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.server, "server", envOr(getenv, "WARRANT_SERVER", defaultServer), "warrant's URL (env WARRANT_SERVER)")
	fs.StringVar(&o.logKey, "log-key", getenv("WARRANT_LOG_KEY"), "the log's note verifier key, or @FILE (env WARRANT_LOG_KEY)")
	fs.StringVar(&o.state, "state", "", "trusted-checkpoint file (default: the warrant CLI's, per origin under the user config dir)")
	fs.StringVar(&o.keyPath, "key", "", "the agent's private key (PEM), bound to the delegation's delegate")
	fs.StringVar(&o.delegation, "delegation", "", "the delegation to exchange for a token")
	fs.StringVar(&o.mcpURL, "mcp", "", "the MCP server's endpoint URL")
	var scopes stringList
	fs.Var(&scopes, "scope", "a scope to request (repeatable; default: the delegation's)")
	// Flags may come before or after the positionals.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	o.scopes = scopes
	if o.keyPath == "" || o.delegation == "" || o.mcpURL == "" || o.logKey == "" || len(pos) < 1 || len(pos) > 2 {
		return nil, usageError{"mcp-agent --key KEY --delegation ID --mcp URL --log-key KEY|@FILE [--server URL] [--scope S]... TOOL [JSON-ARGUMENTS]"}
	}
	if u, err := url.Parse(o.server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Sprintf("--server %q (or env WARRANT_SERVER): want an http:// or https:// URL with a host", o.server)}
	}
	o.tool = pos[0]
	if len(pos) == 2 {
		if err := json.Unmarshal([]byte(pos[1]), &o.arguments); err != nil {
			return nil, usageError{"the tool's arguments must be a JSON object: " + err.Error()}
		}
	}
	return &o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseArgs(args, os.Getenv)
	if err != nil {
		return err
	}

	// Discovery (RFC 9728): the resource URI the token is for, and warrant
	// among its authorization servers.
	meta, err := discover(ctx, o.mcpURL)
	if err != nil {
		return fmt.Errorf("resource_metadata: %w", err)
	}
	if !slices.Contains(meta.AuthorizationServers, strings.TrimSuffix(o.server, "/")) {
		return fmt.Errorf("resource_metadata: %s names authorization servers %v, not %s", meta.Resource, meta.AuthorizationServers, o.server)
	}

	c, err := newClient(o.server, o.logKey, o.state)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(o.keyPath)
	if err != nil {
		return fmt.Errorf("key_unreadable: %w", err)
	}
	signer, err := client.LoadSigner(b)
	if err != nil {
		return fmt.Errorf("key_invalid: %w", err)
	}
	rec := &recorder{next: client.NewTokenTransport(c, signer, o.delegation, meta.Resource, o.scopes)}
	mc := mcp.NewClient(&mcp.Implementation{Name: "mcp-agent", Version: "v0.1.0"}, nil)
	session, err := mc.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             o.mcpURL,
		HTTPClient:           &http.Client{Transport: rec},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}, nil)
	if err != nil {
		return rec.explain(err)
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: o.tool, Arguments: o.arguments})
	if err != nil {
		return rec.explain(err)
	}
	if res.IsError {
		var text []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				text = append(text, t.Text)
			}
		}
		return fmt.Errorf("tool_error: %s", strings.Join(text, "; "))
	}
	out := res.StructuredContent
	if out == nil {
		out = res.Content
	}
	line, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// discover reads the resource's metadata at the RFC 9728 location for
// its URL.
func discover(ctx context.Context, mcpURL string) (*resource.Metadata, error) {
	u, err := resource.MetadataURL(mcpURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var m resource.Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&m); err != nil || m.Resource == "" {
		return nil, fmt.Errorf("GET %s: not protected resource metadata", u)
	}
	return &m, nil
}

// newClient is the warrant SDK client, its trusted state where the
// warrant CLI keeps it unless --state says otherwise.
func newClient(server, logKey, state string) (*client.Client, error) {
	text := logKey
	if strings.HasPrefix(logKey, "@") {
		b, err := os.ReadFile(logKey[1:])
		if err != nil {
			return nil, fmt.Errorf("log key: %w", err)
		}
		text = strings.TrimSpace(string(b))
	}
	v, err := proofs.ParseVerifierKey(text)
	if err != nil {
		return nil, err
	}
	if state == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, usageError{"no --state and no user config dir"}
		}
		state = filepath.Join(dir, "warrant", "state", safeName(v.Name())+".checkpoint")
	}
	return client.New(server, v, client.WithState(client.FileState{Path: state})), nil
}

// recorder remembers why the resource server or the token exchange
// refused, which the MCP client's own errors do not carry.
type recorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	refusal string // the last 401/403 challenge
	err     error  // the last exchange error
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = err
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		r.refusal = resp.Header.Get("WWW-Authenticate")
	}
	return resp, nil
}

var (
	errorParam       = regexp.MustCompile(`error="([^"]*)"`)
	descriptionParam = regexp.MustCompile(`error_description="([^"]*)"`)
)

// explain turns the MCP client's error into the refusal behind it.
func (r *recorder) explain(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		var pe *proofs.Error
		if errors.As(r.err, &pe) && pe.Err != nil {
			return fmt.Errorf("%s: token exchange: %v", pe.Reason, pe.Err)
		}
		return r.err
	}
	if m := errorParam.FindStringSubmatch(r.refusal); m != nil {
		desc := ""
		if d := descriptionParam.FindStringSubmatch(r.refusal); d != nil {
			desc = d[1]
		}
		return fmt.Errorf("%s: %s", m[1], desc)
	}
	return err
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
