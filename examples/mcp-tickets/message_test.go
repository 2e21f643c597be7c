package main

import (
	"bytes"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	segjson "github.com/segmentio/encoding/json"
)

// FuzzCalledTool: whatever body calledTool accepts, the MCP SDK reads the
// same call: its own message decoder (jsonrpc.DecodeMessage) gives the
// same method, and its JSON library, as it configures it (keys matched
// case-sensitively), the same params.name. A body calledTool refuses is
// answered 400 and never reaches the SDK.
func FuzzCalledTool(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write","arguments":{"title":"x"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write","Name":"tickets.read"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"x","params":{"name":"tickets.write"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write"}} x`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.\u0077rite"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"nam\u0065":"tickets.write"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tickets.write"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, err := calledTool(body)
		if err != nil {
			return
		}
		msg, err := jsonrpc.DecodeMessage(body)
		if err != nil {
			return // the SDK refuses it too: nothing runs
		}
		req, ok := msg.(*jsonrpc.Request)
		if !ok || req.Method != "tools/call" {
			if name != "" {
				t.Fatalf("calledTool(%s) = %q; the SDK reads no tools/call", body, name)
			}
			return
		}
		var p struct {
			Name string `json:"name"`
		}
		dec := segjson.NewDecoder(bytes.NewReader(req.Params))
		dec.DontMatchCaseInsensitiveStructFields()
		if dec.Decode(&p) != nil {
			return // the SDK refuses the params: nothing runs
		}
		if p.Name != name {
			t.Fatalf("calledTool(%s) = %q; the SDK calls %q", body, name, p.Name)
		}
	})
}
