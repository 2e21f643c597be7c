package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warrantlog/warrant/resource"
)

// Ticket is a ticket of the example's in-memory store.
type Ticket struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
	// By is the agent that wrote it (the token's client_id), for whom
	// (its sub: the human at the root of the delegation chain).
	By      string `json:"by,omitempty"`
	For     string `json:"for,omitempty"`
	Created string `json:"created"`
}

type tickets struct {
	// active, when set, asks warrant whether a write's token is still
	// active (resource.Verifier.CheckActive).
	active func(context.Context, *resource.Claims) error

	mu   sync.Mutex
	list []Ticket
}

// newTickets is the store; active, when not nil, is asked before each
// write whether the token is still active.
func newTickets(active func(context.Context, *resource.Claims) error) *tickets {
	now := time.Now().UTC().Format(time.RFC3339)
	return &tickets{active: active, list: []Ticket{
		{ID: 1, Title: "printer on floor 3 is out of toner", Created: now},
		{ID: 2, Title: "VPN drops every hour", Created: now},
	}}
}

type readArgs struct{}

type readResult struct {
	Tickets []Ticket `json:"tickets"`
}

type writeArgs struct {
	Title string `json:"title" jsonschema:"the new ticket's title"`
}

func (t *tickets) register(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{Name: "tickets.read", Description: "list the open tickets (scope tickets:read)"}, t.read)
	mcp.AddTool(s, &mcp.Tool{Name: "tickets.write", Description: "open a ticket (scope tickets:write)"}, t.write)
}

// claims are the verified token's claims; the tool checks the scope
// again, whatever the HTTP layer did.
func claims(ctx context.Context, scope string) (*resource.Claims, error) {
	c := resource.FromContext(ctx)
	if c == nil || !c.HasScope(scope) {
		return nil, fmt.Errorf("the token lacks scope %s", scope)
	}
	return c, nil
}

func (t *tickets) read(ctx context.Context, _ *mcp.CallToolRequest, _ readArgs) (*mcp.CallToolResult, readResult, error) {
	if _, err := claims(ctx, "tickets:read"); err != nil {
		return nil, readResult{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return nil, readResult{Tickets: append([]Ticket(nil), t.list...)}, nil
}

func (t *tickets) write(ctx context.Context, _ *mcp.CallToolRequest, a writeArgs) (*mcp.CallToolResult, Ticket, error) {
	c, err := claims(ctx, "tickets:write")
	if err != nil {
		return nil, Ticket{}, err
	}
	// Asked here too, not only by the HTTP layer: whatever that layer
	// read of the request, no write runs on a token warrant no longer
	// holds active.
	if t.active != nil {
		if err := t.active(ctx, c); err != nil {
			return nil, Ticket{}, fmt.Errorf("the token is not confirmed active: %w", err)
		}
	}
	if a.Title == "" {
		return nil, Ticket{}, errors.New("a ticket needs a title")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tk := Ticket{ID: len(t.list) + 1, Title: a.Title, By: c.ClientID, For: c.Subject, Created: time.Now().UTC().Format(time.RFC3339)}
	t.list = append(t.list, tk)
	return nil, tk, nil
}
