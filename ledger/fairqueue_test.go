package ledger

import (
	"fmt"
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

// TestFairQueueWithin: an agent the sequencer has no room for in this
// batch is skipped, keeping its place, and the others are served.
func TestFairQueueWithin(t *testing.T) {
	q := newFairQueue(100, 50)
	for range 3 {
		if err := q.push("flood", sizedRequest(30<<10)); err != nil {
			t.Fatal(err)
		}
	}
	calm := sizedRequest(600)
	if err := q.push("calm", calm); err != nil {
		t.Fatal(err)
	}
	noFlood := func(agent string, _ int) bool { return agent != "flood" }
	if r := q.popWithin(noFlood); r != calm {
		t.Fatal("the calm request was not served while the flood had no room")
	}
	if r := q.popWithin(noFlood); r != nil {
		t.Fatal("a request of an agent without room was served")
	}
	for range 3 {
		if q.pop() == nil {
			t.Fatal("the skipped agent lost its requests")
		}
	}
	if q.len() != 0 {
		t.Fatalf("%d left", q.len())
	}
}

// TestCollectCapsAgentBytes: a group commit holds at most
// MaxBatchAgentBytes of one agent's envelopes (its first always fits),
// while another agent's request still joins the batch.
func TestCollectCapsAgentBytes(t *testing.T) {
	f := newFixture(t, nil)
	l := &Log{opts: f.log.opts, intake: newFairQueue(1000, 500)}
	l.opts.MaxBatchAgentBytes = 3000
	var floodBytes int
	for i := range 20 {
		d := delegation(fmt.Sprintf("dlg-flood-%d", i), humanID, agentID, fmt.Sprintf("nonce-%08d", i))
		r, err := f.log.prepare(signDelegation(t, f.human, d))
		if err != nil {
			t.Fatal(err)
		}
		floodBytes = len(r.canon)
		if err := l.intake.push(limitKey(r), r); err != nil {
			t.Fatal(err)
		}
	}
	calmDlg := delegation("dlg-calm", agentID, humanID, "nonce-calm-0001")
	calm, err := f.log.prepare(signDelegation(t, f.agent, calmDlg))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.intake.push(limitKey(calm), calm); err != nil {
		t.Fatal(err)
	}
	batch := l.collect(l.intake.pop())
	per := map[string]int{}
	for _, r := range batch {
		per[limitKey(r)] += len(r.canon)
	}
	if per[humanID] > max(l.opts.MaxBatchAgentBytes, floodBytes) {
		t.Fatalf("one agent has %d bytes in a batch, cap %d", per[humanID], l.opts.MaxBatchAgentBytes)
	}
	if per[agentID] == 0 {
		t.Fatal("the other agent's request was left out of the batch")
	}
	total := len(batch)
	for l.intake.len() > 0 {
		total += len(l.collect(l.intake.pop()))
	}
	if total != 21 {
		t.Fatalf("collected %d requests of 21", total)
	}
}
