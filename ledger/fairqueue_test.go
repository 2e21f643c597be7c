package ledger

import (
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

func sizedRequest(n int) *request { return &request{canon: make([]byte, n)} }

// TestFairQueueOrder: an agent with a deep queue of large envelopes does
// not hold back another agent's request: the sequencer takes it within
// one round, and each agent's own requests stay in order.
func TestFairQueueOrder(t *testing.T) {
	q := newFairQueue(1000, 500)
	flood := make([]*request, 100)
	for i := range flood {
		flood[i] = sizedRequest(30 << 10)
		if err := q.push("flood", flood[i]); err != nil {
			t.Fatal(err)
		}
	}
	calm := sizedRequest(600)
	if err := q.push("calm", calm); err != nil {
		t.Fatal(err)
	}
	next := 0
	for i := 0; ; i++ {
		r := q.pop()
		if r == calm {
			if i > 1 {
				t.Fatalf("the calm agent's request came out at position %d, behind %d of the flood's", i, i)
			}
			continue
		}
		if r == nil {
			break
		}
		if r != flood[next] {
			t.Fatalf("the flood's request %d came out of order", next)
		}
		next++
	}
	if next != len(flood) || q.len() != 0 || len(q.agents) != 0 {
		t.Fatalf("popped %d of %d; %d left; %d agents held", next, len(flood), q.len(), len(q.agents))
	}
}

// TestFairQueueShares: an agent is refused queue_full at its share while
// others still get in; the whole queue has its own bound.
func TestFairQueueShares(t *testing.T) {
	q := newFairQueue(10, 4)
	for i := range 4 {
		if err := q.push("a", sizedRequest(100)); err != nil {
			t.Fatalf("a's request %d: %v", i, err)
		}
	}
	err := q.push("a", sizedRequest(100))
	if proofs.Reason(err) != ReasonQueueFull || !strings.Contains(err.Error(), "a has 4 requests waiting") {
		t.Fatalf("a over its share: %v", err)
	}
	for i := range 4 {
		if err := q.push("b", sizedRequest(100)); err != nil {
			t.Fatalf("b's request %d with a at its share: %v", i, err)
		}
	}
	q.push("c", sizedRequest(100))
	q.push("c", sizedRequest(100))
	if err := q.push("d", sizedRequest(100)); proofs.Reason(err) != ReasonQueueFull || !strings.Contains(err.Error(), "queue is full") {
		t.Fatalf("over the queue's bound: %v", err)
	}
	if q.pop() == nil {
		t.Fatal("nothing to pop")
	}
	if err := q.push("d", sizedRequest(100)); err != nil {
		t.Fatalf("after one left: %v", err)
	}
}
