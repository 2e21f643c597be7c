package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"

	"github.com/warrantlog/warrant/resource"
)

// toolScopes is the scope each tool needs.
var toolScopes = map[string]string{
	"tickets.read":  "tickets:read",
	"tickets.write": "tickets:write",
}

// maxBody bounds a JSON-RPC request read for the tool it calls.
const maxBody = 1 << 20

// authorize checks every request's token for this resource, and for a
// tools/call the scope of the tool it calls, before the MCP handler sees
// it: a token without the tool's scope is answered 403
// insufficient_scope with the scope to ask for, at the HTTP level where
// an MCP client can read it (the MCP authorization specification's scope
// challenge). Writes ask warrant whether the token is still active when
// introspect is set.
//
// It decides on exactly the call the MCP handler will execute: a body it
// cannot read as the SDK will (see calledTool) is refused 400 before
// anything else. And the tools check again, scope and introspection,
// whatever this layer decided.
func authorize(v *resource.Verifier, next http.Handler, introspect bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rule resource.Rule
		if r.Method == http.MethodPost {
			if r.Body == nil {
				r.Body = http.NoBody
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil || len(body) > maxBody {
				http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
				return
			}
			tool, err := calledTool(body)
			if err != nil {
				http.Error(w, "malformed JSON-RPC message: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if s, ok := toolScopes[tool]; ok {
				rule.Scopes = []string{s}
				rule.Introspect = introspect && s == "tickets:write"
			}
		}
		c, err := v.Authorize(r, rule)
		if err != nil {
			v.WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(resource.NewContext(r.Context(), c)))
	})
}

// urlPath is the path of a URL ("/" when empty).
func urlPath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Path == "" {
		return "/", nil
	}
	return u.Path, nil
}
