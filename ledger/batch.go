package ledger

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// appendBatchGuarded appends the envelopes of one AppendBatch from the
// client at addr (appendBatch, append.go, measures it). Byte-identical
// envelopes are parsed and verified once: the later copies get the first
// one's answer, marked duplicate (as the sequencer would mark them). Distinct envelopes are authenticated in waves no larger
// than the peer's remaining failure budget, so a batch of forgeries costs
// at most that budget in signature checks; what the budget does not cover
// is refused unverified. The authentic requests are then sequenced
// together, most likely in one group commit.
func (l *Log) appendBatchGuarded(ctx context.Context, addr string, envs [][]byte) ([]*Appended, []error) {
	peer := budgetKey(addr)
	n := len(envs)
	appended, errs := make([]*Appended, n), make([]error, n)

	reqs := make([]*request, n)
	first := make(map[string]int, n) // envelope bytes -> first index
	copyOf := make([]int, n)
	var todo []int
	for i, e := range envs {
		copyOf[i] = -1
		if j, ok := first[string(e)]; ok {
			copyOf[i] = j
			continue
		}
		first[string(e)] = i
		todo = append(todo, i)
	}
	for len(todo) > 0 {
		// The budget is read, not taken: concurrent batches of one peer
		// may each verify up to what is left, and the failures of all of
		// them are then charged, putting the peer in debt for as long as it
		// takes to earn them (requests in flight per address are capped, so
		// the overspend is bounded). Taking the tokens first would hold an
		// honest client's concurrent batches to the budget at once.
		k := min(l.guard.allowance(peer), len(todo))
		if k == 0 {
			for _, i := range todo {
				errs[i] = l.guard.check(peer)
			}
			break
		}
		wave := todo[:k]
		todo = todo[k:]
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(batchWorkers(), len(wave)) {
			wg.Go(func() {
				for j := int(next.Add(1) - 1); j < len(wave); j = int(next.Add(1) - 1) {
					i := wave[j]
					reqs[i], errs[i] = l.prepare(envs[i])
					// Yield after each envelope: the workers take every
					// core for as long as a batch takes to parse (tens of
					// milliseconds for a batch of large envelopes), and a
					// goroutine of another client that became runnable
					// meanwhile would otherwise wait for the scheduler's
					// 10 ms preemption to get a core.
					runtime.Gosched()
				}
			})
		}
		wg.Wait()
		failed := 0
		for _, i := range wave {
			if errs[i] != nil && authFailure(errs[i]) {
				failed++
			}
		}
		l.guard.fail(peer, failed)
	}
	var wg sync.WaitGroup
	for i, r := range reqs {
		if r != nil {
			wg.Go(func() { appended[i], errs[i] = l.appendPrepared(ctx, r) })
		}
	}
	wg.Wait()
	for i, j := range copyOf {
		if j < 0 {
			continue
		}
		errs[i] = errs[j]
		if a := appended[j]; a != nil {
			c := *a
			c.Duplicate = true
			appended[i] = &c
		}
	}
	l.refusedOverLimits(ctx, peer, envs, errs)
	return appended, errs
}

// batchWorkers is how many goroutines parse and verify one batch: one
// core fewer than there are, and at least one. Not a goroutine per
// envelope: 256 runnable goroutines of one batch would queue every other
// client's request behind them. Not one per core either: with every core
// taken by a batch's workers, a single append that became runnable waits
// for the scheduler (which looks at the network only when it has nothing
// else to run, or every 10 ms), and one large batch sets the latency of
// everyone else's appends.
func batchWorkers() int {
	return max(1, runtime.GOMAXPROCS(0)-1)
}
