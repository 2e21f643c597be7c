package client

import (
	"context"
	"slices"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/proofs"
)

// Trace fetches the chain bundle of the accepted delegation id, verifies it
// (proofs.VerifyBundle) and its checkpoint's consistency with the trusted
// state, and returns it. When the trusted checkpoint is older than the
// bundle's, the bundle gains a consistency proof from it, so that whoever
// holds the bundle sees that the log this client trusted is a prefix of the
// one it proves.
func (c *Client) Trace(ctx context.Context, id string) ([]byte, *proofs.VerifiedChain, error) {
	trusted, err := c.Trusted()
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.rpc.GetChainBundle(ctx, connect.NewRequest(&warrantv1.GetChainBundleRequest{DelegationId: id}))
	if err != nil {
		return nil, nil, rpcError(err)
	}
	bundle := resp.Msg.GetBundle()
	vc, err := proofs.VerifyBundle(bundle, c.logKey, proofs.BundleOptions{WitnessPolicy: c.witnesses})
	if err != nil {
		return nil, nil, err
	}
	if n := len(vc.Links); n == 0 || vc.Links[n-1].Leaf.Delegation.ID != id {
		return nil, nil, proofs.Errorf(ReasonMismatch, "asked for the chain of %q, got another", id)
	}
	var floor uint64
	if trusted != nil {
		floor = trusted.Size
	}
	if err := c.advance(ctx, vc.Checkpoint, nil, floor); err != nil {
		return nil, nil, err
	}
	if trusted != nil && trusted.Size < vc.Checkpoint.Size {
		proof, err := c.consistencyProof(ctx, trusted.Size, vc.Checkpoint)
		if err != nil {
			return nil, nil, err
		}
		b, err := proofs.ParseBundle(bundle)
		if err != nil {
			return nil, nil, err
		}
		b.Consistency = append(b.Consistency, proofs.ConsistencyLink{From: string(trusted.Note), To: string(vc.Checkpoint.Note), Proof: proof})
		bundle = b.Marshal()
		if vc, err = proofs.VerifyBundle(bundle, c.logKey, proofs.BundleOptions{WitnessPolicy: c.witnesses}); err != nil {
			return nil, nil, err
		}
	}
	return bundle, vc, nil
}

// Children returns one page of the entries naming delegation id as their
// parent or revocation target, each verified, and the start index of the
// next page (0 when done).
func (c *Client) Children(ctx context.Context, id string, start uint64, pageSize uint32) ([]*Entry, uint64, error) {
	resp, err := c.rpc.ListChildren(ctx, connect.NewRequest(&warrantv1.ListChildrenRequest{DelegationId: id, StartIndex: start, PageSize: pageSize}))
	if err != nil {
		return nil, 0, rpcError(err)
	}
	return c.verifyPage(ctx, resp.Msg.GetEntries(), resp.Msg.GetNextStartIndex(), start, pageSize)
}

// AgentEntries returns one page of the entries agent issued, received or
// was registered by, each verified, and the start index of the next page.
func (c *Client) AgentEntries(ctx context.Context, agent string, start uint64, pageSize uint32) ([]*Entry, uint64, error) {
	resp, err := c.rpc.ListAgentEntries(ctx, connect.NewRequest(&warrantv1.ListAgentEntriesRequest{Agent: agent, StartIndex: start, PageSize: pageSize}))
	if err != nil {
		return nil, 0, rpcError(err)
	}
	return c.verifyPage(ctx, resp.Msg.GetEntries(), resp.Msg.GetNextStartIndex(), start, pageSize)
}

func (c *Client) verifyPage(ctx context.Context, pes []*warrantv1.ProvenEntry, next, start uint64, pageSize uint32) ([]*Entry, uint64, error) {
	if len(pes) > int(pageSize) {
		return nil, 0, proofs.Errorf(ReasonMismatch, "asked for %d entries, got %d", pageSize, len(pes))
	}
	if len(pes) == 0 {
		// "None" carries no checkpoint: it is taken only from a server
		// of the log (identity.go).
		if err := c.identified(ctx); err != nil {
			return nil, 0, err
		}
	}
	floor, err := c.trustedSize()
	if err != nil {
		return nil, 0, err
	}
	out := make([]*Entry, 0, len(pes))
	last := start
	for i, pe := range pes {
		if pe.GetIndex() < last || (i > 0 && pe.GetIndex() == last) {
			return nil, 0, proofs.Errorf(ReasonMismatch, "page entries out of order")
		}
		last = pe.GetIndex()
		e, err := c.verifyEntry(ctx, pe, nil, floor)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	if next != 0 && next <= last {
		return nil, 0, proofs.Errorf(ReasonMismatch, "next page starts at %d, not after %d", next, last)
	}
	return out, next, nil
}

// RadiusNode is one entry of a blast radius with what follows from it.
type RadiusNode struct {
	Entry    *Entry
	Children []*RadiusNode
	// Outsider marks a denial made by another agent than the one the
	// radius is about or the parent's delegate: any registered agent can
	// name any delegation as its parent (or revocation target) and have
	// the attempt recorded, so such an entry is an outsider's attempt,
	// not something the delegation led to.
	Outsider bool
}

// RadiusOptions bound a blast-radius walk.
type RadiusOptions struct {
	// Since limits the starting points to what the agent received or
	// issued at or after it (zero: all).
	Since time.Time
	// Max stops the walk after this many entries (Radius.Truncated).
	Max int
	// SkipDenials leaves denied entries out: they convey no authority, and
	// anyone registered can add them under any delegation (and so crowd
	// the radius up to Max).
	SkipDenials bool
}

// Radius is everything downstream of what an agent received or issued.
type Radius struct {
	Agent string
	// Roots are the agent's delegations that are not under another of them.
	Roots []*RadiusNode
	// Count is the number of entries in the radius.
	Count int
	// Truncated is set when the walk stopped at its bound.
	Truncated bool
}

// BlastRadius walks, from every delegation agent issued or received at or
// after o.Since, the parent-to-children index transitively: delegations
// (accepted and denied, unless o.SkipDenials), revocations and token
// exchanges (the access tokens issued under a delegation), each verified. It stops after o.Max entries (Truncated). Only accepted
// delegations have children: a denial conveys no authority.
func (c *Client) BlastRadius(ctx context.Context, agent string, o RadiusOptions) (*Radius, error) {
	r := &Radius{Agent: agent}
	seen := map[uint64]*RadiusNode{}
	max := o.Max
	denied := func(e *Entry) bool { return e.Leaf.Decision != nil && e.Leaf.Decision.Outcome == proofs.OutcomeDenied }
	var starts []*Entry
	for start := uint64(0); ; {
		page, next, err := c.AgentEntries(ctx, agent, start, 100)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			d := e.Leaf.Delegation
			if d != nil && (d.Issuer == agent || d.Delegate == agent) && !e.Leaf.Time.Before(o.Since) && !(o.SkipDenials && denied(e)) {
				starts = append(starts, e)
			}
		}
		if next == 0 {
			break
		}
		start = next
	}
	for _, s := range starts {
		if seen[s.Index] != nil {
			continue // already under an earlier root
		}
		if r.Count >= max {
			r.Truncated = true
			break
		}
		root := &RadiusNode{Entry: s, Outsider: denied(s) && s.Leaf.Delegation.Issuer != agent}
		seen[s.Index] = root
		r.Count++
		r.Roots = append(r.Roots, root)
		queue := []*RadiusNode{root}
		for len(queue) > 0 && !r.Truncated {
			n := queue[0]
			queue = queue[1:]
			d := n.Entry.Leaf.Delegation
			if d == nil || n.Entry.Leaf.Decision.Outcome != proofs.OutcomeAccepted {
				continue
			}
			for start := uint64(0); ; {
				page, next, err := c.Children(ctx, d.ID, start, 100)
				if err != nil {
					return nil, err
				}
				for _, e := range page {
					if err := checkChild(e, d.ID); err != nil {
						return nil, err
					}
					if seen[e.Index] != nil || (o.SkipDenials && denied(e)) {
						continue
					}
					if r.Count >= max {
						r.Truncated = true
						break
					}
					child := &RadiusNode{Entry: e, Outsider: denied(e) && outsider(e, d)}
					seen[e.Index] = child
					r.Count++
					n.Children = append(n.Children, child)
					queue = append(queue, child)
				}
				if next == 0 || r.Truncated {
					break
				}
				start = next
			}
		}
	}
	return r, nil
}

// outsider reports whether a child entry of parent was made by an agent
// holding no authority under it: a delegation or token exchange by another
// than the parent's delegate, or a revocation its signer was not entitled
// to.
func outsider(e *Entry, parent *proofs.Delegation) bool {
	if d := e.Leaf.Delegation; d != nil {
		return d.Issuer != parent.Delegate
	}
	if tok := e.Leaf.Token; tok != nil {
		return tok.Requester != parent.Delegate
	}
	return e.Leaf.Revocation != nil && slices.Contains(e.Leaf.Decision.Reasons, proofs.ReasonRevokeNotAuthorized)
}

// checkChild checks that a listed child really names parent.
func checkChild(e *Entry, parent string) error {
	if parent != "" && e.Leaf.Under() == parent {
		return nil
	}
	return proofs.Errorf(ReasonMismatch, "entry %d was listed as a child of %q but does not name it", e.Index, parent)
}
