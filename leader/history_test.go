package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/warrantlog/warrant/internal/etcdtest"
)

// Three nodes swap as fast as they can while the test deposes the leader
// again and again behind its back (revoking its lease, deleting its key).
// Afterwards etcd's history of the checkpoint key must be one chain: every
// write swapped from the write before it, every swap that returned nil is
// in it, and no swap that was refused (ErrDeposed, ErrConflict) is.
func TestHistoryUnderDepositions(t *testing.T) {
	etcd := etcdtest.Start(t)
	raw := rawClient(t, etcd.Endpoint())
	ctx := ctxWait(t)

	type swap struct {
		old []byte
		err error
	}
	var (
		mu    sync.Mutex
		swaps = map[string]swap{} // new value -> what its Swap was given and returned
		wins  int
	)
	stop, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var wg sync.WaitGroup
	for _, id := range []string{"n0", "n1", "n2"} {
		c := dial(t, etcd.Endpoint(), id)
		wg.Go(func() {
			n := 0
			for stop.Err() == nil {
				term, err := c.Campaign(stop)
				if err != nil {
					return
				}
				for stop.Err() == nil {
					old, err := c.Checkpoint(stop)
					if err != nil {
						break
					}
					n++
					val := fmt.Sprintf("%s#%d", id, n)
					err = term.Swap(stop, old, []byte(val))
					if stop.Err() != nil && err != nil {
						// Cut short by the test's end: its outcome is
						// unknown, whatever error it says.
						err = ErrUnknown
					}
					mu.Lock()
					swaps[val] = swap{old, err}
					if err == nil {
						wins++
					}
					mu.Unlock()
					if errors.Is(err, ErrDeposed) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				term.Resign(context.Background())
			}
		})
	}

	winsNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return wins
	}
	for round := range 6 {
		target := winsNow() + 5
		eventually(t, fmt.Sprintf("round %d: five more swaps", round), func() bool { return winsNow() >= target })
		resp, err := raw.Get(ctx, DefaultPrefix+"election/", clientv3.WithFirstCreate()...)
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("round %d: no leader key: %v", round, err)
		}
		if round%2 == 0 {
			_, err = raw.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
		} else {
			_, err = raw.Delete(ctx, string(resp.Kvs[0].Key))
		}
		if err != nil {
			t.Fatalf("round %d: depose: %v", round, err)
		}
	}
	stopAll()
	wg.Wait()

	// etcd's history of the key (nothing compacts it in this test).
	last, err := raw.Get(ctx, DefaultPrefix+"checkpoint")
	if err != nil || len(last.Kvs) != 1 {
		t.Fatalf("checkpoint: %v, %v", last, err)
	}
	var history []string
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	for wr := range raw.Watch(wctx, DefaultPrefix+"checkpoint", clientv3.WithRev(1)) {
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range wr.Events {
			history = append(history, string(ev.Kv.Value))
			if ev.Kv.ModRevision == last.Kvs[0].ModRevision {
				wcancel()
			}
		}
	}
	if int64(len(history)) != last.Kvs[0].Version {
		t.Fatalf("history has %d writes, the key's version is %d", len(history), last.Kvs[0].Version)
	}

	inHistory := map[string]bool{}
	for i, v := range history {
		s, ok := swaps[v]
		if !ok {
			t.Fatalf("write %d (%q) was swapped by nobody", i, v)
		}
		if inHistory[v] {
			t.Fatalf("write %d (%q) written twice", i, v)
		}
		inHistory[v] = true
		if s.err != nil && !errors.Is(s.err, ErrUnknown) {
			t.Errorf("write %d (%q) is in etcd but its Swap said %v", i, v, s.err)
		}
		want := ""
		if i > 0 {
			want = history[i-1]
		}
		if string(s.old) != want {
			t.Errorf("write %d (%q) swapped from %q, but the write before it is %q", i, v, s.old, want)
		}
	}
	refused := 0
	for v, s := range swaps {
		if s.err == nil && !inHistory[v] {
			t.Errorf("Swap of %q returned nil but it is not in etcd", v)
		}
		if errors.Is(s.err, ErrDeposed) || errors.Is(s.err, ErrConflict) {
			refused++
		}
	}
	t.Logf("%d writes, %d swaps, %d refused", len(history), len(swaps), refused)
}
