package client_test

import (
	"context"
	"testing"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// TestAppendBatch: each envelope of a batch is answered as Append would
// answer it, and every answer is verified against one checkpoint.
func TestAppendBatch(t *testing.T) {
	e := openLog(t, envOptions{})
	url := e.serve(t)
	c := client.New(url, e.verifier)
	alice, bob := newAgent(t, "alice", false), newAgent(t, "bob", true)
	mustAppend(t, c, e.bindingEnvelope(t, alice, true))
	mustAppend(t, c, e.bindingEnvelope(t, bob, false))
	first := sign(t, alice, e.rootGrant(t, "b-1", alice, bob))
	mustAppend(t, c, first)
	reuse := e.rootGrant(t, "b-1", alice, bob) // same id, new nonce: denied
	stranger := newAgent(t, "mallory", false)
	envs := [][]byte{
		sign(t, alice, e.rootGrant(t, "b-2", alice, bob)),
		first,
		sign(t, alice, reuse),
		sign(t, stranger, e.rootGrant(t, "b-3", stranger, bob)),
		sign(t, alice, e.rootGrant(t, "b-4", alice, bob)),
	}
	res, err := c.AppendBatch(context.Background(), envs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Entry == nil || res[0].Denied || res[0].Entry.Leaf.Delegation.ID != "b-2" {
		t.Errorf("fresh delegation: %+v", res[0])
	}
	if res[1].Entry == nil || !res[1].Entry.Duplicate {
		t.Errorf("resubmission: %+v", res[1])
	}
	if !res[2].Denied || res[2].Entry.Leaf.Decision.Reasons[0] != proofs.ReasonIDReused {
		t.Errorf("reused id: %+v", res[2])
	}
	if res[3].Entry != nil || proofs.Reason(res[3].Err) != proofs.ReasonIssuerNotRegistered {
		t.Errorf("unregistered issuer: %+v", res[3])
	}
	if res[4].Entry == nil || res[4].Denied {
		t.Errorf("fresh delegation after a refusal: %+v", res[4])
	}
	cp := res[0].Entry.Checkpoint
	for i, r := range res {
		if r.Entry != nil && r.Entry.Checkpoint != cp {
			t.Errorf("answer %d is proven against another checkpoint", i)
		}
	}
	if _, err := c.AppendBatch(context.Background(), nil); err == nil {
		t.Error("an empty batch was accepted")
	}
}
