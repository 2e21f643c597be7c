package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/ledger"
	"github.com/warrantlog/warrant/proofs"
)

func runTrace(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "trace", "ID [--out BUNDLE] [--json]")
	var cf clientFlags
	cf.register(fs, env)
	out := fs.String("out", "", "write the chain bundle to `BUNDLE`, for warrant verify (without --out: print the chain, or with --json the bundle)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("trace takes one argument: a delegation id")
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	bundle, vc, err := c.Trace(ctx, pos[0])
	if err != nil {
		return err
	}
	last := vc.Links[len(vc.Links)-1]
	var tokens []*client.Entry
	if !cf.json || *out != "" {
		if tokens, err = tokensUnder(ctx, c, pos[0]); err != nil {
			return err
		}
	}
	switch {
	case *out == "" && cf.json: // the bundle is one line of JSON
		_, err := env.stdout.Write(append(bundle, '\n'))
		return err
	case *out == "":
		fmt.Fprintf(env.stdout, "the chain of %s: %d links from its root grant, verified against the signed checkpoint of %s at tree size %d\n", pos[0], len(vc.Links), vc.Checkpoint.Origin, vc.Checkpoint.Size)
		printChain(env.stdout, vc)
		printTokens(env.stdout, tokens, len(vc.Links))
		fmt.Fprintf(env.stdout, "write it for an auditor with --out BUNDLE (`warrant verify BUNDLE` checks it offline)\n")
		return nil
	}
	if err := atomicfile.WriteFile(*out, bundle, 0o644); err != nil {
		return &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	if cf.json {
		var toks []uint64
		for _, e := range tokens {
			toks = append(toks, e.Index)
		}
		return printJSON(env.stdout, map[string]any{"id": pos[0], "index": last.Index, "links": len(vc.Links), "out": *out, "checkpoint": cpJSON(vc.Checkpoint), "token_entries": toks})
	}
	fmt.Fprintf(env.stdout, "wrote the chain of %s (%d links, verified) to %s\n", pos[0], len(vc.Links), *out)
	printChain(env.stdout, vc)
	printTokens(env.stdout, tokens, len(vc.Links))
	return nil
}

// tokensUnder lists the token entries (exchanges, accepted or denied)
// under delegation id, each verified, as blast-radius shows them.
func tokensUnder(ctx context.Context, c *client.Client, id string) ([]*client.Entry, error) {
	var out []*client.Entry
	for start := uint64(0); ; {
		page, next, err := c.Children(ctx, id, start, 100)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Leaf.Token != nil && e.Leaf.Under() == id {
				out = append(out, e)
			}
		}
		if next == 0 {
			return out, nil
		}
		start = next
	}
}

// printTokens prints the token entries under the chain's last link, one
// level below it.
func printTokens(w io.Writer, tokens []*client.Entry, depth int) {
	for _, e := range tokens {
		fmt.Fprintf(w, "%s[%d] %s\n", strings.Repeat("  ", depth), e.Index, describeEntry(e))
	}
}

func printChain(w io.Writer, vc *proofs.VerifiedChain) {
	for i, l := range vc.Links {
		d := l.Leaf.Delegation
		fmt.Fprintf(w, "%s[%d] %s: %s -> %s, task %s%s, expires %s\n", strings.Repeat("  ", i), l.Index, d.ID, d.Issuer, d.Delegate, d.Task, listSuffix(d), d.ExpiresAt)
	}
}

func listSuffix(d *proofs.Delegation) string {
	var b strings.Builder
	for _, l := range []struct {
		name string
		v    []string
	}{{"scopes", d.Scopes}, {"data", d.DataClasses}, {"dest", d.Destinations}} {
		if len(l.v) > 0 {
			fmt.Fprintf(&b, ", %s %s", l.name, strings.Join(l.v, ","))
		}
	}
	return b.String()
}

func runBlastRadius(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "blast-radius", "AGENT [--since T] [--format tree|json|dot] [--max N] [--no-denials]")
	var cf clientFlags
	cf.register(fs, env)
	since := fs.String("since", "", "only what AGENT received or issued at or after T (RFC 3339, or a duration ago like 24h)")
	format := fs.String("format", "tree", "output: tree, json or dot")
	max := fs.Int("max", 10000, "stop after this many entries")
	noDenials := fs.Bool("no-denials", false, "leave denied entries out (anyone registered can add them under any delegation)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("blast-radius takes one argument: an agent's SPIFFE ID")
	}
	if _, err := spiffeid.FromString(pos[0]); err != nil {
		return usagef("blast-radius takes an agent's SPIFFE ID, like spiffe://example.org/agent/planner; %q is not one: %v", pos[0], err)
	}
	if cf.json {
		*format = "json"
	}
	if *format != "tree" && *format != "json" && *format != "dot" {
		return usagef("--format must be tree, json or dot")
	}
	var t time.Time
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			t = time.Now().Add(-d)
		} else if t, err = time.Parse(time.RFC3339, *since); err != nil {
			return usagef("--since: want RFC 3339 or a duration, got %q", *since)
		}
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	r, err := c.BlastRadius(ctx, pos[0], client.RadiusOptions{Since: t, Max: *max, SkipDenials: *noDenials})
	if err != nil {
		return err
	}
	if r.Count == 0 {
		since := ""
		if !t.IsZero() {
			since = " since " + proofs.FormatTime(t)
		}
		return proofs.Errorf(ledger.ReasonNotFound, "the log has no delegation issued by or to %s%s", pos[0], since)
	}
	switch *format {
	case "json":
		return printJSON(env.stdout, radiusJSON(r))
	case "dot":
		printDOT(env.stdout, r)
	default:
		fmt.Fprintf(env.stdout, "blast radius of %s: %d entries, every one verified against a signed checkpoint", r.Agent, r.Count)
		if r.Truncated {
			fmt.Fprintf(env.stdout, " (TRUNCATED at --max %d)", *max)
		}
		fmt.Fprintln(env.stdout)
		for _, n := range r.Roots {
			printNode(env.stdout, n, 0)
		}
	}
	return nil
}

// describe summarises a radius entry in one line.
func describeEntry(e *client.Entry) string {
	l := e.Leaf
	switch {
	case l.Delegation != nil:
		d := l.Delegation
		s := fmt.Sprintf("%s: %s -> %s, task %s%s", d.ID, d.Issuer, d.Delegate, d.Task, listSuffix(d))
		if l.Decision.Outcome == proofs.OutcomeDenied {
			s += " DENIED (" + strings.Join(l.Decision.Reasons, ", ") + ")"
		}
		return s
	case l.Token != nil:
		s := fmt.Sprintf("TOKEN %s for %s to %s, expires %s", l.Token.JTI, l.Token.Audience, l.Token.Requester, l.Token.ExpiresAt)
		if l.Decision.Outcome == proofs.OutcomeDenied {
			s = fmt.Sprintf("TOKEN EXCHANGE for %s by %s DENIED (%s)", l.Token.Audience, l.Token.Requester, strings.Join(l.Decision.Reasons, ", "))
		}
		return s
	case l.Revocation != nil:
		s := fmt.Sprintf("REVOCATION of %s by %s: %q", l.Revocation.Delegation, l.Actor(), l.Revocation.Reason)
		if l.Decision.Outcome == proofs.OutcomeDenied {
			s += " DENIED (" + strings.Join(l.Decision.Reasons, ", ") + ")"
		}
		return s
	}
	return l.Kind + " " + e.ID
}

// outsiderNote marks an outsider's denied attempt in the tree and DOT.
func outsiderNote(n *client.RadiusNode) string {
	if n.Outsider {
		return " [OUTSIDER: an attempt by an agent without authority here]"
	}
	return ""
}

func printNode(w io.Writer, n *client.RadiusNode, depth int) {
	fmt.Fprintf(w, "%s[%d] %s%s\n", strings.Repeat("  ", depth), n.Entry.Index, describeEntry(n.Entry), outsiderNote(n))
	for _, c := range n.Children {
		printNode(w, c, depth+1)
	}
}

type radiusNodeJSON struct {
	ID             string           `json:"id"`
	Index          uint64           `json:"index"`
	Kind           string           `json:"kind"`
	Issuer         string           `json:"issuer,omitempty"`
	Delegate       string           `json:"delegate,omitempty"`
	Task           string           `json:"task,omitempty"`
	Decision       string           `json:"decision"`
	Reasons        []string         `json:"reasons,omitempty"`
	Outsider       bool             `json:"outsider,omitempty"`
	LogTime        string           `json:"log_time"`
	LeafHash       string           `json:"leaf_hash"`
	InclusionProof []string         `json:"inclusion_proof"`
	TreeSize       uint64           `json:"tree_size"`
	Children       []radiusNodeJSON `json:"children,omitempty"`
}

func radiusJSON(r *client.Radius) map[string]any {
	var conv func(n *client.RadiusNode) radiusNodeJSON
	conv = func(n *client.RadiusNode) radiusNodeJSON {
		l := n.Entry.Leaf
		j := radiusNodeJSON{ID: n.Entry.ID, Index: n.Entry.Index, Kind: l.Kind, Decision: l.Decision.Outcome, Reasons: l.Decision.Reasons, Outsider: n.Outsider,
			LogTime: l.LogTime, LeafHash: hex.EncodeToString(proofs.LeafHash(l.Raw)), TreeSize: n.Entry.Checkpoint.Size}
		for _, h := range n.Entry.InclusionProof {
			j.InclusionProof = append(j.InclusionProof, hex.EncodeToString(h))
		}
		if d := l.Delegation; d != nil {
			j.Issuer, j.Delegate, j.Task = d.Issuer, d.Delegate, d.Task
		}
		if rv := l.Revocation; rv != nil {
			j.Issuer = l.Actor()
		}
		for _, c := range n.Children {
			j.Children = append(j.Children, conv(c))
		}
		return j
	}
	roots := []radiusNodeJSON{}
	for _, n := range r.Roots {
		roots = append(roots, conv(n))
	}
	return map[string]any{"agent": r.Agent, "count": r.Count, "truncated": r.Truncated, "roots": roots}
}

func printDOT(w io.Writer, r *client.Radius) {
	fmt.Fprintf(w, "digraph blast_radius {\n  label=%q;\n  node [shape=box];\n", "blast radius of "+r.Agent)
	var walk func(n *client.RadiusNode)
	walk = func(n *client.RadiusNode) {
		style := ""
		switch {
		case n.Entry.Leaf.Decision.Outcome == proofs.OutcomeDenied:
			style = `, style=dashed, color=red`
		case n.Entry.Leaf.Revocation != nil:
			style = `, shape=octagon, color=orange`
		}
		fmt.Fprintf(w, "  e%d [label=%q%s];\n", n.Entry.Index, fmt.Sprintf("[%d] %s%s", n.Entry.Index, describeEntry(n.Entry), outsiderNote(n)), style)
		for _, c := range n.Children {
			fmt.Fprintf(w, "  e%d -> e%d;\n", n.Entry.Index, c.Entry.Index)
			walk(c)
		}
	}
	for _, n := range r.Roots {
		walk(n)
	}
	fmt.Fprintln(w, "}")
}
