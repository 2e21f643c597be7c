package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"

	"github.com/warrantlog/warrant/resource"
)

// toolScopes is the scope each tool needs.
var toolScopes = map[string]string{
	"tickets.read":  "tickets:read",
	"tickets.write": "tickets:write",
}

// maxBody bounds a JSON-RPC request read for its tool names.
const maxBody = 1 << 20

// authorize checks every request's token for this resource, and for a
// tools/call the scope of the tool it calls, before the MCP handler sees
// it: a token without the tool's scope is answered 403
// insufficient_scope with the scope to ask for, at the HTTP level where
// an MCP client can read it (the MCP authorization specification's scope
// challenge). Writes ask warrant whether the token is still active when
// introspect is set.
func authorize(v *resource.Verifier, next http.Handler, introspect bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rule resource.Rule
		if r.Body != nil && r.Method == http.MethodPost {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil || len(body) > maxBody {
				http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			for _, tool := range calledTools(body) {
				if s, ok := toolScopes[tool]; ok && !slices.Contains(rule.Scopes, s) {
					rule.Scopes = append(rule.Scopes, s)
					rule.Introspect = rule.Introspect || (introspect && s == "tickets:write")
				}
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

// calledTools is the names of the tools a JSON-RPC message or batch calls.
func calledTools(body []byte) []string {
	type message struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	var batch []message
	if err := json.Unmarshal(body, &batch); err != nil {
		var one message
		if json.Unmarshal(body, &one) != nil {
			return nil
		}
		batch = []message{one}
	}
	var out []string
	for _, m := range batch {
		if m.Method == "tools/call" {
			out = append(out, m.Params.Name)
		}
	}
	return out
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
