package client

import (
	"context"
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
	vc, err := proofs.VerifyBundle(bundle, c.logKey, proofs.BundleOptions{})
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
		if vc, err = proofs.VerifyBundle(bundle, c.logKey, proofs.BundleOptions{}); err != nil {
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
// after since, the parent-to-children index transitively: delegations
// (accepted and denied) and revocations, each verified. It stops after max
// entries (Truncated). Only accepted delegations have children: a denial
// conveys no authority.
func (c *Client) BlastRadius(ctx context.Context, agent string, since time.Time, max int) (*Radius, error) {
	r := &Radius{Agent: agent}
	seen := map[uint64]*RadiusNode{}
	var starts []*Entry
	for start := uint64(0); ; {
		page, next, err := c.AgentEntries(ctx, agent, start, 100)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			d := e.Leaf.Delegation
			if d != nil && (d.Issuer == agent || d.Delegate == agent) && !e.Leaf.Time.Before(since) {
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
		root := &RadiusNode{Entry: s}
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
					if seen[e.Index] != nil {
						continue
					}
					if r.Count >= max {
						r.Truncated = true
						break
					}
					child := &RadiusNode{Entry: e}
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

// checkChild checks that a listed child really names parent.
func checkChild(e *Entry, parent string) error {
	switch {
	case e.Leaf.Delegation != nil && e.Leaf.Delegation.Parent == parent:
		return nil
	case e.Leaf.Revocation != nil && e.Leaf.Revocation.Delegation == parent:
		return nil
	}
	return proofs.Errorf(ReasonMismatch, "entry %d was listed as a child of %q but does not name it", e.Index, parent)
}
