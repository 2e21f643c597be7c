package main

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/resource"
)

// TestCalledTools: the scopes a JSON-RPC message needs come from the
// tools/call requests it holds, single or batched; anything else needs
// none beyond a valid token.
func TestCalledTools(t *testing.T) {
	for body, want := range map[string][]string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write"}}`:                                     {"tickets.write"},
		`[{"method":"tools/call","params":{"name":"tickets.read"}},{"method":"tools/call","params":{"name":"tickets.write"}}]`: {"tickets.read", "tickets.write"},
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`:                                                           nil,
		`{"method":"tools/call","params":["tickets.write"]}`:                                                                   nil,
		`not json`: nil,
	} {
		if got := calledTools([]byte(body)); !slices.Equal(got, want) {
			t.Errorf("calledTools(%s) = %q, want %q", body, got, want)
		}
	}
}

// TestHandlerRoutes: the metadata is served at the RFC 9728 location of
// the resource URI and at the root, also for a resource URI without a
// path; the MCP endpoint refuses a request without a token with the
// challenge naming the metadata.
func TestHandlerRoutes(t *testing.T) {
	for _, path := range []string{"/mcp", "/"} {
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		uri := srv.URL + path
		meta, _ := resource.MetadataURL(uri)
		v, err := resource.New(resource.Config{Resource: uri, Issuer: "http://127.0.0.1:1", ResourceMetadata: meta})
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle("/", newHandler(v, newTickets(), false))
		for _, u := range []string{meta, srv.URL + resource.MetadataPath} {
			resp, err := http.Get(u)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %v %v", u, resp, err)
			}
			resp.Body.Close()
		}
		resp, err := http.Post(uri, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `resource_metadata="`+meta+`"`) {
			t.Fatalf("POST %s without a token: %d %q", uri, resp.StatusCode, ch)
		}
		srv.Close()
	}
}
