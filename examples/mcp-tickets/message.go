package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// calledTool is the tool a JSON-RPC message calls ("" when it is not a
// tools/call), read as the MCP SDK will read it, or an error when the
// message could be read another way.
//
// The authorization layer decides the scope and the introspection a
// request needs from the tool it calls, so it must see exactly the call
// the SDK will execute. The SDK's decoder (MCP Go SDK v1.8.0) matches
// keys case-sensitively, where encoding/json folds case; it reads the
// first JSON value and ignores what follows, where encoding/json refuses
// the body; and it accepts JSON-RPC batches from clients of protocol
// versions before 2025-06-18. Rather than imitate each of these, any body
// on which two careful readers could disagree is refused: invalid UTF-8,
// anything after the one JSON value, a value that is not one object (a
// batch), an object key written with escapes, two keys of one object
// equal but for case (duplicates included), a method that is not a
// string, params that are not an object, and a tools/call whose
// params.name is not a string.
func calledTool(body []byte) (string, error) {
	if !utf8.Valid(body) {
		return "", errors.New("the body is not valid UTF-8")
	}
	if err := checkUnambiguous(body); err != nil {
		return "", err
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(body, &msg); err != nil || msg == nil {
		return "", errors.New("the body is not one JSON-RPC message object (batches are refused)")
	}
	raw, ok := msg["method"]
	if !ok {
		return "", nil // a response or a notification's answer: no tool
	}
	var method string
	if err := json.Unmarshal(raw, &method); err != nil {
		return "", errors.New("method is not a string")
	}
	var params map[string]json.RawMessage
	if raw, ok := msg["params"]; ok {
		if err := json.Unmarshal(raw, &params); err != nil || params == nil {
			return "", errors.New("params is not an object")
		}
	}
	if method != "tools/call" {
		return "", nil
	}
	var name string
	if err := json.Unmarshal(params["name"], &name); err != nil {
		return "", errors.New("a tools/call without a string params.name")
	}
	return name, nil
}

// checkUnambiguous refuses a body that is not exactly one JSON value, or
// holds an object with a key written with escapes, or two keys equal but
// for case.
func checkUnambiguous(body []byte) error {
	type frame struct {
		object, wantKey bool
		keys            map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*frame
	// value marks the end of a value in the enclosing frame: an object
	// then waits for its next key.
	value := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for started := false; !started || len(stack) > 0; started = true {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("the body is not one JSON value: %w", err)
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				value()
			}
		case string:
			if top != nil && top.object && top.wantKey {
				off := int(dec.InputOffset())
				lit := `"` + tok + `"`
				if strings.ContainsAny(tok, `"\`) || off < len(lit) || string(body[off-len(lit):off]) != lit {
					return fmt.Errorf("the key %q is written with escapes", tok)
				}
				k := foldKey(tok)
				if top.keys[k] {
					return fmt.Errorf("the key %q appears twice in one object (case aside)", tok)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
			value()
		default:
			value()
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("the body has data after its JSON value")
	}
	return nil
}

// foldKey maps each rune of s to the smallest rune of its Unicode simple
// case folding orbit, so that two keys equal under strings.EqualFold (as
// encoding/json matches them) have the same foldKey.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}
