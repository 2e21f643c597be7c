package ledger

import (
	"container/list"
	"sync"

	"github.com/warrantlog/warrant/proofs"
)

// fairQueue is the sequencer's intake: one FIFO per agent, served by
// deficit round robin over the bytes of the envelopes. An agent that
// floods fills its own FIFO, up to its share, and is then refused
// queue_full; the others' requests wait behind at most one quantum of its
// bytes per round, not behind everything it queued. The agent is the one
// the rate limits count against (limitKey); entries the log writes itself
// have the empty agent.
//
// Safe for concurrent use: request goroutines push, the sequencer pops.
type fairQueue struct {
	maxTotal, maxAgent int

	mu     sync.Mutex
	agents map[string]*agentFIFO
	active list.List // of *agentFIFO with requests, in service order
	n      int
	ready  chan struct{} // has a value while n > 0 may hold (a hint)
}

type agentFIFO struct {
	agent   string
	reqs    []*request
	deficit int
	elem    *list.Element
}

// fairQuantum is the bytes an agent may have sequenced per round: one
// maximum-size envelope, so that every request fits in one visit.
const fairQuantum = 32 << 10

func newFairQueue(maxTotal, maxAgent int) *fairQueue {
	return &fairQueue{maxTotal: maxTotal, maxAgent: maxAgent, agents: map[string]*agentFIFO{}, ready: make(chan struct{}, 1)}
}

// push queues r for agent, or refuses it (queue_full) when the queue or
// the agent's share of it is full.
func (q *fairQueue) push(agent string, r *request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= q.maxTotal {
		return proofs.Errorf(ReasonQueueFull, "the sequencer queue is full (%d requests); retry with back-off", q.maxTotal)
	}
	f := q.agents[agent]
	if f == nil {
		f = &agentFIFO{agent: agent}
		q.agents[agent] = f
	}
	if len(f.reqs) >= q.maxAgent {
		return proofs.Errorf(ReasonQueueFull, "%s has %d requests waiting for the sequencer, its share of the queue; retry with back-off", agentName(agent), len(f.reqs))
	}
	f.reqs = append(f.reqs, r)
	if f.elem == nil {
		f.elem = q.active.PushBack(f)
	}
	q.n++
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return nil
}

// pop takes the next request in fair order, or nil if none is queued.
func (q *fairQueue) pop() *request { return q.popWithin(nil) }

// popWithin takes the next request in fair order among the agents room
// admits (room(agent, size) false skips the agent for now, keeping its
// place and credit), or nil if there is none. The sequencer uses it to
// cap one agent's bytes in a group commit.
func (q *fairQueue) popWithin(room func(agent string, size int) bool) *request {
	q.mu.Lock()
	defer q.mu.Unlock()
	// One quantum covers any request, so each agent is topped up at most
	// once per call and the scan ends.
	for e := q.active.Front(); e != nil; {
		f := e.Value.(*agentFIFO)
		size := len(f.reqs[0].canon)
		if room != nil && !room(f.agent, size) {
			e = e.Next()
			continue
		}
		if f.deficit < size {
			// This agent's turn is over: top it up for the next round, and
			// look again from the front.
			f.deficit += fairQuantum
			q.active.MoveToBack(e)
			e = q.active.Front()
			continue
		}
		r := f.reqs[0]
		f.reqs[0] = nil
		f.reqs = f.reqs[1:]
		f.deficit -= len(r.canon)
		q.n--
		if len(f.reqs) == 0 {
			// An agent that goes idle keeps no credit and no memory.
			q.active.Remove(e)
			delete(q.agents, f.agent)
		}
		if q.n > 0 {
			select {
			case q.ready <- struct{}{}:
			default:
			}
		}
		return r
	}
	return nil
}

// len is the number of queued requests.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func agentName(agent string) string {
	if agent == "" {
		return "the log"
	}
	return agent
}
