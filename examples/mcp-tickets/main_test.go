package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/resource"
)

// TestCalledTool: the tool a message calls is read as the MCP SDK reads
// it, and a body the SDK could read otherwise than encoding/json (the
// reviewer's bodies: trailing data, keys differing in case, duplicates)
// is refused rather than read as calling no tool.
func TestCalledTool(t *testing.T) {
	write := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write","arguments":{"title":"x"}}}`
	for body, want := range map[string]string{
		write: "tickets.write",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.read"}}  ` + "\n": "tickets.read",
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`:                               "",
		// No "method" key: a response to the SDK too, which calls nothing.
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"tickets.write"}}`: "",
		`{"jsonrpc":"2.0","id":1,"result":{}}`:                                             "",
	} {
		got, err := calledTool([]byte(body))
		if err != nil || got != want {
			t.Errorf("calledTool(%s) = %q, %v; want %q", body, got, err, want)
		}
	}
	for _, body := range []string{
		write + " x",
		write + `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tickets.read"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write","Name":"tickets.read"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.read","name":"tickets.write"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"x","params":{"name":"tickets.write"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"nam\u0065":"tickets.write"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write","nameſ":"x","NAME":"y"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write","arguments":{"title":"a","TITLE":"b"}}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"tickets.write","arguments":{"título":"ñ","x":{"a":1,"A":2}}}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["tickets.write"]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`,
		`{"jsonrpc":"2.0","id":1,"method":1,"params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write\xff"}}`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"tickets.write\xff\"}}",
		`null`, `"tools/call"`, ``, `not json`, `{`,
	} {
		if got, err := calledTool([]byte(body)); err == nil {
			t.Errorf("calledTool(%s) = %q, want a refusal", body, got)
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
		mux.Handle("/", newHandler(v, newTickets(nil), false))
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

// TestWriteAsksAgain: tickets.write asks whether the token is still
// active itself, whatever the HTTP layer did: with an issuer that does not
// answer, the write is refused and nothing is written.
func TestWriteAsksAgain(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := resource.New(resource.Config{Resource: "http://127.0.0.1:1/mcp", Issuer: "http://127.0.0.1:1", Introspector: &resource.Introspector{Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	tk := newTickets(v.CheckActive)
	ctx := resource.NewContext(context.Background(), &resource.Claims{Scopes: []string{"tickets:write"}, Token: "t", JTI: "j"})
	if _, got, err := tk.write(ctx, nil, writeArgs{Title: "sneaked"}); err == nil {
		t.Fatalf("a write without an answer from the issuer went through: %+v", got)
	}
	if n := len(tk.list); n != 2 {
		t.Fatalf("%d tickets after a refused write, want 2", n)
	}
}

// TestListenDefault: --listen defaults to the address the READMEs use.
func TestListenDefault(t *testing.T) {
	for _, path := range []string{"README.md", "../mcp-agent/README.md"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), defaultListen) {
			t.Errorf("%s does not name --listen's default %s", path, defaultListen)
		}
	}
	if defaultListen != "127.0.0.1:8790" {
		t.Errorf("--listen defaults to %s, the READMEs use 127.0.0.1:8790", defaultListen)
	}
}
